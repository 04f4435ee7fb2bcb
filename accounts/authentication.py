"""The API's access tokens: simplejwt's authentication, with the token's user read by a written-out query."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from accounts.models import User


class AccessTokenAuthentication(JWTAuthentication):
    """simplejwt's `JWTAuthentication`, the same checks; the user is read otherwise, and its errors carry the
    codes the API documents.

    simplejwt reads the token's user with `User.objects.get`, on every API
    request and websocket connect, and building that query took twice as long
    as running it (measured, docs/benchmarks.md: 0.47-0.61 ms against 0.22).
    """

    def get_user(self, validated_token: Token) -> User:
        if api_settings.USER_ID_FIELD != "id":
            return super().get_user(validated_token)  # the written-out query reads by id only
        try:
            user_id = int(validated_token[api_settings.USER_ID_CLAIM])
        except (KeyError, TypeError, ValueError, OverflowError) as error:  # OverflowError: an infinite number
            raise InvalidToken(_("Token contained no recognizable user identification")) from error
        user = User.objects.by_id(user_id)
        # The codes of docs/api.md (simplejwt's own are user_not_found and user_inactive): a client refreshes
        # or logs in again on token_not_valid, and tells a banned person so on account_inactive.
        if user is None:
            raise AuthenticationFailed(_("The token's account no longer exists."), code="token_not_valid")
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed(_("This account is deactivated."), code="account_inactive")
        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(_("The user's password has been changed."), code="password_changed")
        return user


class AccessTokenScheme(SimpleJWTScheme):
    """The OpenAPI schema's description of these tokens: simplejwt's, which drf-spectacular gives its class only."""

    target_class = AccessTokenAuthentication
