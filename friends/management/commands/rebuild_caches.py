"""`manage.py rebuild_caches`: drop and refill every active user's friend cache from the database.

For after a Redis restore, a flush, or a change made to friendships outside the
services. The keys are dropped with `friends.cache.forget_friends` (which also
bumps each user's generation counter, so a rebuild racing with this one is
discarded) and refilled by reading through `friends.selectors`, exactly as the
app fills them. The cache module logs and carries on when Redis is away, so
the command asks Redis first, and again per user, to fail loudly instead.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from chat_realtime import shared_redis
from friends import cache, selectors

BATCH = 500


class Command(BaseCommand):
    help = (
        "Drop and rebuild the Redis friend cache (friends:{id}, friends_info:{id}) of every active user "
        "from the database."
    )

    def handle(self, *args, **options) -> None:
        shared_redis.ensure_shared("rebuilding the friend cache")
        try:
            redis = shared_redis.connection()
            redis.ping()
            rebuilt, raced = self._rebuild(redis)
        except shared_redis.RedisError as error:
            raise CommandError(f"Redis is unreachable, the friend cache was not rebuilt: {error}") from error
        self.stdout.write(self.style.SUCCESS(f"Rebuilt the friend cache of {rebuilt} active users."))
        if raced:
            self.stdout.write(
                f"{raced} users' friendships changed during the rebuild; their keys fill on the next read."
            )

    def _rebuild(self, redis) -> tuple[int, int]:
        rebuilt = raced = 0
        user_ids = User.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True)
        batch: list[int] = []
        for user_id in user_ids.iterator(chunk_size=BATCH):
            batch.append(user_id)
            if len(batch) == BATCH:
                done, lost = self._rebuild_batch(redis, batch)
                rebuilt, raced, batch = rebuilt + done, raced + lost, []
        if batch:
            done, lost = self._rebuild_batch(redis, batch)
            rebuilt, raced = rebuilt + done, raced + lost
        return rebuilt, raced

    def _rebuild_batch(self, redis, user_ids: list[int]) -> tuple[int, int]:
        # Outside a transaction (as manage.py runs), on_commit runs at once: the keys are gone here.
        cache.forget_friends(*user_ids)
        done = lost = 0
        for user_id in user_ids:
            selectors.friend_ids(user_id)
            selectors.friends_info(user_id)
            # The selectors fall back to the database silently; this read fails loudly if Redis went away.
            if redis.exists(cache.friends_key(user_id), cache.friends_info_key(user_id)) == 2:
                done += 1
            else:
                lost += 1  # a friendship changed meanwhile: the cache module refused to write (WATCH)
        return done, lost
