"""The project's admin site (the default one, through accounts.apps.AdminConfig).

Staff log in and change their own password through the site's own services:
the same login limits, and the same consequences of a new password.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from accounts import services
from chat_realtime.errors import ApplicationError, RateLimited
from chat_realtime.rate_limits import client_ip


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login, through the site's own (accounts.services.login_user): its attempts count
    against the same limits, so staff passwords cannot be guessed here at leisure."""

    def clean(self):
        login, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if login is not None and password:
            try:
                self.user_cache = services.login_user(
                    login=login, password=password, client_ip=client_ip(self.request), request=self.request
                )
            except RateLimited as error:
                raise ValidationError(error.message, code="rate_limited") from None
            except ApplicationError:
                raise self.get_invalid_login_error() from None
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class ChatAdminSite(admin.AdminSite):
    login_form = AdminLoginForm

    def password_change(self, request, extra_context=None):
        response = super().password_change(request, extra_context)
        if request.method == "POST" and response.status_code == 302:
            # Changed: the person's other sessions, tokens and sockets end, as after a change on the site.
            services.sign_out_everywhere(user=request.user)
        return response
