"""Pages in a real browser: on a phone, Back after a chat opened from the sidebar, a session ended elsewhere."""

from __future__ import annotations

import pytest

from chat_realtime.tests.browser import chromium, expect, log_in, with_a_password_the_server_knows

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_on_a_phone_the_profile_link_shows_and_the_friends_page_fits(app_server, user, settings):
    with_a_password_the_server_knows(settings, user)
    with chromium() as browser:
        page = browser.new_context().new_page()
        log_in(page, app_server.url, "alice")
        page.set_viewport_size({"width": 360, "height": 740})

        expect(page.locator("a.nav-profile")).to_be_visible()
        expect(page.get_by_role("link", name="alice")).to_have_count(1)  # the link keeps its name
        page.goto(app_server.url + "/friends/")
        search = page.locator(".search-form").get_by_role("button", name="Search").bounding_box()
        assert search["x"] + search["width"] <= 360
        assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_back_to_a_chat_opened_from_the_sidebar_shows_the_whole_page(app_server, friends_with_chat, settings):
    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice)
    with chromium() as browser:
        page = browser.new_context().new_page()
        log_in(page, app_server.url, "alice")
        page.locator(".chat-row").click()
        expect(page.get_by_label("Message")).to_be_visible()
        expect(page).to_have_title("bob · chat-realtime")  # named as the whole page would name it
        page.get_by_role("link", name="Friends", exact=True).click()
        expect(page.get_by_role("heading", name="Find people")).to_be_visible()

        page.go_back()

        expect(page).to_have_url(f"{app_server.url}/chats/{chat.pk}/")
        expect(page.locator("header.navbar")).to_be_visible()
        expect(page.locator(".sidebar")).to_be_visible()


def test_a_page_whose_session_ended_in_another_tab_goes_to_the_login(app_server, user, settings):
    import re

    with_a_password_the_server_knows(settings, user)
    with chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        log_in(page, app_server.url, "alice")
        other_tab = context.new_page()
        other_tab.goto(app_server.url + "/")

        other_tab.get_by_role("button", name="Log out").click()

        # Its socket closed with the session: the page loads again, and the login page is what it gets.
        expect(page).to_have_url(re.compile(r"/accounts/login/"))
