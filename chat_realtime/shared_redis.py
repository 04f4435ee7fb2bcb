"""Raw Redis for the structures a cache key-value cannot hold (sets, hashes).

The same connection pool as the Django cache: the real Redis when REDIS_HOST
is set, the in-process fakeredis otherwise. Key names keep the original
project's spelling (`friends:{id}`, `online_users`) so operators can read them;
`REDIS_KEY_PREFIX` namespaces them when several deployments share one Redis.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError
from django_redis import get_redis_connection
from redis import Redis, exceptions
from redis.exceptions import RedisError

__all__ = ["UNREACHABLE", "RedisError", "connection", "ensure_shared", "key"]

# The RedisErrors of a Redis that could not be reached, rather than one that refused a command.
UNREACHABLE = (exceptions.ConnectionError, exceptions.TimeoutError)


def connection() -> Redis:
    return get_redis_connection("default")


def key(name: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}{name}"


def ensure_shared(what: str) -> None:
    """For a command that works on the workers' Redis: CommandError when there is none to reach."""
    if not settings.REDIS_SHARED:
        raise CommandError(
            f"REDIS_HOST is not set: each process has its own in-process Redis, so {what} would change only "
            "this command's copy, not the server's. The server (make run) keeps its own; restart it to start "
            "it afresh, or set REDIS_HOST to the Redis the workers share."
        )
