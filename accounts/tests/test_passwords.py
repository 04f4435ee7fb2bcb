import re

import pytest
from django.test import override_settings

from accounts.models import User
from conftest import PASSWORD

RESET = "/api/auth/password-reset"
CONFIRM = "/api/auth/password-reset/confirm"
NEW_PASSWORD = "brand-new-secret-2026"


def login(api_client, password):
    return api_client.post("/api/auth/login", {"login": "alice", "password": password}, format="json")


def reset_link_parts(mail) -> tuple[str, str, str]:
    body = mail.body
    url = re.search(r"https?://\S+/accounts/password/reset/(\S+)/(\S+)/", body)
    uid, token = re.search(r"uid=(\S+) token=(\S+)", body).groups()
    assert url.groups() == (uid, token)
    return url.group(0), uid, token


def test_password_reset_by_api_end_to_end(api_client, user, mailoutbox):
    old_session = login(api_client, PASSWORD).json()

    assert api_client.post(RESET, {"email": "ALICE@example.com"}, format="json").status_code == 202
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["alice@example.com"]
    _, uid, token = reset_link_parts(mailoutbox[0])

    response = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": NEW_PASSWORD}, format="json")

    assert response.status_code == 204
    assert login(api_client, PASSWORD).status_code == 401
    assert login(api_client, NEW_PASSWORD).status_code == 200
    refused = api_client.post("/api/auth/refresh", {"refresh": old_session["refresh"]}, format="json")
    assert refused.status_code == 401


def test_a_reset_token_works_only_once(api_client, user, mailoutbox):
    api_client.post(RESET, {"email": "alice@example.com"}, format="json")
    _, uid, token = reset_link_parts(mailoutbox[0])
    api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": NEW_PASSWORD}, format="json")

    again = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": "yet-another-one-77"}, format="json")

    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_reset_token"
    assert login(api_client, NEW_PASSWORD).status_code == 200


def test_password_reset_for_an_unknown_email_says_the_same_and_sends_nothing(api_client, db, mailoutbox):
    response = api_client.post(RESET, {"email": "nobody@example.com"}, format="json")

    assert response.status_code == 202
    assert mailoutbox == []


@pytest.mark.parametrize(("uid", "token"), [("MQ", "bad-token"), ("!!", "x"), ("OTk5OTk", "abc-def")])
def test_password_reset_confirm_refuses_forged_links(api_client, user, uid, token):
    response = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": NEW_PASSWORD}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_reset_token"
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_password_reset_confirm_checks_the_new_password(api_client, user, mailoutbox):
    api_client.post(RESET, {"email": "alice@example.com"}, format="json")
    _, uid, token = reset_link_parts(mailoutbox[0])

    response = api_client.post(CONFIRM, {"uid": uid, "token": token, "new_password": "123"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["new_password"]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


@override_settings(RATE_LIMITS={"login": None, "register": None, "password_reset": (2, 3600)})
def test_password_reset_requests_past_the_limit_get_429(api_client, user, mailoutbox):
    statuses = [
        api_client.post(RESET, {"email": "alice@example.com"}, format="json", REMOTE_ADDR=f"10.0.1.{n}").status_code
        for n in range(3)
    ]

    assert statuses == [202, 202, 429]
    assert len(mailoutbox) == 2


def test_password_reset_in_the_browser_end_to_end(client, user, mailoutbox):
    response = client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    assert response.status_code == 200
    assert "Check your email" in response.content.decode()
    url, _, _ = reset_link_parts(mailoutbox[0])
    path = url.split("testserver", 1)[1]

    assert client.get(path).status_code == 200
    response = client.post(path, {"new_password": NEW_PASSWORD})

    assert response.status_code == 302
    assert User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)
    assert client.get(path).status_code == 400


def test_changing_the_password_revokes_every_refresh_token_and_returns_a_new_pair(api_client, user):
    phone = login(api_client, PASSWORD).json()
    laptop = login(api_client, PASSWORD).json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {laptop['access']}")

    response = api_client.post(
        "/api/auth/password-change", {"old_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )

    assert response.status_code == 200
    for old in (phone, laptop):
        assert api_client.post("/api/auth/refresh", {"refresh": old["refresh"]}, format="json").status_code == 401
    fresh = api_client.post("/api/auth/refresh", {"refresh": response.json()["refresh"]}, format="json")
    assert fresh.status_code == 200


def test_changing_the_password_needs_the_current_one(auth_client, user):
    response = auth_client.post(
        "/api/auth/password-change", {"old_password": "wrong", "new_password": NEW_PASSWORD}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["old_password"]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_changing_the_password_in_the_browser_keeps_this_session_and_revokes_tokens(client, api_client, user):
    session = login(api_client, PASSWORD).json()
    client.force_login(user)

    response = client.post("/accounts/password/", {"old_password": PASSWORD, "new_password": NEW_PASSWORD})

    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert api_client.post("/api/auth/refresh", {"refresh": session["refresh"]}, format="json").status_code == 401


def test_a_reset_for_an_email_longer_than_any_is_a_clear_400(api_client, user, mailoutbox):
    response = api_client.post(RESET, {"email": "%" * 60_000}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["email"]
    assert mailoutbox == []
