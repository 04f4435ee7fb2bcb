"""The one websocket endpoint, /ws/.

It translates frames to calls and events to frames, nothing else: each frame
type is handled by a small async function (see `FRAME_HANDLERS`), and events
that services publish to a group reach the client through `deliver`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import InterfaceError, OperationalError

from accounts.events import session_group, user_group
from accounts.sessions import stored_expiry
from chat_realtime.browser_frames import render_for_browser
from chat_realtime.browser_view import BrowserView
from chat_realtime.channel_layer import Mailbox, MailboxOverflow
from chat_realtime.errors import DATABASE_DOWN, ApplicationError, RateLimited
from messaging import ws_handlers as messaging_frames
from messaging.services import WriteGrant
from presence import events as presence_events
from presence import services as presence
from presence.heartbeats import heartbeats

logger = logging.getLogger(__name__)

# Close codes of our protocol (4000-4999 are the application's own).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_TOO_FAR_BEHIND = 1013  # "try again later": more events waited for this socket than its mailbox holds
# A session whose expiry could not be read (the database away) is asked about again after this.
SESSION_RECHECK_SECONDS = 30

Frame = dict[str, Any]
FrameHandler = Callable[["RealtimeConsumer", Frame], Awaitable[Frame | None]]


async def ping(connection: RealtimeConsumer, frame: Frame) -> Frame:
    return {"type": "pong"}


# Frame type -> handler. Apps add theirs here, so every entry point is listed in one place.
FRAME_HANDLERS: dict[str, FrameHandler] = {
    "ping": ping,
    **messaging_frames.FRAME_HANDLERS,
}


def error_frame(code: str, message: str, **extra: Any) -> Frame:
    return {"type": "error", "code": code, "message": message, **extra}


def read_frame(text: str) -> Any:
    """The JSON value of a frame's text; ValueError (or RecursionError) if it is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # What orjson refuses and the json module reads (NaN, a lone surrogate's escape, very deep nesting) is
        # read as before, and turned down by the frame's checks. orjson's one difference in what it accepts,
        # an integer past 64 bits read as a float, is no frame's valid value either way.
        return json.loads(text)


def encode_frame(frame: Frame) -> str:
    try:
        return orjson.dumps(frame).decode()
    except orjson.JSONEncodeError:
        # Text orjson refuses (a lone surrogate, say) still goes out, escaped, rather than not at all.
        return json.dumps(frame, separators=(",", ":"))


class RealtimeConsumer(AsyncWebsocketConsumer):
    user_id: int | None = None
    wants_html = False
    ended = False
    # When the credentials the socket opened with (a token, a login session) run out, as far as it knows.
    credentials_expire_at: float | None = None
    _expiry_check: asyncio.TimerHandle | None = None
    # Presence as of Redis's time (presence.services): the opening list's, and each user's last shown since.
    presence_as_of = 0
    presence_shown_at: dict[int, int] | None = None

    async def __call__(self, scope, receive, send) -> None:
        """Channels' consumer loop, with one Mailbox in place of its wait on two queues per message.

        The stock loop starts a task and a multi-future wait for every frame and
        every layer message; here the websocket and the layer feed one mailbox
        (the layer puts this process's group messages straight in), and frames
        and messages are still handled one at a time, in arrival order.
        """
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        mailbox = self.mailbox = Mailbox()
        self.channel_layer.attach(self.channel_name, mailbox)
        feeders = [
            asyncio.create_task(_feed(mailbox, receive, one_at_a_time=True)),
            asyncio.create_task(_feed(mailbox, lambda: self.channel_layer.receive(self.channel_name))),
        ]
        try:
            while True:
                message, handled = await mailbox.get()
                try:
                    await self.dispatch(message)
                finally:
                    if handled is not None and not handled.done():
                        handled.set_result(None)
        except StopConsumer:
            pass
        except MailboxOverflow:
            # Closed rather than left to miss events: the client reconnects and fetches what it missed.
            logger.warning("socket of user %s fell too far behind; closed with %s", self.user_id, CLOSE_TOO_FAR_BEHIND)
            await self.end(CLOSE_TOO_FAR_BEHIND)
        finally:
            self.channel_layer.detach(self.channel_name)
            heartbeats().discard(self.channel_name)  # however the consumer ended
            if self._expiry_check is not None:
                self._expiry_check.cancel()
            for feeder in feeders:
                feeder.cancel()
            await asyncio.gather(*feeders, return_exceptions=True)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept first: a close code only reaches the client on an open socket.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # The session middleware hands over a lazy wrapper; services get the user itself.
        self.user = getattr(user, "_wrapped", user)
        self.user_id = user.pk
        # Browsers ask for HTML fragments (htmx swaps them in); API clients get JSON.
        self.wants_html = parse_qs(self.scope.get("query_string", b"").decode("latin1")).get("format") == ["html"]
        self.browser_view = BrowserView(self.user) if self.wants_html else None
        self.groups_joined: set[str] = set()
        # chat id -> WriteGrant of this user's last send there (messaging.services).
        self.write_grants: dict[int, WriteGrant] = {}
        await self.join_group(user_group(user.pk))
        if self.scope.get("session_key"):
            await self.join_group(session_group(self.scope["session_key"]))
        await self.accept()
        online_friends = await database_sync_to_async(presence.connect)(
            user_id=self.user_id, connection_id=self.channel_name
        )
        self.presence_as_of = online_friends.as_of
        await self.send_frame(presence_events.online_friends_frame(online_friends.user_ids))
        heartbeats().add(self.channel_name, self.user_id)
        expiries = [self.scope.get(name) for name in ("token_expires_at", "session_expires_at")]
        if any(expiry is not None for expiry in expiries):
            self._check_credentials_at(min(expiry for expiry in expiries if expiry is not None))

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch first closes stale database connections through a thread
        # hop, on every frame. Not needed here: all our database work goes through
        # database_sync_to_async, which closes them in the database thread around each call.
        try:
            handler = getattr(self, get_handler_name(message), None)
            if handler is None:
                raise ValueError(f"No handler for message type {message['type']}")
            await handler(message)
        except Exception:
            # The consumer is going down without a websocket.disconnect: let go of presence here.
            await self.release()
            raise

    async def disconnect(self, code: int) -> None:
        await self.release()

    async def end(self, code: int) -> None:
        """Close the socket, released first: whatever is queued behind this is ignored rather than sent after
        the close, a second end included."""
        if self.ended:
            return
        self.ended = True
        await self.release()
        await self.close(code=code)

    async def release(self) -> None:
        """Leave groups and presence; safe to call twice."""
        if self.user_id is None:
            return
        user_id, self.user_id = self.user_id, None
        heartbeats().discard(self.channel_name)
        try:
            for group in list(self.groups_joined):
                try:
                    await self.leave_group(group)
                except Exception:
                    # The layer's Redis away, say: each group is left all the same, and presence let go of.
                    logger.warning("socket of user %s could not leave %s", user_id, group, exc_info=True)
        finally:
            await database_sync_to_async(presence.disconnect)(user_id=user_id, connection_id=self.channel_name)

    def _check_credentials_at(self, when: float) -> None:
        """Have the mailbox hand this consumer a `credentials.check` at `when` (a time.time()): a socket that
        neither sends nor receives anything closes when its credentials run out all the same."""
        if self._expiry_check is not None:
            self._expiry_check.cancel()
        self.credentials_expire_at = when
        self._expiry_check = asyncio.get_running_loop().call_later(
            max(0.0, when - time.time()), self.mailbox.put_nowait, {"type": "credentials.check"}
        )

    def credentials_may_have_expired(self) -> bool:
        """The clock is past the credentials' expiry as last known (`credentials_expired` tells for sure)."""
        return self.credentials_expire_at is not None and time.time() >= self.credentials_expire_at

    async def credentials_expired(self) -> bool:
        """Whether the token or the login session this socket opened with has run out.

        A session is renewed each time it is saved: one renewed since is followed to its new expiry.
        """
        if not self.credentials_may_have_expired():
            return False
        session_key = self.scope.get("session_key")
        if not session_key:
            return True  # a token, which nothing renews
        try:
            renewed = await database_sync_to_async(stored_expiry)(session_key)
        except (OperationalError, InterfaceError):
            logger.warning("could not read the session of user %s's socket; asking again soon", self.user_id)
            self._check_credentials_at(time.time() + SESSION_RECHECK_SECONDS)
            return False
        if renewed is None or renewed.timestamp() <= time.time():
            return True
        self._check_credentials_at(renewed.timestamp())
        return False

    async def credentials_check(self, message: dict[str, Any]) -> None:
        if self.user_id is None or self.credentials_expire_at is None:
            return
        if not self.credentials_may_have_expired():
            # Early by the clock this reads (uvloop's timers round to the millisecond; a clock stepped back).
            self._check_credentials_at(self.credentials_expire_at)
        elif await self.credentials_expired():
            await self.end(CLOSE_UNAUTHENTICATED)

    async def session_ended(self, event: dict[str, Any]) -> None:
        """The user was deactivated or changed their password: every open socket closes.

        Released first, so frames already queued behind this event are ignored rather than served.
        """
        await self.end(CLOSE_UNAUTHENTICATED)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user_id is None:
            return
        if self.credentials_may_have_expired() and await self.credentials_expired():
            await self.end(CLOSE_UNAUTHENTICATED)
            return
        if text_data is None:
            await self.send_frame(error_frame("bad_request", "Send JSON text frames, not binary ones."))
            return
        if len(text_data) > settings.WEBSOCKET_MAX_FRAME_CHARS:
            await self.end(CLOSE_MESSAGE_TOO_BIG)
            return
        try:
            frame = read_frame(text_data)
        except (ValueError, RecursionError):
            await self.send_frame(error_frame("bad_request", "A frame must be a JSON object."))
            return
        if not isinstance(frame, dict):
            await self.send_frame(error_frame("bad_request", "A frame must be a JSON object."))
            return
        echo = {"client_id": frame["client_id"]} if isinstance(frame.get("client_id"), str) else {}
        if not isinstance(frame.get("type"), str):
            message = 'A frame must be a JSON object with a string "type".'
            await self.send_frame(error_frame("bad_request", message, **echo))
            return
        handler = FRAME_HANDLERS.get(frame["type"])
        if handler is None:
            await self.send_frame(error_frame("unknown_type", f"Unknown frame type {frame['type'][:50]!r}.", **echo))
            return
        try:
            reply = await handler(self, frame)
        except ApplicationError as error:
            fields = {"fields": error.fields} if error.fields else {}
            # A flood's refusal says when to try again, as the API's Retry-After does.
            wait = {"retry_after": error.retry_after} if isinstance(error, RateLimited) else {}
            await self.send_frame(error_frame(error.code, error.message, **fields, **wait, **echo))
            return
        except (OperationalError, InterfaceError):
            logger.exception("websocket frame %r failed: database unavailable", frame["type"])
            await self.send_frame(error_frame("database_unavailable", DATABASE_DOWN, **echo))
            return
        except Exception:
            logger.exception("websocket frame %r failed", frame["type"])
            await self.send_frame(error_frame("server_error", "Something went wrong on our side.", **echo))
            return
        if reply is not None:
            await self.send_frame(reply)

    async def send_frame(self, frame: Frame) -> None:
        if self.wants_html:
            try:
                html = await render_for_browser(frame, self.browser_view)
            except Exception:
                # One fragment that failed to render must not take the socket down.
                logger.exception("could not render %r for the browser", frame.get("type"))
                return
            if html:
                await self.base_send({"type": "websocket.send", "text": html})
            return
        await self.base_send({"type": "websocket.send", "text": encode_frame(frame)})

    async def deliver(self, event: dict[str, Any]) -> None:
        """A group event published by a service: forward its frame (its `on_screen` one if this connection
        joined that chat), unless it excludes this connection (chat_realtime.realtime)."""
        if self.user_id is None:
            return  # released: the socket is closing
        if event.get("exclude_channel") == self.channel_name or event.get("exclude_user_id") == self.user_id:
            return
        on_screen = event.get("on_screen")
        frame = on_screen[1] if on_screen is not None and on_screen[0] in self.groups_joined else event["frame"]
        if frame is None:
            return
        if (presence_at := event.get("presence_at")) is not None and not self.presence_is_news(
            frame["user_id"], presence_at
        ):
            return
        if frame.get("type") == "friendship":
            # Who may write to whom may have changed: the next send checks again.
            self.write_grants.clear()
        if self.credentials_may_have_expired() and await self.credentials_expired():
            await self.end(CLOSE_UNAUTHENTICATED)
            return
        await self.send_frame(frame)

    def presence_is_news(self, user_id: int, at: int) -> bool:
        """Whether a presence frame of `user_id` as of `at` is newer than what this socket showed of them.
        Two workers' announcements of one user can arrive in either order; the older one would undo the
        newer."""
        shown = self.presence_shown_at
        if shown is None:
            shown = self.presence_shown_at = {}  # most sockets never get one: no dict for them
        if at < shown.get(user_id, self.presence_as_of):
            return False
        shown[user_id] = at
        return True

    async def join_group(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def leave_group(self, group: str) -> None:
        if group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups_joined.discard(group)


async def _feed(mailbox: Mailbox, source: Callable[[], Awaitable[dict]], *, one_at_a_time: bool = False) -> None:
    """Move what `source` gives into `mailbox` until cancelled; `one_at_a_time` waits for each to be handled
    (the websocket's frames: the client's next frame is read only then)."""
    try:
        while True:
            message = await source()
            if one_at_a_time:
                await mailbox.put_and_wait(message)
            else:
                mailbox.put_nowait(message)
    except asyncio.CancelledError:
        raise
    except BaseException as error:
        mailbox.fail(error)
