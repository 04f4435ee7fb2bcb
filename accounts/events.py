"""Channel-layer group names for people. Built from ids only, never from user text."""

import hashlib


def user_group(user_id: int) -> str:
    """Every open connection of one user, on every worker."""
    return f"user.{int(user_id)}"


def session_group(session_key: str) -> str:
    """Every open connection a browser opened with one login session, on every worker. Named by a digest
    of the key: the key is the session's secret, and group names travel through Redis."""
    return f"session.{hashlib.sha256(session_key.encode()).hexdigest()[:32]}"
