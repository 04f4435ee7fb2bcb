"""The environment switches each part between the embedded stand-in and the real service."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.utils import ConnectionHandler

from chat_realtime import settings as project_settings
from chat_realtime.settings import (
    cache_config,
    channel_layers_config,
    database_config,
    email_config,
    parse_duration,
    parse_rate,
    secrets_config,
    storages_config,
)

ROOT = Path(__file__).resolve().parents[2]
STRONG = "k" * 20 + "0123456789abcdefghijklmnopqrstuv"


def test_without_db_host_the_database_is_sqlite_in_the_local_folder(tmp_path):
    config = database_config({}, tmp_path)

    assert config["ENGINE"] == "chat_realtime.sqlite_backend"
    assert config["NAME"] == str(tmp_path / "db.sqlite3")


def test_sqlite_logs_ahead_and_keeps_temporary_data_in_memory(tmp_path, django_db_blocker):
    # temp_store: a batch's large multi-row statements otherwise spill their undo journal to a file.
    connection = ConnectionHandler({"default": database_config({}, tmp_path)})["default"]
    try:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            pragmas = {
                name: cursor.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "temp_store")
            }
    finally:
        connection.close()

    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "temp_store": 2}


def test_db_variables_switch_to_mysql_with_utf8mb4():
    env = {"DB_HOST": "db.internal", "DB_PORT": "3307", "DB_NAME": "chat", "DB_USER": "app", "DB_PASSWORD": "pw"}

    config = database_config(env, Path("/unused"))

    assert config["ENGINE"] == "chat_realtime.mysql_backend"
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"], config["PASSWORD"]) == (
        "db.internal",
        "3307",
        "chat",
        "app",
        "pw",
    )
    assert config["OPTIONS"]["charset"] == "utf8mb4"
    assert config["TEST"]["CHARSET"] == "utf8mb4"


def test_without_redis_host_cache_and_channel_layer_stay_in_process():
    assert channel_layers_config({})["default"]["BACKEND"] == "chat_realtime.channel_layer.InProcessChannelLayer"
    cache = cache_config({})["default"]
    assert cache["BACKEND"] == "django_redis.cache.RedisCache"
    assert cache["OPTIONS"]["CONNECTION_POOL_KWARGS"]["connection_class"].__module__.startswith("fakeredis")


def test_redis_variables_switch_cache_and_channel_layer_to_the_real_redis():
    env = {"REDIS_HOST": "cache.internal", "REDIS_PORT": "6380"}

    cache = cache_config(env)["default"]
    layer = channel_layers_config(env)["default"]

    assert cache["LOCATION"] == "redis://cache.internal:6380/0"
    assert "CONNECTION_POOL_KWARGS" not in cache["OPTIONS"]
    assert layer["BACKEND"] == "chat_realtime.channel_layer.LocalFirstPubSubChannelLayer"
    assert layer["CONFIG"]["hosts"] == ["redis://cache.internal:6380/0"]


def test_cloud_name_switches_uploads_to_cloudinary():
    assert storages_config({})["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert storages_config({"CLOUD_NAME": "demo"})["default"]["BACKEND"].endswith("CloudinaryStorage")


def test_email_host_switches_mail_to_smtp():
    assert email_config({})["EMAIL_BACKEND"].endswith("console.EmailBackend")
    smtp = email_config({"EMAIL_HOST": "smtp.example.com", "EMAIL_PORT": "465", "EMAIL_USE_SSL": "true"})
    assert smtp["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
    assert (smtp["EMAIL_PORT"], smtp["EMAIL_USE_SSL"]) == (465, True)


def test_the_running_settings_follow_the_environment_of_this_run():
    if os.environ.get("DB_HOST"):
        assert project_settings.DATABASES["default"]["ENGINE"] == "chat_realtime.mysql_backend"
    else:
        assert project_settings.DATABASES["default"]["ENGINE"] == "chat_realtime.sqlite_backend"
    if os.environ.get("REDIS_HOST"):
        assert project_settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith("LocalFirstPubSubChannelLayer")
    else:
        assert project_settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith("InProcessChannelLayer")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("900", timedelta(seconds=900)),
        ("1w", timedelta(weeks=1)),
    ],
)
def test_token_lifetimes_read_the_original_projects_duration_format(raw, expected):
    assert parse_duration("ACCESS_TOKEN_EXPIRES_IN", raw) == expected


@pytest.mark.parametrize("raw", ["", "soon", "-5m", "0", "30 minutes", "1y"])
def test_a_malformed_duration_is_refused_naming_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match="ACCESS_TOKEN_EXPIRES_IN"):
        parse_duration("ACCESS_TOKEN_EXPIRES_IN", raw)


def test_rate_limits_read_count_per_seconds_or_off():
    assert parse_rate("LOGIN_RATE_LIMIT", "5/60") == (5, 60)
    assert parse_rate("LOGIN_RATE_LIMIT", "OFF") is None


@pytest.mark.parametrize("raw", ["5", "five/60", "5/0", "0/60", "5/m", ""])
def test_a_malformed_rate_limit_is_refused_naming_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match="LOGIN_RATE_LIMIT"):
        parse_rate("LOGIN_RATE_LIMIT", raw)


def test_development_secrets_are_generated_once_and_kept(tmp_path):
    first = secrets_config({}, True, tmp_path)
    second = secrets_config({}, True, tmp_path)

    assert first == second
    assert all(len(secret) >= 50 for secret in first)
    assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o077 == 0


def test_production_refuses_to_invent_secrets(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY, ACCESS_TOKEN_SECRET"):
        secrets_config({}, False, tmp_path)
    assert not (tmp_path / "dev-secrets.json").exists()


def test_the_local_secrets_file_is_ignored_by_git():
    result = subprocess.run(
        ["git", "check-ignore", "-q", "var/dev-secrets.json"], cwd=ROOT, capture_output=True, check=False
    )
    assert result.returncode == 0


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "ACCESS_TOKEN_SECRET")}
    clean.update(VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, check=False
    )


def test_the_app_refuses_to_start_in_production_without_real_secrets(tmp_path):
    result = manage("check", env={"DEBUG": "false"}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_the_app_refuses_a_weak_production_secret(tmp_path):
    result = manage(
        "check", env={"DEBUG": "false", "SECRET_KEY": "changeme", "ACCESS_TOKEN_SECRET": STRONG}, tmp_path=tmp_path
    )

    assert result.returncode != 0
    assert "too weak" in result.stderr


def test_a_malformed_rate_limit_stops_the_start_up(tmp_path):
    result = manage("check", env={"DEBUG": "true", "LOGIN_RATE_LIMIT": "lots"}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "LOGIN_RATE_LIMIT" in result.stderr


def test_production_settings_pass_the_deploy_checklist(tmp_path):
    env = {
        "DEBUG": "false",
        "SECRET_KEY": STRONG,
        "ACCESS_TOKEN_SECRET": STRONG[::-1],
        "ALLOWED_HOSTS": "chat.example.com",
    }

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)

    assert result.returncode == 0, result.stderr


def test_a_redis_password_with_url_characters_is_escaped():
    config = cache_config({"REDIS_HOST": "cache", "REDIS_PASSWORD": "s3cr#t/p@ss"})

    assert config["default"]["LOCATION"] == "redis://:s3cr%23t%2Fp%40ss@cache:6379/0"


def test_the_models_and_their_migrations_agree(tmp_path):
    result = manage("makemigrations", "--check", "--dry-run", env={"DEBUG": "true"}, tmp_path=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
