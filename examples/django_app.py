# Example: a single-file Django project rate limited with floodwall.
#
#   pip install "floodwall[drf]"
#   python examples/django_app.py runserver 127.0.0.1:8000
#   curl -i localhost:8000/items           (repeat: 429 after 5 a minute)
from __future__ import annotations

import sys

from django.conf import settings

settings.configure(
    DEBUG=True,
    SECRET_KEY="floodwall-example-not-secret",
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

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
