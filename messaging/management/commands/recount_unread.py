"""`manage.py recount_unread`: count every membership's unread messages again from the message store.

The services keep each unread count as messages are sent and read; this is for
after messages were written past them (a restore of the message store, a bulk
import or seed). Chats are locked a few hundred at a time, as sending locks
them, so the app can keep running meanwhile.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from messaging.models import Chat
from messaging.services import recount_unread


class Command(BaseCommand):
    help = "Count every chat membership's unread messages again from the message store and store the counts."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--chat", type=int, action="append", dest="chat_ids", help="only this chat (repeatable)")

    def handle(self, *args, chat_ids: list[int] | None, **options) -> None:
        if chat_ids is not None:
            # A typo recounts nothing and says so, rather than report "fixed 0" or fail in the database.
            found = set(Chat.objects.filter(pk__in=[i for i in chat_ids if 0 < i < 2**63]).values_list("pk", flat=True))
            unknown = sorted(set(chat_ids) - found)
            if unknown:
                raise CommandError(f"No such chat: {', '.join(map(str, unknown))}. Nothing was recounted.")
        corrected = recount_unread(chat_ids)
        self.stdout.write(self.style.SUCCESS(f"Recounted unread messages; fixed {corrected} wrong count(s)."))
