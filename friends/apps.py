from django.apps import AppConfig


class FriendsConfig(AppConfig):
    """Friendships, friend requests, user search and notifications."""

    name = "friends"
