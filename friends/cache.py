"""The friend cache in Redis, kept as the original project kept it.

- `friends:{user_id}`: set of the user's friend ids.
- `friends_info:{user_id}`: hash of friend id -> JSON sidebar entry
  (`chat_id`, `friends_since`).

The database is the truth. A missing key is rebuilt from it; every change of a
friendship drops both users' keys after commit; a rebuild that raced with such
a change is discarded (WATCH on a per-user generation counter), so a reader
never puts back what a writer just removed. When Redis is unreachable, reads go
to the database and nothing fails. Keys also expire, which bounds how long an
invalidation lost to an outage can leave an old value behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from redis.exceptions import WatchError

from chat_realtime import shared_redis

logger = logging.getLogger(__name__)

TTL_SECONDS = 600


def friends_key(user_id: int) -> str:
    return shared_redis.key(f"friends:{int(user_id)}")


def friends_info_key(user_id: int) -> str:
    return shared_redis.key(f"friends_info:{int(user_id)}")


def _generation_key(user_id: int) -> str:
    return shared_redis.key(f"friends_generation:{int(user_id)}")


def cached_friend_ids(user_id: int, load: Callable[[], set[int]]) -> set[int]:
    def read(redis) -> set[int] | None:
        # One read: the 0 marker keeps a cached set from ever being empty, so empty means missing (asking
        # EXISTS first would read an expiry or invalidation between the two as "no friends").
        members = redis.smembers(friends_key(user_id))
        return {int(member) for member in members if int(member) != 0} if members else None

    def write(pipe, ids: set[int]) -> None:
        # A set cannot be empty in Redis: 0 (no user has it) marks "no friends".
        pipe.sadd(friends_key(user_id), *(ids or {0}))
        pipe.expire(friends_key(user_id), TTL_SECONDS)

    return _read_through(user_id, read, load, write)


def cached_friends_info(user_id: int, load: Callable[[], dict[int, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    def read(redis) -> dict[int, dict[str, Any]] | None:
        raw = redis.hgetall(friends_info_key(user_id))  # one read, as above: the "0" marker keeps it non-empty
        return {int(k): json.loads(v) for k, v in raw.items() if int(k) != 0} if raw else None

    def write(pipe, info: dict[int, dict[str, Any]]) -> None:
        mapping = {str(k): json.dumps(v) for k, v in info.items()} or {"0": "{}"}
        pipe.hset(friends_info_key(user_id), mapping=mapping)
        pipe.expire(friends_info_key(user_id), TTL_SECONDS)

    return _read_through(user_id, read, load, write)


def _read_through(user_id: int, read, load, write):
    try:
        redis = shared_redis.connection()
        cached = read(redis)
        if cached is not None:
            return cached
        with redis.pipeline() as pipe:
            pipe.watch(_generation_key(user_id))
            value = load()
            pipe.multi()
            write(pipe, value)
            # WatchError: a friendship changed meanwhile; serve what we read, cache nothing.
            with contextlib.suppress(WatchError):
                pipe.execute()
        return value
    except shared_redis.RedisError:
        logger.warning("friend cache unavailable; reading friends from the database", exc_info=True)
        return load()


def forget_friends(*user_ids: int) -> None:
    """Drop these users' keys once the current transaction commits."""
    transaction.on_commit(lambda: _forget(user_ids))


def _forget(user_ids: tuple[int, ...]) -> None:
    try:
        with shared_redis.connection().pipeline(transaction=True) as pipe:
            for user_id in user_ids:
                pipe.incr(_generation_key(user_id))
                pipe.expire(_generation_key(user_id), TTL_SECONDS * 2)
                pipe.delete(friends_key(user_id), friends_info_key(user_id))
            pipe.execute()
    except shared_redis.RedisError:
        logger.warning("could not drop the friend cache of %s; it expires by itself", user_ids, exc_info=True)
