"""This test run's own namespace in Redis, so runs sharing one Redis never see or delete each other's data.

Drawn once per process, so once per test run (and once per worker process if
the run is ever split over several). conftest.py puts the test process's
settings under it; servers.py hands it to the worker processes the tests start.
"""

from __future__ import annotations

import secrets

from chat_realtime import shared_redis

RUN_ID = secrets.token_hex(6)
# The raw keys (friends:{id}, online_users, presence:{id}): everything this run
# writes to Redis starts with it, the cache's keys too, so one pattern clears the run.
REDIS_KEY_PREFIX = f"test:{RUN_ID}:"
CACHE_KEY_PREFIX = f"{REDIS_KEY_PREFIX}cache"
# Pub/sub channels of the channel layer. They ignore the Redis database number,
# so without a prefix of its own a run on REDIS_DB=9 would receive the group
# events of a run on REDIS_DB=10 (group names are built from ids, which both
# runs' databases reuse). Channels allows only letters, digits, `-`, `_` and `.` in channel names.
CHANNEL_LAYER_PREFIX = f"test.{RUN_ID}."


def delete_this_runs_keys() -> None:
    """Delete every key of this run, and only those: other runs on the same Redis keep theirs."""
    redis = shared_redis.connection()
    for key in redis.scan_iter(match=f"{REDIS_KEY_PREFIX}*", count=500):
        redis.delete(key)
