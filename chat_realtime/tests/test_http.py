import re

import pytest


@pytest.mark.django_db
def test_an_unknown_api_path_gets_a_json_404(client):
    response = client.get("/api/no-such-thing")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "fields": {}}}


@pytest.mark.django_db
def test_an_unknown_page_gets_the_friendly_404(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


@pytest.mark.django_db
def test_a_wrong_method_on_the_api_gets_405_in_the_error_shape(client):
    response = client.get("/api/auth/login")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_the_openapi_schema_says_the_api_takes_bearer_access_tokens(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    assert schema["components"]["securitySchemes"]["jwtAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert {"jwtAuth": []} in schema["paths"]["/api/chats"]["get"]["security"]


@pytest.mark.django_db
def test_the_openapi_schema_describes_every_api_path(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert paths == {
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/auth/password-change",
        "/api/auth/password-reset",
        "/api/auth/password-reset/confirm",
        "/api/me",
        "/api/reports",
        "/api/friends",
        "/api/friends/requests",
        "/api/friends/requests/{user_id}",
        "/api/friends/requests/{user_id}/accept",
        "/api/friends/requests/{user_id}/reject",
        "/api/friends/{user_id}",
        "/api/users/search",
        "/api/notifications",
        "/api/notifications/read-all",
        "/api/notifications/{notification_id}",
        "/api/notifications/{notification_id}/read",
        "/api/chats",
        "/api/chats/{chat_id}/messages",
        "/api/chats/{chat_id}/read",
    }


def off_site_resources(page: str) -> list[str]:
    """The scripts, styles and images a page loads from another site (a CDN, say). Read from the attributes
    that load them: the text around them (a nonce, say) may spell anything."""
    loaded = re.findall(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="([^"]+)"', page)
    return [url for url in loaded if url.startswith(("http:", "https:", "//"))]


@pytest.mark.django_db
def test_the_interactive_docs_are_served_without_a_cdn(client):
    page = client.get("/api/docs/").content.decode()

    assert "swagger-ui" in page
    assert off_site_resources(page) == []


@pytest.mark.django_db
def test_healthz_answers_when_the_database_does(client):
    response = client.get("/healthz")

    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_pages_load_htmx_from_our_own_static_files(client, make_user):
    client.force_login(make_user())

    page = client.get("/").content.decode()

    assert "/static/django_htmx/htmx" in page
    assert off_site_resources(page) == []


@pytest.mark.django_db
def test_createsuperuser_makes_a_staff_account_that_can_open_the_admin(client, monkeypatch):
    from django.core.management import call_command

    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "an-admin-password-123")
    call_command("createsuperuser", "--noinput", username="root.admin", email="Root@Example.com", verbosity=0)

    assert client.login(username="root@example.com", password="an-admin-password-123")
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/chats/99999999999999999999999/messages",
        "/api/friends/99999999999999999999999",
        "/chats/99999999999999999999/",
    ],
)
def test_ids_too_large_for_the_database_are_404_not_500(client, make_user, path):
    client.force_login(make_user())

    assert client.get(path).status_code == 404


@pytest.mark.django_db
def test_pages_carry_the_security_headers(client, make_user):
    client.force_login(make_user())

    response = client.get("/")

    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_a_database_outage_answers_503_in_the_error_shape(auth_client, monkeypatch):
    from django.db import OperationalError

    from accounts import api

    def down(*args, **kwargs):
        raise OperationalError("(2006, 'MySQL server has gone away')")

    monkeypatch.setattr(api.MeSerializer, "to_representation", down)

    response = auth_client.get("/api/me")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response["Retry-After"] == "5"


@pytest.mark.parametrize("shape", ["big_json", "many_form_fields", "many_multipart_fields", "many_query_fields"])
def test_a_request_too_large_for_the_api_is_refused_in_the_error_shape(friends_with_chat, shape):
    from urllib.parse import urlencode

    from rest_framework.test import APIClient

    alice, _, chat = friends_with_chat
    api = APIClient()
    api.force_authenticate(alice)
    url = f"/api/chats/{chat.pk}/messages"
    fields = {f"f{i}": "1" for i in range(1001)} | {"text": "hi", "client_id": "c1"}
    if shape == "big_json":
        response = api.post(url, {"text": "x" * (3 * 1024 * 1024), "client_id": "c1"}, format="json")
    elif shape == "many_form_fields":
        response = api.post(url, urlencode(fields), content_type="application/x-www-form-urlencoded")
    elif shape == "many_multipart_fields":
        response = api.post(url, fields, format="multipart")
    else:
        response = api.get("/api/users/search?" + urlencode(fields))

    expected = ("request_too_large", 413) if shape == "big_json" else ("too_many_fields", 400)
    assert (response.json()["error"]["code"], response.status_code) == expected


MULTIPART = b'--XX\r\nContent-Disposition: form-data; name="message_id"\r\n\r\n1\r\n--XX--\r\n'


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded; charset=punycode", b"message_id=1"),
        ("multipart/form-data; boundary=XX; charset=idna", MULTIPART),
    ],
)
def test_a_body_in_a_charset_that_cannot_be_read_is_a_clear_400(friends_with_chat, content_type, body):
    from rest_framework.test import APIClient

    alice, _, chat = friends_with_chat
    api = APIClient()
    api.force_authenticate(alice)

    response = api.generic("POST", f"/api/chats/{chat.pk}/read", body, content_type=content_type)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request")


@pytest.mark.parametrize("charset", ["punycode", "idna", "rot13", "base64", "zlib"])
def test_a_page_posted_in_a_charset_that_cannot_be_read_gets_a_400_page(client, make_user, charset):
    body = MULTIPART.replace(b"message_id", b"login")
    response = client.generic(
        "POST", "/accounts/login/", body, content_type=f"multipart/form-data; boundary=XX; charset={charset}"
    )

    assert response.status_code == 400 and not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("charset", ["utf-8", "latin-1", "no-such-charset"])
def test_a_body_in_a_charset_read_leniently_is_read(friends_with_chat, charset):
    from rest_framework.test import APIClient

    alice, _, chat = friends_with_chat
    api = APIClient()
    api.force_authenticate(alice)

    response = api.generic(
        "POST",
        f"/api/chats/{chat.pk}/read",
        b"message_id=x",
        content_type=f"application/x-www-form-urlencoded; charset={charset}",
    )

    assert response.json()["error"]["code"] == "not_found"  # read: its message_id names no message


def test_a_page_request_too_large_still_gets_a_page(client, make_user):
    client.force_login(make_user())

    response = client.post("/accounts/settings/", {f"f{i}": "1" for i in range(1001)})

    assert response.status_code == 400 and not response["Content-Type"].startswith("application/json")


@pytest.mark.django_db
def test_the_openapi_schema_describes_what_the_api_answers_and_needs(client):
    schemas = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]

    assert "unread_count" in schemas["NotificationPage"]["properties"]
    assert set(schemas["RegisterBodyRequest"]["required"]) == {"username", "email", "phone_number", "password"}


@pytest.mark.django_db
def test_a_page_that_answers_htmx_with_a_fragment_says_so_to_caches(friends_with_chat):
    from django.test import Client

    alice, _, chat = friends_with_chat
    client = Client()
    client.force_login(alice)

    fragment = client.get(f"/chats/{chat.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="chat-pane")
    page = client.get(f"/chats/{chat.pk}/")

    for response in (fragment, page):
        assert "HX-Request" in response["Vary"]
    assert "<html" not in fragment.content.decode() and "<html" in page.content.decode()


@pytest.mark.django_db
def test_an_htmx_request_after_the_session_ended_sends_the_whole_page_to_the_login(make_user):
    from django.test import Client

    bob = make_user(username="bob")
    client = Client()  # logged out (in another tab, say)

    response = client.post(
        f"/friends/{bob.pk}/request",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/friends/?q=bob",
    )
    plain = client.post(f"/friends/{bob.pk}/request")

    assert response.status_code == 200 and response["HX-Redirect"] == "/accounts/login/?next=/friends/%3Fq%3Dbob"
    assert plain.status_code == 302 and plain["Location"].startswith("/accounts/login/")
