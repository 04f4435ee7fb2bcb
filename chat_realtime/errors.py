"""The one error path.

Services raise `ApplicationError` (or a subclass); the DRF exception handler
and the JSON 404/500 views turn every error, ours or the framework's, into the
same body: `{"error": {"code", "message", "fields"}}`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    """A refusal that the client can act on. `fields` maps a field to its messages."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.fields = fields or {}


class NotFoundError(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class ConflictError(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class ValidationFailed(ApplicationError):
    code = "validation_error"

    def __init__(self, fields: dict[str, list[str]], message: str = "Some fields are invalid.") -> None:
        super().__init__(message, fields=fields)


class AuthenticationError(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED
    code = "authentication_failed"


class RateLimited(ApplicationError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _messages(detail: Any) -> list[str]:
    """Flatten a DRF error detail (string, list or nested dict) into messages."""
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in _messages(value)]
    if isinstance(detail, list):
        return [message for item in detail for message in _messages(item)]
    return [str(detail)]


def _validation_body(detail: Any) -> dict[str, Any]:
    if not isinstance(detail, dict):
        messages = _messages(detail)
        return error_body("validation_error", messages[0] if messages else "Invalid input.")
    fields = {}
    general: list[str] = []
    for name, value in detail.items():
        if name in ("non_field_errors", "__all__"):
            general.extend(_messages(value))
        else:
            fields[str(name)] = _messages(value)
    message = general[0] if general else "Some fields are invalid."
    return error_body("validation_error", message, fields)


def _api_exception_body(exc: exceptions.APIException) -> dict[str, Any]:
    detail = exc.detail
    # simplejwt puts {"detail", "code", "messages"} in its token errors.
    if isinstance(detail, dict) and "detail" in detail:
        return error_body(str(detail.get("code") or exc.default_code), str(detail["detail"]))
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    messages = _messages(detail)
    return error_body(code, messages[0] if messages else str(exc.default_detail))


DATABASE_DOWN = "The service is briefly unavailable. Try again in a moment."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database went away (restart, failover, dropped connection): retryable, not our bug.
        return Response(error_body("database_unavailable", DATABASE_DOWN), status=503, headers={"Retry-After": "5"})
    if isinstance(exc, ApplicationError):
        response = Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    # DRF's own handler sets the headers (WWW-Authenticate, Retry-After) and the status.
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = _validation_body(exc.detail)
    elif isinstance(exc, exceptions.APIException):
        response.data = _api_exception_body(exc)
    return response


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """What Django refuses before any view runs (a body past DATA_UPLOAD_MAX_MEMORY_SIZE, more fields
    than DATA_UPLOAD_MAX_NUMBER_FIELDS): in the API's error shape under /api/."""
    if not _wants_json(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body("request_too_large", "The request is too large."), status=413)
    if isinstance(exception, (TooManyFieldsSent, TooManyFilesSent)):
        return JsonResponse(error_body("too_many_fields", "The request has too many fields."), status=400)
    return JsonResponse(error_body("bad_request", "The request could not be read."), status=400)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)
    return render(request, "500.html", status=500)
