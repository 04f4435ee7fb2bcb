"""Presence frames, sent to friends through chat_realtime.realtime."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def user_online_frame(*, user_id: int) -> dict[str, Any]:
    return {"type": "user_online", "user_id": int(user_id)}


def user_offline_frame(*, user_id: int, last_seen: datetime) -> dict[str, Any]:
    return {"type": "user_offline", "user_id": int(user_id), "last_seen": last_seen.isoformat().replace("+00:00", "Z")}


def online_friends_frame(user_ids: list[int]) -> dict[str, Any]:
    return {"type": "online_friends", "user_ids": user_ids}
