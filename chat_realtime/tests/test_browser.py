"""Two people use the app in a real browser (Debian's Chromium, driven by Playwright).

The app runs in a real worker process (`manage.py serve`) on the test database, so everything the
browser does crosses real HTTP and a real websocket. Set SAVE_SCREENSHOTS=1 to
refresh the screenshots in docs/screenshots/.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from chat_realtime.tests.browser import (
    PASSWORD,
    alice_in_her_chat,
    bob_wrote_a_long_chat,
    chromium,
    expect,
    in_a_thread,
    log_in,
    until_held,
    with_a_password_the_server_knows,
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _person(browser, url, errors):
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    page.goto(url + "/accounts/signup/")
    return page


def _sign_up(page, name: str, phone: str) -> None:
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"{name}@example.com")
    page.get_by_label("Phone number").fill(phone)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text("Pick a chat")).to_be_visible()


def _shot(page, name: str) -> None:
    if os.environ.get("SAVE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_two_people_meet_and_chat_in_real_time(live_server_url, tmp_path):
    errors: list[str] = []
    picture = tmp_path / "picture.png"
    buffer = io.BytesIO()
    Image.new("RGB", (160, 100), (40, 150, 90)).save(buffer, format="PNG")
    picture.write_bytes(buffer.getvalue())

    with chromium() as browser:
        ann = _person(browser, live_server_url, errors)
        ben = _person(browser, live_server_url, errors)
        _sign_up(ann, "ann", "+15550100001")
        _sign_up(ben, "ben", "+15550100002")

        # Ann finds Ben with the live search and asks.
        ann.get_by_role("link", name="Friends", exact=True).click()
        ann.get_by_label("Search by username, email or phone").fill("be")
        ann.get_by_role("button", name="Add friend").click()
        expect(ann.locator("#search-results").get_by_text("Request sent")).to_be_visible()
        expect(ann.locator("#outgoing-requests")).to_contain_text("ben")
        _shot(ann, "friends")

        # Ben's bell lights up without a reload; he accepts from the dropdown.
        expect(ben.locator("#bell-badge")).to_have_text("1")
        ben.get_by_role("link", name="Notifications").click()
        expect(ben.get_by_text("ann sent you a friend request.")).to_be_visible()
        _shot(ben, "notifications")
        ben.locator("#bell-menu").get_by_role("button", name="Accept").click()
        expect(ben.locator("#bell-menu .friend-action")).to_have_attribute("data-state", "friends")

        # Both see each other in the sidebar, online.
        expect(ben.locator(".chat-row", has_text="ann")).to_be_visible()
        ann.goto(live_server_url + "/")
        expect(ann.locator(".chat-row", has_text="ben").locator(".presence-dot")).to_have_class(re.compile("online"))

        # They chat both ways; Enter sends, Shift+Enter breaks the line.
        ann.locator(".chat-row", has_text="ben").click()
        ben.locator(".chat-row", has_text="ann").click()
        ann.get_by_label("Message").fill("Hi Ben!")
        ann.get_by_label("Message").press("Shift+Enter")
        ann.get_by_label("Message").type("<script>window.pwned = 1</script>")
        ann.get_by_label("Message").press("Enter")
        expect(ben.locator(".bubble.theirs")).to_contain_text("<script>window.pwned = 1</script>")
        expect(ann.locator(".bubble.mine:not(.pending)")).to_have_count(1)
        assert ben.evaluate("window.pwned") is None
        ben.get_by_label("Message").fill("Hello Ann")
        ben.get_by_label("Message").press("Enter")
        expect(ann.locator(".bubble.theirs")).to_contain_text("Hello Ann")
        # The row at the top of her sidebar follows the chat in place.
        expect(ann.locator(".chat-row .row-preview")).to_contain_text("Hello Ann")
        expect(ann.locator(".chat-row")).to_have_count(1)

        # Ben types: Ann sees it.
        ben.get_by_label("Message").type("wait")
        expect(ann.locator(".typing")).to_contain_text("ben is typing")
        ben.get_by_label("Message").fill("")

        # An image, with its preview and a remove button before sending.
        ann.locator("#composer input[type=file]").set_input_files(str(picture))
        expect(ann.locator(".attachment-preview img")).to_be_visible()
        ann.get_by_role("button", name="Send").click()
        expect(ben.locator(".bubble.theirs img")).to_be_visible()
        expect(ann.locator(".bubble.mine img")).to_have_count(1)  # her own socket's copy is not added twice
        expect(ann.locator(".chat-row .row-preview")).to_have_text("You: image")
        _shot(ann, "chat")

        # Away from the chat, new messages show as an unread badge.
        ann.goto(live_server_url + "/")
        ben.get_by_label("Message").fill("Are you there?")
        ben.get_by_label("Message").press("Enter")
        expect(ann.locator(".chat-row .unread-badge")).to_have_text("1")
        expect(ann.locator(".chat-row .row-preview")).to_contain_text("Are you there?")
        _shot(ann, "home")

        # Ben closes his page: Ann sees him go offline.
        ben.context.close()
        expect(ann.locator(".chat-row .presence-dot")).not_to_have_class(re.compile("online"))
        ann.locator(".chat-row").click()
        expect(ann.locator(".chat-status")).to_contain_text("last seen")

        # Settings: a theme previews at once and is kept.
        ann.goto(live_server_url + "/accounts/settings/")
        ann.get_by_label("Dark").check()
        assert ann.evaluate("document.documentElement.dataset.theme") == "dark"
        ann.get_by_role("button", name="Save theme").click()
        _shot(ann, "settings")
        ann.set_viewport_size({"width": 390, "height": 780})
        ann.goto(live_server_url + "/")
        _shot(ann, "phone")

    assert errors == []


def test_after_a_dropped_connection_the_page_catches_up_without_losing_or_doubling(
    app_server, friends_with_chat, settings
):
    from messaging import services as messaging_services

    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice)
    errors: list[str] = []
    with chromium() as browser:
        page = alice_in_her_chat(browser, app_server.url, errors)
        page.get_by_label("Message").fill("before the outage")
        page.get_by_label("Message").press("Enter")
        expect(page.locator(".bubble.mine:not(.pending)")).to_have_count(1)

        # The server goes away; meanwhile bob writes (through another worker, say).
        app_server.stop()
        in_a_thread(
            lambda: messaging_services.send_message(
                sender=bob, chat_id=chat.pk, text="while you were away", client_id="b1"
            )
        )
        # alice writes too: it cannot be sent now, and says so.
        page.get_by_label("Message").fill("sent during the outage")
        page.get_by_label("Message").press("Enter")
        expect(page.locator(".bubble.failed")).to_be_visible()

        app_server.start()
        # The page reconnects by itself and fetches what it missed, once.
        expect(page.locator(".bubble.theirs", has_text="while you were away")).to_have_count(1, timeout=20000)
        # ...and sends again what could not go out, under the same client_id.
        expect(page.locator(".bubble.failed")).to_have_count(0)
        expect(page.locator(".bubble.mine:not(.pending):not(.failed)")).to_have_count(2)
        page.reload()
        expect(page.locator(".bubble")).to_have_count(3)

    stored = in_a_thread(
        lambda: [
            m.text for m in reversed(messaging_services.message_store().page_before(chat.pk, before=None, limit=10))
        ]
    )
    assert stored == ["before the outage", "while you were away", "sent during the outage"]
    assert errors == []


def test_a_long_chat_loads_older_messages_and_refusals_are_shown(app_server, friends_with_chat, settings):
    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice)
    bob_wrote_a_long_chat(settings, bob, chat)
    errors: list[str] = []
    with chromium() as browser:
        page = alice_in_her_chat(browser, app_server.url, errors)
        expect(page.locator(".bubble")).to_have_count(30)

        page.locator(".history").evaluate("history => history.scrollTop = 0")
        expect(page.locator(".bubble")).to_have_count(45)
        expect(page.locator(".bubble").first).to_contain_text("old 0")

        # A report sent twice: the second answer (409) is shown where the form was.
        last = page.locator(".bubble.theirs").last
        last.locator("summary").click()
        last.get_by_role("button", name="Send report").click()
        expect(last.locator(".report-done")).to_contain_text("Thank you")
        page.reload()
        last = page.locator(".bubble.theirs").last
        last.locator("summary").click()
        last.get_by_role("button", name="Send report").click()
        expect(last.locator(".report-done")).to_contain_text("already reported")

    assert errors == []


@pytest.fixture
def carol_wrote_alice_last(friends_with_chat, make_user, befriend, settings):
    """alice and bob of `friends_with_chat`, who can log in; alice is carol's friend too, and carol wrote last."""
    from messaging import services as messaging_services

    alice, bob, chat = friends_with_chat
    carol = make_user(username="carol")
    carols_chat = befriend(alice, carol)
    for person in (alice, bob):
        with_a_password_the_server_knows(settings, person)
    messaging_services.send_message(sender=carol, chat_id=carols_chat.pk, text="c1", client_id="c1")
    return chat


def _alice_and_bob(browser, url: str, errors: list[str]):
    """alice's page, carol's chat on top of her list, and bob's page in his chat with her."""
    ann = browser.new_context().new_page()
    ann.on("pageerror", lambda error: errors.append(str(error)))
    ann.on("console", lambda message: message.type == "error" and errors.append(message.text))
    log_in(ann, url, "alice")
    ben = browser.new_context().new_page()
    log_in(ben, url, "bob")
    ben.locator(".chat-row").click()
    expect(ann.locator(".chat-row").first).to_contain_text("c1")
    return ann, ben


def _hold_answers(page, target_id: str) -> list:
    """From now on, the page's htmx requests for `target_id` are answered only when the test fulfils them:
    the list fills with (route, the server's answer) as each is asked for."""
    held = []
    page.route(
        "**/*",
        lambda route: (
            held.append((route, route.fetch()))
            if route.request.headers.get("hx-target") == target_id
            else route.continue_()
        ),
    )
    return held


def _bob_writes_to_the_top_of_alices_list(ann, ben, text: str) -> None:
    """bob sends `text`: alice's list shows it on top, and each of her two chats once."""
    ben.get_by_label("Message").fill(text)
    ben.get_by_label("Message").press("Enter")
    expect(ann.locator(".chat-row").first).to_contain_text(text)
    expect(ann.locator(".chat-row")).to_have_count(2)


def test_a_sidebar_fetched_before_a_message_but_landing_after_it_still_ends_with_that_chat_on_top(
    app_server, carol_wrote_alice_last
):
    """The socket sends only a row's text when it put that row at the top last; a list the page fetched
    meanwhile (as it does after a reconnect) may have put another row above it: the row goes up again."""
    errors: list[str] = []
    with chromium() as browser:
        ann, ben = _alice_and_bob(browser, app_server.url, errors)

        held = _hold_answers(ann, "chat-list")
        # As the page's catch-up fetches it (not awaited: its answer is held).
        ann.evaluate(
            "() => { htmx.ajax('GET', '/', {target: '#chat-list', select: '#chat-list', swap: 'outerHTML'}); }"
        )
        until_held(ann, held)
        _bob_writes_to_the_top_of_alices_list(ann, ben, "b1")
        route, rendered_before_b1 = held[0]
        route.fulfill(response=rendered_before_b1)
        expect(ann.locator(".chat-row").first).to_contain_text("c1")  # the older list, carol on top
        ann.unroute("**/*")

        _bob_writes_to_the_top_of_alices_list(ann, ben, "b2")

    assert errors == []


def test_a_chat_row_whose_link_is_loading_moves_up_with_the_new_message_rather_than_being_drawn_twice(
    app_server, carol_wrote_alice_last
):
    """A row that moves to the top is deleted and drawn anew, but the page leaves alone an element whose
    own request is in flight (its link loading the chat): the row then takes the new text and goes up, alone,
    and the link keeps the focus."""
    chat = carol_wrote_alice_last
    errors: list[str] = []
    with chromium() as browser:
        ann, ben = _alice_and_bob(browser, app_server.url, errors)
        bobs_row = ann.locator(f'.chat-row[data-chat-id="{chat.pk}"]')
        # And a copy of it above it, as a list fetched meanwhile may leave one: the row kept is the one clicked.
        bobs_row.evaluate("row => row.before(row.cloneNode(true))")
        held = _hold_answers(ann, "chat-pane")
        bobs_row.nth(1).locator("a").click()  # alice opens his chat: its page is on its way
        until_held(ann, held)

        _bob_writes_to_the_top_of_alices_list(ann, ben, "b1")
        link = ann.locator(".chat-row").first.locator("a")
        expect(link).to_have_class(re.compile(r"\bhtmx-request\b"))  # the row alice clicked, still loading
        expect(link).to_be_focused()

        route, chat_page = held[0]
        route.fulfill(response=chat_page)
        expect(ann.locator(f'#chat-pane[data-chat-id="{chat.pk}"]')).to_be_visible()  # the click's answer landed
        expect(link).not_to_have_class(re.compile(r"\bhtmx-request\b"))
        ann.unroute("**/*")

        _bob_writes_to_the_top_of_alices_list(ann, ben, "b2")

    assert errors == []
