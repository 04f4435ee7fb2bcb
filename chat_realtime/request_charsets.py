"""A request body in a charset nothing can read leniently: 400 before any view reads it.

Django and DRF decode form and multipart bodies in the charset the
Content-Type names, replacing what does not decode. Some of Python's codecs
cannot: idna and punycode refuse to replace, and those that turn bytes into
bytes (rot13, base64, zlib, ...) decode no text at all; reading such a body
failed with a 500. A charset Python does not know at all is left alone:
Django then reads the body in its own (UTF-8), as before.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Callable

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse


class ReadableCharsetMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        charset = request.content_params.get("charset") if request.content_params else None
        if charset and not _decodes_leniently(charset):
            raise BadRequest(f"The body's charset {charset[:40]!r} cannot be read; send UTF-8.")
        return self.get_response(request)


@functools.lru_cache(maxsize=64)
def _decodes_leniently(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return True  # unknown: Django ignores it
    try:
        b"a=1\xff".decode(charset, "replace")
    except (LookupError, UnicodeError):
        return False
    return True
