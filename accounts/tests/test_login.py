import contextlib

import pytest
from django.test import override_settings

from conftest import PASSWORD

LOGIN = "/api/auth/login"


@pytest.mark.parametrize(
    "login", ["alice", "ALICE", "alice@example.com", "Alice@Example.COM", "+15550001111", "+1 555 000 1111"]
)
def test_login_accepts_username_email_or_phone_number(api_client, user, login):
    response = api_client.post(LOGIN, {"login": login, "password": PASSWORD}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["user"]["id"] == user.id
    assert body["access"] and body["refresh"]


def test_login_with_a_wrong_password_is_refused_without_saying_which_part_was_wrong(api_client, user):
    wrong_password = api_client.post(LOGIN, {"login": "alice", "password": "nope"}, format="json")
    unknown_user = api_client.post(LOGIN, {"login": "nobody", "password": PASSWORD}, format="json")

    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.json()["error"]["code"] == "invalid_credentials"


def test_a_deactivated_user_cannot_log_in(api_client, user):
    user.is_active = False
    user.save()

    response = api_client.post(LOGIN, {"login": "alice", "password": PASSWORD}, format="json")

    assert response.status_code == 401


def test_login_names_the_missing_fields(api_client, db):
    response = api_client.post(LOGIN, {}, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"login", "password"}


def test_a_username_wins_over_another_accounts_phone_number(api_client, make_user):
    digits_name = make_user(username="155500099999", password="first-password-1")
    make_user(phone_number="155500099999", password="second-password-2")

    response = api_client.post(LOGIN, {"login": "155500099999", "password": "first-password-1"}, format="json")

    assert response.status_code == 200
    assert response.json()["user"]["id"] == digits_name.id


@override_settings(RATE_LIMITS={"login": (3, 60), "register": None, "password_reset": None})
def test_login_attempts_past_the_limit_get_429_per_account_even_from_other_addresses(api_client, user):
    for n in range(3):
        api_client.post(LOGIN, {"login": "alice", "password": "wrong"}, format="json", REMOTE_ADDR=f"10.0.0.{n}")

    response = api_client.post(LOGIN, {"login": "alice", "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.9")

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert "Too many login attempts" in response.json()["error"]["message"]
    assert int(response["Retry-After"]) > 0


@override_settings(RATE_LIMITS={"login": (3, 60), "register": None, "password_reset": None})
def test_login_attempts_past_the_limit_get_429_per_address_across_accounts(api_client, user):
    for name in ("a1", "a2", "a3"):
        api_client.post(LOGIN, {"login": name, "password": "wrong"}, format="json", REMOTE_ADDR="10.0.0.1")

    blocked = api_client.post(LOGIN, {"login": "alice", "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.1")
    elsewhere = api_client.post(LOGIN, {"login": "alice", "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.2")

    assert blocked.status_code == 429
    assert elsewhere.status_code == 200


@override_settings(RATE_LIMITS={"login": (3, 60), "register": None, "password_reset": None})
def test_logins_that_succeed_count_against_no_limit(api_client, make_user):
    """A class behind one school address, all signing in at nine."""
    pupils = [make_user(username=f"pupil{n}") for n in range(8)]

    statuses = [
        api_client.post(LOGIN, {"login": p.username, "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.1")
        for p in [*pupils, pupils[0], pupils[0]]
    ]

    assert [response.status_code for response in statuses] == [200] * 10


@override_settings(RATE_LIMITS={"login": (3, 60), "register": None, "password_reset": None})
def test_a_refused_login_is_not_tried_and_takes_nobodys_place(api_client, user, make_user):
    from chat_realtime.rate_limits import window_key
    from chat_realtime.shared_redis import connection

    bob = make_user(username="bob")
    for _ in range(3):
        api_client.post(LOGIN, {"login": "nobody", "password": "wrong"}, format="json", REMOTE_ADDR="10.0.0.1")

    # The address is used up: whatever it asks now is refused, and counts against nobody.
    refused = [
        api_client.post(LOGIN, {"login": name, "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.1")
        for name in ("alice", "bob", "alice")
    ]
    bob_elsewhere = api_client.post(
        LOGIN, {"login": "bob", "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.2"
    )

    assert [response.status_code for response in refused] == [429, 429, 429]
    assert int(connection().get(window_key("login", "ip:10.0.0.1"))) == 3
    assert connection().get(window_key("login", f"user:{bob.pk}")) in (None, b"0")
    assert bob_elsewhere.status_code == 200


@override_settings(RATE_LIMITS={"login": (3, 60), "register": None, "password_reset": None})
def test_a_login_the_database_could_not_check_takes_no_place(user, monkeypatch):
    from django.db import OperationalError

    from accounts import services
    from chat_realtime.rate_limits import window_key
    from chat_realtime.shared_redis import connection

    def database_away(request, **credentials):
        raise OperationalError("the database went away")

    monkeypatch.setattr(services, "authenticate", database_away)
    for _ in range(5):
        with pytest.raises(OperationalError):
            services.login_user(login="alice", password=PASSWORD, client_ip="10.0.0.1")

    assert int(connection().get(window_key("login", "ip:10.0.0.1")) or 0) == 0


@override_settings(RATE_LIMITS={"login": (3, 60), "register": None, "password_reset": None})
def test_guesses_sent_all_at_once_count_together(user, monkeypatch):
    """Nine more guesses arrive while the first one's password is being checked: only the limit's worth are
    checked at all."""
    from accounts import services
    from chat_realtime.errors import ApplicationError

    checked = []
    real_authenticate = services.authenticate

    def authenticate(request, **credentials):
        checked.append(credentials["password"])
        if len(checked) == 1:
            for n in range(9):
                with contextlib.suppress(ApplicationError):
                    services.login_user(login="alice", password=f"guess-{n}", client_ip=f"10.0.1.{n}")
        return real_authenticate(request, **credentials)

    monkeypatch.setattr(services, "authenticate", authenticate)

    with pytest.raises(ApplicationError):
        services.login_user(login="alice", password="first-guess", client_ip="10.0.1.99")

    assert len(checked) == 3


@override_settings(RATE_LIMITS={"login": None, "register": (2, 3600), "password_reset": None})
def test_registrations_past_the_limit_get_429(api_client, db):
    from accounts.models import User

    statuses = [
        api_client.post(
            "/api/auth/register",
            {
                "username": f"new{n}",
                "email": f"n{n}@example.com",
                "phone_number": f"+4470000000{n}",
                "password": "a-long-secret-77",
            },
            format="json",
        ).status_code
        for n in range(3)
    ]

    assert statuses == [201, 201, 429]
    assert User.objects.count() == 2


@override_settings(RATE_LIMITS={"login": None, "register": None, "password_reset": None})
def test_rate_limits_set_to_off_never_refuse(api_client, user):
    statuses = {
        api_client.post(LOGIN, {"login": "alice", "password": "wrong"}, format="json").status_code for _ in range(20)
    }

    assert statuses == {401}


@override_settings(RATE_LIMITS={"login": (2, 60), "register": None, "password_reset": None})
def test_browser_login_shares_the_same_limit(client, user):
    for _ in range(2):
        client.post("/accounts/login/", {"login": "alice", "password": "wrong"})

    response = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD})

    assert response.status_code == 429
    assert "Too many login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


@override_settings(RATE_LIMITS={"login": (3, 60), "register": None, "password_reset": None})
def test_the_account_limit_counts_every_identifier_and_spelling_of_one_account(api_client, user):
    spellings = ["alice", "ALICE@example.com", "+1 555 000 1111", "(+1) 555-000-1111"]
    statuses = [
        api_client.post(LOGIN, {"login": s, "password": "wrong"}, format="json", REMOTE_ADDR=f"10.0.2.{n}").status_code
        for n, s in enumerate(spellings)
    ]

    assert statuses == [401, 401, 401, 429]


# Escaped for SQLite's LIKE, 25,001 '%' make a pattern past the 50,000 bytes it takes.
FAR_TOO_LONG = "%" * 25_001


def test_a_login_longer_than_any_identifier_is_a_clear_400(api_client, user):
    response = api_client.post(LOGIN, {"login": FAR_TOO_LONG, "password": "x"}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["login"]


def test_a_login_longer_than_any_identifier_names_nobody_wherever_it_comes_from(user):
    from accounts import services
    from chat_realtime.errors import AuthenticationError

    with pytest.raises(AuthenticationError) as refused:
        services.login_user(login=FAR_TOO_LONG, password=PASSWORD, client_ip="10.0.0.1")

    assert refused.value.code == "invalid_credentials"


@pytest.mark.parametrize(
    ("path", "field", "status", "error"),
    [("/accounts/login/", "login", 400, 'class="errorlist'), ("/admin/login/", "username", 200, 'class="errornote')],
)
def test_the_browser_and_admin_login_forms_refuse_a_login_longer_than_any_identifier(
    client, user, path, field, status, error
):
    response = client.post(path, {field: FAR_TOO_LONG, "password": "x"})

    assert response.status_code == status  # the form again, with its error
    assert error in response.content.decode()
    assert "_auth_user_id" not in client.session
