"""Chat writes. Every entry point calls these; each rule lives here once."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.models import User
from messaging.models import Chat, ChatParticipant


def get_or_create_direct_chat(*, user_a: User, user_b: User) -> Chat:
    """The one-to-one chat of two people: created the first time, reused ever after."""
    key = Chat.key_for_pair(user_a.pk, user_b.pk)
    chat = Chat.objects.filter(direct_key=key).first()
    if chat is None:
        try:
            with transaction.atomic():
                chat = Chat.objects.create(direct_key=key)
                ChatParticipant.objects.bulk_create(
                    [ChatParticipant(chat=chat, user=user_a), ChatParticipant(chat=chat, user=user_b)]
                )
        except IntegrityError:
            # Both accepted at once; the other transaction made it.
            chat = Chat.objects.get(direct_key=key)
    return chat
