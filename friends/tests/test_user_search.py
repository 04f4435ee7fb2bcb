import pytest

SEARCH = "/api/users/search"


@pytest.fixture
def people(make_user, user):
    return {
        "bob": make_user(username="bob", email="bob@example.com", phone_number="+15550002001"),
        "bobby": make_user(username="Bobby", email="bobby@example.com", phone_number="+15550002002"),
        "robert": make_user(username="robert", email="rob@example.com", phone_number="+15550002003"),
        "banned": make_user(username="bobban", email="ban@example.com", is_active=False),
    }


def usernames(response):
    return [r["username"] for r in response.json()["results"]]


def test_search_matches_a_username_prefix_ignoring_case(auth_client, people):
    assert usernames(auth_client.get(SEARCH, {"q": "BOB"})) == ["bob", "Bobby"]


def test_search_matches_an_exact_email_or_phone_number_but_not_a_part_of_one(auth_client, people):
    assert usernames(auth_client.get(SEARCH, {"q": "ROB@example.com"})) == ["robert"]
    assert usernames(auth_client.get(SEARCH, {"q": "+1 555 000 2003"})) == ["robert"]
    assert usernames(auth_client.get(SEARCH, {"q": "example.com"})) == []
    assert usernames(auth_client.get(SEARCH, {"q": "2003"})) == []


def test_search_never_shows_email_or_phone(auth_client, people):
    results = auth_client.get(SEARCH, {"q": "bob@example.com"}).json()["results"]

    assert results and all(set(r) == {"id", "username", "avatar_url", "friendship"} for r in results)


def test_search_leaves_out_yourself_and_deactivated_people(auth_client, people, user):
    assert usernames(auth_client.get(SEARCH, {"q": "alice"})) == []
    assert "bobban" not in usernames(auth_client.get(SEARCH, {"q": "bob"}))


def test_search_tells_the_friendship_state_of_each_person(auth_client, user, people, befriend):
    from friends import services

    befriend(user, people["bob"])
    services.send_friend_request(sender=user, receiver_id=people["bobby"].pk)
    services.send_friend_request(sender=people["robert"], receiver_id=user.pk)

    results = {r["username"]: r["friendship"] for r in auth_client.get(SEARCH, {"q": "b"}).json()["results"]}
    results.update({r["username"]: r["friendship"] for r in auth_client.get(SEARCH, {"q": "r"}).json()["results"]})

    assert results == {"bob": "friends", "Bobby": "outgoing", "robert": "incoming"}


def test_search_is_paginated_and_the_page_size_is_capped(auth_client, make_user):
    for n in range(60):
        make_user(username=f"zed{n:02d}")

    first = auth_client.get(SEARCH, {"q": "zed", "page_size": 1000}).json()
    second = auth_client.get(SEARCH, {"q": "zed", "page": 2, "page_size": 1000}).json()
    past_the_end = auth_client.get(SEARCH, {"q": "zed", "page": 9}).json()

    assert (len(first["results"]), first["count"], first["pages"]) == (50, 60, 2)
    assert len(second["results"]) == 10
    assert past_the_end["results"] == []


def test_an_empty_query_finds_nobody(auth_client, people):
    assert auth_client.get(SEARCH, {"q": "  "}).json() == {"results": [], "count": 0, "page": 1, "pages": 0}


@pytest.mark.parametrize("params", [{"q": "b", "page": "x"}, {"q": "b", "page": 0}, {"q": "x" * 300}])
def test_a_malformed_search_is_refused_with_400(auth_client, people, params):
    response = auth_client.get(SEARCH, params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
