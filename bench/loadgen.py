"""The load generator: the public protocol only (HTTP API and /ws/), closed-loop pairs.

    python -m bench.loadgen chat --target app --base http://127.0.0.1:8000 --pairs 20 --seconds 10
    python -m bench.loadgen chat --target yardstick --base http://127.0.0.1:8001 --pairs 20 --seconds 10

In each pair, A sends and waits until B has it, then B sends and waits until A
has it, and so on. Prints one JSON line: delivered messages/s and latency
percentiles; against the app it then counts, through the API, that every
message was stored exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
import urllib.request
import uuid

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None
from websockets.asyncio.client import connect

PASSWORD = "bench-password-2026"


def api(base: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


def make_pairs(base: str, count: int) -> list[dict]:
    """Register 2 x count people and befriend each pair, through the API."""
    run = uuid.uuid4().hex[:6]
    pairs = []
    for n in range(count):
        people = []
        for side in "ab":
            name = f"b{run}{n}{side}"
            phone = f"+1{abs(hash(name)) % 10**10:010d}"
            people.append(
                api(
                    base,
                    "POST",
                    "/api/auth/register",
                    {"username": name, "email": f"{name}@bench.example", "phone_number": phone, "password": PASSWORD},
                )
            )
        a, b = people
        api(base, "POST", "/api/friends/requests", {"user_id": b["user"]["id"]}, a["access"])
        accepted = api(base, "POST", f"/api/friends/requests/{a['user']['id']}/accept", {}, b["access"])
        pairs.append({"a": a["access"], "b": b["access"], "chat_id": accepted["chat_id"]})
    return pairs


class AppSide:
    """One person's socket on the app: sends send_message, recognises the peer's new_message."""

    def __init__(self, ws_base: str, token: str, chat_id: int) -> None:
        self.url = f"{ws_base}/ws/?token={token}"
        self.chat_id = chat_id

    async def open(self):
        self.socket = await connect(self.url, max_size=2**20, compression=None)
        await self.socket.recv()  # online_friends
        await self.socket.send(json.dumps({"type": "join_chat", "chat_id": self.chat_id}))
        while json.loads(await self.socket.recv())["type"] != "joined_chat":
            pass

    async def send(self, n: int) -> None:
        frame = {"type": "send_message", "chat_id": self.chat_id, "text": f"message {n}", "client_id": f"c{n}"}
        await self.socket.send(json.dumps(frame))

    async def received(self, n: int) -> None:
        expected = f"message {n}"
        while True:
            frame = json.loads(await self.socket.recv())
            if frame["type"] == "new_message" and frame["message"]["text"] == expected:
                return
            if frame["type"] == "error":
                raise RuntimeError(frame)


class YardstickSide:
    def __init__(self, ws_base: str, room: str) -> None:
        self.url = f"{ws_base}/ws/?room={room}"

    async def open(self):
        self.socket = await connect(self.url, max_size=2**20, compression=None)

    async def send(self, n: int) -> None:
        await self.socket.send(json.dumps({"type": "send_message", "text": f"message {n}"}))

    async def received(self, n: int) -> None:
        expected = f"message {n}"
        while json.loads(await self.socket.recv())["text"] != expected:
            pass


async def chat(args) -> dict:
    ws_base = args.base.replace("http", "ws", 1)
    if args.target == "app":
        pairs = await asyncio.to_thread(make_pairs, args.base, args.pairs)
        sides = [(AppSide(ws_base, p["a"], p["chat_id"]), AppSide(ws_base, p["b"], p["chat_id"])) for p in pairs]
    else:
        sides = [(YardstickSide(ws_base, f"r{n}"), YardstickSide(ws_base, f"r{n}")) for n in range(args.pairs)]
    for a, b in sides:
        await a.open()
        await b.open()
    latencies: list[float] = []
    counter = itertools.count()
    deadline = time.perf_counter() + args.seconds
    sent_per_pair = [0] * len(sides)

    async def loop(index, a, b):
        sender, receiver = a, b
        while time.perf_counter() < deadline:
            n = next(counter)
            started = time.perf_counter()
            await sender.send(n)
            await receiver.received(n)
            latencies.append(time.perf_counter() - started)
            sent_per_pair[index] += 1
            sender, receiver = receiver, sender

    started = time.perf_counter()
    await asyncio.gather(*(loop(i, a, b) for i, (a, b) in enumerate(sides)))
    elapsed = time.perf_counter() - started
    for a, b in sides:
        await a.socket.close()
        await b.socket.close()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    result = {
        "scenario": "chat",
        "target": args.target,
        "pairs": args.pairs,
        "messages": len(latencies),
        "messages_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
    }
    if args.target == "app":
        result["stored_exactly_once"] = await asyncio.to_thread(count_stored, args.base, pairs, sent_per_pair)
    return result


def count_stored(base: str, pairs: list[dict], sent: list[int]) -> bool:
    """Page through each chat's history through the API: exactly the messages sent, each once."""
    for pair, expected in zip(pairs, sent, strict=True):
        ids, before = [], None
        while True:
            query = f"?limit=100&before={before}" if before else "?limit=100"
            page = api(base, "GET", f"/api/chats/{pair['chat_id']}/messages{query}", token=pair["a"])
            ids += [m["id"] for m in page["results"]]
            before = page["next_before"]
            if not before:
                break
        if len(ids) != expected or len(set(ids)) != expected:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["chat"])
    parser.add_argument("--target", choices=["app", "yardstick"], required=True)
    parser.add_argument("--base", required=True, help="http://host:port of the server")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    if uvloop is not None:
        uvloop.install()
    print(json.dumps(asyncio.run(chat(args))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
