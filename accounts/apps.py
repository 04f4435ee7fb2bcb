from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        # Every way out (the site's logout, the admin's) sends this, before the session is flushed.
        user_logged_out.connect(close_sockets_of_the_session, dispatch_uid="accounts.close_sockets_of_the_session")


def close_sockets_of_the_session(sender, request, user, **kwargs) -> None:
    """Logging out ends the login session, and with it the websockets that browser opened with it
    (a stolen cookie's included); the person's other devices stay signed in."""
    from chat_realtime.realtime import end_browser_session

    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        end_browser_session(session_key)
