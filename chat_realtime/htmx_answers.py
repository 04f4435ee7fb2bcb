"""What an htmx request's answer needs besides its fragment.

- `Vary: HX-Request`: a page answers an htmx request with a fragment and a plain
  request with the whole page, at one URL. Without it the browser's cache mixed
  them up: Back to a chat opened from the sidebar showed the bare chat pane.
- A login redirect becomes a client redirect: an htmx request whose session
  ended (logged out in another tab, expired) was answered with the login page,
  which htmx swapped into a result row or the bell menu, where it could not log
  anyone in. The whole page goes to the login page instead, and comes back to
  where the person was.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect


class HtmxAnswersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        patch_vary_headers(response, ("HX-Request",))
        if request.htmx and response.status_code == 302 and _to_login(response["Location"]):
            # Back to the page the person was on (the request itself was only a part of it).
            page = urlsplit(request.htmx.current_url or "/")
            login = redirect_to_login(page.path + (f"?{page.query}" if page.query else ""))
            return HttpResponseClientRedirect(login["Location"])
        return response


def _to_login(location: str) -> bool:
    return urlsplit(location).path == resolve_url(settings.LOGIN_URL)
