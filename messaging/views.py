"""Browser pages of chats: the home page, a chat, older messages, and sending without a socket."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chat_realtime.errors import ApplicationError, NotFoundError
from friends.overview import friend_overview
from friends.selectors import are_friends
from messaging import browser, selectors, services
from messaging.models import ChatParticipant
from messaging.store import MessageStoreUnavailable

PAGE_SIZE = 30


def _sidebar_rows(user) -> list[dict]:
    return [browser.row(entry, user.pk) for entry in friend_overview(user) if entry.chat_id]


def _pane_context(request: HttpRequest, chat_id: int) -> dict:
    membership = selectors.participant(user_id=request.user.pk, chat_id=chat_id)
    friend = ChatParticipant.objects.filter(chat_id=chat_id).exclude(user=request.user).select_related("user").first()
    friend_user = friend.user if friend else None
    page = selectors.history(user=request.user, chat_id=chat_id, before=None, after=None, limit=PAGE_SIZE)
    from presence.selectors import online_among_or_none

    return {
        "chat": membership.chat,
        "friend": friend_user,
        "online": bool(friend_user and friend_user.pk in online_among_or_none([friend_user.pk])),
        "can_write": bool(friend_user and are_friends(request.user.pk, friend_user.pk)),
        "messages": [browser.bubble(m, request.user.pk) for m in reversed(page.messages)],
        "next_before": page.next_before,
    }


@login_required
@require_GET
def home(request: HttpRequest, chat_id: int | None = None) -> HttpResponse:
    pane = None
    try:
        if chat_id is not None:
            pane = _pane_context(request, chat_id)
            if request.htmx and request.htmx.target == "chat-pane":
                # With the page's title: htmx takes a <title> from the answer, as a whole page would have it.
                return render(request, "messaging/partials/_chat_pane.html", {**pane, "with_title": True})
        context = {"rows": _sidebar_rows(request.user), "pane": pane}
    except NotFoundError:
        if request.htmx and request.htmx.target == "chat-pane":
            return render(request, "messaging/partials/_empty_pane.html", {"missing": True}, status=404)
        return render(request, "404.html", status=404)
    except MessageStoreUnavailable as error:
        return render(request, "messaging/unavailable.html", {"error": error}, status=503)
    return render(request, "messaging/home.html", context)


@login_required
@require_GET
def history(request: HttpRequest, chat_id: int) -> HttpResponse:
    """Older messages (before=) for scrolling up, or newer ones (after=) to catch up after a reconnect."""
    try:
        page = selectors.history(
            user=request.user,
            chat_id=chat_id,
            before=request.GET.get("before") or None,
            after=request.GET.get("after") or None,
            limit=PAGE_SIZE if not request.GET.get("after") else browser.CATCH_UP_LIMIT,
        )
    except NotFoundError:
        return HttpResponse(status=404)
    except ApplicationError as error:
        return HttpResponse(error.message, status=error.status_code)
    older = not request.GET.get("after")
    messages = [browser.bubble(m, request.user.pk) for m in (reversed(page.messages) if older else page.messages)]
    context = {"chat_id": chat_id, "messages": messages, "next_before": page.next_before if older else None}
    if not older:
        context["next_after"] = page.next_after  # more came after these: the page asks again from there
    return render(request, "messaging/partials/_messages_page.html", context)


@login_required
@require_POST
def send(request: HttpRequest, chat_id: int) -> HttpResponse:
    """Sending over HTTP: images (and any message when the page has no socket)."""
    client_id = request.POST.get("client_id") or uuid.uuid4().hex
    image = request.FILES.get("image")
    try:
        sent = services.send_message(
            sender=request.user, chat_id=chat_id, text=request.POST.get("text", ""), client_id=client_id, image=image
        )
    except NotFoundError:
        return render(request, "404.html", status=404)
    except ApplicationError as error:
        if request.htmx:
            frame = {"type": "error", "code": error.code, "message": error.message, "client_id": client_id}
            return render(
                request, "messaging/partials/_error.html", {"error": frame, "inline": True}, status=error.status_code
            )
        return render(
            request, "messaging/send_failed.html", {"error": error, "chat_id": chat_id}, status=error.status_code
        )
    if request.htmx:
        return HttpResponse(browser.render_bubble(sent.message, request.user.pk), status=201)
    return redirect("messaging:chat", chat_id=chat_id)
