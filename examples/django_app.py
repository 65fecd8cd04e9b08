"""Example: a single-file Django project rate limited with floodwall.

    pip install "floodwall[drf]"
    python examples/django_app.py runserver     (HOST and PORT from the environment,
                                                 default 127.0.0.1:8000)
    curl -i localhost:8000/items                (repeat: 429 after 5 a minute)

Under a real server, from the repository root (the module exposes both):

    gunicorn -w 4 examples.django_app:application          (WSGI)
    uvicorn examples.django_app:asgi_application           (ASGI)

With several worker processes, set "STORE" to "shm://mysite" so that they
share one count (memory:// gives each worker its own).
"""

from __future__ import annotations

import os
import sys

from django.conf import settings

settings.configure(
    DEBUG=os.environ.get("DJANGO_DEBUG", "") == "1",
    # Set DJANGO_SECRET_KEY in production; this default is for the example only.
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "floodwall-example-not-secret"),
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
    DATABASES={},
    MIDDLEWARE=[
        # After AuthenticationMiddleware if you key by user.
        "floodwall.integrations.django.FloodwallMiddleware",
    ],
    FLOODWALL={
        "DEFAULT": "5/minute",  # per client IP, for views without their own limit
        "STORE": "memory://",  # "shm://mysite" to share between worker processes
        "EXEMPT": ["/health", "/static/*"],
        "ROUTES": {"POST /login": "3/minute"},
        "TRUSTED_PROXIES": None,  # e.g. 1 behind one reverse proxy
        "HEADERS": "both",
    },
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": [],
        "UNAUTHENTICATED_USER": None,
        "DEFAULT_THROTTLE_CLASSES": ["floodwall.integrations.drf.FloodwallThrottle"],
        "DEFAULT_THROTTLE_RATES": {"floodwall": "100/min", "uploads": "5/hour"},
    },
)

import django  # noqa: E402

django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views import View  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

import floodwall  # noqa: E402
from floodwall.integrations.django import exempt, limit  # noqa: E402
from floodwall.integrations.drf import FloodwallScopedThrottle  # noqa: E402


def items(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"items": [1, 2, 3]})


@exempt
def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def login(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"token": "..."})


@limit("10/hour", cost=2, name="reports")
async def report(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"report": "async view, 2 units a call"})


@limit("2/second")
class Dashboard(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("class-based view")


@floodwall.rate_limit("5/5minutes")
def search(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"results": []})


class Upload(APIView):
    throttle_classes = [FloodwallScopedThrottle]
    throttle_scope = "uploads"  # REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["uploads"]

    def post(self, request: object) -> Response:
        return Response({"uploaded": True})


urlpatterns = [
    path("items", items),
    path("health", health),
    path("login", login),
    path("report", report),
    path("dashboard", Dashboard.as_view()),
    path("search", search),
    path("upload", Upload.as_view()),
]

application = get_wsgi_application()  # gunicorn examples.django_app:application
asgi_application = get_asgi_application()  # uvicorn examples.django_app:asgi_application

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    argv = list(sys.argv)
    if argv[1:2] == ["runserver"] and all(arg.startswith("-") for arg in argv[2:]):
        # No address given: take it from the environment, like the other examples.
        argv.append(f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}")
    execute_from_command_line(argv)
