"""The yardstick: a minimal raw ASGI websocket relay, no framework, no storage.

Clients connect to /ws/?room=NAME; every text frame is forwarded to the other
connections of that room. Served by granian in every benchmark run, so results
can be given as a ratio to it: the machines here vary too much from day to day
for absolute rates to mean much.

    granian --interface asgi --loop uvloop bench.yardstick:app
"""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import parse_qs

rooms: dict[str, set] = defaultdict(set)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"yardstick"})
        return
    room = parse_qs(scope.get("query_string", b"").decode()).get("room", ["lobby"])[0]
    members = rooms[room]
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
            members.add(send)
        elif message["type"] == "websocket.receive":
            text = message.get("text")
            for peer in list(members):
                if peer is not send:
                    await peer({"type": "websocket.send", "text": text})
        elif message["type"] == "websocket.disconnect":
            members.discard(send)
            return
