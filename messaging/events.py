"""Channel-layer group names for chats. Built from ids only, never from user text."""


def chat_group(chat_id: int) -> str:
    """The connections currently looking at one chat."""
    return f"chat.{int(chat_id)}"
