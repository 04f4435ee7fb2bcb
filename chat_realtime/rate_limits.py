"""Fixed-window rate limits kept in the shared cache (Redis), so every worker counts together.

Limits are named in `settings.RATE_LIMITS` as `(count, seconds)` or `None` (off).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from chat_realtime.errors import RateLimited


def check_rate_limit(limit: str, *, key: str, message: str) -> None:
    """Count one attempt against `limit` for `key`; raise RateLimited past the limit."""
    rate = settings.RATE_LIMITS.get(limit)
    if rate is None:
        return
    count, seconds = rate
    # Hashing keeps user-typed text (emails, logins) out of cache key names.
    cache_key = f"rate:{limit}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"
    cache.add(cache_key, 0, timeout=seconds)
    attempts = cache.incr(cache_key)
    if attempts > count:
        ttl = cache.ttl(cache_key)
        raise RateLimited(message, retry_after=max(int(ttl or seconds), 1))


def client_ip(request: HttpRequest) -> str:
    """The client's address; behind `NUM_PROXIES` trusted proxies, taken from X-Forwarded-For."""
    proxies = settings.NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR", "")
