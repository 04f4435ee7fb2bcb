"""Frames for browsers: the same events the API clients get as JSON, as HTML fragments.

A browser's socket (`/ws/?format=html`) receives, for each frame, fragments
with `hx-swap-oob` that htmx's ws extension swaps into the page. Each app
renders its own frames with the partials its pages use; frames without a
renderer (pong, joined_chat, ...) send nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from chat_realtime.browser_view import BrowserView
from friends.browser import RENDERERS as FRIENDS
from messaging.browser import RENDERERS as MESSAGING
from presence.browser import RENDERERS as PRESENCE

Renderer = Callable[[dict, BrowserView], str]

RENDERERS: dict[str, Renderer] = {**MESSAGING, **FRIENDS, **PRESENCE}


def render_for_browser(frame: dict, view: BrowserView) -> str:
    renderer = RENDERERS.get(frame.get("type", ""))
    return renderer(frame, view) if renderer else ""
