from __future__ import annotations

import time
from collections.abc import Iterable
from typing import NamedTuple

from chat_realtime import shared_redis
from friends.selectors import friend_ids
from presence.services import clock_key, connections_key


class OnlineFriends(NamedTuple):
    user_ids: list[int]
    # The presence clock just before the list was read: presence announced before it is already in it.
    as_of: int


def presence_clock() -> int:
    """The presence clock now (µs): past every transition stamped so far (presence.services)."""
    with shared_redis.connection().pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.get(clock_key())
        (seconds, microseconds), last = pipe.execute()
    return max(seconds * 1_000_000 + microseconds, int(last or 0))


def online_friends(user_id: int) -> OnlineFriends:
    # The clock first, then the friends: what changes after it (a new friend included) is announced after it.
    as_of = presence_clock()
    return OnlineFriends(user_ids=sorted(online_among(friend_ids(user_id))), as_of=as_of)


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
