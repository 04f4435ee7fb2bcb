"""The load generator: the public protocol only (HTTP API and /ws/), one subcommand per scenario.

    python -m bench.loadgen chat --target app --base http://127.0.0.1:8000 --pairs 20 --seconds 10
    python -m bench.loadgen chat --target yardstick --base http://127.0.0.1:8001 --pairs 20 --seconds 10
    python -m bench.loadgen pairs --base URL1 --base URL2 --pairs 20 --out pairs.json
    python -m bench.loadgen chat --target app --base URL1 --base URL2 --pairs-file pairs.json --seconds 10
    python -m bench.loadgen chat --target app --base URL --html   # sockets as the browser opens them
    python -m bench.loadgen fan-out --base URL --friends 200 --repetitions 10
    python -m bench.loadgen idle --base URL --users 50          # then one connection count per stdin line
    python -m bench.loadgen history-setup --base URL --messages 61
    python -m bench.loadgen history --base URL --token T --chat-id 3 --before 17 --requests 200

chat: in each pair, A sends and waits until B has it, then B sends and waits
until A has it, and so on. With several --base, side A of pair n connects to
base n, and side B to the next base (`--spread sides`, the default: every
message crosses workers) or to the same one (`--spread pairs`: each pair on one
worker, the pairs dealt out in turn). Against the app it then counts, through
the API, that every message was stored exactly once.

Each subcommand prints one JSON line with its result (idle prints one per step).
People are registered through the API with the production password hasher, a
few at a time: that is most of a scenario's set-up time.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import re
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException
from websockets.protocol import State

from bench.servers import machine_busy_seconds, main_thread_cpu_seconds, raise_open_files_limit, tree_cpu_seconds

PASSWORD = "bench-password-2026"
# Sign-ups in flight at once: the server hashes one password at a time, the rest is round trips.
REGISTER_THREADS = 4
# Websocket handshakes in flight at once when opening many.
OPEN_CONCURRENCY = 20
# The message id of a bubble as the page renders it (messaging/partials/_message.html).
BUBBLE_ID = re.compile(r'data-message-id="([^"]+)"')
# A frame not here after this long is lost: fail loudly rather than wait forever.
FRAME_TIMEOUT_S = 30

Session = dict[str, Any]  # a sign-up's answer: {"user", "access", "refresh"}


# --- HTTP API ------------------------------------------------------------------


def api(base: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


def run_tag() -> str:
    """A short random tag that keeps this run's usernames apart from earlier runs' on the same database."""
    return uuid.uuid4().hex[:6]


def register(base: str, name: str) -> Session:
    phone = f"+1{abs(hash(name)) % 10**10:010d}"
    body = {"username": name, "email": f"{name}@bench.example", "phone_number": phone, "password": PASSWORD}
    return api(base, "POST", "/api/auth/register", body)


def in_parallel(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(REGISTER_THREADS) as pool:
        return list(pool.map(lambda call: call(), calls))


def register_many(bases: Sequence[str], names: Sequence[str]) -> list[Session]:
    """Sign up every name, spread over the bases (workers) in turn."""
    return in_parallel([lambda n=n, name=name: register(bases[n % len(bases)], name) for n, name in enumerate(names)])


def befriend(base: str, asker: Session, answerer: Session) -> int:
    """Friend request and accept, through the API; returns the pair's chat id."""
    api(base, "POST", "/api/friends/requests", {"user_id": answerer["user"]["id"]}, asker["access"])
    accepted = api(base, "POST", f"/api/friends/requests/{asker['user']['id']}/accept", {}, answerer["access"])
    return accepted["chat_id"]


def make_pairs(bases: Sequence[str], count: int) -> list[dict]:
    """Register 2 x count people and befriend each pair, through the API."""
    tag = run_tag()
    people = register_many(bases, [f"b{tag}{n}{side}" for n in range(count) for side in "ab"])
    chat_ids = in_parallel(
        [lambda n=n: befriend(bases[n % len(bases)], people[2 * n], people[2 * n + 1]) for n in range(count)]
    )
    return [
        {"a": people[2 * n]["access"], "b": people[2 * n + 1]["access"], "chat_id": chat_ids[n]} for n in range(count)
    ]


def stored_message_ids(base: str, pair: dict) -> list[str]:
    """Page through a chat's whole history through the API."""
    ids, before = [], None
    while True:
        query = f"?limit=100&before={before}" if before else "?limit=100"
        page = api(base, "GET", f"/api/chats/{pair['chat_id']}/messages{query}", token=pair["a"])
        ids += [m["id"] for m in page["results"]]
        before = page["next_before"]
        if not before:
            return ids


def ws_url(base: str, token: str) -> str:
    return f"{base.replace('http', 'ws', 1)}/ws/?token={token}"


def percentile(sorted_values: Sequence[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --- chat: closed-loop pairs ---------------------------------------------------------


class AppSide:
    """One person's socket on the app: sends send_message, recognises the peer's new_message."""

    def __init__(self, base: str, token: str, chat_id: int, tag: str) -> None:
        self.url = ws_url(base, token)
        self.chat_id = chat_id
        # Client ids are unique per sender and chat: a pair used by an earlier run must not resend one.
        self.tag = tag
        self.seen: list[str] = []  # the latest frame types, for the error when one never comes

    async def open(self) -> None:
        self.socket = await connect(self.url, max_size=2**20, compression=None)
        await self.wait_for("online_friends", lambda frame: frame["type"] == "online_friends")
        await self.socket.send(json.dumps({"type": "join_chat", "chat_id": self.chat_id}))
        await self.wait_for("joined_chat", lambda frame: frame["type"] == "joined_chat")

    async def send(self, n: int) -> None:
        frame = {
            "type": "send_message",
            "chat_id": self.chat_id,
            "text": f"message {n}",
            "client_id": f"c{self.tag}-{n}",
        }
        await self.socket.send(json.dumps(frame))

    async def received(self, n: int) -> None:
        expected = f"message {n}"
        await self.wait_for(
            f"new_message {expected!r}",
            lambda frame: frame["type"] == "new_message" and frame["message"]["text"] == expected,
        )

    async def wait_for(self, what: str, wanted: Callable[[dict], bool]) -> None:
        """Read frames until one is wanted; an error frame, or FRAME_TIMEOUT_S without it, fails the run."""
        try:
            async with asyncio.timeout(FRAME_TIMEOUT_S):
                while True:
                    frame = json.loads(await self.socket.recv())
                    self.seen = [*self.seen[-4:], frame["type"]]
                    if wanted(frame):
                        return
                    if frame["type"] == "error":
                        raise RuntimeError(f"chat {self.chat_id}: {frame} while waiting for {what}")
        except TimeoutError:
            raise RuntimeError(
                f"chat {self.chat_id}: no {what} within {FRAME_TIMEOUT_S} s (latest frames: {self.seen})"
            ) from None


class BrowserSide(AppSide):
    """One person's socket as the browser opens it (`?format=html`): JSON frames in, HTML fragments out.

    The frames it sends are the page's own (static/js/app.js sends these same
    JSON frames, and marks each message read as it arrives in the chat on
    screen); what comes back is what htmx swaps into the page.
    """

    def __init__(self, base: str, token: str, chat_id: int, tag: str) -> None:
        super().__init__(base, token, chat_id, tag)
        self.url += "&format=html"

    async def open(self) -> None:
        self.socket = await connect(self.url, max_size=2**20, compression=None)
        await self.socket.send(json.dumps({"type": "join_chat", "chat_id": self.chat_id}))
        # A browser's socket answers join_chat with no fragment; the error of an unknown frame sent after
        # it is rendered, and frames are handled in order: once it is here, the chat is joined.
        await self.socket.send(json.dumps({"type": "bench_joined"}))
        await self.wait_for_html("the join", "bench_joined")

    async def received(self, n: int) -> None:
        html = await self.wait_for_html(f"message {n}", f'<p class="text">message {n}</p>')
        # As the page does with a chat on screen (static/js/app.js, markLatestRead): it has read what arrived.
        message_id = BUBBLE_ID.search(html)
        if message_id is None:
            raise RuntimeError(f"chat {self.chat_id}: a bubble without its message id: {html[:300]}")
        await self.socket.send(
            json.dumps({"type": "mark_read", "chat_id": self.chat_id, "message_id": message_id.group(1)})
        )

    async def wait_for_html(self, what: str, marker: str) -> str:
        """Read fragments until one holds `marker` (answered); a refusal, or FRAME_TIMEOUT_S without it,
        fails the run."""
        try:
            async with asyncio.timeout(FRAME_TIMEOUT_S):
                while True:
                    html = await self.socket.recv()
                    self.seen = [*self.seen[-4:], html[:80]]
                    if marker in html:
                        return html
                    if "Not sent:" in html:
                        raise RuntimeError(f"chat {self.chat_id}: {html[:300]} while waiting for {what}")
        except TimeoutError:
            raise RuntimeError(
                f"chat {self.chat_id}: no {what} within {FRAME_TIMEOUT_S} s (latest fragments: {self.seen})"
            ) from None


class YardstickSide:
    def __init__(self, base: str, room: str) -> None:
        self.url = f"{base.replace('http', 'ws', 1)}/ws/?room={room}"

    async def open(self) -> None:
        self.socket = await connect(self.url, max_size=2**20, compression=None)

    async def send(self, n: int) -> None:
        await self.socket.send(json.dumps({"type": "send_message", "text": f"message {n}"}))

    async def received(self, n: int) -> None:
        expected = f"message {n}"
        while json.loads(await self.socket.recv())["text"] != expected:
            pass


async def chat(args: argparse.Namespace) -> dict:
    bases: list[str] = args.base
    stored_before: list[int] | None = None
    tag = run_tag()
    if args.target == "app":
        if args.pairs_file and Path(args.pairs_file).exists():
            # Pairs made earlier, perhaps already used: count what their chats hold now.
            pairs = json.loads(Path(args.pairs_file).read_text())
            stored_before = await asyncio.to_thread(lambda: [len(stored_message_ids(bases[0], p)) for p in pairs])
        else:
            pairs = await asyncio.to_thread(make_pairs, bases, args.pairs)
            if args.pairs_file:
                Path(args.pairs_file).write_text(json.dumps(pairs))
        # With several workers: each pair's two sides on different workers (every message crosses
        # Redis), or each pair whole on one worker (the pairs dealt out in turn).
        b_worker_offset = 1 if args.spread == "sides" else 0
        side = BrowserSide if args.html else AppSide
        sides = [
            (
                side(bases[n % len(bases)], p["a"], p["chat_id"], tag),
                side(bases[(n + b_worker_offset) % len(bases)], p["b"], p["chat_id"], tag),
            )
            for n, p in enumerate(pairs)
        ]
    else:
        sides = [(YardstickSide(bases[0], f"r{n}"), YardstickSide(bases[0], f"r{n}")) for n in range(args.pairs)]
    for a, b in sides:
        await a.open()
        await b.open()
    latencies: list[float] = []
    counter = itertools.count()
    deadline = time.perf_counter() + args.seconds
    sent_per_pair = [0] * len(sides)

    async def loop(index: int, a: AppSide | YardstickSide, b: AppSide | YardstickSide) -> None:
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
    cpu_before = [tree_cpu_seconds(pid) for pid in args.watch_pid]
    # An app worker's event loop is its main thread; the yardstick's main process only waits for its children.
    loops = args.watch_pid if args.target == "app" else []
    loop_cpu_before = [main_thread_cpu_seconds(pid) for pid in loops]
    busy_before = machine_busy_seconds()
    await asyncio.gather(*(loop(i, a, b) for i, (a, b) in enumerate(sides)))
    elapsed = time.perf_counter() - started
    server_cpu = sum(tree_cpu_seconds(pid) - used for pid, used in zip(args.watch_pid, cpu_before, strict=True))
    loop_cpu = sum(main_thread_cpu_seconds(pid) - used for pid, used in zip(loops, loop_cpu_before, strict=True))
    machine_busy = machine_busy_seconds() - busy_before
    for a, b in sides:
        await a.socket.close()
        await b.socket.close()
    latencies.sort()
    result = {
        "scenario": "chat",
        "target": args.target,
        "frames": "html" if args.html and args.target == "app" else "json",
        "pairs": len(sides),
        "workers": len(bases),
        "messages": len(latencies),
        "messages_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p95_ms": ms(percentile(latencies, 0.95)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "mean_ms": ms(statistics.fmean(latencies)),
        # Cores busy during the run: of the machine, and of the servers named by --watch-pid.
        "machine_busy_cores": round(machine_busy / elapsed, 2),
    }
    if args.watch_pid:
        result["server_cpu_cores"] = round(server_cpu / elapsed, 2)
        result["server_cpu_us_per_message"] = round(server_cpu / max(len(latencies), 1) * 1e6)
    if loops:
        result["server_loop_cpu_cores"] = round(loop_cpu / elapsed, 2)
    if args.target == "app":
        result["stored_exactly_once"] = await asyncio.to_thread(
            stored_exactly_once, bases[0], pairs, stored_before or [0] * len(pairs), sent_per_pair
        )
    return result


def stored_exactly_once(base: str, pairs: list[dict], before: list[int], sent: list[int]) -> bool:
    """Each chat holds what it held before plus exactly the messages sent, each once."""
    for pair, held, added in zip(pairs, before, sent, strict=True):
        ids = stored_message_ids(base, pair)
        if len(ids) != held + added or len(set(ids)) != len(ids):
            return False
    return True


def pairs_command(args: argparse.Namespace) -> dict:
    pairs = make_pairs(args.base, args.pairs)
    Path(args.out).write_text(json.dumps(pairs))
    return {"pairs": len(pairs), "out": args.out}


# --- fan-out: presence to many friends -------------------------------------------------


class Transition:
    """One presence change of the watched user: when each friend heard of it."""

    def __init__(self, frame_type: str, friends: int) -> None:
        self.frame_type = frame_type
        self.friends = friends
        self.started = time.perf_counter()
        self.heard_at: dict[int, float] = {}
        self.everyone_heard = asyncio.Event()

    def heard(self, friend: int, frame_type: str) -> None:
        if frame_type == self.frame_type and friend not in self.heard_at:
            self.heard_at[friend] = time.perf_counter()
            if len(self.heard_at) == self.friends:
                self.everyone_heard.set()

    def summary(self) -> dict:
        delays = sorted(at - self.started for at in self.heard_at.values())
        return {"first_ms": ms(delays[0]), "median_ms": ms(percentile(delays, 0.5)), "last_ms": ms(delays[-1])}


class FriendWatcher:
    """A friend's open socket, listening for the watched user's user_online / user_offline."""

    def __init__(self, index: int, base: str, token: str, watched_id: int) -> None:
        self.index = index
        self.url = ws_url(base, token)
        self.watched_id = watched_id
        self.transition: Transition | None = None

    async def open(self) -> None:
        self.socket = await connect(self.url, compression=None, ping_interval=None, open_timeout=120)
        await self.socket.recv()  # online_friends
        self.listener = asyncio.create_task(self.listen())

    async def listen(self) -> None:
        async for raw in self.socket:
            frame = json.loads(raw)
            if frame.get("user_id") == self.watched_id and self.transition is not None:
                self.transition.heard(self.index, frame["type"])


async def open_all(openers: Sequence[Callable[[], Any]]) -> None:
    """Run the open() calls, OPEN_CONCURRENCY handshakes at a time."""
    limit = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one(opener: Callable[[], Any]) -> None:
        async with limit:
            await opener()

    await asyncio.gather(*(one(opener) for opener in openers))


async def fan_out(args: argparse.Namespace) -> dict:
    """One user with many online friends goes online and offline; time until the last friend hears of it.

    Each change is timed from the moment the user starts opening (online) or
    closing (offline) its socket until every friend's socket has the frame.
    """
    base = args.base[0]
    tag = run_tag()
    set_up = time.perf_counter()
    people = await asyncio.to_thread(register_many, args.base, [f"f{tag}{n}" for n in range(args.friends + 1)])
    star, friends = people[0], people[1:]
    await asyncio.to_thread(in_parallel, [lambda f=f: befriend(base, star, f) for f in friends])
    watchers = [FriendWatcher(n, base, f["access"], star["user"]["id"]) for n, f in enumerate(friends)]
    await open_all([w.open for w in watchers])
    set_up = time.perf_counter() - set_up

    changes: dict[str, list[dict]] = {"user_online": [], "user_offline": []}

    async def timed(frame_type: str, action: Callable[[], Any]) -> Any:
        transition = Transition(frame_type, len(watchers))
        for watcher in watchers:
            watcher.transition = transition
        outcome = await action()
        await asyncio.wait_for(transition.everyone_heard.wait(), timeout=60)
        changes[frame_type].append(transition.summary())
        return outcome

    for _ in range(args.repetitions):
        socket: ClientConnection = await timed(
            "user_online", lambda: connect(ws_url(base, star["access"]), compression=None, ping_interval=None)
        )
        await asyncio.sleep(args.pause)
        await timed("user_offline", socket.close)
        await asyncio.sleep(args.pause)
    for watcher in watchers:
        watcher.listener.cancel()
        await watcher.socket.close()

    def last(frame_type: str) -> list[float]:
        return sorted(change["last_ms"] for change in changes[frame_type])

    online, offline = last("user_online"), last("user_offline")
    return {
        "scenario": "fan-out",
        "friends": len(friends),
        "repetitions": args.repetitions,
        "online_last_p50_ms": round(statistics.median(online), 2),
        "online_last_max_ms": online[-1],
        "offline_last_p50_ms": round(statistics.median(offline), 2),
        "offline_last_max_ms": offline[-1],
        "changes": changes,
        "set_up_s": round(set_up, 1),
    }


# --- idle: many open sockets, held while the harness watches the server -----------------


class SocketHolder:
    """Opens silent, authenticated sockets for a few people and holds them; counts the handshakes that failed.

    A failed handshake (the server dropped or refused it, or took too long) is
    retried a few times, as a client would; a socket that still cannot open
    is given up, and after GIVE_UP_AFTER of those the step stops early.
    """

    ATTEMPTS = 3
    GIVE_UP_AFTER = 100

    def __init__(self, base: str, people: list[Session]) -> None:
        self.base = base
        self.people = people
        self.sockets: list[ClientConnection] = []
        self.failed_handshakes = 0
        self.given_up = 0

    async def open_one(self, n: int) -> None:
        token = self.people[n % len(self.people)]["access"]
        for attempt in range(self.ATTEMPTS):
            if self.given_up >= self.GIVE_UP_AFTER:
                return
            try:
                # No client pings: the server's own keep-alive is part of what is measured.
                socket = await connect(ws_url(self.base, token), compression=None, ping_interval=None, open_timeout=60)
                greeting = json.loads(await asyncio.wait_for(socket.recv(), FRAME_TIMEOUT_S))
            except (OSError, TimeoutError, WebSocketException):
                self.failed_handshakes += 1
                await asyncio.sleep(1 + attempt)
                continue
            if greeting.get("type") != "online_friends":
                raise RuntimeError(f"unexpected greeting {greeting}")
            self.sockets.append(socket)
            return
        self.given_up += 1

    def still_open(self) -> int:
        return sum(1 for socket in self.sockets if socket.state is State.OPEN)

    async def grow_to(self, wanted: int) -> dict:
        started, first, failed_before = time.perf_counter(), len(self.sockets), self.failed_handshakes
        await open_all([lambda n=n: self.open_one(n) for n in range(first, wanted)])
        elapsed = time.perf_counter() - started
        return {
            "event": "open",
            "wanted": wanted,
            "connections": self.still_open(),
            "opened_per_s": round((len(self.sockets) - first) / elapsed, 1),
            "failed_handshakes": self.failed_handshakes - failed_before,
            "given_up": self.given_up,
        }


async def idle(args: argparse.Namespace) -> None:
    """Hold open, authenticated, silent sockets, as many as each stdin line asks for; EOF closes them.

    A small set of people is reused, each with many sockets (as many tabs):
    signing up thousands would take hours with the production hasher. Prints
    one JSON line when signed up and one after each step is open.
    """
    raise_open_files_limit()
    tag = run_tag()
    people = await asyncio.to_thread(register_many, args.base, [f"i{tag}{n}" for n in range(args.users)])
    emit({"event": "registered", "users": len(people)})
    holder = SocketHolder(args.base[0], people)
    while line := await asyncio.to_thread(sys.stdin.readline):
        emit(await holder.grow_to(int(line)))
    # The harness stops the server next; the operating system closes what is left.


# --- history: latency of history pages ---------------------------------------------------


def history_setup(args: argparse.Namespace) -> dict:
    """Two friends and their chat, with a few messages sent through the API."""
    tag = run_tag()
    a, b = register_many(args.base, [f"h{tag}a", f"h{tag}b"])
    base = args.base[0]
    chat_id = befriend(base, a, b)
    for n in range(args.messages):
        message = {"text": f"hello {n}", "client_id": f"h{n}"}
        api(base, "POST", f"/api/chats/{chat_id}/messages", message, (a, b)[n % 2]["access"])
    return {"token": a["access"], "chat_id": chat_id, "sender_ids": [a["user"]["id"], b["user"]["id"]]}


def timed_get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> float:
    """Seconds from sending a GET on a kept connection to having its whole response; anything but 200 fails."""
    started = time.perf_counter()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
    return elapsed


def history(args: argparse.Namespace) -> dict:
    """GET the newest page, a page deep in history (before=) and the chat list (each chat with its last
    message), one request at a time on a kept connection."""
    address = urlsplit(args.base[0])
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    headers = {"Authorization": f"Bearer {args.token}"}

    def timed_pages(path: str) -> list[float]:
        timings = [timed_get(connection, path, headers) for _ in range(args.requests + args.warm_up)]
        return sorted(timings[args.warm_up :])

    path = f"/api/chats/{args.chat_id}/messages"
    newest = timed_pages(path)
    deep = timed_pages(f"{path}?before={args.before}")
    chat_list = timed_pages("/api/chats")
    connection.close()

    def summary(timings: list[float]) -> dict:
        return {"p50_ms": ms(percentile(timings, 0.5)), "p99_ms": ms(percentile(timings, 0.99))}

    return {
        "scenario": "history",
        "requests": args.requests,
        "newest": summary(newest),
        "deep": summary(deep),
        "chat_list": summary(chat_list),
    }


# --- command line --------------------------------------------------------------------------


def emit(result: dict) -> None:
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name)
        sub.add_argument(
            "--base", action="append", required=True, help="http://host:port of a server (repeat for several workers)"
        )
        return sub

    chat_parser = command("chat")
    chat_parser.add_argument("--target", choices=["app", "yardstick"], required=True)
    chat_parser.add_argument("--pairs", type=int, default=20)
    chat_parser.add_argument(
        "--pairs-file",
        help="use the pairs in this file; sign up --pairs new ones and save them there if it does not exist",
    )
    chat_parser.add_argument("--seconds", type=float, default=10)
    chat_parser.add_argument(
        "--spread",
        choices=["sides", "pairs"],
        default="sides",
        help="with several --base: each pair's two sides on different workers, or each pair on one worker",
    )
    chat_parser.add_argument(
        "--html", action="store_true", help="app: sockets as the browser opens them, answered with HTML fragments"
    )
    chat_parser.add_argument(
        "--watch-pid",
        type=int,
        action="append",
        default=[],
        help="a server process whose CPU (with its children's) the result reports over the run (repeat for several)",
    )
    pairs_parser = command("pairs")
    pairs_parser.add_argument("--pairs", type=int, default=20)
    pairs_parser.add_argument("--out", required=True)
    fan_out_parser = command("fan-out")
    fan_out_parser.add_argument("--friends", type=int, default=200)
    fan_out_parser.add_argument("--repetitions", type=int, default=10)
    fan_out_parser.add_argument("--pause", type=float, default=0.3, help="seconds between changes")
    idle_parser = command("idle")
    idle_parser.add_argument("--users", type=int, default=50)
    setup_parser = command("history-setup")
    setup_parser.add_argument("--messages", type=int, default=5)
    history_parser = command("history")
    history_parser.add_argument("--token", required=True)
    history_parser.add_argument("--chat-id", type=int, required=True)
    history_parser.add_argument("--before", required=True, help="a message id deep in the history")
    history_parser.add_argument("--requests", type=int, default=200)
    history_parser.add_argument("--warm-up", type=int, default=10)
    args = parser.parse_args()

    if uvloop is not None:
        uvloop.install()
    if args.command == "chat":
        emit(asyncio.run(chat(args)))
    elif args.command == "pairs":
        emit(pairs_command(args))
    elif args.command == "fan-out":
        emit(asyncio.run(fan_out(args)))
    elif args.command == "idle":
        asyncio.run(idle(args))
    elif args.command == "history-setup":
        emit(history_setup(args))
    elif args.command == "history":
        emit(history(args))


if __name__ == "__main__":
    main()
