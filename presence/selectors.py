from __future__ import annotations

import time
from collections.abc import Iterable

from chat_realtime import shared_redis
from presence.services import connections_key


def online_among(user_ids: Iterable[int]) -> set[int]:
    """Those of `user_ids` with a live connection right now (on any worker)."""
    ids = [int(u) for u in user_ids]
    if not ids:
        return set()
    now = time.time()
    with shared_redis.connection().pipeline(transaction=False) as pipe:
        for user_id in ids:
            pipe.zcount(connections_key(user_id), f"({now}", "+inf")
        counts = pipe.execute()
    return {user_id for user_id, count in zip(ids, counts, strict=True) if count}


def is_online(user_id: int) -> bool:
    return int(user_id) in online_among([user_id])


def online_among_or_none(user_ids: Iterable[int]) -> set[int]:
    """As online_among, but nobody is online when Redis cannot say (for lists that must not fail)."""
    try:
        return online_among(user_ids)
    except shared_redis.RedisError:
        return set()
