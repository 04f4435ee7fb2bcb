from django.http import HttpRequest


def unread_notifications(request: HttpRequest) -> dict:
    """The bell's badge on every page."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from friends.selectors import unread_notification_count

    return {"unread_notifications": unread_notification_count(user)}
