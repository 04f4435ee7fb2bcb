"""MongoDB's message ids are made by the workers' clocks: a message still never sorts below one stored before it."""

from datetime import timedelta

import mongomock
import pytest

from messaging import services
from messaging.store import mongo
from messaging.store.base import NewMessage
from messaging.store.mongo import MongoMessageStore

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def store():
    return MongoMessageStore(mongomock.MongoClient(tz_aware=True)["chat"]["messages"])


@pytest.fixture
def clock(monkeypatch):
    """The clock the store reads, set off from the real one by `clock.offset`."""

    class Clock:
        offset = timedelta(0)

    real = mongo._now_ms
    monkeypatch.setattr(mongo, "_now_ms", lambda: real() + Clock.offset)
    return Clock


@pytest.fixture
def another_worker(monkeypatch):
    """Make the ids from here on as a second worker would: its own process bytes and counter history."""

    def switch(process: bytes) -> None:
        monkeypatch.setattr(mongo, "_PROCESS", process)
        monkeypatch.setattr(mongo, "_last_made", (0, 0))

    return switch


def one(store, client_id: str, *, chat_id: int = 1, after=None):
    ((message, created),) = store.add_many([NewMessage(chat_id, 10, client_id, "", client_id)], after=after)
    assert created
    return message


def test_a_clock_stepped_back_does_not_put_a_message_below_the_one_before(store, clock):
    first = one(store, "first")
    clock.offset = timedelta(seconds=-2)  # as an NTP step would

    second = one(store, "second")

    assert store.order_key(second.id) > store.order_key(first.id)
    assert [m.id for m in store.page_after(1, after=first.id, limit=10)] == [second.id]
    assert store.latest(1).id == second.id


def test_a_message_sorts_after_the_chats_newest_from_a_worker_whose_clock_is_ahead(store, clock, another_worker):
    another_worker(b"\xff\xff\xff")
    clock.offset = timedelta(milliseconds=50)
    theirs = one(store, "theirs")
    another_worker(b"\x00\x00\x01")
    clock.offset = timedelta(0)

    ours = one(store, "ours", after={1: theirs.id})

    assert store.order_key(ours.id) > store.order_key(theirs.id)
    assert ours.created_at < theirs.created_at  # each keeps its own clock's time


def test_a_message_sorts_after_one_of_the_same_millisecond_from_a_larger_process(store, monkeypatch, another_worker):
    same_millisecond = mongo._now_ms()
    monkeypatch.setattr(mongo, "_now_ms", lambda: same_millisecond)
    another_worker(b"\xff\xff\xff")
    theirs = one(store, "theirs")
    another_worker(b"\x00\x00\x01")

    ours = one(store, "ours", after={1: theirs.id})

    assert store.order_key(ours.id) > store.order_key(theirs.id)


def test_the_counter_wrapping_within_a_millisecond_keeps_the_order(store, monkeypatch):
    monkeypatch.setattr(mongo, "_counter", iter([(1 << 24) - 2, (1 << 24) - 1, 1 << 24, (1 << 24) + 1]))
    monkeypatch.setattr(mongo, "_last_made", (0, 0))
    at = mongo._now_ms()

    ids = [mongo._time_ordered_id(at) for _ in range(4)]

    assert ids == sorted(ids)


def test_a_send_is_stored_after_the_chats_newest_even_when_another_worker_wrote_it_ahead_of_our_clock(
    friends_with_chat, mongo_store, unlimited_messages, clock, another_worker
):
    alice, bob, chat = friends_with_chat

    def send(sender, client_id):
        draft = services.MessageDraft(sender=sender, chat_id=chat.pk, text=client_id, client_id=client_id)
        (sent,) = services.send_messages([draft])
        return sent.message

    another_worker(b"\xff\xff\xff")
    clock.offset = timedelta(seconds=1)
    from_the_fast_clock = send(alice, "a1")
    another_worker(b"\x00\x00\x01")
    clock.offset = timedelta(0)

    reply = send(bob, "b1")

    assert mongo_store.latest(chat.pk).id == reply.id
    assert [m.id for m in mongo_store.page_after(chat.pk, after=from_the_fast_clock.id, limit=10)] == [reply.id]
