"""Two people use the app in a real browser (Debian's Chromium, driven by Playwright).

The app runs in a real daphne process on the test database, so everything the
browser does crosses real HTTP and a real websocket. Set SAVE_SCREENSHOTS=1 to
refresh the screenshots in docs/screenshots/.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "a-long-enough-secret-42"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - requirements-dev installs it
    sync_playwright = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def live_server_url(db, tmp_path):
    """daphne serving the app on the test database, for as long as the test runs."""
    if sync_playwright is None or not CHROMIUM.exists():
        pytest.skip(f"browser tests did not run: Playwright or {CHROMIUM} is missing (.ci/run installs both)")
    port = _free_port()
    env = {
        **os.environ,
        "DEBUG": "true",
        "VAR_DIR": str(tmp_path),
        "LOGIN_RATE_LIMIT": "off",
        "REGISTER_RATE_LIMIT": "off",
        "PASSWORD_RESET_RATE_LIMIT": "off",
        "REDIS_KEY_PREFIX": "test:",
        "CACHE_KEY_PREFIX": "test-browser",
    }
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        env["SQLITE_PATH"] = str(database["NAME"])
    else:
        env["DB_NAME"] = str(database["NAME"])
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chat_realtime.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(server.stderr.read().decode()) from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _launch(playwright):
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
    )


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

    with sync_playwright() as playwright:
        browser = _launch(playwright)
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

        # Ben types: Ann sees it.
        ben.get_by_label("Message").type("wait")
        expect(ann.locator(".typing")).to_contain_text("ben is typing")
        ben.get_by_label("Message").fill("")

        # An image, with its preview and a remove button before sending.
        ann.locator("#composer input[type=file]").set_input_files(str(picture))
        expect(ann.locator(".attachment-preview img")).to_be_visible()
        ann.get_by_role("button", name="Send").click()
        expect(ben.locator(".bubble.theirs img")).to_be_visible()
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
        browser.close()

    assert errors == []
