from datetime import timedelta

import jwt
import pytest
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conftest import PASSWORD

REFRESH = "/api/auth/refresh"
LOGOUT = "/api/auth/logout"


@pytest.fixture
def session(api_client, user):
    return api_client.post("/api/auth/login", {"login": "alice", "password": PASSWORD}, format="json").json()


def test_refresh_returns_a_new_pair_and_the_new_refresh_token_works(api_client, session):
    first = api_client.post(REFRESH, {"refresh": session["refresh"]}, format="json")
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh"] != session["refresh"]

    second = api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json")

    assert second.status_code == 200


def test_a_refresh_token_used_once_is_refused_the_second_time(api_client, session):
    api_client.post(REFRESH, {"refresh": session["refresh"]}, format="json")

    reuse = api_client.post(REFRESH, {"refresh": session["refresh"]}, format="json")

    assert reuse.status_code == 401
    assert reuse.json()["error"]["code"] == "token_not_valid"


def test_refresh_without_a_token_is_a_validation_error(api_client, db):
    response = api_client.post(REFRESH, {"refresh": ""}, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["refresh"]


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
def test_refresh_refuses_malformed_tokens(api_client, db, token):
    response = api_client.post(REFRESH, {"refresh": token}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
def test_refresh_refuses_a_token_not_signed_with_our_key(api_client, user, algorithm):
    genuine = RefreshToken.for_user(user)
    key = "not-our-signing-key-at-all-0123456789" if algorithm != "none" else None
    forged = jwt.encode(dict(genuine.payload), key, algorithm=algorithm)

    response = api_client.post(REFRESH, {"refresh": forged}, format="json")

    assert response.status_code == 401


def test_refresh_refuses_an_expired_token(api_client, user):
    token = RefreshToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))

    response = api_client.post(REFRESH, {"refresh": str(token)}, format="json")

    assert response.status_code == 401


def test_refresh_refuses_an_access_token(api_client, session):
    response = api_client.post(REFRESH, {"refresh": session["access"]}, format="json")

    assert response.status_code == 401


def test_refresh_refuses_the_token_of_a_deactivated_user(api_client, user, session):
    user.is_active = False
    user.save()

    response = api_client.post(REFRESH, {"refresh": session["refresh"]}, format="json")

    assert response.status_code == 401


def test_the_access_token_of_a_deactivated_user_is_refused_with_account_inactive(api_client, user, session):
    user.is_active = False
    user.save()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {session['access']}")

    response = api_client.get("/api/me")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "account_inactive"


def test_logout_revokes_that_refresh_token_only(api_client, user, session):
    other = api_client.post("/api/auth/login", {"login": "alice", "password": PASSWORD}, format="json").json()

    response = api_client.post(LOGOUT, {"refresh": session["refresh"]}, format="json")

    assert response.status_code == 204
    assert api_client.post(REFRESH, {"refresh": session["refresh"]}, format="json").status_code == 401
    assert api_client.post(REFRESH, {"refresh": other["refresh"]}, format="json").status_code == 200


def test_logout_with_a_revoked_token_is_refused(api_client, session):
    api_client.post(LOGOUT, {"refresh": session["refresh"]}, format="json")

    response = api_client.post(LOGOUT, {"refresh": session["refresh"]}, format="json")

    assert response.status_code == 401


def test_the_access_token_authenticates_api_calls(api_client, session):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {session['access']}")

    response = api_client.get("/api/me")

    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_an_expired_access_token_gets_401(api_client, user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = api_client.get("/api/me")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_unauthenticated_api_calls_get_401_in_the_error_shape(api_client, db):
    response = api_client.get("/api/me")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_token_lifetimes_come_from_the_settings(user):
    from django.conf import settings

    access = AccessToken.for_user(user)

    lifetime = access["exp"] - access["iat"]
    assert lifetime == int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())
