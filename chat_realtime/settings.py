"""Settings for chat-realtime: the one place that reads the environment.

Every knob comes from an environment variable (or a `.env` file beside
manage.py), using the original project's names where it had one. With nothing
set, the app runs on embedded stand-ins: SQLite, the in-process channel layer,
an in-process Redis (fakeredis), the SQL message store and local media. Setting
a service's variables switches that part to the real service.

The `*_config` functions take the environment as a mapping so tests can check
the switching without re-importing this module.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

# A .env file fills in what the real environment leaves unset.
load_dotenv(BASE_DIR / ".env", override=False)
ENV: Mapping[str, str] = os.environ

# Local, git-ignored state of a development checkout: SQLite, media, secrets.
VAR_DIR = Path(ENV.get("VAR_DIR") or BASE_DIR / "var")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false).")


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if value <= 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must be positive.")
    return value


def env_list(env: Mapping[str, str], name: str, default: list[str]) -> list[str]:
    raw = env.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(name: str, raw: str) -> timedelta:
    """`30m`, `12h`, `30d`, `1w`, or a bare number of seconds (as the original's `.env`)."""
    match = _DURATION.match(raw)
    if not match or int(match.group(1)) <= 0:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a duration: use a positive number with s, m, h, d or w (e.g. 30m)."
        )
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"])


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_rate(name: str, raw: str) -> tuple[int, int] | None:
    """A rate limit as `count/seconds` (e.g. `5/60`), or `off` for none."""
    if raw.strip().lower() == "off":
        return None
    match = _RATE.match(raw)
    if not match or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a rate limit: use count/seconds (e.g. 5/60) or off.")
    return int(match.group(1)), int(match.group(2))


# Pages (of 4 KiB) the SQLite log may grow to before a commit checkpoints it itself: ten times SQLite's
# default, so that where the server's checkpoint thread runs, a commit seldom does, and finds little to copy.
SQLITE_FALLBACK_CHECKPOINT_PAGES = 10_000


def database_config(env: Mapping[str, str], var_dir: Path) -> dict:
    """MySQL/MariaDB through mysqlclient when DB_HOST is set, SQLite otherwise."""
    if env.get("DB_HOST"):
        return {
            "ENGINE": "chat_realtime.mysql_backend",
            "HOST": env["DB_HOST"],
            "PORT": env.get("DB_PORT", "3306"),
            "NAME": env.get("DB_NAME", "chat_realtime"),
            "USER": env.get("DB_USER", "root"),
            "PASSWORD": env.get("DB_PASSWORD", ""),
            # Kept connections: the websocket path reaches the database on every
            # message, and opening a connection each time cost most of it. Health
            # checks replace a connection that died (restart, failover) before use.
            "CONN_MAX_AGE": env_int(env, "DB_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                "charset": "utf8mb4",
                "init_command": "SET sql_mode='STRICT_TRANS_TABLES', NAMES utf8mb4 COLLATE utf8mb4_unicode_ci",
            },
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    name = env.get("SQLITE_PATH") or str(var_dir / "db.sqlite3")
    return {
        "ENGINE": "chat_realtime.sqlite_backend",
        "NAME": name,
        "CONN_MAX_AGE": env_int(env, "DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        # Writers queue (IMMEDIATE, busy timeout) instead of failing when the
        # worker threads overlap; WAL lets readers run beside a writer. Temporary
        # data in memory: otherwise a statement's undo journal that outgrows
        # 64 KiB (a batch of sends' multi-row INSERT or UPDATE) goes to a file,
        # opened, written and unlinked each time (docs/benchmarks.md, sixth profile).
        # Checkpoints run in a thread of the server's (chat_realtime.sqlite_checkpoints); a commit runs one
        # itself only past SQLITE_FALLBACK_CHECKPOINT_PAGES.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY; "
                f"PRAGMA wal_autocheckpoint={SQLITE_FALLBACK_CHECKPOINT_PAGES};"
            ),
        },
        # Tests use a file too, so they see the same locking as the running app.
        "TEST": {"NAME": str(Path(name).with_name("test-" + Path(name).name))},
    }


def redis_url(env: Mapping[str, str]) -> str | None:
    if not env.get("REDIS_HOST"):
        return None
    password = env.get("REDIS_PASSWORD", "")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{env['REDIS_HOST']}:{env.get('REDIS_PORT', '6379')}/{env_int(env, 'REDIS_DB', 0)}"


def cache_config(env: Mapping[str, str]) -> dict:
    """django-redis on the real Redis when REDIS_HOST is set, on an in-process fakeredis otherwise.

    Both go through django-redis, so code that needs raw Redis commands
    (`django_redis.get_redis_connection`) runs unchanged on either.
    """
    url = redis_url(env)
    options: dict = {
        "CLIENT_CLASS": "django_redis.client.DefaultClient",
        # Fail fast when Redis is away, so callers can fall back to the database.
        "SOCKET_CONNECT_TIMEOUT": 2,
        "SOCKET_TIMEOUT": 2,
    }
    if url is None:
        url = "redis://embedded:6379/0"
        options["CONNECTION_POOL_KWARGS"] = {"connection_class": _fakeredis_connection_class()}
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": env.get("CACHE_KEY_PREFIX", "chat"),
            "OPTIONS": options,
        }
    }


def _fakeredis_connection_class():
    from fakeredis import FakeRedisConnection

    return FakeRedisConnection


def channel_layers_config(env: Mapping[str, str]) -> dict:
    """channels-redis's pub/sub layer, local members first (chat_realtime.channel_layer), when REDIS_HOST is set;
    in-process otherwise."""
    url = redis_url(env)
    if url is None:
        return {"default": {"BACKEND": "chat_realtime.channel_layer.InProcessChannelLayer"}}
    return {
        "default": {
            "BACKEND": "chat_realtime.channel_layer.LocalFirstPubSubChannelLayer",
            "CONFIG": {
                "hosts": [url],
                "prefix": env.get("CHANNEL_LAYER_PREFIX", "chat"),
            },
        }
    }


def email_config(env: Mapping[str, str]) -> dict:
    """SMTP when EMAIL_HOST is set; otherwise mail is printed on the console."""
    if not env.get("EMAIL_HOST"):
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    use_ssl = env_bool(env, "EMAIL_USE_SSL", False)
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": env["EMAIL_HOST"],
        "EMAIL_PORT": env_int(env, "EMAIL_PORT", 587),
        "EMAIL_HOST_USER": env.get("EMAIL_HOST_USER", ""),
        "EMAIL_HOST_PASSWORD": env.get("EMAIL_HOST_PASSWORD", ""),
        "EMAIL_USE_SSL": use_ssl,
        # STARTTLS unless implicit TLS was asked for: Django refuses both at once.
        "EMAIL_USE_TLS": env_bool(env, "EMAIL_USE_TLS", not use_ssl),
    }


def storages_config(env: Mapping[str, str]) -> dict:
    """Cloudinary for uploaded images when CLOUD_NAME is set, local media otherwise."""
    default = (
        {"BACKEND": "chat_realtime.cloudinary_storage.CloudinaryStorage"}
        if env.get("CLOUD_NAME")
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    )
    return {
        "default": default,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }


def secrets_config(env: Mapping[str, str], debug: bool, var_dir: Path) -> tuple[str, str]:
    """(SECRET_KEY, ACCESS_TOKEN_SECRET).

    In production (DEBUG off) both must come from the environment. In
    development a pair is generated once and kept in an ignored local file, so
    sessions and tokens survive restarts and nothing secret is committed.
    """
    secret_key = env.get("SECRET_KEY", "")
    token_secret = env.get("ACCESS_TOKEN_SECRET", "")
    if secret_key and token_secret:
        return secret_key, token_secret
    if not debug:
        missing = [n for n, v in (("SECRET_KEY", secret_key), ("ACCESS_TOKEN_SECRET", token_secret)) if not v]
        raise ImproperlyConfigured(
            f"DEBUG is off and {', '.join(missing)} is not set: production needs real secrets "
            "from the environment (see .env.example)."
        )
    path = var_dir / "dev-secrets.json"
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        var_dir.mkdir(parents=True, exist_ok=True)
        stored = {"SECRET_KEY": secrets.token_urlsafe(50), "ACCESS_TOKEN_SECRET": secrets.token_urlsafe(50)}
        path.write_text(json.dumps(stored))
        path.chmod(0o600)
    return secret_key or stored["SECRET_KEY"], token_secret or stored["ACCESS_TOKEN_SECRET"]


def check_production_secret(name: str, value: str) -> None:
    if len(value) < 32 or value.startswith("django-insecure") or value in {"changeme", "secret"}:
        raise ImproperlyConfigured(f"{name} is too weak for production: use at least 32 random characters.")


# --- Core -------------------------------------------------------------------

DEBUG = env_bool(ENV, "DEBUG", False)
SECRET_KEY, ACCESS_TOKEN_SECRET = secrets_config(ENV, DEBUG, VAR_DIR)
if not DEBUG:
    check_production_secret("SECRET_KEY", SECRET_KEY)
    check_production_secret("ACCESS_TOKEN_SECRET", ACCESS_TOKEN_SECRET)

ALLOWED_HOSTS = env_list(ENV, "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list(ENV, "CSRF_TRUSTED_ORIGINS", [])
PORT = env_int(ENV, "PORT", 8000)
# How many reverse proxies in front append to X-Forwarded-For (0: trust REMOTE_ADDR only).
NUM_PROXIES = env_int(ENV, "NUM_PROXIES", 0)

INSTALLED_APPS = [
    "daphne",
    "accounts.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "chat_realtime",
    "accounts",
    "friends",
    "messaging",
    "presence",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "chat_realtime.security_headers.ContentSecurityPolicyMiddleware",
    "chat_realtime.request_charsets.ReadableCharsetMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "chat_realtime.htmx_answers.HtmxAnswersMiddleware",
]

ROOT_URLCONF = "chat_realtime.urls"
ASGI_APPLICATION = "chat_realtime.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "chat_realtime.context_processors.unread_notifications",
            ],
        },
    },
]

DATABASES = {"default": database_config(ENV, VAR_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = cache_config(ENV)
# Whether other processes see this Redis (REDIS_HOST), or it is this process's own in-process stand-in.
REDIS_SHARED = redis_url(ENV) is not None
CHANNEL_LAYERS = channel_layers_config(ENV)
# Prefix of the raw Redis keys (friends:{id}, online_users, ...); empty keeps the original names.
REDIS_KEY_PREFIX = ENV.get("REDIS_KEY_PREFIX", "")
MONGODB_URL = ENV.get("MONGODB_URL", "")
MONGODB_DB_NAME = ENV.get("MONGODB_DB_NAME", "chat_realtime")

# --- Accounts and auth ------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.LoginIdentifierBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = env_int(ENV, "PASSWORD_RESET_TIMEOUT", 3600)

AVATAR_MAX_BYTES = env_int(ENV, "AVATAR_MAX_BYTES", 5 * 1024 * 1024)
IMAGE_MAX_BYTES = env_int(ENV, "IMAGE_MAX_BYTES", 5 * 1024 * 1024)
IMAGE_MAX_PIXELS = env_int(ENV, "IMAGE_MAX_PIXELS", 40_000_000)

# Each limit is `count/seconds` or `off`; a malformed value stops the start-up.
RATE_LIMITS = {
    "login": parse_rate("LOGIN_RATE_LIMIT", ENV.get("LOGIN_RATE_LIMIT", "5/60")),
    "register": parse_rate("REGISTER_RATE_LIMIT", ENV.get("REGISTER_RATE_LIMIT", "5/3600")),
    "password_reset": parse_rate("PASSWORD_RESET_RATE_LIMIT", ENV.get("PASSWORD_RESET_RATE_LIMIT", "3/3600")),
    # Per user, websocket and API sends together.
    "message": parse_rate("MESSAGE_RATE_LIMIT", ENV.get("MESSAGE_RATE_LIMIT", "20/10")),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.AccessTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "chat_realtime.parsers.UnicodeJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chat_realtime.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": parse_duration("ACCESS_TOKEN_EXPIRES_IN", ENV.get("ACCESS_TOKEN_EXPIRES_IN", "30m")),
    "REFRESH_TOKEN_LIFETIME": parse_duration("REFRESH_TOKEN_EXPIRES_IN", ENV.get("REFRESH_TOKEN_EXPIRES_IN", "30d")),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "SIGNING_KEY": ACCESS_TOKEN_SECRET,
    "ALGORITHM": "HS256",
    "AUTH_HEADER_TYPES": ("Bearer",),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "chat-realtime API",
    "DESCRIPTION": "JSON API of chat-realtime. Websocket protocol: see docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Files, mail, i18n ------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(ENV.get("STATIC_ROOT") or VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(ENV.get("MEDIA_ROOT") or VAR_DIR / "media")
STORAGES = storages_config(ENV)
if DEBUG:
    # The manifest needs collectstatic; development serves from the apps directly.
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
CLOUDINARY = {
    "cloud_name": ENV.get("CLOUD_NAME", ""),
    "api_key": ENV.get("API_KEY", ""),
    "api_secret": ENV.get("API_SECRET_KEY", ""),
}
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

globals().update(email_config(ENV))
DEFAULT_FROM_EMAIL = ENV.get("DEFAULT_FROM_EMAIL", "chat-realtime <no-reply@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The app ships in English only. Off, the translation machinery stays unloaded, and templates no longer
# ask for the active language for every number they print: a chat row of a live message rendered
# a fifth faster (docs/benchmarks.md).
USE_I18N = False
USE_TZ = True

# --- Production hardening (checked by `manage.py check --deploy`) ----------

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env_bool(ENV, "SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int(ENV, "SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Django's database sessions, whose browser websockets close when they end (accounts/sessions.py).
SESSION_ENGINE = "accounts.sessions"
X_FRAME_OPTIONS = "DENY"
# The container health check speaks plain HTTP from inside.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# WARN is Python's alias of WARNING; the server (uvicorn) knows only the long name.
LOG_LEVEL = {"WARN": "WARNING"}.get(level := ENV.get("LOG_LEVEL", "INFO").upper(), level)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # The development server's access log has a handler of its own.
    "loggers": {"django.channels.server": {"propagate": False}},
}

# Presence: a connection's worker renews it every HEARTBEAT seconds; unrenewed, it
# expires after TTL; any worker sweeps expired users offline every SWEEP seconds.
# With the defaults a dead worker's users are offline within TTL + HEARTBEAT = 45 s.
PRESENCE_HEARTBEAT_SECONDS = env_float(ENV, "PRESENCE_HEARTBEAT_SECONDS", 10)
PRESENCE_TTL_SECONDS = env_float(ENV, "PRESENCE_TTL_SECONDS", 35)
PRESENCE_SWEEP_SECONDS = env_float(ENV, "PRESENCE_SWEEP_SECONDS", 10)
if PRESENCE_TTL_SECONDS <= 2 * PRESENCE_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("PRESENCE_TTL_SECONDS must be more than twice PRESENCE_HEARTBEAT_SECONDS.")

# Frames longer than this close the websocket (1009); the server limits what it parses.
WEBSOCKET_MAX_FRAME_CHARS = env_int(ENV, "WEBSOCKET_MAX_FRAME_CHARS", 64 * 1024)
