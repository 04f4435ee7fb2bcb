"""One contract, every message store.

- `orm`: the SQL store (SQLite or MySQL, whichever this run uses).
- `mongomock`: the pymongo repository on mongomock, in every run.
- `mongodb`: the pymongo repository on a real MongoDB, when MONGODB_URL is set
  (e.g. `MONGODB_URL=mongodb://127.0.0.1:27017 make test`); each run uses a
  throwaway database and drops it.
"""

import os
import time
import uuid

import mongomock
import pytest

from messaging.store.base import InvalidMessageId, MessageStoreUnavailable
from messaging.store.mongo import MongoMessageStore
from messaging.store.orm import OrmMessageStore

REAL_MONGODB = os.environ.get("MONGODB_URL", "")
STORES = ["orm", "mongomock", *(["mongodb"] if REAL_MONGODB else [])]

# The SQL store needs the test database; the others simply do not touch it.
pytestmark = pytest.mark.django_db


@pytest.fixture(params=STORES)
def store(request):
    if request.param == "orm":
        yield OrmMessageStore()
    elif request.param == "mongomock":
        yield MongoMessageStore(mongomock.MongoClient(tz_aware=True)["chat"]["messages"])
    else:
        name = f"chat_contract_{uuid.uuid4().hex[:8]}"
        real = MongoMessageStore.connect(REAL_MONGODB, name)
        yield real
        real.collection.database.client.drop_database(name)


@pytest.mark.skipif(
    not REAL_MONGODB, reason="MONGODB_URL is not set: the contract ran on mongomock, not a real MongoDB"
)
def test_the_app_reaches_the_real_mongodb_it_is_configured_with():
    """The configured server answers and the store makes its indexes there (the contract then runs on it too)."""
    name = f"chat_reach_{uuid.uuid4().hex[:8]}"
    real = MongoMessageStore.connect(REAL_MONGODB, name)
    try:
        assert real.collection.database.client.admin.command("ping")["ok"] == 1
        assert "one_message_per_client_id" in real.collection.index_information()
    finally:
        real.collection.database.client.drop_database(name)


@pytest.mark.parametrize("store", [s for s in STORES if s != "orm"], indirect=True)
def test_the_mongodb_repository_creates_its_indexes(store):
    indexes = store.collection.index_information()

    assert indexes["chat_paging"]["key"] == [("chat_id", 1), ("_id", 1)]
    assert indexes["one_message_per_client_id"]["unique"] is True


def add(store, chat_id=1, sender_id=10, text="hi", client_id=None, image_url=""):
    message, created = store.add(
        chat_id=chat_id, sender_id=sender_id, text=text, image_url=image_url, client_id=client_id or uuid.uuid4().hex
    )
    assert created
    return message


def test_a_stored_message_comes_back_as_it_was_written(store):
    message = add(store, text="héllo 👋", image_url="https://img/x.png", client_id="c-1")

    fetched = store.get(message.id)

    assert fetched == message
    assert (fetched.chat_id, fetched.sender_id, fetched.text, fetched.image_url, fetched.client_id) == (
        1,
        10,
        "héllo 👋",
        "https://img/x.png",
        "c-1",
    )
    assert isinstance(fetched.id, str)
    assert fetched.created_at.tzinfo is not None
    assert not fetched.is_deleted
    # Every way of reading it gives the same message.
    assert store.page_before(1, before=None, limit=1) == [message]
    assert store.find_by_client_ids([(1, 10, "c-1")]) == {(1, 10, "c-1"): message}


def test_sending_the_same_client_id_twice_stores_one_message(store):
    first = add(store, client_id="same")

    again, created = store.add(chat_id=1, sender_id=10, text="hi again", image_url="", client_id="same")

    assert not created
    assert again == first
    assert store.count_after(1, after=None) == 1


def test_client_ids_differing_only_in_case_are_two_messages(store):
    lower = add(store, client_id="ab3x", text="first")
    upper = add(store, client_id="AB3X", text="second")

    assert lower.id != upper.id
    assert store.get_by_client_id(chat_id=1, sender_id=10, client_id="AB3X").text == "second"


def test_the_same_client_id_from_another_sender_or_chat_is_another_message(store):
    add(store, client_id="same")
    add(store, sender_id=11, client_id="same")
    add(store, chat_id=2, client_id="same")

    assert store.count_after(1, after=None) == 2
    assert store.count_after(2, after=None) == 1


def test_paging_backwards_returns_newest_first_without_gaps_or_repeats(store):
    written = [add(store, text=f"m{n}") for n in range(250)]
    add(store, chat_id=2, text="another chat")

    seen, before = [], None
    while True:
        page = store.page_before(1, before=before, limit=30)
        if not page:
            break
        seen.extend(page)
        before = page[-1].id

    assert [m.id for m in seen] == [m.id for m in reversed(written)]


def test_paging_forwards_after_a_cursor_returns_oldest_first(store):
    written = [add(store, text=f"m{n}") for n in range(120)]

    seen, after = [], written[19].id
    while page := store.page_after(1, after=after, limit=25):
        seen.extend(page)
        after = page[-1].id

    assert [m.id for m in seen] == [m.id for m in written[20:]]


def test_paging_is_stable_while_new_messages_arrive(store):
    written = [add(store, text=f"m{n}") for n in range(40)]
    first_page = store.page_before(1, before=None, limit=10)
    add(store, text="new while scrolling")

    second_page = store.page_before(1, before=first_page[-1].id, limit=10)

    assert [m.id for m in first_page + second_page] == [m.id for m in reversed(written)][:20]


def test_ids_sort_in_creation_order_even_within_one_second(store):
    written = [add(store) for _ in range(20)]

    keys = [store.order_key(m.id) for m in written]

    assert keys == sorted(keys)


def test_count_after_counts_newer_messages_and_can_leave_out_a_sender(store):
    first = add(store, sender_id=10)
    add(store, sender_id=11)
    add(store, sender_id=10)
    add(store, sender_id=11)

    assert store.count_after(1, after=None) == 4
    assert store.count_after(1, after=first.id) == 3
    assert store.count_after(1, after=first.id, exclude_sender_id=10) == 2
    assert store.count_after(1, after=None, exclude_sender_id=11) == 2


def test_latest_gives_the_newest_message_of_each_chat(store):
    add(store, chat_id=1)
    newest_1 = add(store, chat_id=1)
    newest_2 = add(store, chat_id=2)

    assert store.latest(1) == newest_1
    assert store.latest(3) is None
    assert store.latest_of_chats([1, 2, 3]) == {1: newest_1, 2: newest_2}
    assert store.latest_of_chats([]) == {}


def test_latest_answers_for_hundreds_of_chats(store):
    """More chats than one SQL query may name (SQLite takes at most 500 SELECTs in a UNION)."""
    newest = {chat_id: [add(store, chat_id=chat_id) for _ in range(2)][-1] for chat_id in (1, 250, 599)}

    assert store.latest_of_chats(list(range(600, 0, -1))) == newest


def test_soft_delete_keeps_the_message_in_place_marked_removed(store):
    before = add(store)
    target = add(store)
    after = add(store)

    removed = store.soft_delete(target.id, deleted_by=99)

    assert removed.is_deleted and removed.deleted_by == 99
    assert store.get(target.id).is_deleted
    assert [m.id for m in store.page_before(1, before=None, limit=10)] == [after.id, target.id, before.id]
    assert store.page_before(1, before=after.id, limit=1) == [removed]
    assert store.soft_delete(target.id, deleted_by=100).deleted_by == 99


def test_search_finds_messages_by_chat_sender_text_and_time(store):
    from datetime import timedelta

    first = add(store, chat_id=1, sender_id=10, text="Buy CHEAP pills")
    add(store, chat_id=1, sender_id=11, text="cheap? no thanks")
    add(store, chat_id=2, sender_id=10, text="hello (a.b) [c]")
    later = first.created_at + timedelta(days=1)

    assert [m.text for m in store.search(text="cheap")] == ["cheap? no thanks", "Buy CHEAP pills"]
    assert [m.text for m in store.search(text="cheap", sender_id=10)] == ["Buy CHEAP pills"]
    assert [m.text for m in store.search(chat_id=2)] == ["hello (a.b) [c]"]
    assert [m.text for m in store.search(text="(a.b) [")] == ["hello (a.b) [c]"]
    assert store.search(since=later) == []
    assert len(store.search(until=later)) == 3
    assert len(store.search(limit=2)) == 2


@pytest.mark.parametrize("bad_id", ["", "abc", "-1", "0", "12abc", "ffffffffffffffffffffffffffffffffffff"])
def test_an_unknown_or_malformed_id_is_no_message(store, bad_id):
    add(store)

    assert store.get(bad_id) is None
    assert store.soft_delete(bad_id, deleted_by=1) is None


@pytest.mark.parametrize("not_an_id", [None, 12, b"abcdefghijkl"])
def test_only_a_string_is_a_message_id(store, not_an_id):
    with pytest.raises(InvalidMessageId):
        store.order_key(not_an_id)


@pytest.mark.parametrize("bad_cursor", ["abc", "", "-5"])
def test_a_malformed_cursor_is_refused(store, bad_cursor):
    with pytest.raises(InvalidMessageId):
        store.page_before(1, before=bad_cursor, limit=10)
    with pytest.raises(InvalidMessageId):
        store.page_after(1, after=bad_cursor, limit=10)


def test_an_unreachable_mongodb_raises_store_unavailable_as_soon_as_the_url_says():
    started = time.monotonic()
    with pytest.raises(MessageStoreUnavailable):
        MongoMessageStore.connect("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", "nowhere")

    assert time.monotonic() - started < 2  # the URL's 200 ms, not the 3 s the store waits otherwise


@pytest.mark.parametrize(
    ("url", "timeouts"),
    [
        ("mongodb://db:27017", {"serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 3000}),
        ("mongodb://db:27017/?connecttimeoutms=100", {"serverSelectionTimeoutMS": 3000}),
        ("mongodb://db1,db2/?serverSelectionTimeoutMS=50&connectTimeoutMS=60&replicaSet=rs", {}),
    ],
)
def test_the_store_waits_briefly_for_mongodb_unless_its_url_says_how_long(monkeypatch, url, timeouts):
    from messaging.store import mongo

    made = []

    def client(given_url, **options):
        made.append((given_url, options))
        return mongomock.MongoClient(tz_aware=True)

    monkeypatch.setattr(mongo.pymongo, "MongoClient", client)

    MongoMessageStore.connect(url, "chat")

    assert made == [(url, {"tz_aware": True, **timeouts})]


def test_add_many_stores_in_order_and_answers_a_resent_client_id_with_the_original(store):
    from messaging.store.base import NewMessage

    earlier = add(store, client_id="sent-before")
    batch = [
        NewMessage(1, 10, "one", "", "n1"),
        NewMessage(1, 10, "again", "", "sent-before"),
        NewMessage(2, 11, "two", "", "n2"),
        NewMessage(1, 10, "one again", "", "n1"),
    ]

    answers = store.add_many(batch)

    assert [(m.text, created) for m, created in answers] == [
        ("one", True),
        ("hi", False),
        ("two", True),
        ("one", False),
    ]
    assert answers[1][0].id == earlier.id and answers[3][0].id == answers[0][0].id
    assert store.order_key(answers[0][0].id) < store.order_key(answers[2][0].id)
    assert store.count_after(1, after=None) == 2


def test_messages_added_together_come_back_from_the_store_as_they_were_answered(store):
    from messaging.store.base import NewMessage

    answers = store.add_many([NewMessage(1, 10, "one", "", "t1"), NewMessage(2, 11, "two", "https://img/2", "t2")])

    assert [store.get(message.id) for message, _ in answers] == [message for message, _ in answers]


@pytest.mark.parametrize("store", ["orm"], indirect=True)
def test_the_sql_store_finds_the_ids_of_what_it_added_where_inserts_return_nothing(store, monkeypatch):
    from django.db import connection

    from messaging.store.base import NewMessage

    # MySQL (unlike MariaDB and SQLite) has no INSERT ... RETURNING.
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)

    answers = store.add_many([NewMessage(1, 10, "one", "", "r1"), NewMessage(1, 10, "two", "", "r2")])

    assert [(m.text, created) for m, created in answers] == [("one", True), ("two", True)]
    assert [store.get(message.id) for message, _ in answers] == [message for message, _ in answers]


def test_find_by_client_ids_finds_exactly_the_keys_asked_for(store):
    a = add(store, chat_id=1, sender_id=10, client_id="x")
    b = add(store, chat_id=2, sender_id=11, client_id="y")
    add(store, chat_id=1, sender_id=11, client_id="x")  # same client id, another sender: not asked for

    found = store.find_by_client_ids([(1, 10, "x"), (2, 11, "y"), (2, 10, "x"), (3, 12, "z")])

    assert {key: m.id for key, m in found.items()} == {(1, 10, "x"): a.id, (2, 11, "y"): b.id}
    assert store.find_by_client_ids([]) == {}


def test_count_unread_counts_each_window_from_its_own_position_leaving_out_the_reader(store):
    from messaging.store.base import UnreadWindow

    first = add(store, chat_id=1, sender_id=11)
    add(store, chat_id=1, sender_id=10)
    add(store, chat_id=1, sender_id=11)
    add(store, chat_id=2, sender_id=12)

    counts = store.count_unread(
        [
            UnreadWindow(1, None, 10),  # everything from the others
            UnreadWindow(1, first.id, 10),  # after the first message
            UnreadWindow(1, None, 11),
            UnreadWindow(2, None, 10),
            UnreadWindow(3, None, 10),  # an empty chat
        ]
    )

    assert counts == [2, 1, 1, 1, 0]
    assert store.count_unread([]) == []


def test_on_mysql_pages_and_unread_counts_are_read_as_a_range_of_the_paging_index():
    """A deep page of a long chat must not walk the chat's newer messages (MariaDB's `ref` plan does),
    nor a count of unread messages all the chat's messages (its plan on the client-id index)."""
    from django.db import connection

    from messaging.store.base import UnreadWindow

    if connection.vendor != "mysql":
        pytest.skip("the index hint is for MySQL/MariaDB (DB_HOST is not set); SQLite plans the range itself")
    store = OrmMessageStore()
    first = add(store, chat_id=5)
    for _ in range(5):
        add(store, chat_id=5)
    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        store.page_before(5, before=first.id, limit=3)
        store.page_after(5, after=first.id, limit=3)
        store.count_unread([UnreadWindow(5, first.id, 10), UnreadWindow(6, None, 10)])

    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute("EXPLAIN " + sql, params)
            plan = dict(zip([column[0] for column in cursor.description], cursor.fetchone(), strict=True))
            assert (plan["key"], plan["type"]) == ("message_chat_paging", "range")


def test_the_newest_message_of_each_chat_is_one_index_seek_per_chat_not_a_read_of_the_chat():
    """A chat list or a read asks for the chats' newest messages: that must not cost the chats' length
    (SQLite read every message of a chat for MAX(id) ... GROUP BY chat_id; MariaDB ran an IN of a UNION
    once per message)."""
    from django.db import connection

    from messaging.store.base import NewMessage

    store = OrmMessageStore()
    add(store, chat_id=5)
    store.add_many([NewMessage(6, 10, "hi", "", f"long-{n}") for n in range(3000)])
    if connection.vendor == "sqlite":
        # SQLite's plan reads "SEARCH ... USING COVERING INDEX" for a seek and for a read of the whole chat
        # alike: count the steps its engine takes instead.
        def steps_for(chat_id: int) -> int:
            steps = []
            connection.ensure_connection()
            connection.connection.set_progress_handler(lambda: steps.append(1) and 0, 1)
            try:
                assert set(store.latest_of_chats([chat_id])) == {chat_id}
            finally:
                connection.connection.set_progress_handler(None, 1)
            return len(steps)

        assert steps_for(6) == steps_for(5)  # 3,000 messages cost what one does
        return
    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        assert set(store.latest_of_chats([5, 6])) == {5, 6}
    [(sql, params)] = statements
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        columns = [column[0] for column in cursor.description]
        plan = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    # Each chat's MAX(id) answered from the index alone, and no subquery run again per message.
    assert [row["Extra"] for row in plan if row["select_type"] in ("DERIVED", "UNION")] == [
        "Select tables optimized away"
    ] * 2, plan
    assert not [row for row in plan if row["select_type"].startswith("DEPENDENT")], plan


def test_count_unread_answers_for_a_thousand_windows(store):
    from messaging.store.base import UnreadWindow

    add(store, chat_id=7, sender_id=11)

    counts = store.count_unread([UnreadWindow(chat_id, None, 10) for chat_id in range(1, 1001)])

    assert len(counts) == 1000 and counts[6] == 1 and sum(counts) == 1
