"""Raw Redis for the structures a cache key-value cannot hold (sets, hashes).

The same connection pool as the Django cache: the real Redis when REDIS_HOST
is set, the in-process fakeredis otherwise. Key names keep the original
project's spelling (`friends:{id}`, `online_users`) so operators can read them;
`REDIS_KEY_PREFIX` namespaces them when several deployments share one Redis.
"""

from __future__ import annotations

from django.conf import settings
from django_redis import get_redis_connection
from redis import Redis, exceptions
from redis.exceptions import RedisError

__all__ = ["UNREACHABLE", "RedisError", "connection", "key"]

# The RedisErrors of a Redis that could not be reached, rather than one that refused a command.
UNREACHABLE = (exceptions.ConnectionError, exceptions.TimeoutError)


def connection() -> Redis:
    return get_redis_connection("default")


def key(name: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}{name}"
