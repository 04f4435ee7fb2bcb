"""Sends that arrive together are written together, and each is still answered on its own."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from chat_realtime.errors import ApplicationError
from chat_realtime.tests.sockets import ask, close, of_type, open_socket
from chat_realtime.tests.sockets import drain as drain_all
from messaging import group_commit, services
from messaging.group_commit import MAX_BATCH, GroupCommitQueue, read_queue, send_queue
from messaging.models import ChatParticipant
from messaging.store import message_store
from messaging.store.orm import OrmMessageStore

pytestmark = pytest.mark.django_db(transaction=True)


def draft(sender, chat, client_id, text="hi", **extra) -> services.MessageDraft:
    return services.MessageDraft(sender=sender, chat_id=chat.pk, text=text, client_id=client_id, **extra)


def test_a_batch_stores_each_new_message_once_and_answers_in_order(friends_with_chat, unlimited_messages):
    alice, bob, chat = friends_with_chat

    outcomes = services.send_messages(
        [draft(alice, chat, "a1", "one"), draft(bob, chat, "b1", "two"), draft(alice, chat, "a2", "three")]
    )

    assert [o.message.text for o in outcomes] == ["one", "two", "three"]
    assert all(o.created for o in outcomes)
    ids = [o.message.id for o in outcomes]
    store = message_store()
    assert sorted(ids, key=store.order_key) == ids
    assert [m.id for m in reversed(store.page_before(chat.pk, before=None, limit=10))] == ids


def test_a_refused_draft_fails_alone(friends_with_chat, make_user, unlimited_messages):
    alice, bob, chat = friends_with_chat
    stranger = make_user()

    outcomes = services.send_messages(
        [
            draft(alice, chat, "ok1"),
            draft(stranger, chat, "no1"),  # not in the chat
            draft(alice, chat, "bad id!"),  # malformed client id
            draft(alice, chat, "empty", text="   "),
            draft(bob, chat, "ok2"),
        ]
    )

    assert [o.code if isinstance(o, ApplicationError) else "sent" for o in outcomes] == [
        "sent",
        "not_found",
        "validation_error",
        "validation_error",
        "sent",
    ]
    assert message_store().count_after(chat.pk, after=None) == 2


def test_a_resend_in_the_same_batch_as_its_original_is_stored_once(friends_with_chat, unlimited_messages):
    alice, _, chat = friends_with_chat

    first, again = services.send_messages([draft(alice, chat, "same"), draft(alice, chat, "same")])

    assert first.created and not again.created
    assert again.message.id == first.message.id
    assert message_store().count_after(chat.pk, after=None) == 1


def test_a_repeat_in_the_same_batch_is_answered_as_a_resend_not_as_announced(friends_with_chat, unlimited_messages):
    alice, _, chat = friends_with_chat

    first, again = services.send_messages([draft(alice, chat, "same"), draft(alice, chat, "same")])

    # Only an announced message's ack carries the sender's unread count (messaging/ws_handlers.py).
    assert first.announced and not again.announced


def test_a_draft_whose_client_id_came_first_in_a_refused_draft_is_checked_on_its_own(
    friends_with_chat, unlimited_messages
):
    alice, _, chat = friends_with_chat

    refused, sent = services.send_messages(
        [draft(alice, chat, "same", text="   "), draft(alice, chat, "same", text="hello")]
    )

    assert refused.code == "validation_error"
    assert sent.created and sent.message.text == "hello"
    assert [m.text for m in message_store().page_before(chat.pk, before=None, limit=5)] == ["hello"]


def test_a_resend_that_got_past_the_lookup_is_answered_and_the_rest_of_its_batch_is_recorded(
    friends_with_chat, unlimited_messages, monkeypatch
):
    """Its original was stored after the batch looked for it (by another worker, say): the batch's
    insert meets the duplicate, and the same transaction goes on one message at a time."""
    alice, bob, chat = friends_with_chat
    (original,) = services.send_messages([draft(alice, chat, "raced")])
    monkeypatch.setattr(type(message_store()), "find_by_client_ids", lambda store, keys: {})

    fresh, again = services.send_messages([draft(bob, chat, "b1"), draft(alice, chat, "raced")])

    assert fresh.created and not again.created
    assert again.message.id == original.message.id
    assert message_store().count_after(chat.pk, after=None) == 2
    positions = dict(chat.participants.values_list("user_id", "last_read_message_id"))
    assert positions == {alice.pk: original.message.id, bob.pk: fresh.message.id}


def test_when_a_batchs_insert_fails_nothing_of_the_batch_is_committed(friends_with_chat, unlimited_messages):
    """A failed INSERT (the database gone, a deadlock) may have taken the transaction with it: the batch's
    new messages are refused and nothing of it is committed, not even the repair of a resend in it."""
    from datetime import timedelta

    from messaging.models import Chat

    if not isinstance(message_store(), OrmMessageStore):
        pytest.skip("the message store is MongoDB: its writes are not the SQL transaction's")
    alice, bob, chat = friends_with_chat
    (earlier,) = services.send_messages([draft(alice, chat, "a1")])
    # As if that send had stopped short of recording it: the chat's activity time is older than the message.
    stopped_short = earlier.message.created_at - timedelta(minutes=1)
    Chat.objects.filter(pk=chat.pk).update(last_activity_at=stopped_short)

    def insert_fails(execute, sql, params, many, context):
        if sql.startswith("INSERT INTO") and "messaging_message" in sql:
            raise OperationalError("the database went away")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(insert_fails):
        resend, new = services.send_messages([draft(alice, chat, "a1"), draft(bob, chat, "b1")])

    assert not resend.created and resend.message.id == earlier.message.id
    assert new.code == "store_unavailable"
    assert Chat.objects.get(pk=chat.pk).last_activity_at == stopped_short


def test_a_batch_of_sends_is_one_transaction_without_savepoints(friends_with_chat, unlimited_messages):
    # A savepoint is two more statements per batch: round trips on MySQL/MariaDB (docs/benchmarks.md).
    if not connection.features.can_return_rows_from_bulk_insert:
        pytest.skip("without INSERT ... RETURNING (MySQL) the batch is stored by bulk_create, in a savepoint")
    alice, bob, chat = friends_with_chat

    with CaptureQueriesContext(connection) as statements:
        services.send_messages([draft(alice, chat, "a1"), draft(bob, chat, "b1")])

    assert not [s["sql"] for s in statements if "SAVEPOINT" in s["sql"].upper()]


def test_a_batch_of_sends_is_four_round_trips_to_mysql(friends_with_chat, unlimited_messages, round_trips):
    # Each is worth more than its statement's own work under load (docs/benchmarks.md).
    if not isinstance(message_store(), OrmMessageStore):
        pytest.skip("the message store is MongoDB: the batch's lookup and insert go there")
    alice, bob, chat = friends_with_chat
    # Each sender's first send checks that they may write there; a connection's next ones show its grant.
    grants = [sent.grant for sent in services.send_messages([draft(alice, chat, "a0"), draft(bob, chat, "b0")])]
    round_trips.clear()

    sent = services.send_messages([draft(alice, chat, "a1", grant=grants[0]), draft(bob, chat, "b1", grant=grants[1])])

    assert [s.created for s in sent] == [True, True]
    assert [sql.split()[0] for sql in round_trips] == ["START", "SELECT", "INSERT", "UPDATE"]
    assert round_trips[-1].endswith("COMMIT")  # the chat's activity and the read states go with the COMMIT


def test_a_batch_of_reads_is_four_round_trips_to_mysql(friends_with_chat, unlimited_messages, round_trips):
    if not isinstance(message_store(), OrmMessageStore):
        pytest.skip("the message store is MongoDB: the chats' newest messages are found there")
    alice, bob, chat = friends_with_chat
    (sent,) = services.send_messages([draft(alice, chat, "a1")])
    round_trips.clear()

    outcomes = services.mark_reads([services.ReadMark(user=bob, chat_id=chat.pk, message_id=sent.message.id)])

    assert outcomes == [None]
    # Membership (before any lock), the chats' lock, their newest messages, the read state with the COMMIT.
    assert [sql.split()[0] for sql in round_trips] == ["SELECT", "START", "SELECT", "UPDATE"]
    assert round_trips[-1].endswith("COMMIT")
    assert ChatParticipant.objects.get(chat=chat, user=bob).last_read_message_id == sent.message.id


def test_the_chat_moves_up_and_each_sender_has_read_what_they_sent(friends_with_chat, unlimited_messages):
    alice, bob, chat = friends_with_chat
    before = chat.last_activity_at

    a, b = services.send_messages([draft(alice, chat, "a1"), draft(bob, chat, "b1")])

    chat.refresh_from_db()
    positions = dict(chat.participants.values_list("user_id", "last_read_message_id"))
    assert chat.last_activity_at > before
    assert positions == {alice.pk: a.message.id, bob.pk: b.message.id}


def test_when_the_store_is_down_every_draft_of_the_batch_is_refused(friends_with_chat, broken_store):
    alice, bob, chat = friends_with_chat

    outcomes = services.send_messages([draft(alice, chat, "a1"), draft(bob, chat, "b1")])

    assert [o.code for o in outcomes] == ["store_unavailable", "store_unavailable"]


def test_a_repeat_of_a_draft_the_store_could_not_take_is_answered_alike_without_trying_again(
    friends_with_chat, broken_store, monkeypatch
):
    alice, _, chat = friends_with_chat
    tries = []
    monkeypatch.setattr(broken_store, "find_by_client_ids", lambda keys: tries.append(keys) or {})
    monkeypatch.setattr(broken_store, "add_many", lambda *args, **kwargs: tries.append(args) or _down())

    outcomes = services.send_messages([draft(alice, chat, "same"), draft(alice, chat, "same")])

    assert [o.code for o in outcomes] == ["store_unavailable", "store_unavailable"]
    assert len(tries) == 2  # one lookup, one write: the batch's only


def _down():
    from messaging.store import MessageStoreUnavailable

    raise MessageStoreUnavailable("connection refused")


def test_a_grant_skips_the_checks_until_it_expires(friends_with_chat, unlimited_messages, monkeypatch, make_user):
    alice, bob, chat = friends_with_chat
    grant = services.send_message(sender=alice, chat_id=chat.pk, text="hi", client_id="g1").grant
    from friends import services as friends_services

    friends_services.unfriend(user=alice, friend_id=bob.pk)

    with_grant = services.send_messages([draft(alice, chat, "g2", grant=grant)])[0]
    someone_elses = services.send_messages([draft(make_user(), chat, "g3", grant=grant)])[0]
    monkeypatch.setattr(services, "WRITE_GRANT_SECONDS", 0)
    expired = services.send_messages([draft(alice, chat, "g4", grant=grant)])[0]

    assert with_grant.created
    assert someone_elses.code == "not_found"  # a grant covers its own sender and chat only
    assert expired.code == "not_friends"


def batch_sizes(monkeypatch, write_batch: str) -> list[int]:
    """The size of each batch `services.<write_batch>` writes from now on."""
    sizes: list[int] = []
    real = getattr(services, write_batch)

    def recording(jobs):
        sizes.append(len(jobs))
        return real(jobs)

    monkeypatch.setattr(services, write_batch, recording)
    return sizes


async def test_concurrent_sends_share_one_database_call(friends_with_chat, unlimited_messages, monkeypatch):
    alice, bob, chat = friends_with_chat
    batches = batch_sizes(monkeypatch, "send_messages")
    queue = send_queue()

    sent = await asyncio.gather(*(queue.submit(draft(alice, chat, f"c{n}")) for n in range(10)))

    assert sorted(s.message.client_id for s in sent) == sorted(f"c{n}" for n in range(10))
    assert batches == [10]  # all ten queued before the first write started
    assert await sync_to_async(message_store().count_after)(chat.pk, after=None) == 10


def recorded_batches(monkeypatch, fail_first_with: Exception | None = None) -> tuple[list[int], list[int]]:
    """Sizes of the batches written and a count of the database thread's drains; the first batch
    raises `fail_first_with` if given."""
    batches: list[int] = []
    drains: list[int] = []
    real_send_messages, real_drain = services.send_messages, GroupCommitQueue._drain

    def recording(drafts):
        batches.append(len(drafts))
        if fail_first_with is not None and len(batches) == 1:
            raise fail_first_with
        return real_send_messages(drafts)

    def counted(self, loop):
        drains.append(1)
        return real_drain(self, loop)

    monkeypatch.setattr(services, "send_messages", recording)
    monkeypatch.setattr(GroupCommitQueue, "_drain", counted)
    monkeypatch.setattr(group_commit, "DRAIN_SECONDS", 60)  # a slow test machine must not end a drain early
    return batches, drains


async def send_all(sender, chat, count: int) -> list:
    """`count` sends queued at once; each one's outcome (a SentMessage or what it raised), within 10 s."""
    sends = (send_queue().submit(draft(sender, chat, f"c{n}")) for n in range(count))
    return await asyncio.wait_for(asyncio.gather(*sends, return_exceptions=True), timeout=10)


async def test_the_database_thread_writes_batch_after_batch_without_going_back_to_the_loop(
    friends_with_chat, unlimited_messages, monkeypatch
):
    alice, bob, chat = friends_with_chat
    batches, drains = recorded_batches(monkeypatch)

    sent = await send_all(alice, chat, MAX_BATCH + 20)

    assert len({s.message.id for s in sent}) == MAX_BATCH + 20
    assert batches == [MAX_BATCH, 20]
    assert len(drains) == 1


@pytest.mark.parametrize(
    ("failure", "drains_expected"),
    [
        # A database error ends the drain, so the connection is checked before the next batch.
        (OperationalError("gone away"), 2),
        # Any other failure was that batch's own: the drain goes on.
        (ValueError("a bug in one batch"), 1),
    ],
)
async def test_a_failing_batch_costs_only_its_own_sends_and_the_next_batch_is_written(
    friends_with_chat, unlimited_messages, monkeypatch, failure, drains_expected
):
    alice, bob, chat = friends_with_chat
    batches, drains = recorded_batches(monkeypatch, fail_first_with=failure)

    outcomes = await send_all(alice, chat, MAX_BATCH + 20)

    assert [type(o).__name__ for o in outcomes] == [type(failure).__name__] * MAX_BATCH + ["SentMessage"] * 20
    assert len(drains) == drains_expected
    assert await sync_to_async(message_store().count_after)(chat.pk, after=None) == 20


async def test_when_the_database_thread_itself_fails_every_waiting_sender_hears_so(
    friends_with_chat, unlimited_messages, monkeypatch
):
    alice, bob, chat = friends_with_chat

    def broken(self, loop):
        raise RuntimeError("the thread's own work failed")

    monkeypatch.setattr(GroupCommitQueue, "_drain", broken)

    outcomes = await send_all(alice, chat, 3)

    assert [str(o) for o in outcomes] == ["the thread's own work failed"] * 3
    assert await sync_to_async(message_store().count_after)(chat.pk, after=None) == 0


async def test_a_refusal_in_a_shared_batch_reaches_only_its_sender(friends_with_chat, make_user, unlimited_messages):
    alice, bob, chat = friends_with_chat
    stranger = await sync_to_async(make_user)()
    queue = send_queue()

    good, bad = await asyncio.gather(
        queue.submit(draft(alice, chat, "ok")), queue.submit(draft(stranger, chat, "no")), return_exceptions=True
    )

    assert good.created
    assert isinstance(bad, ApplicationError) and bad.code == "not_found"


async def test_after_unfriending_an_open_socket_stops_sending_at_once(friends_with_chat, unlimited_messages):
    """The socket's grant from its earlier sends is dropped when the friendship event reaches it."""
    alice, bob, chat = friends_with_chat
    from friends import services as friends_services

    alice_tab = await open_socket(alice)
    await ask(alice_tab, {"type": "join_chat", "chat_id": chat.pk})
    sent = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "hi", "client_id": "u1"})
    await sync_to_async(friends_services.unfriend)(user=bob, friend_id=alice.pk)
    frames = await drain_all(alice_tab)

    refused = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "hey?", "client_id": "u2"})

    assert sent["type"] == "message_ack"
    assert of_type(frames, "friendship")
    assert (refused["code"], refused["client_id"]) == ("not_friends", "u2")
    await close(alice_tab)


def test_grants_expire_by_the_clock(friends_with_chat):
    alice, _, chat = friends_with_chat
    grant = services.check_may_write(sender=alice, chat_id=chat.pk)
    stale = services.WriteGrant(
        sender_id=alice.pk, chat_id=chat.pk, checked_at=time.monotonic() - services.WRITE_GRANT_SECONDS
    )

    assert grant.covers(sender_id=alice.pk, chat_id=chat.pk)
    assert not grant.covers(sender_id=alice.pk, chat_id=chat.pk + 1)
    assert not stale.covers(sender_id=alice.pk, chat_id=chat.pk)


def published_frames(monkeypatch) -> list[tuple[str, dict]]:
    """What the services publish (group, frame), in order, once their transaction commits: of an event to a
    chat's participant, the frame for the connections that have the chat on screen, then any for the others."""
    from chat_realtime import realtime

    sent: list[tuple[str, dict]] = []

    def record(events):
        for group, event in events:
            if "on_screen" in event:
                sent.append((group, event["on_screen"][1]))
            if event["frame"] is not None:
                sent.append((group, event["frame"]))

    monkeypatch.setattr(realtime, "_send", record)
    return sent


def test_a_resend_in_the_same_batch_is_announced_once_and_takes_no_rate_limit(friends_with_chat, monkeypatch, settings):
    alice, bob, chat = friends_with_chat
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message": (1, 60)}
    sent = published_frames(monkeypatch)

    first, again = services.send_messages(
        [draft(alice, chat, "same", origin_channel="old-tab"), draft(alice, chat, "same", origin_channel="new-tab")]
    )

    assert first.created and not again.created and again.message.id == first.message.id
    announced = [(group, frame["message"]["id"]) for group, frame in sent if frame["type"] == "new_message"]
    assert sorted(announced) == sorted([(f"user.{alice.pk}", first.message.id), (f"user.{bob.pk}", first.message.id)])


def test_a_resend_that_fails_todays_checks_is_still_answered_with_what_was_stored(
    friends_with_chat, unlimited_messages
):
    alice, _, chat = friends_with_chat
    (sent,) = services.send_messages([draft(alice, chat, "once", text="the first try")])

    again, empty = services.send_messages(
        [draft(alice, chat, "once", text="x" * (services.MESSAGE_MAX_CHARS + 1)), draft(alice, chat, "new", text=" ")]
    )

    assert not again.created and again.message.id == sent.message.id
    assert empty.code == "validation_error"


def test_a_batch_counts_each_new_message_against_its_senders_limit_in_one_call_and_resends_not_at_all(
    friends_with_chat, monkeypatch, settings
):
    alice, bob, chat = friends_with_chat
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message": (2, 60)}
    services.send_messages([draft(alice, chat, "a0")])
    counted = []
    count_attempts = services.count_attempts
    monkeypatch.setattr(services, "count_attempts", lambda *a, **kw: counted.append(a[1]) or count_attempts(*a, **kw))

    outcomes = services.send_messages(
        [
            draft(alice, chat, "a0"),  # a resend of the one above
            draft(alice, chat, "a1"),
            draft(bob, chat, "b1"),
            draft(alice, chat, "a2"),
            draft(bob, chat, "b2"),
            draft(alice, chat, "a3"),
        ]
    )

    assert [o.code if isinstance(o, ApplicationError) else o.created for o in outcomes] == [
        False,
        True,
        True,
        "rate_limited",
        True,
        "rate_limited",
    ]
    assert counted == [[f"user:{u.pk}" for u in (alice, bob, alice, bob, alice)]]
    assert message_store().count_after(chat.pk, after=None) == 4


def test_messages_of_a_batch_are_announced_in_their_chats_order(friends_with_chat, unlimited_messages, monkeypatch):
    alice, bob, chat = friends_with_chat
    sent = published_frames(monkeypatch)

    outcomes = services.send_messages([draft(alice, chat, f"o{n}") for n in range(5)])

    for person in (alice, bob):
        to_them = [frame for group, frame in sent if group == f"user.{person.pk}"]
        assert [f["message"]["id"] for f in to_them if f["type"] == "new_message"] == [o.message.id for o in outcomes]
    updates = [(group, frame["unread_count"]) for group, frame in sent if frame["type"] == "chat_update"]
    assert sorted(updates) == sorted([(f"user.{alice.pk}", 0), (f"user.{bob.pk}", 5)])  # one per participant


def test_a_message_is_one_layer_message_per_participant(friends_with_chat, unlimited_messages, monkeypatch):
    from chat_realtime import realtime

    alice, bob, chat = friends_with_chat
    events: list[tuple[str, dict]] = []
    monkeypatch.setattr(realtime, "_send", events.extend)

    services.send_messages([draft(alice, chat, "one", origin_channel="alices-tab")])

    assert sorted(group for group, _ in events) == sorted([f"user.{alice.pk}", f"user.{bob.pk}"])
    assert all(event["exclude_channel"] == "alices-tab" for _, event in events)
    assert [event["on_screen"][0] for _, event in events] == [f"chat.{chat.pk}"] * 2


def test_each_new_message_carries_each_readers_unread_count_right_after_it(
    friends_with_chat, unlimited_messages, monkeypatch
):
    alice, bob, chat = friends_with_chat
    services.send_message(sender=alice, chat_id=chat.pk, text="earlier", client_id="e1")  # bob: 1 unread
    published = published_frames(monkeypatch)

    outcomes = services.send_messages([draft(alice, chat, "a1"), draft(bob, chat, "b1"), draft(alice, chat, "a2")])

    def counts_to(person) -> list[int]:
        return [f["unread_count"] for g, f in published if g == f"user.{person.pk}" and f["type"] == "new_message"]

    assert counts_to(alice) == [0, 1, 0]
    assert counts_to(bob) == [2, 0, 1]  # bob's own: all before it read
    assert [o.unread_count for o in outcomes] == [0, 0, 0]  # each sender's ack: right after their message
    # The last message's counts are the batch's, as the chat_updates and the memberships have them.
    updates = {group: f["unread_count"] for group, f in published if f["type"] == "chat_update"}
    kept = dict(chat.participants.values_list("user_id", "unread_count"))
    assert updates == {f"user.{alice.pk}": 0, f"user.{bob.pk}": 1} and kept == {alice.pk: 0, bob.pk: 1}


def test_a_bad_read_position_costs_a_badge_update_not_the_other_messages(
    friends_with_chat, make_user, befriend, unlimited_messages, caplog
):
    alice, bob, chat = friends_with_chat
    carol = make_user()
    other_chat = befriend(alice, carol)
    chat.participants.filter(user=bob).update(last_read_message_id="not-an-id")

    outcomes = services.send_messages([draft(alice, chat, "x1"), draft(carol, other_chat, "x2")])

    assert all(o.created for o in outcomes)
    assert message_store().count_after(other_chat.pk, after=None) == 1


def test_a_chat_deleted_after_the_grant_takes_no_message(friends_with_chat, unlimited_messages):
    alice, _, chat = friends_with_chat
    grant = services.check_may_write(sender=alice, chat_id=chat.pk)
    chat_id = chat.pk
    chat.delete()

    (refused,) = services.send_messages(
        [services.MessageDraft(sender=alice, chat_id=chat_id, text="hi", client_id="late", grant=grant)]
    )

    assert refused.code == "not_found"
    assert message_store().count_after(chat_id, after=None) == 0


async def test_events_published_from_the_database_thread_reach_sockets_in_commit_order(friends_with_chat):
    """The database thread hands its events to the loop (an outbox) rather than waiting for the layer."""
    from django.db import transaction

    from chat_realtime.realtime import publish_to_user

    alice, _, _ = friends_with_chat
    tab = await open_socket(alice)
    await drain_all(tab)

    def publish_twenty() -> None:
        for n in range(20):
            with transaction.atomic():
                publish_to_user(alice.pk, {"type": "probe", "n": n})

    await sync_to_async(publish_twenty)()

    frames = [f for f in await drain_all(tab) if f["type"] == "probe"]
    assert [f["n"] for f in frames] == list(range(20))
    await close(tab)


async def test_a_socket_checks_its_permission_once_and_again_after_a_friendship_event(
    friends_with_chat, unlimited_messages, monkeypatch
):
    alice, bob, chat = friends_with_chat
    from friends import services as friends_services

    checks = []
    real_check = services.check_may_write

    def counted(**kwargs):
        checks.append(kwargs["chat_id"])
        return real_check(**kwargs)

    monkeypatch.setattr(services, "check_may_write", counted)
    alice_tab = await open_socket(alice)
    for n in range(3):
        await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "hi", "client_id": f"p{n}"})
    checked_before_unfriending = len(checks)
    await sync_to_async(friends_services.unfriend)(user=bob, friend_id=alice.pk)
    await drain_all(alice_tab)
    refused = await ask(alice_tab, {"type": "send_message", "chat_id": chat.pk, "text": "hey?", "client_id": "p9"})

    assert checked_before_unfriending == 1  # three sends, one full check
    assert refused["code"] == "not_friends" and len(checks) == 2
    await close(alice_tab)


def test_a_chats_activity_time_only_moves_forward_and_lock_answers_the_chats_that_exist(friends_with_chat):
    from datetime import timedelta

    from django.db import transaction

    from messaging.models import Chat

    _, _, chat = friends_with_chat
    now = Chat.objects.get(pk=chat.pk).last_activity_at

    with transaction.atomic():
        assert Chat.objects.lock([chat.pk, chat.pk + 1000]) == {chat.pk}
        Chat.objects.advance_activity([chat.pk], now + timedelta(minutes=5))
        Chat.objects.advance_activity([chat.pk], now + timedelta(minutes=1))

    assert Chat.objects.get(pk=chat.pk).last_activity_at == now + timedelta(minutes=5)


def test_locking_chats_with_read_states_answers_the_chats_that_exist_and_their_memberships(friends_with_chat):
    from django.db import transaction

    from messaging.models import Chat

    alice, bob, chat = friends_with_chat
    empty = Chat.objects.create(name="nobody here")
    services.send_messages([draft(alice, chat, "a1")])

    with transaction.atomic():
        existing, states = Chat.objects.lock_with_read_states([chat.pk, empty.pk, chat.pk + 1000])

    assert existing == {chat.pk, empty.pk}
    assert {(s.chat_id, s.user_id, s.unread_count) for s in states} == {(chat.pk, alice.pk, 0), (chat.pk, bob.pk, 1)}


def test_a_batchs_lock_holds_the_memberships_of_its_chats_until_it_commits(friends_with_chat, other_mysql_session):
    """What a batch read of each reader's count stays true until its commit (MySQL/MariaDB row locks;
    SQLite's write transaction holds the whole database)."""
    import MySQLdb
    from django.db import transaction

    from messaging.models import Chat

    _, _, chat = friends_with_chat
    table = connection.ops.quote_name(chat.participants.model._meta.db_table)
    lock_one = f"SELECT id FROM {table} WHERE id = %s FOR UPDATE NOWAIT"

    with transaction.atomic():
        _, states = Chat.objects.lock_with_read_states([chat.pk])
        with other_mysql_session.cursor() as cursor, pytest.raises(MySQLdb.OperationalError, match=r"[Ll]ock"):
            cursor.execute(lock_one, [states[0].membership_id])
    with other_mysql_session.cursor() as cursor:
        cursor.execute(lock_one, [states[0].membership_id])


def locking_now(session) -> bool:
    """Whether a batch's lock statement is running on the server (it takes milliseconds unless it waits)."""
    with session.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT c.id, m.id%%'")
        return cursor.fetchone()[0] > 0


def test_a_batch_waiting_for_a_chat_does_not_deadlock_the_batch_that_holds_it(make_user, befriend, other_mysql_session):
    """One batch (here the other session) holds a chat and moves its activity time while another waits to
    lock it: the waiting one must hold nothing the first needs. MariaDB once read a small chats table
    along the activity time's index, locking its entries, and two workers' batches deadlocked."""
    import threading

    from django.db import transaction

    from messaging.models import Chat

    chats = [befriend(make_user(), make_user()) for _ in range(4)]
    table = connection.ops.quote_name(Chat._meta.db_table)
    answers = {}

    def lock_in_another_thread():
        try:
            with transaction.atomic():
                answers["existing"], _ = Chat.objects.lock_with_read_states([chat.pk for chat in chats[:2]])
        except Exception as error:  # the deadlock, if any: reported below
            answers["error"] = error
        finally:
            connection.close()

    with other_mysql_session.cursor() as cursor:
        cursor.execute("START TRANSACTION")
        cursor.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", [chats[0].pk])
        waiting = threading.Thread(target=lock_in_another_thread)
        waiting.start()
        deadline = time.monotonic() + 10
        while not locking_now(other_mysql_session) and waiting.is_alive():
            assert time.monotonic() < deadline, "the other thread never waited for the first chat"
            time.sleep(0.02)
        cursor.execute(f"UPDATE {table} SET last_activity_at = NOW(6) WHERE id = %s", [chats[0].pk])
        other_mysql_session.commit()
    waiting.join(timeout=30)

    assert "error" not in answers, answers.get("error")
    assert answers["existing"] == {chats[0].pk, chats[1].pk}


def test_a_batch_of_reads_answers_each_on_its_own_and_counts_only_for_a_read_short_of_the_newest(
    friends_with_chat, make_user, unlimited_messages
):
    alice, bob, chat = friends_with_chat
    older, newest = (o.message for o in services.send_messages([draft(alice, chat, "r1"), draft(alice, chat, "r2")]))
    carol = make_user()
    mark = services.ReadMark
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        outcomes = services.mark_reads(
            [
                mark(user=bob, chat_id=chat.pk, message_id=older.id),
                mark(user=bob, chat_id=chat.pk, message_id=None),  # not an id
                mark(user=carol, chat_id=chat.pk, message_id=newest.id),  # not in the chat
                mark(user=alice, chat_id=chat.pk, message_id="999999999"),  # no such message
                mark(user=alice, chat_id=chat.pk, message_id=newest.id),
            ]
        )

    assert [o.code if o else None for o in outcomes] == [None, "validation_error", "not_found", "not_found", None]
    assert [outcomes[2].message, outcomes[3].message] == ["No such chat.", "No such message in this chat."]
    positions = dict(ChatParticipant.objects.filter(chat=chat).values_list("user_id", "unread_count"))
    assert positions == {alice.pk: 0, bob.pk: 1}  # bob read up to the older one: the newest is unread
    assert len([sql for sql in statements if "SUM(CASE" in sql]) == 1  # bob's window only


def test_reads_of_one_person_in_one_chat_apply_in_order_and_never_move_back(friends_with_chat, unlimited_messages):
    alice, bob, chat = friends_with_chat
    older, newest = (o.message for o in services.send_messages([draft(alice, chat, "o1"), draft(alice, chat, "o2")]))

    outcomes = services.mark_reads(
        [
            services.ReadMark(user=bob, chat_id=chat.pk, message_id=newest.id),
            services.ReadMark(user=bob, chat_id=chat.pk, message_id=older.id),
        ]
    )

    membership = ChatParticipant.objects.get(chat=chat, user=bob)
    assert outcomes == [None, None]
    assert (membership.last_read_message_id, membership.unread_count) == (newest.id, 0)


def test_opening_a_chat_reads_up_to_its_newest_message_as_a_read_of_it_would(
    friends_with_chat, make_user, unlimited_messages
):
    alice, bob, chat = friends_with_chat
    carol = make_user()
    (sent,) = services.send_messages([draft(alice, chat, "n1")])

    with CaptureQueriesContext(connection) as opened:
        services.mark_reads(
            [
                services.ReadMark.up_to_newest(user=bob, chat_id=chat.pk),
                services.ReadMark.up_to_newest(user=carol, chat_id=chat.pk),
            ]
        )
    opened_at = ChatParticipant.objects.get(chat=chat, user=bob)
    (newer,) = services.send_messages([draft(alice, chat, "n2")])
    with CaptureQueriesContext(connection) as read:
        services.mark_read(user=bob, chat_id=chat.pk, message_id=newer.message.id)

    assert (opened_at.last_read_message_id, opened_at.unread_count) == (sent.message.id, 0)
    # One membership check for both, no look-up of the newest before the chats are locked, no count.
    assert len(opened) == len(read)
    assert not [query for query in opened.captured_queries if "SUM(CASE" in query["sql"]]


def test_opening_a_chat_that_is_not_yours_is_refused_as_one_that_does_not_exist(friends_with_chat, make_user):
    alice, bob, chat = friends_with_chat

    outcomes = services.mark_reads(
        [
            services.ReadMark.up_to_newest(user=make_user(), chat_id=chat.pk),
            services.ReadMark.up_to_newest(user=bob, chat_id=999999),
        ]
    )

    assert [(o.code, o.message) for o in outcomes] == [("not_found", "No such chat.")] * 2


def test_opening_a_chat_without_messages_is_no_change(friends_with_chat):
    alice, bob, chat = friends_with_chat

    assert services.mark_reads([services.ReadMark.up_to_newest(user=bob, chat_id=chat.pk)]) == [None]
    assert ChatParticipant.objects.get(chat=chat, user=bob).last_read_message_id in ("", None)


async def test_concurrent_reads_share_one_database_call(friends_with_chat, unlimited_messages, monkeypatch):
    alice, bob, chat = friends_with_chat
    sent = await sync_to_async(services.send_messages)([draft(alice, chat, f"m{n}") for n in range(3)])
    batches = batch_sizes(monkeypatch, "mark_reads")
    queue = read_queue()

    answers = await asyncio.gather(
        *(queue.submit(services.ReadMark(user=bob, chat_id=chat.pk, message_id=s.message.id)) for s in sent)
    )

    assert answers == [None, None, None]
    assert batches == [3]
    membership = await sync_to_async(ChatParticipant.objects.get)(chat=chat, user=bob)
    assert (membership.last_read_message_id, membership.unread_count) == (sent[-1].message.id, 0)


def broken(*args, **kwargs):
    """As pymongo fails when the server is unreachable."""
    from pymongo.errors import AutoReconnect

    raise AutoReconnect("connection refused")


def test_when_the_store_is_down_a_batch_of_reads_writes_nothing_and_keeps_each_refusal(
    friends_with_chat, make_user, mongo_store, monkeypatch
):
    alice, bob, chat = friends_with_chat
    sent = services.send_message(sender=alice, chat_id=chat.pk, text="hi", client_id="d1").message
    monkeypatch.setattr(mongo_store.collection, "aggregate", broken)
    monkeypatch.setattr(mongo_store.collection, "find_one", broken)

    outcomes = services.mark_reads(
        [
            services.ReadMark(user=bob, chat_id=chat.pk, message_id=sent.id),
            services.ReadMark(user=make_user(), chat_id=chat.pk, message_id=sent.id),
            services.ReadMark(user=alice, chat_id=chat.pk, message_id=""),
            services.ReadMark.up_to_newest(user=bob, chat_id=chat.pk),  # opening the chat
        ]
    )

    assert [o.code for o in outcomes] == ["store_unavailable", "not_found", "validation_error", "store_unavailable"]
    # A read saves no message: the reader hears that messages are unavailable, not that theirs was not saved.
    assert outcomes[0].message == outcomes[3].message == "Messages are unavailable for a moment. Try again shortly."
    assert ChatParticipant.objects.get(chat=chat, user=bob).unread_count == 1


async def test_a_refused_read_in_a_shared_batch_reaches_only_its_reader(friends_with_chat, make_user):
    alice, bob, chat = friends_with_chat
    sent = await sync_to_async(services.send_message)(sender=alice, chat_id=chat.pk, text="hi", client_id="q1")
    stranger = await sync_to_async(make_user)()
    queue = read_queue()

    read, refused = await asyncio.gather(
        queue.submit(services.ReadMark(user=bob, chat_id=chat.pk, message_id=sent.message.id)),
        queue.submit(services.ReadMark(user=stranger, chat_id=chat.pk, message_id=sent.message.id)),
        return_exceptions=True,
    )

    assert read is None
    assert isinstance(refused, ApplicationError) and refused.code == "not_found"
    membership = await sync_to_async(ChatParticipant.objects.get)(chat=chat, user=bob)
    assert (membership.last_read_message_id, membership.unread_count) == (sent.message.id, 0)
