"""Account writes: sign-up, login, tokens, passwords, profile.

Every entry point (API, browser, admin) calls these; each rule lives here once.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import authenticate, password_validation
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import (
    Report,
    Theme,
    User,
    normalize_email,
    normalize_phone_number,
    phone_number_validator,
    username_validator,
)
from accounts.selectors import active_user_by_email, user_by_login
from chat_realtime.errors import ApplicationError, AuthenticationError, ConflictError, NotFoundError, ValidationFailed
from chat_realtime.images import avatar_file
from chat_realtime.rate_limits import check_rate_limit, count_attempts, refund_attempts
from chat_realtime.realtime import end_sessions

logger = logging.getLogger(__name__)

TOO_MANY_LOGINS = "Too many login attempts. Wait a moment and try again."
TOO_MANY_SIGNUPS = "Too many sign-ups from your network. Try again later."
TOO_MANY_RESETS = "Too many password reset requests. Try again later."


# --- Field rules ------------------------------------------------------------


def _username_errors(username: str, *, exclude: User | None = None) -> list[str]:
    if not username:
        return ["Choose a username."]
    try:
        username_validator(username)
    except ValidationError as error:
        return list(error.messages)
    taken = User.objects.filter(username__iexact=username)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    return ["This username is taken."] if taken.exists() else []


def _email_errors(email: str, *, exclude: User | None = None) -> list[str]:
    if not email:
        return ["Enter your email address."]
    try:
        validate_email(email)
    except ValidationError:
        return ["Enter a valid email address."]
    longest = User._meta.get_field("email").max_length
    if len(email) > longest:  # the standard allows longer addresses than the column holds
        return [f"An email address is at most {longest} characters."]
    taken = User.objects.filter(email__iexact=email)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    return ["This email is already registered."] if taken.exists() else []


def _phone_number_errors(phone_number: str, *, exclude: User | None = None) -> list[str]:
    if not phone_number:
        return ["Enter your phone number."]
    try:
        phone_number_validator(phone_number)
    except ValidationError as error:
        return list(error.messages)
    taken = User.objects.filter(phone_number=phone_number)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    return ["This phone number is already registered."] if taken.exists() else []


def _password_errors(password: str, *, user: User) -> list[str]:
    if not password:
        return ["Choose a password."]
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as error:
        return list(error.messages)
    return []


def _raise_if_any(errors: dict[str, list[str]]) -> None:
    errors = {field: messages for field, messages in errors.items() if messages}
    if errors:
        raise ValidationFailed(errors)


def _unique_conflict(error: IntegrityError) -> ValidationFailed:
    # A concurrent sign-up won the race between our check and the insert.
    text = str(error).lower()
    for field, message in (
        ("username", "This username is taken."),
        ("email", "This email is already registered."),
        ("phone_number", "This phone number is already registered."),
    ):
        if field in text:
            return ValidationFailed({field: [message]})
    return ValidationFailed({"username": ["This account already exists."]})


# --- Sign-up and login -----------------------------------------------------


def register_user(*, username: str, email: str, phone_number: str, password: str, client_ip: str) -> User:
    check_rate_limit("register", key=f"ip:{client_ip}", message=TOO_MANY_SIGNUPS)
    username = (username or "").strip()
    email = normalize_email(email)
    phone_number = normalize_phone_number(phone_number)
    candidate = User(username=username, email=email, phone_number=phone_number)
    _raise_if_any(
        {
            "username": _username_errors(username),
            "email": _email_errors(email),
            "phone_number": _phone_number_errors(phone_number),
            "password": _password_errors(password, user=candidate),
        }
    )
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError as error:
        raise _unique_conflict(error) from None
    return candidate


def login_user(*, login: str, password: str, client_ip: str, request: Any = None) -> User:
    """The active user that `login` (username, email or phone) and `password` name.

    Failed attempts count against LOGIN_RATE_LIMIT per client address and per account (whichever identifier
    or spelling names it); a login that succeeds gives its attempt back, so many people behind one address, or
    one person on many devices, are not held back by their own successes. Each attempt counts before its
    password is checked: guesses sent all at once count together.
    """
    account = user_by_login(login)
    account_key = f"user:{account.pk}" if account else f"login:{normalize_phone_number((login or '').lower())}"
    windows = [f"ip:{client_ip}", account_key]
    refusals = [refused for refused in count_attempts("login", windows, message=TOO_MANY_LOGINS) if refused]
    if refusals:
        refund_attempts("login", windows)  # not tried: it takes nobody's place, the account's nor the address's
        raise refusals[0]
    try:
        user = authenticate(request, username=login, password=password)
    except BaseException:
        refund_attempts("login", windows)  # not a guess that failed: the check itself did (the database away)
        raise
    if user is None:
        raise AuthenticationError("Wrong login or password.", code="invalid_credentials")
    refund_attempts("login", windows)
    return user


def sign_out_everywhere(*, user: User) -> None:
    """Every refresh token revoked and every open socket closed, on every worker: what a new password
    (changed, reset, or set by staff) and a ban mean."""
    revoke_all_refresh_tokens(user=user)
    end_sessions(user.pk)


# --- JWT refresh tokens ------------------------------------------------------


def issue_tokens(*, user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _invalid_refresh() -> AuthenticationError:
    return AuthenticationError("This refresh token is invalid, expired or revoked.", code="token_not_valid")


def _verified_refresh(raw: str) -> RefreshToken:
    try:
        return RefreshToken(raw)
    except TokenError:
        raise _invalid_refresh() from None


@transaction.atomic
def rotate_refresh_token(*, refresh: str) -> dict[str, str]:
    """Trade a refresh token for a new pair; the old one is spent.

    The token's row is locked so two concurrent uses cannot both succeed.
    """
    token = _verified_refresh(refresh)
    outstanding = OutstandingToken.objects.select_for_update().filter(jti=token[jwt_settings.JTI_CLAIM]).first()
    if outstanding is None or BlacklistedToken.objects.filter(token=outstanding).exists():
        raise _invalid_refresh()
    user = User.objects.filter(pk=token.get(jwt_settings.USER_ID_CLAIM), is_active=True).first()
    if user is None:
        raise _invalid_refresh()
    BlacklistedToken.objects.create(token=outstanding)
    return issue_tokens(user=user)


def revoke_refresh_token(*, refresh: str) -> None:
    token = _verified_refresh(refresh)
    token.blacklist()


def revoke_all_refresh_tokens(*, user: User) -> None:
    live = OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=t) for t in live], ignore_conflicts=True)


# --- Passwords ---------------------------------------------------------------


@transaction.atomic
def change_password(*, user: User, old_password: str, new_password: str) -> None:
    errors: dict[str, list[str]] = {}
    if not user.check_password(old_password or ""):
        errors["old_password"] = ["Your current password is not correct."]
    errors["new_password"] = _password_errors(new_password, user=user)
    _raise_if_any(errors)
    user.set_password(new_password)
    user.save(update_fields=["password"])
    sign_out_everywhere(user=user)


def request_password_reset(*, email: str, site_url: str, client_ip: str) -> None:
    """Mail a reset link if an active account has this email; say nothing either way."""
    check_rate_limit("password_reset", key=f"ip:{client_ip}", message=TOO_MANY_RESETS)
    check_rate_limit("password_reset", key=f"account:{normalize_email(email)}", message=TOO_MANY_RESETS)
    user = active_user_by_email(email)
    if user is None:
        return
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("accounts:password_reset_confirm", kwargs={"uidb64": uid, "token": token})
    context = {"user": user, "uid": uid, "token": token, "reset_url": site_url.rstrip("/") + path}
    try:
        send_mail(
            subject="Reset your chat-realtime password",
            message=render_to_string("accounts/emails/password_reset.txt", context),
            from_email=None,
            recipient_list=[user.email],
        )
    except Exception:
        # Answering differently would tell who has an account; the log tells the operator.
        logger.exception("could not send the password reset mail of user %s", user.pk)


def user_for_reset_token(*, uid: str, token: str) -> User:
    try:
        user = User.objects.get(pk=force_str(urlsafe_base64_decode(uid)), is_active=True)
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    if user is None or not default_token_generator.check_token(user, token):
        raise ApplicationError("This reset link is invalid or has expired.", code="invalid_reset_token")
    return user


@transaction.atomic
def reset_password(*, uid: str, token: str, new_password: str) -> User:
    user = user_for_reset_token(uid=uid, token=token)
    _raise_if_any({"new_password": _password_errors(new_password, user=user)})
    user.set_password(new_password)
    user.save(update_fields=["password"])
    sign_out_everywhere(user=user)
    return user


# --- Profile -------------------------------------------------------------------


def set_theme(*, user: User, theme: str) -> User:
    if theme not in Theme.values:
        raise ValidationFailed({"theme": [f"Choose one of: {', '.join(Theme.values)}."]})
    user.theme = theme
    user.save(update_fields=["theme"])
    return user


def update_profile(
    *,
    user: User,
    username: str | None = None,
    email: str | None = None,
    phone_number: str | None = None,
    avatar: Any = None,
) -> User:
    """Change what was given; leave the rest. The avatar is decoded and re-encoded first."""
    changes: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    if username is not None:
        changes["username"] = username.strip()
        errors["username"] = _username_errors(changes["username"], exclude=user)
    if email is not None:
        changes["email"] = normalize_email(email)
        errors["email"] = _email_errors(changes["email"], exclude=user)
    if phone_number is not None:
        changes["phone_number"] = normalize_phone_number(phone_number)
        errors["phone_number"] = _phone_number_errors(changes["phone_number"], exclude=user)
    _raise_if_any(errors)
    new_avatar = avatar_file(avatar) if avatar is not None else None

    old_avatar_name = user.avatar.name if new_avatar is not None and user.avatar else None
    for field, value in changes.items():
        setattr(user, field, value)
    try:
        with transaction.atomic():
            if new_avatar is not None:
                user.avatar.save(new_avatar.name, new_avatar, save=False)
                changes["avatar"] = user.avatar
            # Only what changed: a concurrent ban, password change or last_seen stays.
            user.save(update_fields=list(changes))
            if old_avatar_name:
                storage = user.avatar.storage
                transaction.on_commit(lambda: storage.delete(old_avatar_name), robust=True)
    except IntegrityError as error:
        raise _unique_conflict(error) from None
    return user


# --- Moderation ------------------------------------------------------------------


def report(
    *, reporter: User, reason: str, note: str = "", message_id: str | None = None, user_id: int | None = None
) -> Report:
    """Flag a message (one you can see) or a person. Twice the same thing: 409."""
    if bool(message_id) == bool(user_id):
        raise ValidationFailed({"message_id": ["Report either a message_id or a user_id."]})
    errors: dict[str, list[str]] = {}
    if reason not in Report.Reason.values:
        errors["reason"] = [f"Choose one of: {', '.join(Report.Reason.values)}."]
    if len(note or "") > 1000:
        errors["note"] = ["At most 1000 characters."]
    _raise_if_any(errors)
    if message_id:
        from messaging.selectors import visible_message

        message = visible_message(user_id=reporter.pk, message_id=message_id)
        target = {
            "target_key": f"message:{message.id}",
            "reported_user_id": message.sender_id,
            "message_id": message.id,
            "chat_id": message.chat_id,
        }
    else:
        reported = User.objects.filter(pk=user_id, is_active=True).first()
        if reported is None:
            raise NotFoundError("No such user.")
        target = {"target_key": f"user:{reported.pk}", "reported_user_id": reported.pk}
    if target["reported_user_id"] == reporter.pk:
        raise ApplicationError("You cannot report yourself.", code="cannot_report_self")
    try:
        with transaction.atomic():
            return Report.objects.create(reporter=reporter, reason=reason, note=note or "", **target)
    except IntegrityError:
        raise ConflictError("You already reported this.", code="already_reported") from None


def resolve_reports(*, target_key: str, action: str, moderator: User | None) -> int:
    """Close every open report about one thing, saying what was done."""
    return Report.objects.filter(target_key=target_key, status=Report.Status.OPEN).update(
        status=Report.Status.RESOLVED, action_taken=action, resolved_at=timezone.now(), resolved_by=moderator
    )


def ensure_may_manage(*, moderator: User | None, user: User) -> None:
    """A staff member's or a superuser's account is a superuser's to change: its contact details, its
    password, whether it is active (a moderator who could change an admin's email or password could
    become that admin). Anyone may change their own (None: an operator's command, who may)."""
    if moderator is None or moderator.is_superuser or user.pk == moderator.pk:
        return
    if user.is_staff or user.is_superuser:
        raise ApplicationError(
            "Only a superuser can change a staff account.", code="cannot_change_staff", status_code=403
        )


def ensure_may_ban(*, moderator: User | None, user: User) -> None:
    """Never yourself; staff only by a superuser (None: an operator's command, who may)."""
    if moderator is None:
        return
    if user.pk == moderator.pk:
        raise ApplicationError("You cannot ban yourself.", code="cannot_ban_self")
    ensure_may_manage(moderator=moderator, user=user)


@transaction.atomic
def deactivate_user(*, user: User, moderator: User | None) -> None:
    """Ban: no login, no tokens, no open sockets (on any worker), out of search."""
    ensure_may_ban(moderator=moderator, user=user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    user.is_active = False
    sign_out_everywhere(user=user)
    resolve_reports(target_key=f"user:{user.pk}", action=Report.Action.USER_BANNED, moderator=moderator)


def reactivate_user(*, user: User, moderator: User | None) -> None:
    """Undo a ban: staff only by a superuser."""
    ensure_may_manage(moderator=moderator, user=user)
    User.objects.filter(pk=user.pk).update(is_active=True)
    user.is_active = True
