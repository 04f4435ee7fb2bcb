import io
import os
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from PIL import Image
from rest_framework.test import APIClient

from conftest import image_bytes
from messaging.models import ChatParticipant
from messaging.store import message_store


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def send(client, chat_id, text="hello", client_id=None, **extra):
    body = {"text": text, "client_id": client_id or uuid.uuid4().hex, **extra}
    return client.post(f"/api/chats/{chat_id}/messages", body, format="json")


@pytest.fixture
def alice_bob_chat(friends_with_chat):
    return friends_with_chat


def test_sending_stores_the_message_and_returns_it(alice_bob_chat):
    alice, bob, chat = alice_bob_chat

    response = send(client_for(alice), chat.pk, "  hi bob  ", client_id="c-1")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "chat_id", "sender_id", "text", "image_url", "created_at", "client_id", "deleted"}
    assert (body["chat_id"], body["sender_id"], body["text"], body["client_id"]) == (chat.pk, alice.pk, "hi bob", "c-1")
    assert body["created_at"].endswith("Z")
    assert message_store().get(body["id"]).text == "hi bob"


def test_resending_the_same_client_id_stores_one_message_and_returns_it_again(alice_bob_chat):
    alice, _, chat = alice_bob_chat
    client = client_for(alice)

    first = send(client, chat.pk, "once", client_id="same")
    second = send(client, chat.pk, "once", client_id="same")

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert message_store().count_after(chat.pk, after=None) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "", "client_id": "a"}, "text"),
        ({"text": "   \n ", "client_id": "a"}, "text"),
        ({"text": "\u200b\u200f\u202e", "client_id": "a"}, "text"),  # zero-width space, direction marks
        ({"text": "\ufeff \u00ad", "client_id": "a"}, "text"),  # byte order mark, soft hyphen
        ({"text": "\u2800\u3164", "client_id": "a"}, "text"),  # the braille blank, the Hangul filler
        ({"text": "\ufe0f\u034f\U000e0100", "client_id": "a"}, "text"),  # variation selectors, a joiner
        ({"text": "hi\x00there", "client_id": "a"}, "text"),
        ({"text": "x" * 4001, "client_id": "a"}, "text"),
        ({"text": "hi"}, "client_id"),
        ({"text": "hi", "client_id": ""}, "client_id"),
        ({"text": "hi", "client_id": "has spaces"}, "client_id"),
        ({"text": "hi", "client_id": " c-1 "}, "client_id"),  # compared exactly, as on the websocket
        ({"text": "hi", "client_id": "x" * 65}, "client_id"),
        ({"text": "hi", "client_id": 123}, "client_id"),  # refused as the websocket refuses it
        ({"text": 123, "client_id": "a"}, "text"),
    ],
)
def test_an_invalid_message_is_refused_and_nothing_is_stored(alice_bob_chat, body, field):
    alice, _, chat = alice_bob_chat

    response = client_for(alice).post(f"/api/chats/{chat.pk}/messages", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["fields"]
    assert message_store().latest(chat.pk) is None


def test_exactly_4000_characters_is_fine(alice_bob_chat):
    alice, _, chat = alice_bob_chat

    assert send(client_for(alice), chat.pk, "x" * 4000).status_code == 201


def test_outsiders_can_neither_read_nor_write_nor_mark_read(alice_bob_chat, make_user):
    alice, _, chat = alice_bob_chat
    message_id = send(client_for(alice), chat.pk).json()["id"]
    outsider = client_for(make_user())

    reads = outsider.get(f"/api/chats/{chat.pk}/messages")
    writes = send(outsider, chat.pk, "let me in")
    marks = outsider.post(f"/api/chats/{chat.pk}/read", {"message_id": message_id}, format="json")

    assert reads.status_code == writes.status_code == marks.status_code == 404
    assert reads.json() == writes.json()
    assert message_store().count_after(chat.pk, after=None) == 1
    assert outsider.get("/api/chats").json() == {"results": []}


def test_an_unknown_chat_looks_exactly_like_someone_elses(alice_bob_chat, make_user):
    outsider = client_for(make_user())

    unknown = outsider.get("/api/chats/999999/messages")
    foreign = outsider.get(f"/api/chats/{alice_bob_chat[2].pk}/messages")

    assert unknown.status_code == foreign.status_code == 404
    assert unknown.json() == foreign.json()


def test_after_unfriending_the_history_stays_readable_but_nobody_can_write(alice_bob_chat):
    alice, bob, chat = alice_bob_chat
    send(client_for(alice), chat.pk, "before")
    client_for(bob).delete(f"/api/friends/{alice.pk}")

    history = client_for(bob).get(f"/api/chats/{chat.pk}/messages")
    refused = send(client_for(alice), chat.pk, "after")

    assert [m["text"] for m in history.json()["results"]] == ["before"]
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "not_friends"
    assert message_store().count_after(chat.pk, after=None) == 1


def test_a_retry_of_a_message_sent_before_an_unfriend_is_answered_with_it(alice_bob_chat):
    alice, bob, chat = alice_bob_chat
    first = send(client_for(alice), chat.pk, "hi", client_id="k1")
    client_for(bob).delete(f"/api/friends/{alice.pk}")

    retry = send(client_for(alice), chat.pk, "hi", client_id="k1")  # its answer was lost: sent again
    new = send(client_for(alice), chat.pk, "hi again", client_id="k2")

    assert retry.status_code == 201 and retry.json() == first.json()
    assert new.status_code == 403 and new.json()["error"]["code"] == "not_friends"
    assert message_store().count_after(chat.pk, after=None) == 1


def test_history_pages_backwards_and_forwards_over_hundreds_of_messages(alice_bob_chat, unlimited_messages):
    alice, bob, chat = alice_bob_chat
    ids = [send(client_for(alice if n % 2 else bob), chat.pk, f"m{n}").json()["id"] for n in range(230)]
    reader = client_for(bob)

    backwards, cursor = [], None
    while True:
        body = reader.get(f"/api/chats/{chat.pk}/messages", {"before": cursor} if cursor else {}).json()
        backwards += [m["id"] for m in body["results"]]
        if not body["next_before"]:
            break
        cursor = body["next_before"]
    forwards, cursor = [], ids[99]
    while cursor:
        body = reader.get(f"/api/chats/{chat.pk}/messages", {"after": cursor, "limit": 40}).json()
        forwards += [m["id"] for m in body["results"]]
        cursor = body["next_after"]

    assert backwards == ids[::-1]
    assert forwards == ids[100:]


def test_history_limit_defaults_to_30_and_stops_at_100(alice_bob_chat, unlimited_messages):
    alice, _, chat = alice_bob_chat
    for n in range(35):
        send(client_for(alice), chat.pk, f"m{n}")
    client = client_for(alice)

    assert len(client.get(f"/api/chats/{chat.pk}/messages").json()["results"]) == 30
    assert client.get(f"/api/chats/{chat.pk}/messages", {"limit": 101}).status_code == 400
    assert len(client.get(f"/api/chats/{chat.pk}/messages", {"limit": 100}).json()["results"]) == 35


@pytest.mark.parametrize(
    "params",
    [
        {"before": "nope"},
        {"after": "-1"},
        {"before": "1", "after": "2"},
        {"limit": 0},
        {"limit": "x"},
        {"after": ""},  # not "none": a client paging forward would get the newest page, newest first
        {"before": ""},
    ],
)
def test_a_malformed_history_query_is_refused_with_400(alice_bob_chat, params):
    alice, _, chat = alice_bob_chat

    response = client_for(alice).get(f"/api/chats/{chat.pk}/messages", params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_the_chat_list_shows_participants_last_message_and_unread_counts(alice_bob_chat, make_user, befriend):
    alice, bob, chat = alice_bob_chat
    carol = make_user(username="carol")
    quiet = befriend(alice, carol)
    send(client_for(bob), chat.pk, "one")
    send(client_for(bob), chat.pk, "two")

    chats = client_for(alice).get("/api/chats").json()["results"]

    assert [c["id"] for c in chats] == [chat.pk, quiet.pk]
    top = chats[0]
    assert [p["username"] for p in top["participants"]] == ["alice", "bob"]
    assert (top["last_message"]["text"], top["last_message"]["preview"], top["unread_count"]) == ("two", "two", 2)
    assert (chats[1]["last_message"], chats[1]["unread_count"]) == (None, 0)
    assert client_for(bob).get("/api/chats").json()["results"][0]["unread_count"] == 0


def test_the_most_recently_active_chat_comes_first(alice_bob_chat, make_user, befriend):
    alice, bob, chat = alice_bob_chat
    carol = make_user(username="carol")
    later = befriend(alice, carol)
    send(client_for(alice), chat.pk, "first")
    send(client_for(carol), later.pk, "second")

    assert [c["id"] for c in client_for(alice).get("/api/chats").json()["results"]] == [later.pk, chat.pk]


def test_reading_moves_the_unread_count_and_never_backwards(alice_bob_chat, unlimited_messages):
    alice, bob, chat = alice_bob_chat
    ids = [send(client_for(bob), chat.pk, f"m{n}").json()["id"] for n in range(5)]
    client = client_for(alice)

    assert client.post(f"/api/chats/{chat.pk}/read", {"message_id": ids[2]}, format="json").status_code == 204
    assert client.get("/api/chats").json()["results"][0]["unread_count"] == 2
    client.post(f"/api/chats/{chat.pk}/read", {"message_id": ids[0]}, format="json")
    assert client.get("/api/chats").json()["results"][0]["unread_count"] == 2
    client.post(f"/api/chats/{chat.pk}/read", {"message_id": ids[4]}, format="json")
    assert client.get("/api/chats").json()["results"][0]["unread_count"] == 0


def test_marking_read_a_message_of_another_chat_is_404(alice_bob_chat, make_user, befriend):
    alice, bob, chat = alice_bob_chat
    carol = make_user()
    other = befriend(alice, carol)
    foreign_id = send(client_for(carol), other.pk).json()["id"]

    for message_id in (foreign_id, "999999", "garbage"):
        response = client_for(alice).post(f"/api/chats/{chat.pk}/read", {"message_id": message_id}, format="json")
        assert response.status_code == 404
    assert ChatParticipant.objects.get(chat=chat, user=alice).last_read_message_id == ""


def test_the_friend_list_shows_each_friends_last_message_and_unread_count(alice_bob_chat):
    alice, bob, chat = alice_bob_chat
    send(client_for(bob), chat.pk, "ping")

    (entry,) = client_for(alice).get("/api/friends").json()["results"]

    assert (entry["chat_id"], entry["last_message"]["text"], entry["unread_count"]) == (chat.pk, "ping", 1)


@override_settings(RATE_LIMITS={"login": None, "register": None, "password_reset": None, "message": (3, 60)})
def test_flooding_gets_429_and_stores_nothing_more(alice_bob_chat):
    alice, _, chat = alice_bob_chat

    statuses = [send(client_for(alice), chat.pk, f"m{n}").status_code for n in range(4)]

    assert statuses == [201, 201, 201, 429]
    assert message_store().count_after(chat.pk, after=None) == 3


@override_settings(RATE_LIMITS={"login": None, "register": None, "password_reset": None, "message": (1, 60)})
def test_resending_an_acknowledged_message_does_not_count_as_flooding(alice_bob_chat):
    alice, _, chat = alice_bob_chat

    first = send(client_for(alice), chat.pk, client_id="retry")
    again = send(client_for(alice), chat.pk, client_id="retry")

    assert (first.status_code, again.status_code) == (201, 201)


def test_when_the_store_is_down_the_sender_gets_503_and_the_chat_is_untouched(alice_bob_chat, broken_store):
    alice, _, chat = alice_bob_chat
    before = type(chat).objects.get(pk=chat.pk).last_activity_at

    response = send(client_for(alice), chat.pk, client_id="lost-1")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
    assert type(chat).objects.get(pk=chat.pk).last_activity_at == before


def test_messages_work_the_same_on_the_mongodb_repository(alice_bob_chat, mongo_store):
    alice, bob, chat = alice_bob_chat
    sent = send(client_for(alice), chat.pk, "via mongo").json()

    history = client_for(bob).get(f"/api/chats/{chat.pk}/messages").json()

    assert len(sent["id"]) == 24
    assert [m["id"] for m in history["results"]] == [sent["id"]]
    assert mongo_store.collection.count_documents({"chat_id": chat.pk}) == 1


@pytest.fixture(autouse=False)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.mark.parametrize("text", ["\u200bhi", "e\u0301", "\U0001f44d", "\u05e9\u05dc\u05d5\u05dd \u200f!"])
def test_text_with_anything_visible_is_kept_as_written(alice_bob_chat, text):
    alice, _, chat = alice_bob_chat

    response = send(client_for(alice), chat.pk, text)

    assert (response.status_code, response.json()["text"]) == (201, text)


def test_an_image_message_is_stored_with_its_url_and_previews_as_image(alice_bob_chat, media_in_tmp):
    alice, bob, chat = alice_bob_chat
    upload = SimpleUploadedFile("cat.png", image_bytes("PNG", (300, 200)), content_type="image/png")

    response = client_for(alice).post(f"/api/chats/{chat.pk}/messages", {"image": upload, "client_id": "img-1"})

    assert response.status_code == 201, response.json()
    assert response.json()["image_url"].startswith("/media/messages/")
    assert response.json()["text"] == ""
    last = client_for(bob).get("/api/chats").json()["results"][0]["last_message"]
    assert last["preview"] == "image"


def test_resending_an_image_message_answers_the_stored_one_without_storing_the_image_again(
    alice_bob_chat, media_in_tmp, settings
):
    alice, _, chat = alice_bob_chat

    def post():
        upload = SimpleUploadedFile("cat.png", image_bytes("PNG", (300, 200)), content_type="image/png")
        return client_for(alice).post(f"/api/chats/{chat.pk}/messages", {"image": upload, "client_id": "img-r"})

    first, again = post(), post()

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert len(list((settings.MEDIA_ROOT / "messages").rglob("*.*"))) == 1


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_an_image_message_keeps_no_comment_of_its_file_but_its_transparency(
    alice_bob_chat, media_in_tmp, settings, fmt
):
    from PIL import PngImagePlugin

    alice, _, chat = alice_bob_chat
    out = io.BytesIO()
    if fmt == "JPEG":
        Image.new("RGB", (40, 30)).save(out, format="JPEG", comment=b"home 48.8584N 2.2945E")
    else:
        text = PngImagePlugin.PngInfo()
        text.add_text("Comment", "home 48.8584N 2.2945E")
        Image.new("P", (40, 30)).save(out, format="PNG", pnginfo=text, transparency=0)
    upload = SimpleUploadedFile(f"p.{fmt.lower()}", out.getvalue(), content_type=f"image/{fmt.lower()}")

    response = client_for(alice).post(f"/api/chats/{chat.pk}/messages", {"image": upload, "client_id": "img-c"})

    stored = (settings.MEDIA_ROOT / response.json()["image_url"].removeprefix(settings.MEDIA_URL)).read_bytes()
    assert b"48.8584N" not in stored
    if fmt == "PNG":
        assert Image.open(io.BytesIO(stored)).convert("RGBA").getpixel((0, 0))[3] == 0


def test_an_image_message_may_carry_text(alice_bob_chat, media_in_tmp):
    alice, _, chat = alice_bob_chat
    upload = SimpleUploadedFile("cat.jpg", image_bytes("JPEG"), content_type="image/jpeg")

    response = client_for(alice).post(
        f"/api/chats/{chat.pk}/messages", {"image": upload, "text": "look", "client_id": "img-2"}
    )

    assert (response.status_code, response.json()["text"]) == (201, "look")


@pytest.mark.parametrize("data", [b"not an image at all", image_bytes("PNG")[:50], image_bytes("BMP")])
def test_a_fake_image_is_refused_and_nothing_is_stored(alice_bob_chat, media_in_tmp, data):
    alice, _, chat = alice_bob_chat
    upload = SimpleUploadedFile("x.png", data, content_type="image/png")

    response = client_for(alice).post(f"/api/chats/{chat.pk}/messages", {"image": upload, "client_id": "img-3"})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["image"]
    assert message_store().latest(chat.pk) is None


@override_settings(IMAGE_MAX_BYTES=20_000)
def test_an_oversized_image_is_refused(alice_bob_chat, media_in_tmp):
    alice, _, chat = alice_bob_chat
    noisy = io.BytesIO()
    Image.frombytes("RGB", (120, 120), os.urandom(120 * 120 * 3)).save(noisy, format="PNG")
    upload = SimpleUploadedFile("big.png", noisy.getvalue(), content_type="image/png")

    response = client_for(alice).post(f"/api/chats/{chat.pk}/messages", {"image": upload, "client_id": "img-4"})

    assert response.status_code == 400
    assert "too large" in response.json()["error"]["fields"]["image"][0]
