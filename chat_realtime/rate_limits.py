"""Fixed-window rate limits kept in Redis, so every worker counts together.

Limits are named in `settings.RATE_LIMITS` as `(count, seconds)` or `None` (off).
When Redis cannot answer, the limit lets the request through (and says so in
the log): an outage of the counter must not lock everyone out.

Attempts are counted by one Lua script per call, however many keys it counts
for: a batch of websocket sends checks all its senders in one round trip (it
took one per message, which halved the send rate: docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter

from django.conf import settings
from django.http import HttpRequest

from chat_realtime import shared_redis
from chat_realtime.errors import RateLimited

logger = logging.getLogger(__name__)

# KEYS: a window per key, each counted once however often it is named. ARGV[1]: the window's seconds;
# ARGV[2]: the limit; ARGV[i + 2]: how many attempts to count for KEYS[i]. The first attempt opens the
# window (no gap between creating it and counting in it); a window past the limit also answers its
# seconds left, and gets its expiry back if it somehow lost it, so that it cannot refuse for ever.
# Answers, per key: attempts in the window so far, seconds left (-1 within the limit).
_COUNT_ATTEMPTS = """
local answers = {}
for i, key in ipairs(KEYS) do
  local counted = tonumber(ARGV[i + 2])
  local attempts = redis.call('INCRBY', key, counted)
  local left = -1
  if attempts == counted then
    redis.call('EXPIRE', key, ARGV[1])
  elseif attempts > tonumber(ARGV[2]) then
    left = redis.call('TTL', key)
    if left < 0 then
      redis.call('EXPIRE', key, ARGV[1])
      left = tonumber(ARGV[1])
    end
  end
  answers[#answers + 1] = attempts
  answers[#answers + 1] = left
end
return answers
"""


def check_rate_limit(limit: str, *, key: str, message: str) -> None:
    """Count one attempt against `limit` for `key`; raise RateLimited past the limit."""
    refused = count_attempts(limit, [key], message=message)[0]
    if refused is not None:
        raise refused


def count_attempts(limit: str, keys: list[str], *, message: str) -> list[RateLimited | None]:
    """Count one attempt against `limit` for each of `keys`, in one Redis round trip.

    A key may come several times: each counts, in order. Answers, in the order
    of `keys`, None for an attempt within the limit or the RateLimited error
    that refuses it.
    """
    rate = settings.RATE_LIMITS.get(limit)
    if rate is None or not keys:
        return [None] * len(keys)
    count, seconds = rate
    names = [window_key(limit, key) for key in keys]
    attempts = Counter(names)
    try:
        redis = shared_redis.connection()
        answer = redis.register_script(_COUNT_ATTEMPTS)(keys=list(attempts), args=[seconds, count, *attempts.values()])
    except shared_redis.UNREACHABLE:
        logger.warning("rate limit %s not checked: Redis unavailable", limit, exc_info=True)
        return [None] * len(keys)
    except shared_redis.RedisError:
        # Redis answered, but refused the count (out of memory, a read-only replica, ...): let through too.
        logger.exception("rate limit %s not checked: Redis refused to count", limit)
        return [None] * len(keys)
    seen: dict[str, int] = {}  # per key, the attempts counted so far: this call's come last, in order
    left: dict[str, int] = {}
    for i, name in enumerate(attempts):
        seen[name] = int(answer[2 * i]) - attempts[name]
        left[name] = int(answer[2 * i + 1])
    refusals: list[RateLimited | None] = []
    for name in names:
        seen[name] += 1
        if seen[name] <= count:
            refusals.append(None)
        else:
            refusals.append(RateLimited(message, retry_after=left[name] if left[name] > 0 else seconds))
    return refusals


# KEYS: windows to give one attempt back (those still open, and not below nothing).
_REFUND_ATTEMPTS = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
"""


def refund_attempts(limit: str, keys: list[str]) -> None:
    """Give back one attempt `count_attempts` counted for each of `keys`: for limits that count only what
    went wrong, counted first (so that attempts in flight together count) and given back when it went right."""
    if settings.RATE_LIMITS.get(limit) is None or not keys:
        return
    try:
        redis = shared_redis.connection()
        redis.register_script(_REFUND_ATTEMPTS)(keys=[window_key(limit, key) for key in keys])
    except shared_redis.RedisError:
        logger.warning("rate limit %s: attempts not given back, Redis could not answer", limit, exc_info=True)


def window_key(limit: str, key: str) -> str:
    """The Redis key of `key`'s window of `limit`."""
    # Hashing keeps user-typed text (emails, logins) out of key names.
    return shared_redis.key(f"rate:{limit}:{hashlib.sha256(key.encode()).hexdigest()[:32]}")


def client_ip(request: HttpRequest) -> str:
    """The client's address; behind `NUM_PROXIES` trusted proxies, taken from X-Forwarded-For."""
    proxies = settings.NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR", "")
