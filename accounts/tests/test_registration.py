import json

import pytest

from accounts.models import User

REGISTER = "/api/auth/register"


def payload(**overrides):
    data = {
        "username": "bob.smith",
        "email": "Bob@Example.com",
        "phone_number": "+44 7700 900123",
        "password": "a-long-enough-secret-42",
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_register_creates_the_user_and_returns_tokens(api_client):
    response = api_client.post(REGISTER, payload(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["user"]["username"] == "bob.smith"
    assert body["user"]["email"] == "bob@example.com"
    assert body["user"]["phone_number"] == "+447700900123"
    assert body["access"] and body["refresh"]
    user = User.objects.get()
    assert user.check_password("a-long-enough-secret-42")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "ab"),
        ("username", "x" * 31),
        ("username", "has space"),
        ("username", "émile"),
        ("username", ""),
        ("email", "not-an-email"),
        ("email", ""),
        ("phone_number", "12345678"),
        ("phone_number", "1234567890123456"),
        ("phone_number", "+12-abc-4567890"),
        ("phone_number", ""),
        ("password", "short"),
        ("password", "password123"),
        ("password", "12345678901"),
        ("password", ""),
    ],
)
def test_register_reports_each_invalid_field_and_writes_nothing(api_client, field, value):
    response = api_client.post(REGISTER, payload(**{field: value}), format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == [field]
    assert error["fields"][field] and all(isinstance(m, str) for m in error["fields"][field])
    assert not User.objects.exists()


@pytest.mark.django_db
def test_register_reports_every_bad_field_at_once(api_client):
    response = api_client.post(REGISTER, {"username": "a", "email": "x", "phone_number": "1"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"username", "email", "phone_number", "password"}


@pytest.mark.parametrize(
    ("field", "taken"),
    [("username", "ALICE"), ("email", "ALICE@example.COM"), ("phone_number", "+1 555 000 1111")],
)
def test_register_refuses_an_identifier_someone_already_has(api_client, user, field, taken):
    response = api_client.post(REGISTER, payload(**{field: taken}), format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_register_refuses_malformed_json_with_a_clear_error(api_client):
    response = api_client.post(REGISTER, data="{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


@pytest.mark.django_db
def test_an_email_longer_than_the_column_holds_is_refused(api_client):
    email = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".com"  # valid by the standard's limits, 309 characters

    response = api_client.post(REGISTER, payload(email=email), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["email"] == ["An email address is at most 254 characters."]
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [500, 100_000])
def test_deeply_nested_json_is_refused_with_400_not_a_server_error(api_client, depth):
    # Past a few hundred levels a recursive walk ran out of stack; past some ten thousand the json module does.
    body = json.dumps(payload(password="PASSWORD")).replace('"PASSWORD"', "[" * depth + "]" * depth)

    response = api_client.post(REGISTER, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == ("parse_error" if depth > 10_000 else "validation_error")
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["username", "password"])
def test_a_lone_surrogate_deep_in_the_json_is_found(api_client, field):
    body = json.dumps({**payload(), field: [[["TEXT"]]]}).replace("TEXT", "\\ud800")

    response = api_client.post(REGISTER, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


@pytest.mark.django_db
def test_register_refuses_a_json_body_that_is_not_an_object(api_client):
    response = api_client.post(REGISTER, data="[1, 2]", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("phone", ["+١٢٣٤٥٦٧٨٩٠", "+１２３４５６７８９０"])  # noqa: RUF001 - the point
def test_phone_numbers_are_ascii_digits_only(api_client, phone):
    response = api_client.post(REGISTER, payload(phone_number=phone), format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["phone_number"]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["username", "email", "phone_number", "password"])
def test_text_that_is_not_unicode_is_refused_with_400(api_client, field):
    body = json.dumps(payload()).replace(f'"{field}": "', f'"{field}": "\\ud800', 1)

    response = api_client.post(REGISTER, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert not User.objects.exists()
