"""Each test run has its own namespace in Redis, so runs sharing one Redis never cross (redis_namespace.py)."""

from __future__ import annotations

from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from django.core.cache import cache

from chat_realtime import shared_redis
from chat_realtime.channel_layer import reaches_other_processes
from chat_realtime.tests import redis_namespace
from chat_realtime.tests.servers import WorkerProcess


def test_raw_keys_and_cache_keys_of_this_run_start_with_its_own_prefix():
    prefix = redis_namespace.REDIS_KEY_PREFIX

    assert prefix == f"test:{redis_namespace.RUN_ID}:" and len(redis_namespace.RUN_ID) == 12
    assert shared_redis.key("online_users") == f"{prefix}online_users"
    assert cache.make_key("typing:1:2").startswith(prefix)


async def test_the_channel_layer_of_this_run_names_its_channels_with_the_runs_prefix():
    layer = get_channel_layer()
    channel = await layer.new_channel()

    if reaches_other_processes(settings.CHANNEL_LAYERS["default"]):
        # Pub/sub channels ignore the Redis database number: only the prefix keeps runs apart.
        assert layer.prefix == redis_namespace.CHANNEL_LAYER_PREFIX
        assert channel.startswith(redis_namespace.CHANNEL_LAYER_PREFIX)
    # Whatever the backend, the prefixed name is one channels accepts (group_add checks it).
    assert BaseChannelLayer().require_valid_channel_name(channel)


def test_cleaning_up_deletes_this_runs_keys_and_leaves_another_runs_alone():
    redis = shared_redis.connection()
    other_run = "test:000000000000:online_users"
    redis.set(shared_redis.key("presence:1"), "x")
    cache.set("friends-count", 3)
    redis.set(other_run, "x")
    try:
        redis_namespace.delete_this_runs_keys()

        assert not redis.exists(shared_redis.key("presence:1"))
        assert cache.get("friends-count") is None
        assert redis.get(other_run) == b"x"
    finally:
        redis.delete(other_run)


def test_worker_processes_get_this_runs_prefixes(tmp_path):
    env = WorkerProcess(tmp_path).env

    assert env["REDIS_KEY_PREFIX"] == redis_namespace.REDIS_KEY_PREFIX
    assert env["CACHE_KEY_PREFIX"] == redis_namespace.CACHE_KEY_PREFIX
    assert env["CHANNEL_LAYER_PREFIX"] == redis_namespace.CHANNEL_LAYER_PREFIX
