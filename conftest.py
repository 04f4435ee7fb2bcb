"""Fixtures shared by every app's tests.

Tests use whatever services the environment names (see chat_realtime/settings.py):
the embedded stand-ins by default, the real MariaDB and Redis when DB_HOST and
REDIS_HOST are set. Nothing here swaps one for the other.
"""

from __future__ import annotations

import io
import itertools

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from PIL import Image
from rest_framework.test import APIClient

from chat_realtime.tests import redis_namespace

_numbers = itertools.count(1)
PASSWORD = "correct-horse-battery-9"


@pytest.fixture(scope="session", autouse=True)
def _redis_namespace_of_this_run():
    """Raw keys, cache keys and channel-layer channels of this run carry its own prefix.

    Two runs on one Redis (another checkout, CI beside a developer) then neither
    receive each other's live events nor delete each other's keys.
    """
    cache = {**django_settings.CACHES["default"], "KEY_PREFIX": redis_namespace.CACHE_KEY_PREFIX}
    layer = django_settings.CHANNEL_LAYERS["default"]
    if "CONFIG" in layer:  # channels-redis; the in-process layer crosses no process and has no prefix
        layer = {**layer, "CONFIG": {**layer["CONFIG"], "prefix": redis_namespace.CHANNEL_LAYER_PREFIX}}
    with override_settings(
        REDIS_KEY_PREFIX=redis_namespace.REDIS_KEY_PREFIX,
        CACHES={"default": cache},
        CHANNEL_LAYERS={"default": layer},
    ):
        yield


@pytest.fixture(autouse=True)
def _fresh_redis():
    """Each test starts with none of this run's keys. Only this run's: a shared Redis keeps the rest."""
    redis_namespace.delete_this_runs_keys()
    yield
    redis_namespace.delete_this_runs_keys()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The production hasher is slow on purpose; tests check behaviour, not hashing cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def redis_down(settings):
    """Point the cache (and so every raw Redis call) at a port nothing listens on, as when Redis is away."""
    from django.core.cache import caches
    from django.test import override_settings

    down = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", "SOCKET_CONNECT_TIMEOUT": 0.3},
        }
    }
    with override_settings(CACHES=down):
        yield
        caches["default"].close()


@pytest.fixture
def make_user(db):
    from accounts.models import User

    def make(**fields) -> User:
        n = next(_numbers)
        fields.setdefault("username", f"user{n}")
        fields.setdefault("email", f"user{n}@example.com")
        # Apart from the numbers tests write out (+1555000....), however many users a run makes.
        fields.setdefault("phone_number", f"+1444{n:07d}")
        password = fields.pop("password", PASSWORD)
        return User.objects.create_user(password=password, **fields)

    return make


@pytest.fixture
def user(make_user):
    return make_user(username="alice", email="alice@example.com", phone_number="+15550001111")


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def auth_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (200, 80, 40) if mode == "RGB" else None).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def befriend(db):
    """Make two users friends through the services, as the app does."""
    from friends import services

    def make_friends(user_a, user_b):
        services.send_friend_request(sender=user_a, receiver_id=user_b.pk)
        _, chat, _ = services.accept_friend_request(receiver=user_b, requester_id=user_a.pk)
        return chat

    return make_friends


@pytest.fixture
def friends_with_chat(user, make_user, befriend):
    """alice and bob, friends, and their chat."""
    bob = make_user(username="bob")
    chat = befriend(user, bob)
    return user, bob, chat


@pytest.fixture
def round_trips(monkeypatch):
    """The statement texts the default MySQL/MariaDB connection sends from now on, one entry per round trip
    (the driver's own COMMIT, ROLLBACK, autocommit switch and ping as "COMMIT", "ROLLBACK", "SET autocommit",
    "PING"). Skips on SQLite (DB_HOST unset)."""
    from django.db import connection

    if connection.vendor != "mysql":
        pytest.skip("DB_HOST is not set: this test counts round trips to MySQL/MariaDB")
    from MySQLdb.connections import Connection

    sent: list[str] = []

    def counted(method, text=None):
        def send(db, *args):
            if db is connection.connection:  # not another session's
                sent.append(text or bytes(args[0]).decode())
            return method(db, *args)

        return send

    monkeypatch.setattr(Connection, "query", counted(Connection.query))
    monkeypatch.setattr(Connection, "commit", counted(Connection.commit, "COMMIT"))
    monkeypatch.setattr(Connection, "rollback", counted(Connection.rollback, "ROLLBACK"))
    monkeypatch.setattr(Connection, "autocommit", counted(Connection.autocommit, "SET autocommit"))
    monkeypatch.setattr(Connection, "ping", counted(Connection.ping, "PING"))
    return sent


@pytest.fixture
def other_mysql_session():
    """A second MySQL/MariaDB session on the test database, to see what others see (only what is
    committed) and to meet the test's locks. Skips where the database is SQLite (DB_HOST unset)."""
    from django.db import connection

    if connection.vendor != "mysql":
        pytest.skip("DB_HOST is not set: this test needs a second session on MySQL/MariaDB")
    import MySQLdb

    settings = connection.settings_dict
    session = MySQLdb.connect(
        host=settings["HOST"],
        port=int(settings["PORT"]),
        user=settings["USER"],
        password=settings["PASSWORD"],
        database=settings["NAME"],
        autocommit=True,
    )
    yield session
    session.close()
