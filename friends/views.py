"""Browser pages of friends and notifications; each action answers htmx with the fragment it changed."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from chat_realtime.errors import ApplicationError, NotFoundError
from friends import browser, selectors, services


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        raise BadRequest("page must be a number") from None


@login_required
@require_GET
def friends_page(request: HttpRequest) -> HttpResponse:
    incoming, outgoing = selectors.friend_requests(request.user)
    context = {
        "incoming": incoming,
        "outgoing": outgoing,
        "query": request.GET.get("q", ""),
        "results": browser.search_results(request.user, request.GET.get("q", ""), _page_number(request)),
    }
    return render(request, "friends/friends.html", context)


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    results = browser.search_results(request.user, request.GET.get("q", "")[:254], _page_number(request))
    return render(request, "friends/partials/_search_results.html", {"results": results})


def _answer(request: HttpRequest, user_id: int, action) -> HttpResponse:
    """Run a friend action; htmx gets the person's new action button, a plain form goes back."""
    try:
        action()
    except ApplicationError as error:
        if not request.htmx:
            return render(request, "friends/action_failed.html", {"error": error}, status=error.status_code)
        response = render(
            request, "friends/partials/_friend_action.html", browser.action_context(request.user, user_id, error=error)
        )
        response.status_code = error.status_code
        return response
    if not request.htmx:
        return redirect("friends:page")
    context = {**browser.action_context(request.user, user_id), "badge_oob": True}
    return render(request, "friends/partials/_friend_action.html", context)


@login_required
@require_GET
def friend_action(request: HttpRequest, user_id: int) -> HttpResponse:
    """The person's action button as it is now: what the page asks for when news of it arrived while its own
    request was on its way (static/js/app.js). Nobody's (an unknown or deactivated account): 404."""
    context = browser.action_context(request.user, user_id)
    if context["person"] is None:
        raise Http404("No such person.")
    return render(request, "friends/partials/_friend_action.html", context)


@login_required
@require_POST
def send_request(request: HttpRequest, user_id: int) -> HttpResponse:
    return _answer(request, user_id, lambda: services.send_friend_request(sender=request.user, receiver_id=user_id))


@login_required
@require_POST
def accept(request: HttpRequest, user_id: int) -> HttpResponse:
    return _answer(
        request, user_id, lambda: services.accept_friend_request(receiver=request.user, requester_id=user_id)
    )


@login_required
@require_POST
def reject(request: HttpRequest, user_id: int) -> HttpResponse:
    return _answer(
        request, user_id, lambda: services.reject_friend_request(receiver=request.user, requester_id=user_id)
    )


@login_required
@require_POST
def cancel(request: HttpRequest, user_id: int) -> HttpResponse:
    return _answer(
        request, user_id, lambda: services.cancel_friend_request(requester=request.user, receiver_id=user_id)
    )


@login_required
@require_POST
def unfriend(request: HttpRequest, user_id: int) -> HttpResponse:
    return _answer(request, user_id, lambda: services.unfriend(user=request.user, friend_id=user_id))


@login_required
@require_GET
def notifications_page(request: HttpRequest) -> HttpResponse:
    page = selectors.notifications_for(user=request.user, unread_only=False, page=_page_number(request), page_size=30)
    template = "friends/partials/_notification_menu.html" if request.htmx else "friends/notifications.html"
    return render(request, template, {"page": page, "unread_count": selectors.unread_notification_count(request.user)})


def _notification_answer(request: HttpRequest) -> HttpResponse:
    if not request.htmx:
        return redirect("friends:notifications")
    # On the notifications page, the page of the list the person is on; the bell, on any page, shows the first.
    page_number = 1
    current = urlsplit(request.htmx.current_url or "")
    if current.path == reverse("friends:notifications"):
        shown = parse_qs(current.query).get("page", ["1"])[0]
        page_number = int(shown) if shown.isdigit() and 0 < int(shown) < 10**6 else 1
    page = selectors.notifications_for(user=request.user, unread_only=False, page=page_number, page_size=30)
    return render(
        request,
        "friends/partials/_notification_menu.html",
        {"page": page, "unread_count": selectors.unread_notification_count(request.user), "badge_oob": True},
    )


@login_required
@require_POST
def notification_read(request: HttpRequest, notification_id: int) -> HttpResponse:
    try:
        services.mark_notification_read(user=request.user, notification_id=notification_id)
    except NotFoundError:
        if not request.htmx:
            return HttpResponse(status=404)
        # Gone meanwhile (its request was cancelled, say): the menu as it is now, not an empty answer swapped
        # over it. Someone else's answers the same: nothing of it is theirs to see.
    return _notification_answer(request)


@login_required
@require_POST
def notifications_read_all(request: HttpRequest) -> HttpResponse:
    services.mark_all_notifications_read(user=request.user)
    return _notification_answer(request)


@login_required
@require_POST
def notification_delete(request: HttpRequest, notification_id: int) -> HttpResponse:
    try:
        services.delete_notification(user=request.user, notification_id=notification_id)
    except NotFoundError:
        if not request.htmx:
            return HttpResponse(status=404)
        # Gone meanwhile (its request was cancelled, say): the menu as it is now, not an empty answer swapped
        # over it. Someone else's answers the same: nothing of it is theirs to see.
    return _notification_answer(request)
