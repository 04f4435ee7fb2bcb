"""With Redis away, the app degrades: nothing that needs only the databases fails."""

from rest_framework.test import APIClient

from conftest import PASSWORD


def test_login_registration_and_reset_still_answer(api_client, user, redis_down, mailoutbox):
    login = api_client.post("/api/auth/login", {"login": "alice", "password": PASSWORD}, format="json")
    signup = api_client.post(
        "/api/auth/register",
        {"username": "newbie", "email": "n@example.com", "phone_number": "+15550009999", "password": "long-secret-77x"},
        format="json",
    )
    reset = api_client.post("/api/auth/password-reset", {"email": "alice@example.com"}, format="json")

    assert (login.status_code, signup.status_code, reset.status_code) == (200, 201, 202)
    assert len(mailoutbox) == 1


def test_messages_are_still_sent_and_read(friends_with_chat, redis_down):
    alice, bob, chat = friends_with_chat
    api = APIClient()
    api.force_authenticate(alice)

    sent = api.post(f"/api/chats/{chat.pk}/messages", {"text": "still works", "client_id": "r1"}, format="json")
    history = api.get(f"/api/chats/{chat.pk}/messages")

    assert sent.status_code == 201
    assert [m["text"] for m in history.json()["results"]] == ["still works"]
