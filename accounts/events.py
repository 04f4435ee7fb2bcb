"""Channel-layer group names for people. Built from ids only, never from user text."""


def user_group(user_id: int) -> str:
    """Every open connection of one user, on every worker."""
    return f"user.{int(user_id)}"
