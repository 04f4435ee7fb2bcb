from django.contrib.auth.backends import ModelBackend

from accounts.models import User
from accounts.selectors import user_by_login


class LoginIdentifierBackend(ModelBackend):
    """Authenticates with a username, an email or a phone number and a password.

    Every login (browser, API, admin) goes through here.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        user = user_by_login(username)
        if user is None:
            # Hash anyway, so response time does not tell which accounts exist.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
