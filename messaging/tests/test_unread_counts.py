"""Unread counts are kept with each membership as messages are sent and read, and always equal a recount."""

from __future__ import annotations

import importlib
import itertools
import time

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzzing
from hypothesis import strategies as st

from messaging import services
from messaging.models import ChatParticipant
from messaging.store import message_store
from messaging.store.base import UnreadWindow

pytestmark = pytest.mark.django_db

_client_ids = itertools.count()


def draft(sender, chat, client_id=None) -> services.MessageDraft:
    client_id = client_id or f"u{next(_client_ids)}"
    return services.MessageDraft(sender=sender, chat_id=chat.pk, text="hi", client_id=client_id)


def kept_and_recounted(chat) -> tuple[dict[int, int], dict[int, int]]:
    """Each participant's (by user id) unread count as kept, and as the store counts it."""
    memberships = list(ChatParticipant.objects.filter(chat=chat))
    windows = [UnreadWindow(m.chat_id, m.last_read_message_id or None, m.user_id) for m in memberships]
    recounted = message_store().count_unread(windows)
    return {m.user_id: m.unread_count for m in memberships}, dict(
        zip([m.user_id for m in memberships], recounted, strict=True)
    )


def statements_of(call) -> list[str]:
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        call()
    return statements


def counts(statements: list[str]) -> list[str]:
    return [sql for sql in statements if "SUM(CASE" in sql or "COUNT(" in sql.upper()]


# A step: a batch of sends by some of the people (the same client id twice is a resend), or a batch of
# reads, each by one of them up to one of the latest messages (the same person twice: in order).
steps = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5)), min_size=1, max_size=6)),
        st.tuples(st.just("read"), st.lists(st.tuples(st.integers(0, 1), st.integers(0, 4)), min_size=1, max_size=3)),
    ),
    min_size=1,
    max_size=8,
)


@fuzzing(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_kept_counts_equal_a_recount_after_any_sends_resends_and_reads(friends_with_chat, unlimited_messages, steps):
    people, chat = friends_with_chat[:2], friends_with_chat[2]
    run = next(_client_ids)

    for kind, what in steps:
        if kind == "send":
            services.send_messages([draft(people[who], chat, f"r{run}-{who}-{n}") for who, n in what])
        else:
            recent = message_store().page_before(chat.pk, before=None, limit=5)
            marks = [
                services.ReadMark(user=people[who], chat_id=chat.pk, message_id=recent[min(back, len(recent) - 1)].id)
                for who, back in what
                if recent
            ]
            assert services.mark_reads(marks) == [None] * len(marks)
        kept, recounted = kept_and_recounted(chat)
        assert kept == recounted, (kind, what)


def test_a_batch_counts_nothing_it_can_add_up(friends_with_chat, unlimited_messages):
    alice, bob, chat = friends_with_chat

    batch = [draft(alice, chat), draft(bob, chat), draft(alice, chat)]

    statements = statements_of(lambda: services.send_messages(batch))

    assert counts(statements) == []
    assert kept_and_recounted(chat) == ({alice.pk: 0, bob.pk: 1}, {alice.pk: 0, bob.pk: 1})


def test_reading_the_newest_message_counts_nothing_and_an_older_one_counts_what_came_after(
    friends_with_chat, unlimited_messages
):
    alice, bob, chat = friends_with_chat
    older, newer, newest = (o.message for o in services.send_messages([draft(alice, chat) for _ in range(3)]))

    to_older = statements_of(lambda: services.mark_read(user=bob, chat_id=chat.pk, message_id=older.id))
    after_older = kept_and_recounted(chat)
    to_newest = statements_of(lambda: services.mark_read(user=bob, chat_id=chat.pk, message_id=newest.id))

    assert len(counts(to_older)) == 1 and after_older == ({alice.pk: 0, bob.pk: 2}, {alice.pk: 0, bob.pk: 2})
    assert counts(to_newest) == []
    assert kept_and_recounted(chat) == ({alice.pk: 0, bob.pk: 0}, {alice.pk: 0, bob.pk: 0})


def test_a_send_that_repairs_one_stored_earlier_counts_what_came_after_it(friends_with_chat, unlimited_messages):
    """The store has a message whose SQL side never happened (a failure between the two); others came after."""
    alice, bob, chat = friends_with_chat
    message_store().add(chat_id=chat.pk, sender_id=alice.pk, text="stored only", image_url="", client_id="lost")
    services.send_messages([draft(bob, chat), draft(bob, chat)])

    (repaired,) = services.send_messages([draft(alice, chat, "lost")])

    assert not repaired.created
    kept, recounted = kept_and_recounted(chat)
    assert kept == recounted == {alice.pk: 2, bob.pk: 0}  # bob had read past it: his own two came after


def test_a_repair_of_a_message_older_than_the_chats_activity_is_counted_though_not_announced(
    friends_with_chat, unlimited_messages
):
    """The store has a message whose SQL side never happened, and a later message moved the chat on."""
    alice, bob, chat = friends_with_chat
    message_store().add(chat_id=chat.pk, sender_id=alice.pk, text="stored only", image_url="", client_id="lost")
    services.send_messages([draft(alice, chat)])

    (repaired,) = services.send_messages([draft(alice, chat, "lost")])

    assert not repaired.created and not repaired.announced
    kept, recounted = kept_and_recounted(chat)
    assert kept == recounted == {alice.pk: 0, bob.pk: 2}


def test_a_repair_does_not_count_again_what_a_read_already_counted(friends_with_chat, unlimited_messages):
    """A read after the store kept a message whose SQL side never happened counted it as unread already;
    the resend that repairs it must not count it a second time."""
    alice, bob, chat = friends_with_chat
    (first,) = services.send_messages([draft(alice, chat, "m1")])
    time.sleep(0.005)  # stored in a later millisecond than the chat's activity time: it will be announced
    message_store().add(chat_id=chat.pk, sender_id=alice.pk, text="stored only", image_url="", client_id="lost")
    services.mark_read(user=bob, chat_id=chat.pk, message_id=first.message.id)

    (repaired,) = services.send_messages([draft(alice, chat, "lost")])

    assert not repaired.created and repaired.announced
    kept, recounted = kept_and_recounted(chat)
    assert kept == recounted == {alice.pk: 0, bob.pk: 1}


def test_recount_unread_fixes_counts_of_messages_written_past_the_services(friends_with_chat, capsys):
    alice, bob, chat = friends_with_chat
    for n in range(3):
        message_store().add(chat_id=chat.pk, sender_id=alice.pk, text="restored", image_url="", client_id=f"x{n}")

    call_command("recount_unread")

    assert kept_and_recounted(chat) == ({alice.pk: 0, bob.pk: 3}, {alice.pk: 0, bob.pk: 3})
    assert "fixed 1 wrong count" in capsys.readouterr().out  # alice's 0 was right; bob's was not
    call_command("recount_unread", "--chat", str(chat.pk))
    assert "fixed 0 wrong count" in capsys.readouterr().out


@pytest.mark.parametrize("chat_id", ["999999", "99999999999999999999", "-1", "0"])
def test_recount_unread_of_a_chat_that_does_not_exist_says_so_and_recounts_nothing(friends_with_chat, chat_id):
    from django.core.management.base import CommandError

    alice, bob, chat = friends_with_chat
    message_store().add(chat_id=chat.pk, sender_id=alice.pk, text="restored", image_url="", client_id="x1")

    with pytest.raises(CommandError, match=f"No such chat: {chat_id}"):
        call_command("recount_unread", "--chat", str(chat.pk), "--chat", chat_id)

    assert kept_and_recounted(chat)[0] == {alice.pk: 0, bob.pk: 0}  # left as it was


def test_the_migration_counts_what_was_unread_before_counts_were_kept(friends_with_chat):
    alice, bob, chat = friends_with_chat
    message_store().add(chat_id=chat.pk, sender_id=alice.pk, text="old", image_url="", client_id="m1")
    migration = importlib.import_module("messaging.migrations.0005_chatparticipant_unread_count")

    # A position the store cannot read (left by the other message store) counts as nothing read.
    ChatParticipant.objects.filter(chat=chat, user=alice).update(last_read_message_id="not-an-id")

    migration.count_what_is_unread(apps, None)

    assert {m.user_id: m.unread_count for m in ChatParticipant.objects.filter(chat=chat)} == {alice.pk: 0, bob.pk: 1}
