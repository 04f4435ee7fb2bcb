"""The Redis friend cache: rebuilt from the database, dropped on every change, never in the way."""

import json

import pytest

from chat_realtime import shared_redis
from chat_realtime.tests import redis_namespace
from friends import cache, selectors, services
from friends.cache import friends_info_key, friends_key


@pytest.fixture
def bob(make_user):
    return make_user(username="bob")


@pytest.fixture
def carol(make_user):
    return make_user(username="carol")


def redis():
    return shared_redis.connection()


def test_reading_friends_fills_both_keys_from_the_database(user, bob, befriend):
    chat = befriend(user, bob)

    assert selectors.friend_ids(user.pk) == {bob.pk}
    assert selectors.friends_info(user.pk)[bob.pk]["chat_id"] == chat.pk

    assert redis().smembers(friends_key(user.pk)) == {str(bob.pk).encode()}
    assert json.loads(redis().hget(friends_info_key(user.pk), str(bob.pk)))["chat_id"] == chat.pk
    assert friends_key(user.pk) == f"{redis_namespace.REDIS_KEY_PREFIX}friends:{user.pk}"


def test_someone_without_friends_is_cached_as_having_none(user):
    assert selectors.friend_ids(user.pk) == set()
    assert selectors.friends_info(user.pk) == {}
    assert redis().exists(friends_key(user.pk))


def test_a_flushed_cache_is_rebuilt_from_the_database(user, bob, befriend):
    befriend(user, bob)
    selectors.friend_ids(user.pk)

    redis().delete(friends_key(user.pk), friends_info_key(user.pk))

    assert selectors.friend_ids(user.pk) == {bob.pk}
    assert set(selectors.friends_info(user.pk)) == {bob.pk}


def test_accepting_drops_both_users_keys_so_the_new_friend_appears(
    user, bob, carol, befriend, django_capture_on_commit_callbacks
):
    befriend(user, carol)
    assert selectors.friend_ids(user.pk) == {carol.pk}
    assert selectors.friend_ids(bob.pk) == set()

    with django_capture_on_commit_callbacks(execute=True):
        services.send_friend_request(sender=user, receiver_id=bob.pk)
        services.accept_friend_request(receiver=bob, requester_id=user.pk)

    assert selectors.friend_ids(user.pk) == {carol.pk, bob.pk}
    assert selectors.friend_ids(bob.pk) == {user.pk}
    assert set(selectors.friends_info(bob.pk)) == {user.pk}


def test_unfriending_drops_both_users_keys(user, bob, befriend, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        befriend(user, bob)
    assert selectors.friend_ids(user.pk) == {bob.pk}
    assert selectors.friend_ids(bob.pk) == {user.pk}

    with django_capture_on_commit_callbacks(execute=True):
        services.unfriend(user=bob, friend_id=user.pk)

    assert selectors.friend_ids(user.pk) == set()
    assert selectors.friend_ids(bob.pk) == set()


def test_a_rebuild_that_races_with_a_change_is_not_cached(user, bob, befriend):
    """A reader that loaded the old list must not write it back over the change."""
    befriend(user, bob)

    def load_then_change_arrives():
        stale = {bob.pk}
        cache._forget((user.pk,))  # a writer commits an unfriend meanwhile
        return stale

    served = cache.cached_friend_ids(user.pk, load_then_change_arrives)

    assert served == {bob.pk}
    assert not redis().exists(friends_key(user.pk))


def test_with_redis_down_the_friend_list_is_served_from_the_database(auth_client, user, bob, befriend, request):
    chat = befriend(user, bob)
    request.getfixturevalue("redis_down")

    response = auth_client.get("/api/friends")
    ids = selectors.friend_ids(user.pk)

    assert response.status_code == 200
    assert [(r["user"]["id"], r["chat_id"]) for r in response.json()["results"]] == [(bob.pk, chat.pk)]
    assert ids == {bob.pk}


def test_with_redis_down_friendships_still_change(user, bob, redis_down, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.send_friend_request(sender=user, receiver_id=bob.pk)
        services.accept_friend_request(receiver=bob, requester_id=user.pk)

    assert selectors.friend_ids(user.pk) == {bob.pk}


@pytest.mark.parametrize("read", ["friend_ids", "friends_info"])
def test_a_key_that_expires_between_two_reads_is_not_taken_for_no_friends(user, bob, befriend, monkeypatch, read):
    befriend(user, bob)
    getattr(selectors, read)(user.pk)  # cached now
    redis = shared_redis.connection()

    class ExpiresAfterEachRead:
        """The key expires (or another worker drops it) right after any read of it."""

        def __getattr__(self, name):
            command = getattr(redis, name)
            if name not in ("exists", "smembers", "hgetall"):
                return command

            def read_then_expire(*keys):
                answer = command(*keys)
                redis.delete(*keys)
                return answer

            return read_then_expire

    monkeypatch.setattr(shared_redis, "connection", lambda: ExpiresAfterEachRead())

    assert set(getattr(selectors, read)(user.pk)) == {bob.pk}
