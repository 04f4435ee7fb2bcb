"""Frames for browsers: the same events the API clients get as JSON, as HTML fragments.

A browser's socket (`/ws/?format=html`) receives, for each frame, fragments
with `hx-swap-oob` that htmx's ws extension swaps into the page. Each app
renders its own frames with the partials its pages use; frames without a
renderer (pong, joined_chat, ...) send nothing. Each socket has a BrowserView,
which the renderers read and keep in step with what its page shows.

Renderers are coroutines: those of a message's frames render on the event loop,
with what the frame and the view hold; the others ask the database in its
thread (`database_sync_to_async`). A message's fragments once took a thread
hop, two queries and a Redis call each, behind the send queue's batches in the
one database thread (docs/benchmarks.md, eighth profile).
"""

from __future__ import annotations

from chat_realtime.browser_view import BrowserView, Renderer
from friends.browser import RENDERERS as FRIENDS
from messaging.browser import RENDERERS as MESSAGING
from presence.browser import RENDERERS as PRESENCE

RENDERERS: dict[str, Renderer] = {**MESSAGING, **FRIENDS, **PRESENCE}


async def render_for_browser(frame: dict, view: BrowserView) -> str:
    renderer = RENDERERS.get(frame.get("type", ""))
    return await renderer(frame, view) if renderer else ""
