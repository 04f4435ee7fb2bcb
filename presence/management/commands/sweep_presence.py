"""`manage.py sweep_presence`: take offline, once, every user whose connections all expired.

Workers sweep by themselves (`presence.services.sweep_if_due`) while anyone is
connected; this is for when none is running, e.g. from cron after a deploy
stopped every worker at once. It runs `presence.services.sweep()` directly, not
behind the sweep lock: an operator asking for a sweep gets one.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from chat_realtime import shared_redis
from presence import services


class Command(BaseCommand):
    help = "Take offline every user whose websocket connections all expired (their workers died); runs once."

    def handle(self, *args, **options) -> None:
        shared_redis.ensure_shared("a sweep")
        try:
            taken = services.sweep()
        except shared_redis.RedisError as error:
            raise CommandError(f"Redis is unreachable, nobody was swept: {error}") from error
        people = "user" if taken == 1 else "users"
        self.stdout.write(self.style.SUCCESS(f"Took {taken} {people} offline."))
