"""`manage.py rebuild_caches`: every active user's friend cache, dropped and refilled from the database."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from chat_realtime import shared_redis
from chat_realtime.tests import redis_namespace
from friends.cache import friends_info_key, friends_key

# The command runs outside a transaction, as manage.py does: dropped keys go at once.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def workers_redis(settings):
    """The tests' Redis (the in-process stand-in, without REDIS_HOST) plays the one the workers share."""
    settings.REDIS_SHARED = True


def rebuild_caches() -> str:
    out = io.StringIO()
    call_command("rebuild_caches", stdout=out)
    return out.getvalue()


def redis():
    return shared_redis.connection()


@pytest.fixture
def people(make_user, befriend):
    """alice and bob are friends; carol has nobody."""
    alice, bob, carol = make_user(username="alice"), make_user(username="bob"), make_user(username="carol")
    chat = befriend(alice, bob)
    return alice, bob, carol, chat


def test_flushed_keys_come_back_from_the_database(people):
    alice, bob, carol, chat = people
    for user in (alice, bob, carol):
        redis().delete(friends_key(user.pk), friends_info_key(user.pk))

    output = rebuild_caches()

    assert "Rebuilt the friend cache of 3 active users." in output
    assert redis().smembers(friends_key(alice.pk)) == {str(bob.pk).encode()}
    assert redis().smembers(friends_key(bob.pk)) == {str(alice.pk).encode()}
    assert json.loads(redis().hget(friends_info_key(alice.pk), str(bob.pk)))["chat_id"] == chat.pk
    # Nobody: the "no friends" marker, so readers do not go to the database each time.
    assert redis().smembers(friends_key(carol.pk)) == {b"0"}
    assert redis().exists(friends_info_key(carol.pk))
    assert friends_key(alice.pk) == f"{redis_namespace.REDIS_KEY_PREFIX}friends:{alice.pk}"


def test_a_stale_key_is_replaced_by_what_the_database_says(people):
    alice, bob, carol, _ = people
    redis().sadd(friends_key(alice.pk), carol.pk)
    redis().hset(friends_info_key(alice.pk), str(carol.pk), json.dumps({"chat_id": None, "friends_since": "x"}))

    rebuild_caches()

    assert redis().smembers(friends_key(alice.pk)) == {str(bob.pk).encode()}
    assert set(redis().hkeys(friends_info_key(alice.pk))) == {str(bob.pk).encode()}


def test_deactivated_users_are_left_out(people):
    alice, bob, carol, _ = people
    User.objects.filter(pk=carol.pk).update(is_active=False)

    output = rebuild_caches()

    assert "of 2 active users" in output
    assert not redis().exists(friends_key(carol.pk))
    assert redis().exists(friends_key(alice.pk), friends_key(bob.pk)) == 2


def test_without_a_redis_the_workers_share_it_refuses_and_drops_nothing(people, settings):
    alice = people[0]
    rebuild_caches()
    settings.REDIS_SHARED = False

    with pytest.raises(CommandError, match="REDIS_HOST is not set"):
        rebuild_caches()

    assert redis().exists(friends_key(alice.pk))


def test_unreachable_redis_is_a_clear_error(people, redis_down):
    with pytest.raises(CommandError, match="Redis is unreachable"):
        rebuild_caches()


def test_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit) as exit:
        call_command("rebuild_caches", "--help")

    assert exit.value.code == 0
    assert "friend cache" in capsys.readouterr().out
