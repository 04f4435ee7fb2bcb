import pytest
from django.db import IntegrityError, transaction

from friends.models import Friendship, Notification
from messaging.models import Chat, ChatParticipant


@pytest.fixture
def bob(make_user):
    return make_user(username="bob")


def client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def send(client, user_id):
    return client.post("/api/friends/requests", {"user_id": user_id}, format="json")


def test_sending_a_request_creates_a_pending_friendship_and_notifies_the_receiver(auth_client, user, bob):
    response = send(auth_client, bob.pk)

    assert response.status_code == 201
    assert response.json()["friendship"] == "outgoing"
    assert response.json()["user"]["id"] == bob.pk
    friendship = Friendship.objects.get()
    assert (friendship.status, friendship.requester_id, friendship.receiver_id) == ("pending", user.pk, bob.pk)
    notification = Notification.objects.get(receiver=bob)
    assert (notification.type, notification.sender_id) == ("friend_request", user.pk)


def test_requests_are_listed_as_incoming_for_one_and_outgoing_for_the_other(auth_client, user, bob):
    send(auth_client, bob.pk)

    mine = auth_client.get("/api/friends/requests").json()
    theirs = client_for(bob).get("/api/friends/requests").json()

    assert [r["user"]["id"] for r in mine["outgoing"]] == [bob.pk] and mine["incoming"] == []
    assert [r["user"]["id"] for r in theirs["incoming"]] == [user.pk] and theirs["outgoing"] == []
    assert "email" not in theirs["incoming"][0]["user"]


def test_a_request_to_yourself_is_refused_with_400(auth_client, user):
    response = send(auth_client, user.pk)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "cannot_befriend_self"
    assert not Friendship.objects.exists()


@pytest.mark.parametrize("user_id", [999999, -1])
def test_a_request_to_an_unknown_user_is_refused_with_404(auth_client, user_id):
    response = send(auth_client, user_id)

    assert response.status_code == 404
    assert not Friendship.objects.exists()


def test_a_request_to_a_deactivated_user_is_refused_with_404(auth_client, bob):
    bob.is_active = False
    bob.save()

    assert send(auth_client, bob.pk).status_code == 404


@pytest.mark.parametrize("body", [{}, {"user_id": "abc"}, {"user_id": None}, {"user_id": [1]}])
def test_a_malformed_request_body_is_refused_with_400(auth_client, body):
    response = auth_client.post("/api/friends/requests", body, format="json")

    assert response.status_code == 400
    assert "user_id" in response.json()["error"]["fields"]


def test_sending_the_same_request_twice_is_refused_with_409(auth_client, bob):
    send(auth_client, bob.pk)

    response = send(auth_client, bob.pk)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "request_pending"
    assert Friendship.objects.count() == 1
    assert Notification.objects.filter(receiver=bob).count() == 1


def test_a_request_to_a_friend_is_refused_with_409(auth_client, user, bob, befriend):
    befriend(user, bob)

    response = send(auth_client, bob.pk)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_friends"


def test_a_request_crossing_the_other_sides_request_accepts_it(auth_client, user, bob):
    send(client_for(bob), user.pk)

    response = send(auth_client, bob.pk)

    assert response.status_code == 201
    assert response.json()["friendship"] == "friends"
    friendship = Friendship.objects.get()
    assert friendship.status == "accepted"
    assert response.json()["chat_id"] == Chat.objects.get().pk


def test_accepting_makes_friends_opens_their_chat_and_notifies_the_requester(auth_client, user, bob):
    send(client_for(bob), user.pk)

    response = auth_client.post(f"/api/friends/requests/{bob.pk}/accept")

    assert response.status_code == 200
    chat = Chat.objects.get()
    assert response.json() == {"chat_id": chat.pk, "friend": response.json()["friend"]}
    assert response.json()["friend"]["id"] == bob.pk
    assert set(ChatParticipant.objects.filter(chat=chat).values_list("user_id", flat=True)) == {user.pk, bob.pk}
    assert Friendship.objects.get().status == "accepted"
    accepted = Notification.objects.get(receiver=bob)
    assert accepted.type == "friend_request_accepted"
    assert Notification.objects.get(receiver=user, type="friend_request").is_read


def test_only_the_receiver_can_accept(auth_client, user, bob):
    send(auth_client, bob.pk)

    response = auth_client.post(f"/api/friends/requests/{bob.pk}/accept")

    assert response.status_code == 404
    assert Friendship.objects.get().status == "pending"
    assert not Chat.objects.exists()


def test_accepting_a_request_that_does_not_exist_is_404(auth_client, bob):
    assert auth_client.post(f"/api/friends/requests/{bob.pk}/accept").status_code == 404
    assert auth_client.post("/api/friends/requests/999999/accept").status_code == 404


def test_rejecting_deletes_the_request_and_notifies_the_requester(auth_client, user, bob):
    send(client_for(bob), user.pk)

    response = auth_client.post(f"/api/friends/requests/{bob.pk}/reject")

    assert response.status_code == 204
    assert not Friendship.objects.exists()
    assert Notification.objects.get(receiver=bob).type == "friend_request_rejected"
    assert send(client_for(bob), user.pk).status_code == 201  # they may ask again


def test_only_the_receiver_can_reject(auth_client, bob):
    send(auth_client, bob.pk)

    assert auth_client.post(f"/api/friends/requests/{bob.pk}/reject").status_code == 404
    assert Friendship.objects.exists()


def test_the_requester_can_cancel_and_the_request_leaves_the_receivers_inbox(auth_client, bob):
    send(auth_client, bob.pk)

    response = auth_client.delete(f"/api/friends/requests/{bob.pk}")

    assert response.status_code == 204
    assert not Friendship.objects.exists()
    assert not Notification.objects.filter(receiver=bob).exists()


def test_only_the_requester_can_cancel(auth_client, user, bob):
    send(auth_client, bob.pk)

    assert client_for(bob).delete(f"/api/friends/requests/{user.pk}").status_code == 404
    assert Friendship.objects.exists()


def test_either_side_can_unfriend_and_the_chat_and_its_history_stay(auth_client, user, bob, befriend):
    chat = befriend(user, bob)

    response = client_for(bob).delete(f"/api/friends/{user.pk}")

    assert response.status_code == 204
    assert not Friendship.objects.exists()
    assert Chat.objects.filter(pk=chat.pk).exists()
    assert ChatParticipant.objects.filter(chat=chat).count() == 2


def test_becoming_friends_again_reuses_the_same_chat(auth_client, user, bob, befriend):
    first = befriend(user, bob)
    auth_client.delete(f"/api/friends/{bob.pk}")

    again = befriend(bob, user)

    assert again.pk == first.pk
    assert Chat.objects.count() == 1


def test_unfriending_someone_who_is_not_a_friend_is_404(auth_client, bob):
    assert auth_client.delete(f"/api/friends/{bob.pk}").status_code == 404
    send(auth_client, bob.pk)
    assert auth_client.delete(f"/api/friends/{bob.pk}").status_code == 404
    assert Friendship.objects.get().status == "pending"


def test_the_database_refuses_a_second_friendship_between_the_same_people(user, bob):
    low, high = sorted((user.pk, bob.pk))
    Friendship.objects.create(user_low_id=low, user_high_id=high, requester=user)

    with pytest.raises(IntegrityError), transaction.atomic():
        Friendship.objects.create(user_low_id=low, user_high_id=high, requester=bob)


def test_the_database_refuses_an_unordered_pair(user, bob):
    low, high = sorted((user.pk, bob.pk))

    with pytest.raises(IntegrityError), transaction.atomic():
        Friendship.objects.create(user_low_id=high, user_high_id=low, requester=user)


def test_the_friend_list_shows_friends_with_their_chat(auth_client, user, bob, make_user, befriend):
    chat = befriend(user, bob)
    pending = make_user()
    send(auth_client, pending.pk)

    results = auth_client.get("/api/friends").json()["results"]

    assert [(r["user"]["id"], r["chat_id"]) for r in results] == [(bob.pk, chat.pk)]
    assert set(results[0]) == {"user", "chat_id", "last_message", "unread_count", "online", "last_seen"}
    assert "email" not in results[0]["user"]


def test_friend_endpoints_need_authentication(api_client, db):
    for method, path in [
        ("get", "/api/friends"),
        ("get", "/api/friends/requests"),
        ("post", "/api/friends/requests"),
        ("post", "/api/friends/requests/1/accept"),
        ("delete", "/api/friends/1"),
        ("get", "/api/users/search?q=a"),
        ("get", "/api/notifications"),
    ]:
        assert getattr(api_client, method)(path).status_code == 401, path
