"""Content-Security-Policy for every page.

Django 5.2 sets the other headers (nosniff, X-Frame-Options, Referrer-Policy,
COOP, HSTS behind TLS). The policy allows only our own scripts and styles (htmx
and its ws extension are served from our static files), our own websocket, and
images from ourselves and Cloudinary. htmx runs without eval here: the app uses
no hx-on or js: expressions.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# The interactive API docs (Swagger UI) start from an inline script of their own.
EXEMPT_PREFIXES = ("/api/docs/",)


def content_security_policy() -> str:
    images = "'self' data: blob:"
    if settings.CLOUDINARY.get("cloud_name"):
        images += " https://res.cloudinary.com"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            f"img-src {images}",
            # 'self' covers our own ws:// and wss:// (CSP level 3).
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "object-src 'none'",
        ]
    )


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = content_security_policy()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(EXEMPT_PREFIXES):
            response.headers.setdefault("Content-Security-Policy", self.policy)
        return response
