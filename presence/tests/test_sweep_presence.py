"""`manage.py sweep_presence`: one sweep, users whose connections all expired go offline."""

import io
import time

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from chat_realtime import shared_redis
from presence import selectors, services
from presence.services import online_users_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def workers_redis(settings):
    """The tests' Redis (the in-process stand-in, without REDIS_HOST) plays the one the workers share."""
    settings.REDIS_SHARED = True


def sweep_presence() -> str:
    out = io.StringIO()
    call_command("sweep_presence", stdout=out)
    return out.getvalue()


def online_users() -> set[int]:
    return {int(m) for m in shared_redis.connection().smembers(online_users_key())}


def test_a_user_with_only_expired_connections_goes_offline_and_a_live_one_stays(make_user, settings):
    alice, bob = make_user(username="alice"), make_user(username="bob")
    services.connect(user_id=alice.pk, connection_id="live-worker.conn")  # the default TTL: still live
    settings.PRESENCE_TTL_SECONDS = 0.2
    # A worker registered bob's connection, then died without closing or renewing it.
    services.connect(user_id=bob.pk, connection_id="dead-worker.conn")
    time.sleep(0.3)

    output = sweep_presence()

    assert "Took 1 user offline." in output
    assert online_users() == {alice.pk}
    assert not selectors.is_online(bob.pk)
    assert User.objects.get(pk=bob.pk).last_seen is not None
    assert selectors.is_online(alice.pk)
    assert User.objects.get(pk=alice.pk).last_seen is None


def test_a_second_sweep_finds_nobody(make_user, settings):
    bob = make_user(username="bob")
    settings.PRESENCE_TTL_SECONDS = 0.2
    services.connect(user_id=bob.pk, connection_id="dead-worker.conn")
    time.sleep(0.3)
    sweep_presence()

    assert "Took 0 users offline." in sweep_presence()


def test_without_a_redis_the_workers_share_it_refuses_and_sweeps_nobody(make_user, settings):
    bob = make_user(username="bob")
    settings.PRESENCE_TTL_SECONDS = 0.2
    services.connect(user_id=bob.pk, connection_id="dead-worker.conn")
    time.sleep(0.3)
    settings.REDIS_SHARED = False

    with pytest.raises(CommandError, match="REDIS_HOST is not set"):
        sweep_presence()

    assert online_users() == {bob.pk}


def test_unreachable_redis_is_a_clear_error(redis_down):
    with pytest.raises(CommandError, match="Redis is unreachable"):
        sweep_presence()


def test_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit) as exit:
        call_command("sweep_presence", "--help")

    assert exit.value.code == 0
    assert "offline" in capsys.readouterr().out
