"""The friends and notifications pages reach every page of their lists."""

import pytest
from django.test import Client

from friends.models import Notification

pytestmark = pytest.mark.django_db


def test_search_results_past_the_first_page_can_be_reached(user, make_user):
    for n in range(25):
        make_user(username=f"sam{n:02d}")
    client = Client()
    client.force_login(user)

    first = client.get("/friends/search/", {"q": "sam"}, HTTP_HX_REQUEST="true").content.decode()
    second = client.get("/friends/search/", {"q": "sam", "page": 2}, HTTP_HX_REQUEST="true").content.decode()

    assert "Page 1 of 2" in first and "page=2" in first and ">Next<" in first and ">Previous<" not in first
    assert "sam24" in second and ">Previous<" in second and ">Next<" not in second


def test_notifications_past_the_first_thirty_can_be_reached(user, make_user):
    bob = make_user(username="bob")
    for n in range(35):
        Notification.objects.create(
            receiver=user, sender=bob, type=Notification.Type.FRIEND_REQUEST_ACCEPTED, content=f"note {n}"
        )
    client = Client()
    client.force_login(user)

    first = client.get("/notifications/").content.decode()
    second = client.get("/notifications/", {"page": 2}).content.decode()

    assert first.count('class="notification ') + first.count('class="notification"') == 30
    assert "?page=2" in first and "note 0<" not in first
    assert "note 0" in second and ">Newer<" in second


def test_nothing_new_is_shown_only_while_the_list_is_empty(user, make_user):
    client = Client()
    client.force_login(user)

    menu = client.get("/notifications/", HTTP_HX_REQUEST="true").content.decode()

    # The list is empty as CSS's :empty sees it; a notification that arrives live fills it and hides the text.
    assert '<ul class="notification-items"></ul>' in menu and "Nothing new." in menu


def test_marking_read_on_a_later_page_of_notifications_answers_that_page(user, make_user):
    bob = make_user(username="bob")
    notes = [
        Notification.objects.create(
            receiver=user, sender=bob, type=Notification.Type.FRIEND_REQUEST_ACCEPTED, content=f"note {n}"
        )
        for n in range(35)
    ]
    client = Client()
    client.force_login(user)

    on_page_2 = client.post(
        f"/notifications/{notes[0].pk}/read",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/notifications/?page=2",
    ).content.decode()
    in_the_bell = client.post(
        f"/notifications/{notes[1].pk}/read",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/friends/?q=x&page=2",
    ).content.decode()

    assert "note 0<" in on_page_2 and "note 34<" not in on_page_2
    assert "note 34<" in in_the_bell and "note 0<" not in in_the_bell
    for odd in ("x", "-2", "0", "99999999999999999999"):  # what the page's address says, not trusted
        menu = client.post(
            f"/notifications/{notes[2].pk}/read",
            HTTP_HX_REQUEST="true",
            HTTP_HX_CURRENT_URL=f"http://testserver/notifications/?page={odd}",
        )
        assert menu.status_code == 200 and "note 34<" in menu.content.decode()
