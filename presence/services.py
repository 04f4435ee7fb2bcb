"""Who is online, kept in Redis so every worker agrees.

Keys (with REDIS_KEY_PREFIX in front, empty by default):
- `online_users`: set of the ids of users with at least one live connection
  (the original project's key, kept for operators).
- `presence:{user_id}`: sorted set of that user's connection ids (channel
  names), each scored with the time it expires unless its worker renews it.

A connection lives while its worker heartbeats it (every
PRESENCE_HEARTBEAT_SECONDS); a worker that dies stops renewing, its entries
expire after PRESENCE_TTL_SECONDS, and the next sweep (any worker, at most
once every PRESENCE_SWEEP_SECONDS) takes its users offline. Every transition
runs in one Lua script, so two tabs on two workers can never both announce
"online", nor a disconnect and a sweep both announce "offline".

Each announcement carries the time of its transition by the presence clock
(`presence_at`, µs): Redis's own time, kept from ever going back by
`presence:clock` (an NTP step, a failover to a host whose clock is behind).
Announcements of one user published by two workers can reach a third in
either order, and its sockets show only what is newer than what they last
showed of that user, or than the list of online friends they opened with
(`OnlineFriends.as_of`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from accounts.events import user_group
from accounts.models import User
from chat_realtime import shared_redis
from chat_realtime.realtime import publish
from friends.selectors import friend_ids
from presence import events

if TYPE_CHECKING:
    from presence.selectors import OnlineFriends

logger = logging.getLogger(__name__)

# The presence clock (KEYS[3]): Redis's time in µs (exact in Lua's doubles until the year 2255), moved on
# past the last one it gave, so that it never goes back. When a transition happened.
_STAMP = """
local function stamp()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', KEYS[3]) or '0')
  if now <= last then now = last + 1 end
  redis.call('SET', KEYS[3], string.format('%.0f', now))
  return now
end
"""

# KEYS: presence zset, online_users, the presence clock. ARGV: now, expires_at, connection id, user id, key ttl.
# Returns, when the user had no live connection before (they just came online), the clock's time of it; else 0.
_CONNECT = (
    _STAMP
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SADD', KEYS[2], ARGV[4])
if before == 0 then return stamp() end
return 0
"""
)

# KEYS: presence zset, online_users, the presence clock. ARGV: now, connection id (or '' for the sweep), user id.
# Returns, when this call took the user offline (their last live connection went), the clock's time of it; else 0.
# A connection that closes leaving none does so even when online_users no longer had them (Redis lost its data
# since they connected, and the heartbeat has not put it back yet): their friends still show them online. The
# price, in that window only: one tab of several closing says offline, and the others' next heartbeat says
# online again (a flicker, rather than an "online" that never ends). The sweep announces only those it finds in
# online_users.
_DISCONNECT = (
    _STAMP
    + """
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[1], ARGV[2]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then
  local was_online = redis.call('SREM', KEYS[2], ARGV[3])
  if ARGV[2] ~= '' or was_online == 1 then return stamp() end
end
return 0
"""
)


def online_users_key() -> str:
    return shared_redis.key("online_users")


def connections_key(user_id: int) -> str:
    return shared_redis.key(f"presence:{int(user_id)}")


def clock_key() -> str:
    return shared_redis.key("presence:clock")


def _keys(user_id: int) -> list[str]:
    return [connections_key(user_id), online_users_key(), clock_key()]


def _sweep_lock_key() -> str:
    return shared_redis.key("presence:sweep_lock")


def _run(script: str, keys: list[str], args: list) -> int:
    redis = shared_redis.connection()
    return int(redis.register_script(script)(keys=keys, args=args))


def _register(user_id: int, connection_id: str) -> int:
    """Redis's time of the user coming online with this connection, or 0 if they were online already."""
    now = time.time()
    ttl = settings.PRESENCE_TTL_SECONDS
    return _run(
        _CONNECT,
        _keys(user_id),
        [now, now + ttl, connection_id, int(user_id), int(ttl * 2) + 1],
    )


def connect(*, user_id: int, connection_id: str) -> OnlineFriends:
    """A connection opened. Announces the user to their friends if it is their first; returns online friends."""
    from presence.selectors import OnlineFriends, online_friends

    try:
        if came_online_at := _register(user_id, connection_id):
            _announce(user_id, events.user_online_frame(user_id=user_id), at=came_online_at)
        return online_friends(user_id)
    except shared_redis.RedisError:
        logger.warning("presence unavailable: user %s connected unseen", user_id, exc_info=True)
        return OnlineFriends(user_ids=[], as_of=0)


def heartbeat(*, user_id: int, connection_id: str) -> None:
    """The connection is still open: renew it.

    If the user had no live connection left (a stalled worker whose entries a
    sweep expired and announced offline, or Redis lost its data), this brings
    them back and tells their friends they are online: a repeated "online"
    after a Redis flush is harmless, a missing one would show them offline.
    """
    try:
        if came_back_at := _register(user_id, connection_id):
            _announce(user_id, events.user_online_frame(user_id=user_id), at=came_back_at)
    except shared_redis.RedisError:
        logger.warning("presence heartbeat of user %s failed", user_id, exc_info=True)


HEARTBEATS_PER_ROUND_TRIP = 1000


def renew(connections: list[tuple[str, int]]) -> None:
    """Heartbeat these connections (connection id, user id) of one worker together, as `heartbeat` does each,
    in one Redis round trip per thousand; then sweep if it is due. A failure costs its own part only."""
    try:
        for start in range(0, len(connections), HEARTBEATS_PER_ROUND_TRIP):
            _renew_chunk(connections[start : start + HEARTBEATS_PER_ROUND_TRIP])
    finally:
        sweep_if_due()


def _renew_chunk(connections: list[tuple[str, int]]) -> None:
    try:
        redis = shared_redis.connection()
        script = redis.register_script(_CONNECT)
        now = time.time()
        ttl = settings.PRESENCE_TTL_SECONDS
        pipeline = redis.pipeline(transaction=False)
        for connection_id, user_id in connections:
            script(
                keys=_keys(user_id),
                args=[now, now + ttl, connection_id, int(user_id), int(ttl * 2) + 1],
                client=pipeline,
            )
        came_back = pipeline.execute()
    except shared_redis.RedisError:
        logger.warning("presence heartbeats of %d connections failed", len(connections), exc_info=True)
        return
    for (_, user_id), came_back_at in zip(connections, came_back, strict=True):
        if came_back_at:
            try:
                _announce(user_id, events.user_online_frame(user_id=user_id), at=int(came_back_at))
            except Exception:
                logger.exception("could not announce user %s back online", user_id)


def disconnect(*, user_id: int, connection_id: str) -> None:
    """A connection closed. If it was the user's last one, they go offline."""
    try:
        went_offline_at = _run(_DISCONNECT, _keys(user_id), [time.time(), connection_id, int(user_id)])
    except shared_redis.RedisError:
        logger.warning("presence unavailable: the disconnect of user %s is left to the sweep", user_id, exc_info=True)
        return
    if went_offline_at:
        _went_offline(user_id, at=went_offline_at)


def sweep() -> int:
    """Take offline every user whose connections all expired (their workers died). Returns how many."""
    redis = shared_redis.connection()
    taken = 0
    now = time.time()
    for member in redis.smembers(online_users_key()):
        user_id = int(member)
        if went_offline_at := _run(_DISCONNECT, _keys(user_id), [now, "", user_id]):
            _went_offline(user_id, at=went_offline_at)
            taken += 1
    return taken


def sweep_if_due() -> int:
    """Sweep, unless another worker did within PRESENCE_SWEEP_SECONDS."""
    try:
        redis = shared_redis.connection()
        if not redis.set(_sweep_lock_key(), 1, nx=True, ex=max(1, int(settings.PRESENCE_SWEEP_SECONDS))):
            return 0
        return sweep()
    except shared_redis.RedisError:
        logger.warning("presence sweep failed", exc_info=True)
        return 0


def _went_offline(user_id: int, *, at: int) -> None:
    now = timezone.now()
    # Friends hear it first: Redis already says offline, and nobody would announce it again.
    _announce(user_id, events.user_offline_frame(user_id=user_id, last_seen=now), at=at)
    try:
        User.objects.filter(pk=user_id).update(last_seen=now)
    except Exception:
        logger.exception("could not store last_seen of user %s", user_id)


def _announce(user_id: int, frame: dict, *, at: int) -> None:
    """`frame` to each friend's sockets, which show it unless they showed something newer of this user."""
    publish([presence_event(friend_id, frame, at=at) for friend_id in friend_ids(user_id)])


def presence_event(to_user_id: int, frame: dict, *, at: int) -> tuple[str, dict]:
    """A presence frame for one user's sockets, as of `at` (Redis's time, µs: RealtimeConsumer.deliver)."""
    return user_group(to_user_id), {"type": "deliver", "frame": frame, "presence_at": int(at)}


def announce_new_friends(user_a_id: int, user_b_id: int) -> None:
    """Two people just became friends: each who is online appears to the other at once."""
    from presence.selectors import online_among, presence_clock

    try:
        as_of = presence_clock()
        online = online_among([user_a_id, user_b_id])
    except shared_redis.RedisError:
        return
    publish(
        [
            presence_event(other_id, events.user_online_frame(user_id=user_id), at=as_of)
            for user_id, other_id in ((user_a_id, user_b_id), (user_b_id, user_a_id))
            if user_id in online
        ]
    )
