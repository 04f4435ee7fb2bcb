from __future__ import annotations

from django.db.models import Q

from accounts.models import User, normalize_email, normalize_phone_number

# The longest identifier anyone logs in with: an email address. Longer text names nobody, and is not even
# looked for (SQLite refuses a LIKE pattern past 50,000 bytes, which iexact becomes there).
LOGIN_MAX_CHARS = 254


def user_by_login(login: str) -> User | None:
    """The user a login identifier names: their username, email or phone number.

    A username is tried before an email, an email before a phone number, so
    the answer is the same whichever accounts exist.
    """
    login = (login or "").strip()
    if not login or len(login) > LOGIN_MAX_CHARS:
        return None
    phone_number = normalize_phone_number(login)
    candidates = list(
        User.objects.filter(
            Q(username__iexact=login) | Q(email__iexact=normalize_email(login)) | Q(phone_number=phone_number)
        )[:3]
    )
    for matches in (
        lambda u: u.username.lower() == login.lower(),
        lambda u: u.email == normalize_email(login),
        lambda u: u.phone_number == phone_number,
    ):
        for user in candidates:
            if matches(user):
                return user
    return None


def active_user_by_email(email: str) -> User | None:
    if len(email) > LOGIN_MAX_CHARS:
        return None
    return User.objects.filter(email__iexact=normalize_email(email), is_active=True).first()


def user_for_access_token(raw: str) -> tuple[User | None, float | None]:
    """(the active user an access JWT names, when it expires), or (None, None) if it is
    empty, forged, expired or theirs no longer."""
    from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken

    from accounts.authentication import AccessTokenAuthentication

    if not raw:
        return None, None
    authentication = AccessTokenAuthentication()
    try:
        token = authentication.get_validated_token(raw.encode())
        return authentication.get_user(token), float(token["exp"])
    except (InvalidToken, AuthenticationFailed):
        return None, None
