"""Sign-up, login and logout in the browser: plain forms, sessions and CSRF."""

import pytest
from django.test import Client, override_settings

from accounts.models import User
from conftest import PASSWORD


def test_signing_up_logs_the_new_user_in(client, db):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "carol",
            "email": "carol@example.com",
            "phone_number": "+15550002222",
            "password": "a-long-enough-secret-42",
            "password_confirm": "a-long-enough-secret-42",
        },
    )

    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert User.objects.filter(username="carol").exists()


def test_sign_up_shows_each_services_error_beside_its_field(client, user):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "alice",
            "email": "new@example.com",
            "phone_number": "123",
            "password": "a-long-enough-secret-42",
            "password_confirm": "a-long-enough-secret-42",
        },
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "This username is taken." in page
    assert "Use 9 to 15 digits" in page
    assert User.objects.count() == 1


def test_sign_up_escapes_what_the_user_typed(client, db):
    response = client.post("/accounts/signup/", {"username": "<script>alert(1)</script>", "email": "x"})

    page = response.content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("login", ["alice", "alice@example.com", "+15550001111"])
def test_logging_in_with_each_identifier_opens_a_session(client, user, login):
    response = client.post("/accounts/login/", {"login": login, "password": PASSWORD})

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_wrong_password_shows_an_error_on_the_login_page(client, user):
    response = client.post("/accounts/login/", {"login": "alice", "password": "wrong"})

    assert response.status_code == 400
    assert "Wrong login or password." in response.content.decode()


def test_login_goes_back_to_the_page_asked_for_but_never_off_site(client, user):
    inside = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD, "next": "/accounts/profile/"})
    client.logout()
    outside = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD, "next": "https://evil.example/"})

    assert inside["Location"] == "/accounts/profile/"
    assert outside["Location"] == "/"


def test_pages_for_members_send_visitors_to_the_login_page(client, db):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_logout_is_a_post_and_ends_the_session(client, user):
    client.force_login(user)

    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_forms_refuse_a_post_without_the_csrf_token(user):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD})

    assert response.status_code == 403


def test_the_admin_accepts_a_staff_login_by_email(client, make_user):
    make_user(username="boss", email="boss@example.com", is_staff=True, is_superuser=True)

    response = client.post("/admin/login/?next=/admin/", {"username": "boss@example.com", "password": PASSWORD})

    assert response.status_code == 302
    assert client.get("/admin/accounts/user/").status_code == 200


def test_the_admin_creates_users_with_the_same_spelling_rules(client, make_user):
    boss = make_user(is_staff=True, is_superuser=True)
    client.force_login(boss)

    client.post(
        "/admin/accounts/user/add/",
        {
            "username": "dave",
            "email": "Dave@Example.com",
            "phone_number": "",
            "password1": "a-long-secret-99x",
            "password2": "a-long-secret-99x",
            "usable_password": "true",
        },
    )

    dave = User.objects.get(username="dave")
    assert dave.email == "dave@example.com"
    assert dave.phone_number is None


@override_settings(RATE_LIMITS={"login": (3, 60), "register": None, "password_reset": None})
def test_the_admin_login_counts_against_the_login_limit(client, make_user):
    make_user(username="boss", is_staff=True, is_superuser=True)
    for n in range(3):
        client.post("/admin/login/", {"username": "boss", "password": f"guess-{n}"}, REMOTE_ADDR=f"10.0.0.{n}")

    response = client.post("/admin/login/", {"username": "boss", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9")

    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "Too many login attempts" in response.content.decode()


def test_the_admin_login_refuses_a_wrong_password_and_people_who_are_not_staff(client, make_user):
    make_user(username="boss", is_staff=True)
    make_user(username="person")

    wrong = client.post("/admin/login/", {"username": "boss", "password": "not-it"})
    not_staff = client.post("/admin/login/", {"username": "person", "password": PASSWORD})

    for response in (wrong, not_staff):
        assert response.status_code == 200 and "_auth_user_id" not in client.session
        assert "Please enter the correct" in response.content.decode()
