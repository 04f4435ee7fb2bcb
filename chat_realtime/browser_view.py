"""Whom a browser's socket renders its frames for, and what rendering them keeps for the socket's life."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from accounts.models import User


@dataclass
class BrowserView:
    """The reader of one browser socket (`/ws/?format=html`) and what its page shows, as its frames drew it.

    The renderers of each app (chat_realtime.browser_frames) read and keep it up to date, so that the
    frames of every message need no database or Redis call:
    - `peers`: chat id -> the other person of a one-to-one chat of the reader, looked up the first time a
      frame names the chat (who is in such a chat never changes); a friendship frame forgets them all.
    - `online`: the ids of the friends the page shows online, from the presence frames this socket
      delivered (`online_friends` on connecting, then `user_online` / `user_offline`): the chat rows it
      redraws agree with its dots.
    """

    user: User
    peers: dict[int, User] = field(default_factory=dict)
    online: set[int] = field(default_factory=set)


Renderer = Callable[[dict, BrowserView], Awaitable[str]]


def on_the_loop(render: Callable[[dict, BrowserView], str]) -> Renderer:
    """A renderer that needs nothing but its frame and view (no database), as the registry's coroutine."""

    async def rendered(frame: dict, view: BrowserView) -> str:
        return render(frame, view)

    return rendered
