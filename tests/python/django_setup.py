# One Django configuration for every test module that drives Django (the
# middleware, DRF throttles, floodwall.rate_limit): settings can be configured
# once per process, so they live here. Each module points ROOT_URLCONF at its
# own URLs with override_settings.
from __future__ import annotations

from typing import Any

import django
from django.conf import settings

DJANGO_SETTINGS: dict[str, Any] = {
    "DEBUG": False,
    "ALLOWED_HOSTS": ["*"],
    "SECRET_KEY": "floodwall-tests",
    "INSTALLED_APPS": ["django.contrib.contenttypes", "django.contrib.auth"],
    "DATABASES": {},
    "MIDDLEWARE": [],
    "ROOT_URLCONF": "django.contrib.auth.urls",
    "USE_TZ": True,
    "REST_FRAMEWORK": {
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": [],
        "UNAUTHENTICATED_USER": None,
        "DEFAULT_THROTTLE_CLASSES": ["floodwall.integrations.drf.FloodwallThrottle"],
        "DEFAULT_THROTTLE_RATES": {
            "floodwall": "2/min",
            "anon": "1/min",
            "user": "3/min",
            "uploads": "5/hour",
        },
    },
}


def configure() -> None:
    """Configure Django for the tests, once per process."""
    if not settings.configured:
        settings.configure(**DJANGO_SETTINGS)
        django.setup()
