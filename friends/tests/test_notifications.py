import pytest
from rest_framework.test import APIClient

from chat_realtime.tests.sockets import drain, of_type, open_socket
from friends import services
from friends.models import Notification


@pytest.fixture
def bob(make_user):
    return make_user(username="bob")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def inbox(user, make_user):
    """Three notifications for alice, oldest first; the middle one read."""
    made = []
    for n in range(3):
        sender = make_user()
        made.append(
            Notification.objects.create(
                receiver=user, sender=sender, type="friend_request", content=f"note {n}", is_read=(n == 1)
            )
        )
    return made


def test_notifications_are_listed_newest_first_with_their_sender(auth_client, inbox):
    body = auth_client.get("/api/notifications").json()

    assert [n["id"] for n in body["results"]] == [n.pk for n in reversed(inbox)]
    first = body["results"][0]
    assert set(first) == {"id", "type", "sender", "content", "is_read", "created_at"}
    assert set(first["sender"]) == {"id", "username", "avatar_url", "last_seen"}
    assert (body["count"], body["page"], body["pages"], body["unread_count"]) == (3, 1, 1, 2)


def test_the_unread_filter_leaves_out_what_was_read(auth_client, inbox):
    body = auth_client.get("/api/notifications?unread=true").json()

    assert [n["id"] for n in body["results"]] == [inbox[2].pk, inbox[0].pk]


def test_notifications_are_paginated(auth_client, inbox):
    body = auth_client.get("/api/notifications?page=2&page_size=2").json()

    assert [n["id"] for n in body["results"]] == [inbox[0].pk]
    assert (body["count"], body["page"], body["pages"]) == (3, 2, 2)


@pytest.mark.parametrize("query", ["page=0", "page=abc", "page_size=-1", "unread=maybe"])
def test_a_malformed_notification_query_is_refused_with_400(auth_client, inbox, query):
    response = auth_client.get(f"/api/notifications?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]


def test_marking_one_read(auth_client, inbox):
    response = auth_client.post(f"/api/notifications/{inbox[0].pk}/read")

    assert response.status_code == 204
    inbox[0].refresh_from_db()
    assert inbox[0].is_read


def test_marking_all_read(auth_client, user, inbox):
    response = auth_client.post("/api/notifications/read-all")

    assert response.status_code == 204
    assert not Notification.objects.filter(receiver=user, is_read=False).exists()


def test_deleting_one(auth_client, inbox):
    response = auth_client.delete(f"/api/notifications/{inbox[0].pk}")

    assert response.status_code == 204
    assert not Notification.objects.filter(pk=inbox[0].pk).exists()


def test_nobody_can_read_mark_or_delete_someone_elses_notifications(inbox, bob):
    other = client_for(bob)

    assert other.get("/api/notifications").json()["results"] == []
    assert other.post(f"/api/notifications/{inbox[0].pk}/read").status_code == 404
    assert other.delete(f"/api/notifications/{inbox[0].pk}").status_code == 404
    assert other.post("/api/notifications/read-all").status_code == 204
    inbox[0].refresh_from_db()
    assert not inbox[0].is_read
    assert Notification.objects.filter(receiver_id=inbox[0].receiver_id, is_read=False).count() == 2


def test_an_unknown_notification_is_404(auth_client, db):
    assert auth_client.post("/api/notifications/999999/read").status_code == 404
    assert auth_client.delete("/api/notifications/999999").status_code == 404


def test_each_friend_action_notifies_the_person_it_concerns_once(user, bob, make_user):
    carol = make_user()

    services.send_friend_request(sender=user, receiver_id=bob.pk)
    services.accept_friend_request(receiver=bob, requester_id=user.pk)
    services.send_friend_request(sender=carol, receiver_id=user.pk)
    services.reject_friend_request(receiver=user, requester_id=carol.pk)

    assert list(Notification.objects.order_by("id").values_list("receiver_id", "sender_id", "type")) == [
        (bob.pk, user.pk, "friend_request"),
        (user.pk, bob.pk, "friend_request_accepted"),
        (user.pk, carol.pk, "friend_request"),
        (carol.pk, user.pk, "friend_request_rejected"),
    ]


def test_a_cancelled_request_leaves_the_receivers_inbox_and_earlier_requests_stay(user, bob):
    services.send_friend_request(sender=user, receiver_id=bob.pk)
    services.accept_friend_request(receiver=bob, requester_id=user.pk)
    services.unfriend(user=user, friend_id=bob.pk)
    services.send_friend_request(sender=user, receiver_id=bob.pk)

    services.cancel_friend_request(requester=user, receiver_id=bob.pk)

    inbox = Notification.objects.filter(receiver=bob)
    assert list(inbox.values_list("sender_id", "type")) == [(user.pk, "friend_request")]  # the first, answered
    assert inbox.get().created_at < Notification.objects.get(receiver=user).created_at


@pytest.mark.django_db(transaction=True)
async def test_a_friend_request_reaches_every_open_socket_of_the_receiver(user, bob):
    from asgiref.sync import sync_to_async

    bob_phone, bob_laptop, alice = await open_socket(bob), await open_socket(bob), await open_socket(user)

    await sync_to_async(services.send_friend_request)(sender=user, receiver_id=bob.pk)

    for socket in (bob_phone, bob_laptop):
        frames = await drain(socket)
        (notification,) = (f["notification"] for f in of_type(frames, "notification"))
        assert notification["type"] == "friend_request"
        assert notification["sender"]["id"] == user.pk
        assert "email" not in notification["sender"]
        assert of_type(frames, "friendship") == [
            {"type": "friendship", "user_id": user.pk, "state": "incoming", "chat_id": None}
        ]
    # The requester hears that the request is out, but gets no notification.
    assert await drain(alice) == [{"type": "friendship", "user_id": bob.pk, "state": "outgoing", "chat_id": None}]
    for socket in (bob_phone, bob_laptop, alice):
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_accept_and_reject_reach_the_requester_through_the_api(user, bob, make_user):
    from asgiref.sync import sync_to_async

    carol = await sync_to_async(make_user)()
    await sync_to_async(services.send_friend_request)(sender=user, receiver_id=bob.pk)
    await sync_to_async(services.send_friend_request)(sender=user, receiver_id=carol.pk)
    alice = await open_socket(user)

    await sync_to_async(client_for(bob).post)(f"/api/friends/requests/{user.pk}/accept")
    accepted = await drain(alice)
    await sync_to_async(client_for(carol).post)(f"/api/friends/requests/{user.pk}/reject")
    rejected = await drain(alice)

    assert [f["notification"]["type"] for f in of_type(accepted, "notification")] == ["friend_request_accepted"]
    (friendship,) = of_type(accepted, "friendship")
    assert (friendship["user_id"], friendship["state"]) == (bob.pk, "friends") and friendship["chat_id"]
    assert [f["notification"]["type"] for f in of_type(rejected, "notification")] == ["friend_request_rejected"]
    assert of_type(rejected, "friendship") == [
        {"type": "friendship", "user_id": carol.pk, "state": "none", "chat_id": None}
    ]
    await alice.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_nothing_is_sent_when_the_action_is_refused(user, bob):
    from asgiref.sync import sync_to_async

    await sync_to_async(services.send_friend_request)(sender=user, receiver_id=bob.pk)
    bob_socket = await open_socket(bob)

    response = await sync_to_async(client_for(user).post)("/api/friends/requests", {"user_id": bob.pk}, format="json")

    assert response.status_code == 409
    assert await bob_socket.receive_nothing(timeout=0.3)
    await bob_socket.disconnect()
