"""What the browser tests share: Debian's Chromium driven by Playwright, people logged in, and database
work done beside Playwright's event loop. The `app_server` fixture (conftest.py) serves the app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "a-long-enough-secret-42"

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - requirements-dev installs it
    expect = sync_playwright = None


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
    )


def with_a_password_the_server_knows(settings, *people) -> None:
    """The server process hashes as production does; the tests' fast hasher is unknown to it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    for person in people:
        person.set_password(PASSWORD)
        person.save(update_fields=["password"])


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium, headless, for one test; closed after it."""
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page, url: str, username: str) -> None:
    page.goto(url + "/accounts/login/")
    page.get_by_label("Username, email or phone").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Pick a chat")).to_be_visible()


def alice_in_her_chat(browser, url: str, errors: list[str]):
    page = browser.new_context().new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, url, "alice")
    page.locator(".chat-row").click()
    return page


def in_a_thread(function):
    """Run database work beside Playwright's event loop (Django refuses it on that thread)."""
    import threading

    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(value=function()))
    worker.start()
    worker.join(timeout=30)
    return outcome.get("value")


def bob_wrote_a_long_chat(settings, bob, chat, count: int = 45) -> None:
    """`count` messages from bob ("old 0" first), more than the 30 a page shows."""
    from messaging import services as messaging_services

    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message": None}
    for n in range(count):
        messaging_services.send_message(sender=bob, chat_id=chat.pk, text=f"old {n}", client_id=f"o{n}")


def until_held(page, held: list) -> None:
    """Wait until a request the page was made to hold back (`page.route`) is in `held`."""
    for _ in range(50):
        if held:
            return
        page.wait_for_timeout(100)
    raise AssertionError("the request was not held")
