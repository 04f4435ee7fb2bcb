"""Websocket test clients: Channels' WebsocketCommunicator on the real ASGI application."""

from __future__ import annotations

from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from chat_realtime.asgi import application

# Frames that answer the client's own frame; anything else is an event that may arrive in between.
REPLIES = {"message_ack", "error", "pong", "joined_chat", "left_chat"}


async def open_socket(user, *, app=None) -> WebsocketCommunicator:
    """A connected API client of `user`; its greeting (`online_friends`) is kept as `.greeting`."""
    socket = WebsocketCommunicator(app or application, f"/ws/?token={AccessToken.for_user(user)}")
    connected, _ = await socket.connect()
    assert connected
    socket.greeting = await socket.receive_json_from(timeout=3)
    assert socket.greeting["type"] == "online_friends"
    return socket


async def drain(socket: WebsocketCommunicator, quiet: float = 0.3) -> list[dict]:
    """Every frame that arrives until the socket stays quiet for `quiet` seconds."""
    frames = []
    while not await socket.receive_nothing(timeout=quiet):
        frames.append(await socket.receive_json_from())
    return frames


def of_type(frames: list[dict], frame_type: str) -> list[dict]:
    return [f for f in frames if f["type"] == frame_type]


async def ask(socket: WebsocketCommunicator, frame: dict) -> dict:
    """Send a frame and return its answer, passing over events pushed meanwhile."""
    await socket.send_json_to(frame)
    while True:
        reply = await socket.receive_json_from(timeout=3)
        if reply["type"] in REPLIES:
            return reply


async def close(*sockets: WebsocketCommunicator) -> None:
    for socket in sockets:
        await socket.disconnect()
