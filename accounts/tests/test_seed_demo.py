"""`manage.py seed_demo`: demo people, friendships in every state, chats, notifications and a history."""

import io
from datetime import timedelta

import mongomock
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.management.commands.seed_demo import DEMO_PASSWORD, HISTORY_DAYS
from accounts.models import User
from chat_realtime import shared_redis
from chat_realtime.tests import redis_namespace
from friends.models import Friendship, Notification
from friends.selectors import FriendshipState, friendship_states
from messaging import store as store_module
from messaging.models import Chat, ChatParticipant
from messaging.services import send_message
from messaging.store import message_store
from messaging.store.mongo import MongoMessageStore

# The command runs outside a transaction, as manage.py does; and one test starts over on an empty database.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def seed_demo(*args: str, stdout: io.StringIO | None = None) -> str:
    out = stdout or io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def demo_users() -> dict[int, str]:
    return dict(User.objects.filter(username__startswith="demo.").values_list("pk", "username"))


def stored_messages():
    """Every message of every chat, oldest first, as the store answers."""
    store = message_store()
    return [
        m for chat in Chat.objects.order_by("pk") for m in reversed(store.page_before(chat.pk, before=None, limit=1000))
    ]


def world() -> dict:
    """What a run made, by username (ids differ between databases)."""
    names = demo_users()
    return {
        "usernames": sorted(names.values()),
        "friendships": sorted(
            (names[f.user_low_id], names[f.user_high_id], f.status, names[f.requester_id])
            for f in Friendship.objects.all()
        ),
        "notifications": sorted(
            (names[n.receiver_id], names[n.sender_id], n.type, n.is_read) for n in Notification.objects.all()
        ),
        "messages": sorted((m.client_id, names[m.sender_id], m.text) for m in stored_messages()),
    }


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "friendships": Friendship.objects.count(),
        "notifications": Notification.objects.count(),
        "chats": Chat.objects.count(),
        "messages": len(stored_messages()),
    }


def start_over() -> None:
    """A fresh, empty database and none of our Redis keys, as on a new machine."""
    call_command("flush", interactive=False, verbosity=0)
    redis = shared_redis.connection()
    for key in redis.scan_iter(match=f"{redis_namespace.REDIS_KEY_PREFIX}*", count=500):
        redis.delete(key)


def test_it_makes_demo_people_who_can_log_in(client):
    output = seed_demo("--users", "4", "--messages", "0")

    users = User.objects.filter(username__startswith="demo.").order_by("pk")
    assert [u.username for u in users] == ["demo.alice", "demo.bob", "demo.carol", "demo.dave"]
    assert [u.email for u in users] == [f"{n}@demo.example.com" for n in ("alice", "bob", "carol", "dave")]
    assert [u.phone_number for u in users] == ["+447700900000", "+447700900001", "+447700900002", "+447700900003"]
    assert all(u.avatar and u.avatar.storage.exists(u.avatar.name) for u in users)
    assert client.login(username="demo.carol", password=DEMO_PASSWORD)
    # The logins are printed at the end, with the password.
    assert DEMO_PASSWORD in output
    assert all(u.username in output and u.phone_number in output for u in users)


def test_friendships_come_in_every_state_with_their_chats_and_notifications():
    seed_demo("--users", "8", "--messages", "0")

    alice = User.objects.get(username="demo.alice")
    others = list(User.objects.exclude(pk=alice.pk).values_list("pk", flat=True))
    assert set(friendship_states(alice.pk, others).values()) == {
        FriendshipState.FRIENDS,
        FriendshipState.INCOMING,
        FriendshipState.OUTGOING,
        FriendshipState.NONE,
    }
    for friendship in Friendship.objects.filter(status=Friendship.Status.ACCEPTED):
        chat = Chat.objects.get(direct_key=Chat.key_for_pair(friendship.user_low_id, friendship.user_high_id))
        assert set(ChatParticipant.objects.filter(chat=chat).values_list("user_id", flat=True)) == {
            friendship.user_low_id,
            friendship.user_high_id,
        }
    assert Chat.objects.count() == Friendship.objects.filter(status=Friendship.Status.ACCEPTED).count()
    # Made by the services: a request, its acceptance, a refusal each leave their notification.
    assert set(Notification.objects.values_list("type", flat=True)) == set(Notification.Type.values)
    pending = Friendship.objects.filter(status=Friendship.Status.PENDING)
    assert pending.exists()
    for friendship in pending:
        assert Notification.objects.filter(
            receiver_id=friendship.receiver_id, sender_id=friendship.requester_id, type="friend_request"
        ).exists()


def test_messages_spread_over_friends_chats_in_the_past_days_oldest_first():
    before = timezone.now()
    seed_demo("--users", "6", "--messages", "40", "--seed", "3")

    messages = stored_messages()
    assert len(messages) == 40
    assert sorted(m.client_id for m in messages) == sorted(f"seed-3-{n}" for n in range(40))
    assert len({m.chat_id for m in messages}) > 1
    for message in messages:
        low, high = sorted(ChatParticipant.objects.filter(chat_id=message.chat_id).values_list("user_id", flat=True))
        assert Friendship.objects.get(user_low_id=low, user_high_id=high).status == Friendship.Status.ACCEPTED
        assert message.sender_id in (low, high)
        assert before - timedelta(days=HISTORY_DAYS) <= message.created_at < before
    assert len({m.created_at for m in messages}) == 40
    by_time = sorted(messages, key=lambda m: m.created_at)
    by_id = sorted(messages, key=lambda m: message_store().order_key(m.id))
    assert by_time == by_id
    # Each chat's activity is its newest message; the sender has read what they sent.
    for chat_id in {m.chat_id for m in messages}:
        newest = max((m for m in messages if m.chat_id == chat_id), key=lambda m: m.created_at)
        assert Chat.objects.get(pk=chat_id).last_activity_at == newest.created_at
        membership = ChatParticipant.objects.get(chat_id=chat_id, user_id=newest.sender_id)
        assert membership.last_read_message_id == newest.id


def test_running_it_again_creates_nothing_new():
    seed_demo("--users", "6", "--messages", "30")
    first = counts()
    first_world = world()

    output = seed_demo("--users", "6", "--messages", "30")

    assert counts() == first
    assert world() == first_world
    assert "6 users (0 new)" in output
    assert "(0 pairs set up now)" in output
    assert "(0 new)." in output


def test_another_seed_over_an_existing_history_keeps_each_chat_in_time_order():
    seed_demo("--users", "3", "--messages", "30", "--seed", "1")
    activity_before = dict(Chat.objects.values_list("pk", "last_activity_at"))

    seed_demo("--users", "3", "--messages", "30", "--seed", "2")

    messages = stored_messages()
    assert len(messages) == 60
    for chat in Chat.objects.all():
        in_chat = [m for m in messages if m.chat_id == chat.pk]
        by_id = sorted(in_chat, key=lambda m: message_store().order_key(m.id))
        assert by_id == sorted(in_chat, key=lambda m: m.created_at), "history out of time order"
        assert chat.last_activity_at == by_id[-1].created_at
        assert chat.last_activity_at >= activity_before.get(chat.pk, chat.last_activity_at)


def test_the_same_seed_makes_the_same_world_and_another_seed_another():
    seed_demo("--users", "6", "--messages", "25", "--seed", "7")
    seven = world()
    start_over()
    seed_demo("--users", "6", "--messages", "25", "--seed", "7")
    seven_again = world()
    start_over()
    seed_demo("--users", "6", "--messages", "25", "--seed", "8")
    eight = world()

    assert seven_again == seven
    assert eight["usernames"] == seven["usernames"]  # the logins stay the same...
    assert eight["friendships"] != seven["friendships"]  # ...the story changes
    assert [text for *_, text in eight["messages"]] != [text for *_, text in seven["messages"]]


def test_the_flood_limit_does_not_stop_the_seed_and_is_left_as_it_was(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message": (2, 3600)}

    seed_demo("--users", "3", "--messages", "30")

    assert len(stored_messages()) == 30
    # The seed spent none of the demo people's allowance: alice may still send her two.
    alice = User.objects.get(username="demo.alice")
    chat = ChatParticipant.objects.filter(user=alice).first().chat_id
    for n in range(2):
        assert send_message(sender=alice, chat_id=chat, text="live", client_id=f"live-{n}").created


def test_messages_on_the_mongodb_store_carry_their_historical_times_too(monkeypatch):
    monkeypatch.setattr(
        store_module, "_store", MongoMessageStore(mongomock.MongoClient(tz_aware=True)["chat"]["messages"])
    )
    before = timezone.now()

    seed_demo("--users", "3", "--messages", "12")

    messages = stored_messages()
    assert len(messages) == 12
    assert all(m.created_at < before - timedelta(minutes=10) for m in messages)
    assert sorted(messages, key=lambda m: m.created_at) == sorted(messages, key=lambda m: m.id)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_a_progress_bar_and_a_log_does_not():
    on_terminal = seed_demo("--users", "3", "--messages", "10", stdout=Terminal())
    in_a_log = seed_demo("--users", "3", "--messages", "10", "--seed", "2")

    assert "\rmessages     [" in on_terminal
    assert "] 10/10" in on_terminal
    assert "\r" not in in_a_log


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["--users", "1"], "at least 2"),
        (["--users", "-4"], "at least 2"),
        (["--users", "101"], "at most 100"),
        (["--messages", "-1"], "cannot be negative"),
        (["--messages", "50001"], "at most 50000"),
        (["--users", "lots"], "invalid int value"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(args, complaint):
    with pytest.raises(CommandError, match=complaint):
        seed_demo(*args)

    assert User.objects.count() == 0


def test_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit) as exit:
        call_command("seed_demo", "--help")

    assert exit.value.code == 0
    help_text = capsys.readouterr().out
    assert "demo users" in help_text
    assert "--users" in help_text and "--messages" in help_text and "--seed" in help_text
