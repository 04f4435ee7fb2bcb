"""`manage.py seed_demo`: demo people, friendships in every state, their chats and a history to scroll.

What it makes, and through what:
- Users `demo.alice`, `demo.bob`, ... with deterministic emails and phone numbers
  (+44 7700 900xxx, a range set aside for fiction) and one shared password.
  They are created with the model's own validation and the password validators,
  not with `accounts.services.register_user`: sign-up is rate limited per client
  address (REGISTER_RATE_LIMIT, 5 an hour by default) and an operator's command
  is not a client. Avatars (a coloured square with the initial, drawn with
  Pillow) go through `accounts.services.update_profile`, which re-encodes them.
- Friendships through `friends.services` (send, accept, reject): the chats, the
  notifications and the cache invalidations come from the services as they do
  for real people. demo.alice, the first login, sees every state: friends,
  requests both ways, a declined request and strangers.
- Messages spread over the friends' chats during the past HISTORY_DAYS days.
  `messaging.services.send_message` stamps messages "now" and the store has no
  way to take a time, so each message is
  1. written with `message_store().add()` (the store's own idempotency on
     `client_id`),
  2. given its historical `created_at` (`_backdate`, the one place that knows
     both stores' layouts),
  3. handed to `send_message` with the same `client_id`. The service's retry
     path finds the stored message, checks membership and friendship, and
     records it on the SQL side (the sender's read position) without
     announcing it. The flood limit (MESSAGE_RATE_LIMIT) counts only new
     sends, so it never stops the seed, and no setting is overridden.
  Messages are written oldest first, so ids sort by time as the store's
  paging expects. `send_message` only moves a chat's activity time forward,
  so at the end each chat the seed began takes its newest message's time. In
  a chat that had messages already (another seed, real use), what the seed
  adds is stamped now, after them: history stays in time order.

Deterministic: `random.Random(seed)` (and per-pair generators derived from the
seed) decide states, texts and times relative to the run. Safe to run again
with the same arguments: users are found by username, friendships by pair,
messages by their client_id `seed-{seed}-{n}`; nothing is created twice.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.utils import timezone
from PIL import Image, ImageDraw, ImageFont

from accounts.models import User
from accounts.services import update_profile
from chat_realtime.errors import ApplicationError
from friends import selectors as friend_selectors
from friends import services as friend_services
from friends.models import Friendship, Notification
from messaging.models import Chat
from messaging.services import get_or_create_direct_chat, send_message
from messaging.store import MessageStore, MessageStoreUnavailable, message_store

DEMO_PASSWORD = "Seeded-Chats-2024"
MAX_USERS = 100  # the fiction phone range has 1000 numbers; 100 people already make 4950 pairs
MAX_MESSAGES = 50_000
HISTORY_DAYS = 14
AVATAR_PIXELS = 128

NAMES = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "kim", "leo", "mallory",
    "nina", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "uma", "victor", "wendy", "xavier", "yara", "zoe",
]  # fmt: skip
PALETTE = [
    (231, 76, 60), (52, 152, 219), (46, 204, 113), (155, 89, 182), (241, 196, 15), (230, 126, 34),
    (26, 188, 156), (52, 73, 94), (233, 30, 99), (0, 150, 136), (121, 85, 72), (96, 125, 139),
]  # fmt: skip

OPENERS = [
    "Hey! How's it going?",
    "Morning! Did you see the news?",
    "Are we still on for tonight?",
    "Quick question about the project",
    "Guess who I ran into today",
    "Do you have a minute?",
    "Lunch tomorrow?",
    "I finally finished that book you lent me",
    "Happy Friday!",
    "The demo went really well, thanks for the help",
    "Any plans for the weekend?",
    "Have you tried the new place on the corner?",
]
REPLIES = [
    "Sure, what's up?",
    "Ha, no way!",
    "Sounds good to me",
    "I was just about to text you",
    "Yes! Seven works",
    "Not yet, tell me more",
    "Oh nice, how was it?",
    "Can't today, maybe Thursday?",
    "Absolutely",
    "That's great news",
    "Hmm, let me check and get back to you",
    "Same here, busy week",
    "Thanks!",
]
FOLLOW_UPS = [
    "Also, bring the charger if you can",
    "I'll send you the link",
    "Let me know what you think",
    "Or we could do it next week",
    "No rush though",
    "See you there",
    "Oh and say hi to everyone from me",
    "Running a bit late, sorry",
    "Just saw your message, one sec",
    "Perfect",
]


class ProgressBar:
    """`\\r[#####     ] 120/300` on one line, redrawn only when it visibly changes.

    Drawn on a terminal only: in a log or a pipe the carriage returns are noise.
    """

    def __init__(self, out: OutputWrapper, total: int, *, label: str, enabled: bool, width: int = 30) -> None:
        self.out, self.total, self.label, self.width = out, total, label, width
        self.enabled = enabled and total > 0
        self._drawn: tuple[int, int] | None = None

    def advance(self, done: int) -> None:
        if not self.enabled:
            return
        state = (done * self.width // self.total, done * 100 // self.total)
        if state == self._drawn:
            return
        self._drawn = state
        bar = "#" * state[0] + " " * (self.width - state[0])
        self.out.write(f"\r{self.label:<12} [{bar}] {done}/{self.total}", ending="")
        self.out.flush()

    def close(self) -> None:
        if self.enabled and self._drawn is not None:
            self.out.write("")


# --- The plan: pure, deterministic for (seed, users, messages) -------------------


@dataclass(frozen=True)
class DemoIdentity:
    index: int
    handle: str

    @property
    def username(self) -> str:
        return f"demo.{self.handle}"

    @property
    def email(self) -> str:
        return f"{self.handle}@demo.example.com"

    @property
    def phone_number(self) -> str:
        return f"+447700900{self.index:03d}"


def demo_identity(index: int) -> DemoIdentity:
    name = NAMES[index % len(NAMES)]
    lap = index // len(NAMES)
    return DemoIdentity(index=index, handle=name if lap == 0 else f"{name}{lap + 1}")


FRIENDS, PENDING, DECLINED, NONE = "friends", "pending", "declined", "none"


@dataclass(frozen=True)
class PairPlan:
    """What the pair of users `low` < `high` (indexes) should be; `requester` asked (or would have)."""

    low: int
    high: int
    state: str
    requester: int

    @property
    def receiver(self) -> int:
        return self.high if self.requester == self.low else self.low


# demo.alice's pairs, over her shuffled neighbours: every state appears once she has 7 of them.
_FIRST_USER_PATTERN = (FRIENDS, "incoming", FRIENDS, "outgoing", NONE, FRIENDS, DECLINED)


def plan_friendships(*, seed: int, users: int, rng: random.Random) -> list[PairPlan]:
    plans: list[PairPlan] = []
    neighbours = list(range(1, users))
    rng.shuffle(neighbours)
    for position, other in enumerate(neighbours):
        kind = _FIRST_USER_PATTERN[position % len(_FIRST_USER_PATTERN)]
        if kind == "incoming":
            plans.append(PairPlan(0, other, PENDING, requester=other))
        elif kind == "outgoing":
            plans.append(PairPlan(0, other, PENDING, requester=0))
        else:
            plans.append(PairPlan(0, other, kind, requester=rng.choice((0, other))))
    for low in range(1, users):
        for high in range(low + 1, users):
            # One generator per pair: a pair's fate does not depend on how many people there are.
            pair_rng = random.Random(f"{seed}:{low}:{high}")  # noqa: S311 (reproducible demo data)
            roll = pair_rng.random()
            state = FRIENDS if roll < 0.4 else PENDING if roll < 0.6 else DECLINED if roll < 0.7 else NONE
            plans.append(PairPlan(low, high, state, requester=pair_rng.choice((low, high))))
    return sorted(plans, key=lambda p: (p.low, p.high))


@dataclass(frozen=True)
class PlannedMessage:
    client_id: str
    pair: tuple[int, int]
    sender: int
    text: str
    seconds_ago: float


_GAP_SECONDS = (10, 240)
_BURST_MAX = 9


def plan_messages(*, seed: int, rng: random.Random, pairs: list[tuple[int, int]], count: int) -> list[PlannedMessage]:
    """`count` messages in short conversations over the pairs' chats, oldest first."""
    if not pairs or count <= 0:
        return []
    weights = [rng.uniform(0.5, 3.0) for _ in pairs]  # some friends talk more than others
    earliest = HISTORY_DAYS * 86400
    latest = _BURST_MAX * _GAP_SECONDS[1] + 600  # a whole conversation still ends in the past
    drafts: list[tuple[float, int, tuple[int, int], int, str]] = []
    while len(drafts) < count:
        pair = rng.choices(pairs, weights=weights)[0]
        size = min(rng.randint(2, _BURST_MAX), count - len(drafts))
        seconds_ago = rng.uniform(latest, earliest)
        sender, text = rng.choice(pair), rng.choice(OPENERS)
        for _ in range(size):
            drafts.append((seconds_ago, len(drafts), pair, sender, text))
            seconds_ago -= rng.uniform(*_GAP_SECONDS)
            if rng.random() < 0.7:
                sender, text = (pair[1] if sender == pair[0] else pair[0]), rng.choice(REPLIES)
            else:
                text = rng.choice(FOLLOW_UPS)
    drafts.sort(key=lambda d: (-d[0], d[1]))
    return [
        PlannedMessage(client_id=f"seed-{seed}-{n}", pair=pair, sender=sender, text=text, seconds_ago=ago)
        for n, (ago, _, pair, sender, text) in enumerate(drafts)
    ]


# --- Writing it ----------------------------------------------------------------------


def avatar_png(identity: DemoIdentity) -> bytes:
    """A coloured square with the person's initial."""
    colour = PALETTE[identity.index % len(PALETTE)]
    image = Image.new("RGB", (AVATAR_PIXELS, AVATAR_PIXELS), colour)
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=AVATAR_PIXELS * 5 // 8)
    except ImportError:  # Pillow without FreeType: the small bitmap font still shows the letter
        font = ImageFont.load_default()
    letter = identity.handle[0].upper()
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
    position = ((AVATAR_PIXELS - (right - left)) / 2 - left, (AVATAR_PIXELS - (bottom - top)) / 2 - top)
    draw.text(position, letter, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _backdate(store: MessageStore, message_id: str, created_at: datetime) -> bool:
    """Give a message the seed just stored the time its story says it was sent.

    The MessageStore interface has no way to do this (nothing in the app needs
    one) and it stays that way: this demo-only write knows both layouts.
    False for a store it does not know, whose messages keep "now".
    """
    from messaging.store.mongo import MongoMessageStore
    from messaging.store.orm import OrmMessageStore

    # Milliseconds, as both stores keep them.
    created_at = created_at.replace(microsecond=created_at.microsecond // 1000 * 1000)
    if isinstance(store, OrmMessageStore):
        from messaging.models import Message

        Message.objects.filter(pk=store.order_key(message_id)).update(created_at=created_at)
        return True
    if isinstance(store, MongoMessageStore):
        from pymongo.errors import PyMongoError

        try:
            store.collection.update_one({"_id": store.order_key(message_id)}, {"$set": {"created_at": created_at}})
        except PyMongoError as error:
            raise MessageStoreUnavailable(f"message store: {error}") from error
        return True
    return False


class Command(BaseCommand):
    help = (
        "Create demo users (demo.alice, demo.bob, ...), friendships in every state, their chats, "
        "notifications and a message history over the past days. Deterministic for a seed; "
        "running it again with the same arguments creates nothing new."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--users", type=int, default=12, help=f"How many demo users (2 to {MAX_USERS}; 12).")
        parser.add_argument(
            "--messages", type=int, default=300, help=f"How many messages in all (0 to {MAX_MESSAGES}; 300)."
        )
        parser.add_argument("--seed", type=int, default=1, help="Seed of the random choices (1).")

    def handle(self, *args, users: int, messages: int, seed: int, verbosity: int = 1, **options) -> None:
        if users < 2:
            raise CommandError("--users must be at least 2: friendships need two people.")
        if users > MAX_USERS:
            raise CommandError(f"--users can be at most {MAX_USERS}.")
        if messages < 0:
            raise CommandError("--messages cannot be negative.")
        if messages > MAX_MESSAGES:
            raise CommandError(f"--messages can be at most {MAX_MESSAGES}.")
        self.show_progress = verbosity >= 1 and self.stdout.isatty()
        rng = random.Random(seed)  # noqa: S311 (reproducible demo data, not secrets)
        try:
            people, new_users = self._users(users)
            pair_plans = plan_friendships(seed=seed, users=users, rng=rng)
            friendship_counts = self._friendships(pair_plans, people)
            friend_pairs = self._friend_pairs(people)
            plan = plan_messages(seed=seed, rng=rng, pairs=friend_pairs, count=messages)
            new_messages, chats = self._messages(plan, people)
        except MessageStoreUnavailable as error:
            raise CommandError(f"The message store is unavailable: {error}") from error
        except ApplicationError as error:
            raise CommandError(f"A service refused the demo data: {error.message} ({error.code})") from error
        if verbosity >= 1:
            self._report(
                seed=seed,
                people=people,
                new_users=new_users,
                friendship_counts=friendship_counts,
                planned_messages=len(plan),
                new_messages=new_messages,
                chats=chats,
            )

    # --- Users ------------------------------------------------------------------

    def _users(self, count: int) -> tuple[list[User], int]:
        people, created = [], 0
        progress = ProgressBar(self.stdout, count, label="users", enabled=self.show_progress)
        for index in range(count):
            user, new = self._user(demo_identity(index))
            people.append(user)
            created += new
            progress.advance(index + 1)
        progress.close()
        return people, created

    def _user(self, identity: DemoIdentity) -> tuple[User, bool]:
        user = User.objects.filter(username__iexact=identity.username).first()
        created = user is None
        if user is None:
            user = User(username=identity.username, email=identity.email, phone_number=identity.phone_number)
            user.set_password(DEMO_PASSWORD)
            try:
                password_validation.validate_password(DEMO_PASSWORD, user=user)
                user.full_clean()
            except ValidationError as error:
                raise CommandError(f"Cannot create {identity.username}: {' '.join(error.messages)}") from None
            user.save()
        if not user.avatar:
            update_profile(user=user, avatar=ContentFile(avatar_png(identity), name=f"{identity.handle}.png"))
        return user, created

    # --- Friendships --------------------------------------------------------------

    def _friendships(self, plans: list[PairPlan], people: list[User]) -> dict[str, int]:
        counts = {FRIENDS: 0, PENDING: 0, DECLINED: 0, NONE: 0, "new": 0, "differs": 0}
        progress = ProgressBar(self.stdout, len(plans), label="friendships", enabled=self.show_progress)
        for done, plan in enumerate(plans, start=1):
            outcome = self._friendship(plan, requester=people[plan.requester], receiver=people[plan.receiver])
            counts[plan.state] += 1
            counts[outcome] = counts.get(outcome, 0) + 1
            progress.advance(done)
        progress.close()
        return counts

    def _friendship(self, plan: PairPlan, *, requester: User, receiver: User) -> str:
        """Bring one pair to its planned state through the services: "new", "there" or "differs"."""
        existing = friend_selectors.friendship_between(requester.pk, receiver.pk)
        if plan.state == NONE:
            return "there" if existing is None else "differs"
        if plan.state == DECLINED:
            if existing is not None:
                return "differs"
            already = Notification.objects.filter(
                receiver=requester, sender=receiver, type=Notification.Type.FRIEND_REQUEST_REJECTED
            ).exists()
            if already:
                return "there"
            friend_services.send_friend_request(sender=requester, receiver_id=receiver.pk)
            friend_services.reject_friend_request(receiver=receiver, requester_id=requester.pk)
            return "new"
        if existing is None:
            friend_services.send_friend_request(sender=requester, receiver_id=receiver.pk)
            if plan.state == FRIENDS:
                friend_services.accept_friend_request(receiver=receiver, requester_id=requester.pk)
            return "new"
        if existing.status == Friendship.Status.ACCEPTED:
            return "there" if plan.state == FRIENDS else "differs"
        if plan.state == FRIENDS:
            # A request left pending by an interrupted run: its receiver accepts it now.
            asked_by, asked = (requester, receiver) if existing.requester_id == requester.pk else (receiver, requester)
            friend_services.accept_friend_request(receiver=asked, requester_id=asked_by.pk)
            return "new"
        return "there" if existing.requester_id == requester.pk else "differs"

    def _friend_pairs(self, people: list[User]) -> list[tuple[int, int]]:
        """Index pairs of the demo users who are friends now, asked of the database (what sending checks)."""
        pairs = []
        for low, user in enumerate(people[:-1]):
            later = [p.pk for p in people[low + 1 :]]
            states = friend_selectors.friendship_states(user.pk, later)
            pairs += [
                (low, low + 1 + offset)
                for offset, pk in enumerate(later)
                if states[pk] == friend_selectors.FriendshipState.FRIENDS
            ]
        return pairs

    # --- Messages -----------------------------------------------------------------

    def _messages(self, plan: list[PlannedMessage], people: list[User]) -> tuple[int, int]:
        store = message_store()
        now = timezone.now()
        chat_ids: dict[tuple[int, int], int] = {}
        # Chats that had messages before this run (another seed, real use): what it adds there goes after
        # them, stamped now, so that history stays in time order; backdated only into chats that were empty.
        had_history: set[int] = set()
        touched: set[int] = set()
        created_count, undated = 0, 0
        progress = ProgressBar(self.stdout, len(plan), label="messages", enabled=self.show_progress)
        for done, planned in enumerate(plan, start=1):
            if planned.pair not in chat_ids:
                low, high = planned.pair
                chat_ids[planned.pair] = get_or_create_direct_chat(user_a=people[low], user_b=people[high]).pk
                if store.latest(chat_ids[planned.pair]) is not None:
                    had_history.add(chat_ids[planned.pair])
            chat_id, sender = chat_ids[planned.pair], people[planned.sender]
            message, created = store.add(
                chat_id=chat_id, sender_id=sender.pk, text=planned.text, image_url="", client_id=planned.client_id
            )
            if created:
                backdate_to = now - timedelta(seconds=planned.seconds_ago)
                if chat_id not in had_history and not _backdate(store, message.id, backdate_to):
                    undated += 1
                # The service's retry path: finds the stored message, checks the sender may write
                # in this chat, records it on the SQL side; no flood limit (not a new send), no events.
                send_message(sender=sender, chat_id=chat_id, text=planned.text, client_id=planned.client_id)
                touched.add(chat_id)
                created_count += 1
            progress.advance(done)
        progress.close()
        for chat_id in touched - had_history:
            # send_message moved a new chat's activity to now, and the seed wrote its past.
            Chat.objects.filter(pk=chat_id).update(last_activity_at=store.latest(chat_id).created_at)
        if undated:
            self.stderr.write(f"This message store cannot be backdated: {undated} messages are stamped now.")
        return created_count, len(chat_ids)

    # --- Report -------------------------------------------------------------------

    def _report(
        self,
        *,
        seed: int,
        people: list[User],
        new_users: int,
        friendship_counts: dict[str, int],
        planned_messages: int,
        new_messages: int,
        chats: int,
    ) -> None:
        c = friendship_counts
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data for seed {seed}: {len(people)} users ({new_users} new); "
                f"{c[FRIENDS]} friendships, {c[PENDING]} pending requests, {c[DECLINED]} declined, "
                f"{c[NONE]} strangers ({c['new']} pairs set up now); "
                f"{planned_messages} messages in {chats} chats ({new_messages} new)."
            )
        )
        if c["differs"]:
            self.stdout.write(
                self.style.WARNING(
                    f"{c['differs']} pairs were already in another state (another seed or real use) and were left so."
                )
            )
        self.stdout.write(f"\nDemo logins (password {DEMO_PASSWORD!r} for the accounts this command created):")
        self.stdout.write(f"  {'username':<18} {'email':<30} {'phone':<15} friends  in  out")
        for user in people:
            others = [p.pk for p in people if p.pk != user.pk]
            states = list(friend_selectors.friendship_states(user.pk, others).values())
            self.stdout.write(
                f"  {user.username:<18} {user.email:<30} {user.phone_number or '':<15} "
                f"{states.count(friend_selectors.FriendshipState.FRIENDS):>7} "
                f"{states.count(friend_selectors.FriendshipState.INCOMING):>3} "
                f"{states.count(friend_selectors.FriendshipState.OUTGOING):>4}"
            )
