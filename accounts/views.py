"""Browser pages of accounts: forms in, services called, pages out."""

from __future__ import annotations

import re

from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accounts import forms, services
from chat_realtime.errors import ApplicationError, RateLimited
from chat_realtime.form_errors import add_service_errors
from chat_realtime.rate_limits import client_ip


def _refused(request: HttpRequest, template: str, form, error: ApplicationError, **context) -> HttpResponse:
    add_service_errors(form, error)
    status = 429 if isinstance(error, RateLimited) else 400
    return render(request, template, {"form": form, **context}, status=status)


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "/"


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = forms.SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.register_user(
                username=data["username"],
                email=data["email"],
                phone_number=data["phone_number"],
                password=data["password"],
                client_ip=client_ip(request),
            )
        except ApplicationError as error:
            return _refused(request, "accounts/signup.html", form, error)
        login(request, user)
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def login_page(request: HttpRequest) -> HttpResponse:
    form = forms.LoginForm(request.POST or None)
    next_url = _next_url(request)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.login_user(**form.cleaned_data, client_ip=client_ip(request), request=request)
        except ApplicationError as error:
            return _refused(request, "accounts/login.html", form, error, next=next_url)
        login(request, user)
        return redirect(next_url)
    status = 400 if form.errors else 200
    return render(request, "accounts/login.html", {"form": form, "next": next_url}, status=status)


@require_POST
def logout_page(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("accounts:login")


@login_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    form = forms.PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.change_password(user=request.user, **form.cleaned_data)
        except ApplicationError as error:
            return _refused(request, "accounts/password_change.html", form, error)
        update_session_auth_hash(request, request.user)
        messages.success(request, "Your password was changed. Other devices have been signed out.")
        return redirect("accounts:profile")
    return render(request, "accounts/password_change.html", {"form": form}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def password_reset(request: HttpRequest) -> HttpResponse:
    form = forms.PasswordResetRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.request_password_reset(
                email=form.cleaned_data["email"],
                site_url=request.build_absolute_uri("/"),
                client_ip=client_ip(request),
            )
        except ApplicationError as error:
            return _refused(request, "accounts/password_reset.html", form, error)
        return render(request, "accounts/password_reset_sent.html")
    return render(request, "accounts/password_reset.html", {"form": form}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def password_reset_confirm(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    try:
        services.user_for_reset_token(uid=uidb64, token=token)
    except ApplicationError as error:
        return render(request, "accounts/password_reset_confirm.html", {"invalid": error.message}, status=400)
    form = forms.SetPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.reset_password(uid=uidb64, token=token, new_password=form.cleaned_data["new_password"])
        except ApplicationError as error:
            return _refused(request, "accounts/password_reset_confirm.html", form, error)
        messages.success(request, "Your password was reset. Log in with the new one.")
        return redirect("accounts:login")
    status = 400 if form.errors else 200
    return render(request, "accounts/password_reset_confirm.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    form = forms.ProfileForm(request.POST or None, request.FILES or None, initial={"username": request.user.username})
    if request.method == "POST" and form.is_valid():
        try:
            services.update_profile(
                user=request.user,
                username=form.cleaned_data["username"],
                avatar=form.cleaned_data.get("avatar"),
            )
        except ApplicationError as error:
            request.user.refresh_from_db()
            return _refused(request, "accounts/profile.html", form, error)
        messages.success(request, "Profile saved.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request: HttpRequest) -> HttpResponse:
    form = forms.ThemeForm(request.POST or None, initial={"theme": request.user.theme})
    if request.method == "POST" and form.is_valid():
        try:
            services.set_theme(user=request.user, theme=form.cleaned_data["theme"])
        except ApplicationError as error:
            return _refused(request, "accounts/settings.html", form, error)
        messages.success(request, "Theme saved.")
        return redirect("accounts:settings")
    return render(request, "accounts/settings.html", {"form": form}, status=400 if form.errors else 200)


REPORTED_ID = re.compile(r"[0-9]{1,18}")
# A message id of either store (digits, or a MongoDB ObjectId's hex), as the page puts it in the form.
REPORTED_MESSAGE_ID = re.compile(r"[0-9A-Za-z]{1,64}")


@login_required
@require_http_methods(["GET", "POST"])
def report(request: HttpRequest) -> HttpResponse:
    """Report a message or a person from the chat; htmx gets a thank-you (or the reason it failed) in place.

    GET answers the form for `message_id` or `user_id`, which the page loads when its Report opens.
    """
    if request.method == "GET":
        return _report_form(request)
    user_id = request.POST.get("user_id")
    try:
        services.report(
            reporter=request.user,
            reason=request.POST.get("reason", ""),
            note=request.POST.get("note", "")[:1000],
            message_id=request.POST.get("message_id") or None,
            user_id=int(user_id) if user_id and REPORTED_ID.fullmatch(user_id) else None,
        )
    except ApplicationError as error:
        status = error.status_code
        return render(request, "accounts/partials/_report_done.html", {"error": error}, status=status)
    return render(request, "accounts/partials/_report_done.html", {})


def _report_form(request: HttpRequest) -> HttpResponse:
    message_id, user_id = request.GET.get("message_id", ""), request.GET.get("user_id", "")
    if REPORTED_MESSAGE_ID.fullmatch(message_id):
        context = {"message_id": message_id}
    elif REPORTED_ID.fullmatch(user_id):
        context = {"user_id": int(user_id)}
    else:
        error = ApplicationError("Say which message or person to report.", code="validation_error")
        return render(request, "accounts/partials/_report_done.html", {"error": error}, status=400)
    return render(request, "accounts/partials/_report_form.html", context)
