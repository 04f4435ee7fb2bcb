"""The friends and notifications pages, and their htmx fragments."""

import pytest

from friends import services
from friends.models import Friendship, Notification


@pytest.fixture
def bob(make_user):
    return make_user(username="bob", email="bob@example.com")


@pytest.fixture
def alice_client(client, user):
    client.force_login(user)
    return client


HTMX = {"HTTP_HX_REQUEST": "true"}


def test_the_friends_page_lists_requests_both_ways(alice_client, user, bob, make_user):
    carol = make_user(username="carol")
    services.send_friend_request(sender=user, receiver_id=bob.pk)
    services.send_friend_request(sender=carol, receiver_id=user.pk)

    page = alice_client.get("/friends/").content.decode()
    incoming = page.split('id="incoming-requests"')[1].split("</ul>")[0]
    outgoing = page.split('id="outgoing-requests"')[1].split("</ul>")[0]

    assert "carol" in incoming and "Accept" in incoming and "Reject" in incoming
    assert "bob" in outgoing and "Cancel" in outgoing


def test_live_search_returns_people_with_the_button_their_state_calls_for(alice_client, user, bob, make_user, befriend):
    bobby = make_user(username="bobby")
    befriend(user, bobby)

    body = alice_client.get("/friends/search/?q=bo", **HTMX).content.decode()

    assert "<html" not in body
    bob_part = body.split(f"friend-action-{bob.pk}")[1].split("</div>")[0]
    bobby_part = body.split(f"friend-action-{bobby.pk}")[1].split("</div>")[0]
    assert "Add friend" in bob_part
    assert "Unfriend" in bobby_part
    assert "bob@example.com" not in body


def test_search_escapes_the_query(alice_client, user):
    body = alice_client.get("/friends/search/?q=<img src=x onerror=alert(1)>", **HTMX).content.decode()

    assert "<img src=x" not in body and "&lt;img src=x" in body


def test_the_search_page_works_without_javascript(alice_client, bob):
    page = alice_client.get("/friends/?q=bob").content.decode()

    assert "Add friend" in page and f"/friends/{bob.pk}/request" in page


def test_add_friend_answers_with_the_new_button(alice_client, user, bob):
    response = alice_client.post(f"/friends/{bob.pk}/request", **HTMX)

    assert response.status_code == 200
    assert 'data-state="outgoing"' in response.content.decode()
    assert Friendship.objects.filter(requester=user).exists()


def test_a_refused_action_answers_with_its_reason_and_status(alice_client, user, bob):
    alice_client.post(f"/friends/{bob.pk}/request", **HTMX)

    again = alice_client.post(f"/friends/{bob.pk}/request", **HTMX)
    self_request = alice_client.post(f"/friends/{user.pk}/request", **HTMX)

    assert again.status_code == 409 and "already waiting" in again.content.decode()
    assert self_request.status_code == 400


def test_accept_reject_cancel_and_unfriend_from_the_page(client, user, bob, make_user):
    carol = make_user(username="carol")
    services.send_friend_request(sender=bob, receiver_id=user.pk)
    services.send_friend_request(sender=carol, receiver_id=user.pk)
    client.force_login(user)

    accepted = client.post(f"/friends/{bob.pk}/accept", **HTMX)
    rejected = client.post(f"/friends/{carol.pk}/reject", **HTMX)
    unfriended = client.post(f"/friends/{bob.pk}/unfriend", **HTMX)
    requested = client.post(f"/friends/{carol.pk}/request")
    cancelled = client.post(f"/friends/{carol.pk}/cancel")

    assert 'data-state="friends"' in accepted.content.decode()
    assert 'data-state="none"' in rejected.content.decode()
    assert 'data-state="none"' in unfriended.content.decode()
    assert requested.status_code == cancelled.status_code == 302
    assert not Friendship.objects.exists()


def test_friend_actions_need_a_post(alice_client, bob):
    assert alice_client.get(f"/friends/{bob.pk}/request").status_code == 405


def test_a_persons_button_is_answered_as_it_is_now(alice_client, user, bob):
    services.send_friend_request(sender=bob, receiver_id=user.pk)

    now = alice_client.get(f"/friends/{bob.pk}/action", **HTMX)
    nobody = alice_client.get("/friends/999999/action", **HTMX)

    assert now.status_code == 200 and 'data-state="incoming"' in now.content.decode()
    assert f'data-refresh="/friends/{bob.pk}/action"' in now.content.decode()
    assert nobody.status_code == 404
    assert alice_client.post(f"/friends/{bob.pk}/action", **HTMX).status_code == 405


@pytest.fixture
def inbox(user, bob):
    services.send_friend_request(sender=bob, receiver_id=user.pk)
    return Notification.objects.get(receiver=user)


def test_the_notifications_page_and_the_bell_menu(alice_client, inbox):
    page = alice_client.get("/notifications/").content.decode()
    menu = alice_client.get("/notifications/", **HTMX).content.decode()

    for body in (page, menu):
        assert "bob sent you a friend request." in body
        assert "ago" in body
        assert "Accept" in body and "Reject" in body
    assert "<html" not in menu


def test_the_bell_badge_counts_unread_notifications_on_every_page(alice_client, inbox):
    page = alice_client.get("/").content.decode()

    assert 'id="bell-badge" class="bell-badge"' in page and ">1</span>" in page


def test_mark_one_read_mark_all_read_and_delete(alice_client, user, inbox, make_user):
    services.send_friend_request(sender=make_user(), receiver_id=user.pk)

    one = alice_client.post(f"/notifications/{inbox.pk}/read", **HTMX)
    inbox.refresh_from_db()
    assert inbox.is_read and 'id="bell-badge"' in one.content.decode()

    alice_client.post("/notifications/read-all", **HTMX)
    assert not Notification.objects.filter(receiver=user, is_read=False).exists()

    deleted = alice_client.post(f"/notifications/{inbox.pk}/delete")
    assert deleted.status_code == 302 and not Notification.objects.filter(pk=inbox.pk).exists()


def test_nobody_can_touch_someone_elses_notification(client, inbox, make_user):
    client.force_login(make_user())

    # Answered with their own menu, as for one that is gone: nothing of someone else's shows.
    for action in ("read", "delete"):
        menu = client.post(f"/notifications/{inbox.pk}/{action}", **HTMX)
        assert menu.status_code == 200 and f"notification-{inbox.pk}" not in menu.content.decode()
    inbox.refresh_from_db()
    assert not inbox.is_read


def test_acting_on_a_notification_gone_meanwhile_answers_the_menu_as_it_is_now(alice_client, inbox):
    gone = inbox.pk
    inbox.delete()  # its request was cancelled, say

    for action in ("read", "delete"):
        menu = alice_client.post(f"/notifications/{gone}/{action}", **HTMX)
        assert menu.status_code == 200 and 'class="notification-menu"' in menu.content.decode()
        assert 'id="bell-badge"' in menu.content.decode()


def test_pages_need_a_login(client, db):
    for path in ("/", "/friends/", "/notifications/", "/accounts/settings/", "/friends/1/action"):
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path
