from django.apps import AppConfig


class PresenceConfig(AppConfig):
    """Who is online, across tabs and workers."""

    name = "presence"
