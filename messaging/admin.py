"""Chats and their messages in the admin.

Messages live in the message store (MongoDB or its SQL twin), not in a Django
model the admin knows, so they get their own pages here: find, read in
context, remove. Each is open to staff with `messaging.moderate_messages`, and
every removal goes through `messaging.services.remove_message` and into the
admin log.
"""

from __future__ import annotations

import re
from datetime import datetime, time

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_POST

from accounts.models import User
from chat_realtime.errors import ApplicationError
from messaging import services
from messaging.models import Chat, ChatParticipant
from messaging.store import message_store

MODERATE = "messaging.moderate_messages"
AROUND = 10


class ParticipantInline(admin.TabularInline):
    model = ChatParticipant
    extra = 0
    raw_id_fields = ("user",)
    readonly_fields = ("user", "joined_at", "last_read_message_id", "unread_count")
    can_delete = False


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin):
    list_display = ("id", "__str__", "is_group", "created_at", "last_activity_at")
    list_filter = ("is_group",)
    search_fields = ("name", "participants__user__username")
    readonly_fields = ("direct_key", "created_at", "last_activity_at")
    inlines = [ParticipantInline]

    def get_urls(self):
        return [
            path("messages/", self.admin_site.admin_view(self.find_messages), name="messaging_messages"),
            path(
                "messages/<str:message_id>/",
                self.admin_site.admin_view(self.message_in_context),
                name="messaging_message",
            ),
            path(
                "messages/<str:message_id>/remove/",
                self.admin_site.admin_view(require_POST(self.remove_message)),
                name="messaging_message_remove",
            ),
            *super().get_urls(),
        ]

    def _check(self, request: HttpRequest) -> None:
        if not request.user.has_perm(MODERATE):
            raise PermissionDenied

    def _senders(self, found) -> dict[int, User]:
        return {u.pk: u for u in User.objects.filter(pk__in={m.sender_id for m in found})}

    def find_messages(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        query = request.GET
        errors = []
        conditions: dict = {}
        if query.get("chat"):
            if re.fullmatch(r"[0-9]{1,18}", query["chat"]):
                conditions["chat_id"] = int(query["chat"])
            else:
                errors.append("Chat must be a chat id.")
        if query.get("sender"):
            sender = User.objects.filter(username__iexact=query["sender"]).first()
            conditions["sender_id"] = sender.pk if sender else -1
        if query.get("text"):
            conditions["text"] = query["text"][:200]
        for field, key, shift in (("since", "since", time.min), ("until", "until", time.max)):
            if query.get(field):
                day = parse_date(query[field])
                if day is None:
                    errors.append(f"{field.capitalize()} must be a date (YYYY-MM-DD).")
                else:
                    conditions[key] = timezone.make_aware(datetime.combine(day, shift))
        found = message_store().search(**conditions, limit=100) if not errors else []
        context = {
            **self.admin_site.each_context(request),
            "title": "Messages",
            "query": query,
            "errors": errors,
            "found": found,
            "senders": self._senders(found),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/messaging/find_messages.html", context)

    def message_in_context(self, request: HttpRequest, message_id: str) -> HttpResponse:
        self._check(request)
        store = message_store()
        message = store.get(message_id)
        if message is None:
            messages.error(request, "No such message.")
            return redirect("admin:messaging_messages")
        before = list(reversed(store.page_before(message.chat_id, before=message.id, limit=AROUND)))
        after = store.page_after(message.chat_id, after=message.id, limit=AROUND)
        around = [*before, message, *after]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Message {message.id}",
            "message": message,
            "around": around,
            "senders": self._senders(around),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/messaging/message_in_context.html", context)

    def remove_message(self, request: HttpRequest, message_id: str) -> HttpResponse:
        self._check(request)
        try:
            message = services.remove_message(message_id=message_id, moderator=request.user)
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("admin:messaging_messages")
        # In the admin log, on the chat, where other staff look.
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=Chat.objects.filter(pk=message.chat_id),
            action_flag=CHANGE,
            change_message=f"Removed message {message.id} (sent by user {message.sender_id}).",
        )
        messages.success(request, "The message was removed for everyone.")
        return redirect(reverse("admin:messaging_message", args=[message.id]))
