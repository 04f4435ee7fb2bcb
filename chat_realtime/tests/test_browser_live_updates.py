"""What the socket changes on an open page, in a real browser: removals, typing, refusals, and
messages that arrive while the page is busy with something else."""

from __future__ import annotations

import pytest

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

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _bob_in_his_chat(browser, url: str):
    ben = browser.new_context().new_page()
    log_in(ben, url, "bob")
    ben.locator(".chat-row").click()
    expect(ben.get_by_label("Message")).to_be_visible()
    return ben


def test_a_message_a_moderator_removes_turns_into_message_removed_on_open_pages(
    app_server, friends_with_chat, make_user, settings
):
    from messaging import services as messaging_services

    alice, bob, chat = friends_with_chat
    moderator = make_user(username="mod", is_staff=True, is_superuser=True)
    with_a_password_the_server_knows(settings, alice, moderator)
    sent = messaging_services.send_message(sender=bob, chat_id=chat.pk, text="something nasty", client_id="b1")
    errors: list[str] = []
    with chromium() as browser:
        page = alice_in_her_chat(browser, app_server.url, errors)
        expect(page.locator(".bubble.theirs", has_text="something nasty")).to_have_count(1)

        admin = browser.new_context().new_page()
        admin.goto(app_server.url + "/admin/login/")
        admin.fill("#id_username", "mod")
        admin.fill("#id_password", PASSWORD)
        admin.click("input[type=submit]")
        admin.goto(f"{app_server.url}/admin/messaging/chat/messages/{sent.message.id}/")
        admin.locator("form[action$='/remove/'] [type=submit]").click()
        expect(admin.get_by_text("The message was removed for everyone.")).to_be_visible()

        bubble = page.locator(f"#msg-{sent.message.id}")
        expect(bubble).to_contain_text("message removed")
        expect(bubble).not_to_contain_text("something nasty")
        expect(page.locator(".chat-row .row-preview")).to_contain_text("message removed")
    assert errors == []


def test_a_message_that_arrives_while_older_ones_load_is_shown(app_server, friends_with_chat, settings):
    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice, bob)
    bob_wrote_a_long_chat(settings, bob, chat)
    errors: list[str] = []
    with chromium() as browser:
        ben = _bob_in_his_chat(browser, app_server.url)
        page = alice_in_her_chat(browser, app_server.url, errors)
        expect(page.locator(".bubble")).to_have_count(30)
        held = []
        page.route("**/messages/?before=*", lambda route: held.append(route))
        page.locator(".history").evaluate("history => history.scrollTop = 0")
        for _ in range(100):
            if held:
                break
            page.wait_for_timeout(50)
        assert held, "the older messages were never asked for"

        ben.get_by_label("Message").fill("live while loading")
        ben.get_by_label("Message").press("Enter")
        expect(page.locator(".chat-row .row-preview")).to_contain_text("live while loading")  # the frame is here
        held[0].continue_()

        expect(page.locator(".bubble")).to_have_count(46)
        expect(page.locator(".bubble").last).to_contain_text("live while loading")
        expect(page.locator(".bubble").first).to_contain_text("old 0")
    assert errors == []


def test_the_typing_line_fades_a_few_seconds_after_the_last_keystroke(app_server, friends_with_chat, settings):
    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice, bob)
    errors: list[str] = []
    with chromium() as browser:
        ann = alice_in_her_chat(browser, app_server.url, errors)
        ben = _bob_in_his_chat(browser, app_server.url)
        ben.get_by_label("Message").type("wait")

        expect(ann.locator(".typing")).to_contain_text("bob is typing")
        expect(ann.locator(".typing")).to_have_text("", timeout=6000)  # 3 s after the last typing frame
    assert errors == []


def test_a_refused_message_keeps_its_text_beside_the_reason(app_server, friends_with_chat, settings):
    from friends import services as friend_services

    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice)
    errors: list[str] = []
    with chromium() as browser:
        page = alice_in_her_chat(browser, app_server.url, errors)
        expect(page.get_by_label("Message")).to_be_visible()
        in_a_thread(lambda: friend_services.unfriend(user=bob, friend_id=alice.pk))

        page.get_by_label("Message").fill("hello there")
        page.get_by_label("Message").press("Enter")

        expect(page.locator(".bubble.failed .status")).to_contain_text("no longer friends")
        expect(page.locator(".bubble.failed .text")).to_have_text("hello there")
    assert errors == []


def _texts(page) -> list[str]:
    return [text.strip() for text in page.locator("#chat-pane .bubble .text").all_inner_texts()]


def test_a_message_sent_while_the_chat_is_opening_is_shown_not_lost(app_server, friends_with_chat, settings):
    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice, bob)
    errors: list[str] = []
    with chromium() as browser:
        ben = _bob_in_his_chat(browser, app_server.url)
        ann = browser.new_context().new_page()
        ann.on("pageerror", lambda error: errors.append(str(error)))
        log_in(ann, app_server.url, "alice")
        held = []
        # The pane is drawn by the server now; its answer is held on the way, and bob writes meanwhile.
        ann.route(
            "**/*",
            lambda route: (
                held.append((route, route.fetch()))
                if route.request.headers.get("hx-target") == "chat-pane"
                else route.continue_()
            ),
        )
        ann.locator(".chat-row").click()
        for _ in range(100):
            if held:
                break
            ann.wait_for_timeout(50)
        assert held, "the chat was never asked for"
        ben.get_by_label("Message").fill("are you there?")
        ben.get_by_label("Message").press("Enter")
        expect(ben.locator(".bubble.mine:not(.pending)")).to_have_count(1)

        route, response = held[0]
        route.fulfill(response=response)

        expect(ann.locator(".bubble.theirs", has_text="are you there?")).to_have_count(1)
    assert errors == []


def test_an_empty_chat_catches_up_after_a_reconnect(app_server, friends_with_chat, settings):
    from messaging import services as messaging_services

    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice)
    errors: list[str] = []
    with chromium() as browser:
        page = alice_in_her_chat(browser, app_server.url, errors)
        expect(page.get_by_label("Message")).to_be_visible()

        app_server.stop()
        in_a_thread(
            lambda: messaging_services.send_message(sender=bob, chat_id=chat.pk, text="first ever", client_id="b1")
        )
        app_server.start()

        expect(page.locator(".bubble.theirs", has_text="first ever")).to_have_count(1, timeout=20000)
    assert errors == []


def test_after_a_reconnect_missed_messages_take_their_place_before_unsent_and_newer_ones(
    app_server, friends_with_chat, settings
):
    from messaging import services as messaging_services

    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice, bob)
    in_a_thread(lambda: messaging_services.send_message(sender=bob, chat_id=chat.pk, text="m0", client_id="b0"))
    errors: list[str] = []
    with chromium() as browser:
        page = alice_in_her_chat(browser, app_server.url, errors)
        expect(page.locator(".bubble.theirs")).to_have_count(1)

        app_server.stop()
        in_a_thread(lambda: messaging_services.send_message(sender=bob, chat_id=chat.pk, text="missed", client_id="b1"))
        # alice writes meanwhile: it cannot go out now, and is stored once the page is back.
        page.get_by_label("Message").fill("mine, unsent")
        page.get_by_label("Message").press("Enter")
        expect(page.locator(".bubble.failed")).to_be_visible()
        app_server.start()
        expect(page.locator(".bubble.mine:not(.pending):not(.failed)")).to_have_count(1, timeout=20000)
        ben = _bob_in_his_chat(browser, app_server.url)
        ben.get_by_label("Message").fill("live")
        ben.get_by_label("Message").press("Enter")

        expect(page.locator(".bubble")).to_have_count(4)
        live = _texts(page)
        page.reload()
        expect(page.locator(".bubble")).to_have_count(4)
        assert live == _texts(page) == ["m0", "missed", "mine, unsent", "live"]
    assert errors == []


def test_seen_shows_only_while_the_other_has_read_the_newest_message(app_server, friends_with_chat, settings):
    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice, bob)
    errors: list[str] = []
    with chromium() as browser:
        ann = alice_in_her_chat(browser, app_server.url, errors)
        ben = _bob_in_his_chat(browser, app_server.url)
        ann.get_by_label("Message").fill("m1")
        ann.get_by_label("Message").press("Enter")
        expect(ben.locator(".bubble.theirs", has_text="m1")).to_have_count(1)
        expect(ann.locator(".read-state")).to_have_text("Seen")
        expect(ann.locator(".read-state")).to_be_visible()

        ben.goto(app_server.url + "/")  # bob leaves the chat
        expect(ben.get_by_text("Pick a chat")).to_be_visible()
        ann.get_by_label("Message").fill("m2")
        ann.get_by_label("Message").press("Enter")
        expect(ben.locator(".chat-row .unread")).to_have_text("1")

        expect(ann.locator(".read-state")).to_be_hidden()
        ben.locator(".chat-row").click()  # bob reads m2
        expect(ann.locator(".read-state")).to_be_visible()
    assert errors == []


def test_after_a_long_outage_the_page_fetches_every_message_it_missed_in_order(app_server, friends_with_chat, settings):
    from messaging import services as messaging_services

    alice, bob, chat = friends_with_chat
    with_a_password_the_server_knows(settings, alice, bob)
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message": None}
    in_a_thread(lambda: messaging_services.send_message(sender=bob, chat_id=chat.pk, text="m0", client_id="b0"))
    errors: list[str] = []
    with chromium() as browser:
        page = alice_in_her_chat(browser, app_server.url, errors)
        expect(page.locator(".bubble.theirs")).to_have_count(1)
        held = []
        page.route("**/messages/?after=*", lambda route: held.append(route))

        app_server.stop()
        # More than a join's answer brings (100): the page fetches the rest itself.
        in_a_thread(
            lambda: [
                messaging_services.send_message(sender=bob, chat_id=chat.pk, text=f"missed {n}", client_id=f"m{n}")
                for n in range(130)
            ]
        )
        app_server.start()
        expect(page.locator(".bubble")).to_have_count(101, timeout=20000)
        for _ in range(100):
            if held:
                break
            page.wait_for_timeout(50)
        assert held, "the rest was never asked for"
        ben = _bob_in_his_chat(browser, app_server.url)
        ben.get_by_label("Message").fill("live")  # arrives while the rest is on its way
        ben.get_by_label("Message").press("Enter")
        expect(page.locator(".bubble").last).to_contain_text("live")
        held[0].continue_()

        expect(page.locator(".bubble")).to_have_count(132)
        assert _texts(page) == ["m0", *(f"missed {n}" for n in range(130)), "live"]
    assert errors == []


def _held(page, pattern: str) -> list:
    """From now on, the page's requests to `pattern` are answered only when the test fulfils them: the list
    fills with (route, the server's answer) as each is asked for."""
    held: list = []
    page.route(pattern, lambda route: held.append((route, route.fetch())))
    return held


def _bob_through_the_api(app_server, bob, method: str, path: str) -> None:
    """Bob acts through the worker (its socket news reaches alice's page, on any channel layer)."""
    import urllib.request

    from rest_framework_simplejwt.tokens import AccessToken

    request = urllib.request.Request(
        app_server.url + path, method=method, headers={"Authorization": f"Bearer {AccessToken.for_user(bob)}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status < 300


def _alice_asks_bob_and_bob_accepts_before_her_answer_lands(app_server, alice, bob, browser):
    page = browser.new_context().new_page()
    log_in(page, app_server.url, "alice")
    page.goto(app_server.url + "/friends/?q=bob")
    held = _held(page, "**/friends/*/request")
    page.get_by_role("button", name="Add friend").click()
    until_held(page, held)
    _bob_through_the_api(app_server, bob, "POST", f"/api/friends/requests/{alice.pk}/accept")
    page.wait_for_timeout(500)  # the news arrives, and is set aside: the button waits for its answer
    return page, held[0]


def test_a_friend_button_whose_answer_lands_after_newer_news_shows_the_newer_state(
    app_server, user, make_user, settings
):
    """Alice asks bob; her answer ("Request sent") is slow, and bob accepts before it lands: the news of it
    reached her page while her request was on its way, so the page asks for the button afresh after."""
    bob = make_user(username="bob")
    with_a_password_the_server_knows(settings, user)
    errors: list[str] = []
    with chromium() as browser:
        page, (route, answered_before_bob_accepted) = _alice_asks_bob_and_bob_accepts_before_her_answer_lands(
            app_server, user, bob, browser
        )
        page.on("pageerror", lambda error: errors.append(str(error)))
        route.fulfill(response=answered_before_bob_accepted)

        button = page.locator("#search-results .friend-action")
        expect(button).to_have_attribute("data-state", "friends")
        expect(button).to_contain_text("Friends")
    assert errors == []


def test_a_friend_button_asked_for_afresh_keeps_news_that_came_while_it_was_asked_for(
    app_server, user, make_user, settings
):
    alice, bob = user, make_user(username="bob")
    with_a_password_the_server_knows(settings, alice)
    with chromium() as browser:
        page, (route, answered_before_bob_accepted) = _alice_asks_bob_and_bob_accepts_before_her_answer_lands(
            app_server, alice, bob, browser
        )
        refreshes = _held(page, "**/friends/*/action")
        route.fulfill(response=answered_before_bob_accepted)
        until_held(page, refreshes)
        # Bob unfriends her while her page asks for the button: the news is drawn, and the answer, older, is not.
        _bob_through_the_api(app_server, bob, "DELETE", f"/api/friends/{alice.pk}")
        button = page.locator("#search-results .friend-action")
        expect(button).to_have_attribute("data-state", "none")
        refresh, answered_while_friends = refreshes[0]
        refresh.fulfill(response=answered_while_friends)
        page.wait_for_timeout(500)

        expect(button).to_have_attribute("data-state", "none")
