from django.apps import AppConfig


class MessagingConfig(AppConfig):
    """Chats, the message store and real-time delivery."""

    name = "messaging"
