"""Fixed-window rate limits kept in Redis, so every worker counts together.

Limits are named in `settings.RATE_LIMITS` as `(count, seconds)` or `None` (off).
When Redis cannot answer, the limit lets the request through (and says so in
the log): an outage of the counter must not lock everyone out.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.http import HttpRequest

from chat_realtime import shared_redis
from chat_realtime.errors import RateLimited

logger = logging.getLogger(__name__)


def check_rate_limit(limit: str, *, key: str, message: str) -> None:
    """Count one attempt against `limit` for `key`; raise RateLimited past the limit."""
    rate = settings.RATE_LIMITS.get(limit)
    if rate is None:
        return
    count, seconds = rate
    # Hashing keeps user-typed text (emails, logins) out of key names.
    redis_key = shared_redis.key(f"rate:{limit}:{hashlib.sha256(key.encode()).hexdigest()[:32]}")
    try:
        with shared_redis.connection().pipeline() as pipe:
            # One round trip, no gap between creating the window and counting in it.
            pipe.set(redis_key, 0, ex=seconds, nx=True)
            pipe.incr(redis_key)
            pipe.ttl(redis_key)
            _, attempts, ttl = pipe.execute()
    except shared_redis.RedisError:
        logger.warning("rate limit %s not checked: Redis unavailable", limit, exc_info=True)
        return
    if attempts > count:
        raise RateLimited(message, retry_after=max(int(ttl), 1) if ttl and ttl > 0 else seconds)


def client_ip(request: HttpRequest) -> str:
    """The client's address; behind `NUM_PROXIES` trusted proxies, taken from X-Forwarded-For."""
    proxies = settings.NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR", "")
