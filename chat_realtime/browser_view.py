"""Whom a browser's socket renders its frames for, and what rendering them keeps for the socket's life."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from accounts.models import User

# How long a socket shows a chat's person as it looked them up: a new name reaches the rows it redraws
# within this time, a new picture the rows it draws whole (the page itself at its next load).
PEER_SECONDS = 60


@dataclass
class BrowserView:
    """The reader of one browser socket (`/ws/?format=html`) and what its page shows, as its frames drew it.

    The renderers of each app (chat_realtime.browser_frames) read and keep it up to date, so that the
    frames of every message need no database or Redis call:
    - `peers`: chat id -> the other person of a one-to-one chat of the reader (who is in such a chat never
      changes) and when they were looked up; `peer` answers them for PEER_SECONDS, and a friendship
      frame forgets them all.
    - `online`: the ids of the friends the page shows online, from the presence frames this socket
      delivered (`online_friends` on connecting, then `user_online` / `user_offline`): the chat rows it
      redraws agree with its dots.
    - `rows`: chat id -> the last message (id and preview) of the sidebar row this socket drew last
      for it: an update that shows the same (a read) redraws only the row's unread badge.
    - `top`: the chat whose row this socket put at the top of the sidebar last (None if another row may
      have gone there since): its next message redraws the row's text in place instead of the whole row.
    """

    user: User
    peers: dict[int, tuple[User, float]] = field(default_factory=dict)
    online: set[int] = field(default_factory=set)
    rows: dict[int, tuple[str, str]] = field(default_factory=dict)
    top: int | None = None

    def peer(self, chat_id: int) -> User | None:
        """The chat's other person as looked up less than PEER_SECONDS ago; None if they must be looked up."""
        known = self.peers.get(chat_id)
        if known is None or time.monotonic() - known[1] >= PEER_SECONDS:
            return None
        return known[0]

    def remember_peer(self, chat_id: int, person: User) -> None:
        self.peers[chat_id] = (person, time.monotonic())


Renderer = Callable[[dict, BrowserView], Awaitable[str]]


def on_the_loop(render: Callable[[dict, BrowserView], str]) -> Renderer:
    """A renderer that needs nothing but its frame and view (no database), as the registry's coroutine."""

    async def rendered(frame: dict, view: BrowserView) -> str:
        return render(frame, view)

    return rendered
