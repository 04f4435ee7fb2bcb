"""A batch of websocket sends timed alone: the database thread's CPU per batch, with no event loop, load
generator or other process in the way (the chat scenario's rates move with the machine; this moves less).

    python -m bench.send_batch                  # batches of 14 (the 20-pair chat's mean), 5 rounds of 200
    python -m bench.send_batch --size 20 --rounds 9
    python -m bench.send_batch --profile        # and where the time went (cProfile, one more round)

Runs `messaging.services.send_messages` as the send queue's database thread does: each draft to its own
chat, from a sender who shows the write grant of their last send (as a websocket's every send after its
first). On the environment's services: on the embedded defaults a new SQLite database of its own; with
DB_HOST, the database DB_NAME, where it signs up people of its own. Rate limits are off, as in the other
benchmarks. The events a batch publishes are dropped: there is no event loop here to hand them to.
Prints each round's CPU milliseconds per batch, lowest first: read the lowest few.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
import uuid
from pathlib import Path

from bench import servers
from bench.scenarios import services_description

WARM_UP_BATCHES = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=14, help="drafts per batch (default 14)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --batches batches (default 5)")
    parser.add_argument("--batches", type=int, default=200, help="batches per round (default 200)")
    parser.add_argument("--profile", action="store_true", help="profile one more round and print the top functions")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as var_dir:
        os.environ.update(servers.app_environment(Path(var_dir)))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_realtime.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        run(args)


def run(args: argparse.Namespace) -> None:
    from accounts.models import User
    from chat_realtime import realtime
    from friends import services as friends
    from messaging import services

    realtime._send = lambda events: None
    tag = uuid.uuid4().hex[:8]

    def person(n: int, side: str) -> User:
        name = f"batch-{tag}-{n}{side}"
        return User.objects.create_user(username=name, email=f"{name}@example.com", password=None)

    senders = []
    for n in range(args.size):
        sender, friend = person(n, "a"), person(n, "b")
        friends.send_friend_request(sender=sender, receiver_id=friend.pk)
        _, chat, _ = friends.accept_friend_request(receiver=friend, requester_id=sender.pk)
        senders.append((sender, chat.pk))
    grants: dict[int, services.WriteGrant] = {}
    counter = iter(range(10**9))

    def batch() -> None:
        k = next(counter)
        drafts = [
            services.MessageDraft(
                sender=sender, chat_id=chat_id, text=f"message {k}", client_id=f"b{k}-{i}", grant=grants.get(i)
            )
            for i, (sender, chat_id) in enumerate(senders)
        ]
        for i, sent in enumerate(services.send_messages(drafts)):
            grants[i] = sent.grant

    for _ in range(WARM_UP_BATCHES):
        batch()
    rounds = []  # (CPU, wall) ms per batch
    for _ in range(args.rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.batches):
            batch()
        rounds.append(
            ((time.process_time() - cpu) * 1e3 / args.batches, (time.perf_counter() - wall) * 1e3 / args.batches)
        )
    rounds.sort()
    print(f"batches of {args.size} on {services_description()}, rounds of {args.batches}: ms per batch, CPU (wall)")
    print("  " + ", ".join(f"{cpu:.3f} ({wall:.3f})" for cpu, wall in rounds))
    fastest = min(wall for _, wall in rounds)
    print(f"  lowest {rounds[0][0] / args.size * 1e3:.1f} µs of CPU per message, {fastest:.3f} ms per batch")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [batch() for _ in range(args.batches)])
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
