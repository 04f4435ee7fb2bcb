"""Moderators in the admin: bans, and messages found, read in context and removed."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accounts.models import Report, User
from chat_realtime.tests.sockets import ask, drain, of_type, open_socket
from conftest import PASSWORD
from messaging import services
from messaging.store import message_store


@pytest.fixture
def moderator(make_user):
    staff = make_user(username="mod", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(codename="moderate_messages"),
        Permission.objects.get(codename="change_user"),
        Permission.objects.get(codename="ban_user"),
        Permission.objects.get(codename="view_user"),
        Permission.objects.get(codename="change_report"),
        Permission.objects.get(codename="view_report"),
    )
    return User.objects.get(pk=staff.pk)


@pytest.fixture
def mod_client(client, moderator):
    client.force_login(moderator)
    return client


def test_the_admin_turns_away_people_who_are_not_staff(client, user):
    client.force_login(user)

    response = client.get("/admin/messaging/chat/messages/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_the_permission_cannot_see_messages(client, make_user):
    client.force_login(make_user(is_staff=True))

    assert client.get("/admin/messaging/chat/messages/").status_code == 403
    assert client.post("/admin/messaging/chat/messages/1/remove/").status_code == 403


def test_moderators_find_messages_by_text_sender_and_chat(mod_client, friends_with_chat):
    alice, bob, chat = friends_with_chat
    services.send_message(sender=bob, chat_id=chat.pk, text="buy cheap pills", client_id="a")
    services.send_message(sender=alice, chat_id=chat.pk, text="no thanks", client_id="b")

    by_text = mod_client.get("/admin/messaging/chat/messages/", {"text": "PILLS"}).content.decode()
    by_sender = mod_client.get("/admin/messaging/chat/messages/", {"sender": "alice"}).content.decode()
    bad_date = mod_client.get("/admin/messaging/chat/messages/", {"since": "yesterday"})

    assert "buy cheap pills" in by_text and "no thanks" not in by_text
    assert "no thanks" in by_sender and "buy cheap pills" not in by_sender
    assert "must be a date" in bad_date.content.decode()


def test_a_message_is_shown_with_the_ones_around_it(mod_client, friends_with_chat, unlimited_messages):
    alice, bob, chat = friends_with_chat
    sent = [
        services.send_message(sender=bob, chat_id=chat.pk, text=f"m{n}", client_id=f"c{n}").message for n in range(30)
    ]

    page = mod_client.get(f"/admin/messaging/chat/messages/{sent[15].id}/").content.decode()

    assert ">m5<" in page and ">m15<" in page and ">m25<" in page
    assert ">m4<" not in page and ">m26<" not in page


@pytest.mark.django_db(transaction=True)
async def test_removing_a_message_reaches_every_open_client_and_history_shows_it_removed(
    friends_with_chat, moderator, client
):
    alice, bob, chat = friends_with_chat
    sent = await sync_to_async(services.send_message)(sender=bob, chat_id=chat.pk, text="nasty", client_id="n1")
    await sync_to_async(Report.objects.create)(
        reporter=alice,
        reported_user=bob,
        target_key=f"message:{sent.message.id}",
        message_id=sent.message.id,
        reason="hate",
    )
    alice_tab = await open_socket(alice)
    await ask(alice_tab, {"type": "join_chat", "chat_id": chat.pk})
    await drain(alice_tab)

    await sync_to_async(client.force_login)(moderator)
    response = await sync_to_async(client.post)(f"/admin/messaging/chat/messages/{sent.message.id}/remove/")

    assert response.status_code == 302
    frames = await drain(alice_tab)
    assert of_type(frames, "message_deleted") == [
        {"type": "message_deleted", "chat_id": chat.pk, "message_id": sent.message.id}
    ]
    api = APIClient()
    api.force_authenticate(alice)
    (shown,) = (await sync_to_async(api.get)(f"/api/chats/{chat.pk}/messages")).json()["results"]
    assert (shown["id"], shown["deleted"], shown["text"]) == (sent.message.id, True, "")
    report = await Report.objects.aget()
    assert (report.status, report.action_taken, report.resolved_by_id) == ("resolved", "message_removed", moderator.pk)
    assert await LogEntry.objects.filter(user=moderator, change_message__contains=sent.message.id).aexists()
    await alice_tab.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_ban_closes_live_sockets_revokes_tokens_and_hides_the_person(moderator, client, make_user):
    target = await sync_to_async(make_user)(username="troll")
    api = APIClient()
    session = (
        await sync_to_async(api.post)("/api/auth/login", {"login": "troll", "password": PASSWORD}, format="json")
    ).json()
    socket = await open_socket(target)

    await sync_to_async(client.force_login)(moderator)
    response = await sync_to_async(client.post)(
        "/admin/accounts/user/", {"action": "ban", "_selected_action": [target.pk]}
    )

    assert response.status_code == 302
    while (output := await socket.receive_output(timeout=3))["type"] != "websocket.close":
        pass
    assert output["code"] == 4401
    refresh = await sync_to_async(api.post)("/api/auth/refresh", {"refresh": session["refresh"]}, format="json")
    login = await sync_to_async(api.post)("/api/auth/login", {"login": "troll", "password": PASSWORD}, format="json")
    assert (refresh.status_code, login.status_code) == (401, 401)
    searcher = APIClient()
    searcher.force_authenticate(moderator)
    found = await sync_to_async(searcher.get)("/api/users/search", {"q": "troll"})
    assert found.json()["results"] == []
    assert await LogEntry.objects.filter(object_id=str(target.pk), change_message__startswith="Banned").aexists()

    await sync_to_async(client.post)("/admin/accounts/user/", {"action": "reactivate", "_selected_action": [target.pk]})
    again = await sync_to_async(api.post)("/api/auth/login", {"login": "troll", "password": PASSWORD}, format="json")
    assert again.status_code == 200


def test_a_moderator_cannot_ban_staff_or_make_anyone_staff(mod_client, moderator, make_user):
    other_staff = make_user(username="other.mod", is_staff=True)
    regular = make_user(username="regular")

    mod_client.post("/admin/accounts/user/", {"action": "ban", "_selected_action": [other_staff.pk, moderator.pk]})
    page = mod_client.get(f"/admin/accounts/user/{regular.pk}/change/").content.decode()

    other_staff.refresh_from_db()
    moderator.refresh_from_db()
    assert other_staff.is_active and moderator.is_active
    assert 'name="is_superuser"' not in page and 'name="user_permissions"' not in page


def test_staff_without_the_ban_permission_cannot_ban(client, make_user):
    staff = make_user(username="viewer", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(codename="change_user"), Permission.objects.get(codename="view_user")
    )
    target = make_user(username="target")
    client.force_login(staff)

    client.post("/admin/accounts/user/", {"action": "ban", "_selected_action": [target.pk]})

    target.refresh_from_db()
    assert target.is_active


def test_a_password_set_in_the_admin_revokes_the_persons_tokens(mod_client, make_user):
    target = make_user(username="target")
    api = APIClient()
    session = api.post("/api/auth/login", {"login": "target", "password": PASSWORD}, format="json").json()

    mod_client.post(
        f"/admin/accounts/user/{target.pk}/password/",
        {"password1": "a-new-admin-set-secret-7", "password2": "a-new-admin-set-secret-7", "usable_password": "true"},
    )

    assert api.post("/api/auth/refresh", {"refresh": session["refresh"]}, format="json").status_code == 401


def test_a_moderator_cannot_untick_active_on_staff(mod_client, make_user):
    other_staff = make_user(username="other.mod2", is_staff=True)
    regular = make_user(username="regular2")

    staff_page = mod_client.get(f"/admin/accounts/user/{other_staff.pk}/change/").content.decode()
    regular_page = mod_client.get(f"/admin/accounts/user/{regular.pk}/change/").content.decode()

    assert 'name="is_active"' not in staff_page
    assert 'name="is_active"' in regular_page


def _change_form(user: User, **changes) -> dict:
    """What the admin's change form of `user` posts, with `changes`."""
    fields = {"username": user.username, "email": user.email, "phone_number": user.phone_number, "is_active": "on"}
    return {**fields, "last_seen_0": "", "last_seen_1": "", **changes}


@pytest.mark.parametrize("power", ["staff", "superuser"])
def test_a_moderator_cannot_set_the_password_or_the_email_of_staff_or_a_superuser(mod_client, make_user, power):
    admin = make_user(username="boss", email="boss@example.com", is_staff=True, is_superuser=power == "superuser")
    new_password = {"password1": "mod-chosen-secret-77", "password2": "mod-chosen-secret-77", "usable_password": "true"}

    password = mod_client.post(f"/admin/accounts/user/{admin.pk}/password/", new_password)
    email = mod_client.post(f"/admin/accounts/user/{admin.pk}/change/", _change_form(admin, email="mod@evil.example"))
    page = mod_client.get(f"/admin/accounts/user/{admin.pk}/change/")

    admin.refresh_from_db()
    assert (password.status_code, email.status_code) == (403, 403)
    assert admin.check_password(PASSWORD) and admin.email == "boss@example.com"
    # Shown to the moderator, read-only.
    assert page.status_code == 200 and 'name="email"' not in page.content.decode()


def test_a_moderator_still_changes_the_email_of_people_and_their_own(mod_client, moderator, make_user):
    person = make_user(username="person")

    mod_client.post(f"/admin/accounts/user/{person.pk}/change/", _change_form(person, email="new@example.com"))
    mod_client.post(f"/admin/accounts/user/{moderator.pk}/change/", _change_form(moderator, email="mod@example.com"))

    person.refresh_from_db()
    moderator.refresh_from_db()
    assert (person.email, moderator.email) == ("new@example.com", "mod@example.com")
    assert moderator.is_staff  # their power untouched by their own form


def test_a_moderator_cannot_reactivate_staff_a_superuser_banned(mod_client, make_user):
    from accounts import services as accounts

    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    rogue = make_user(username="rogue.mod", is_staff=True)
    banned_person = make_user(username="banned.person")
    accounts.deactivate_user(user=rogue, moderator=root)
    accounts.deactivate_user(user=banned_person, moderator=root)

    response = mod_client.post(
        "/admin/accounts/user/", {"action": "reactivate", "_selected_action": [rogue.pk, banned_person.pk]}
    )

    rogue.refresh_from_db()
    banned_person.refresh_from_db()
    assert not rogue.is_active and banned_person.is_active
    shown = [str(message) for message in response.wsgi_request._messages]
    assert "rogue.mod: Only a superuser can change a staff account." in shown


def test_a_superuser_sets_a_staff_members_password_and_reactivates_them(client, make_user):
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    staff = make_user(username="staff.member", is_staff=True, is_active=False)
    client.force_login(root)

    client.post(
        f"/admin/accounts/user/{staff.pk}/password/",
        {"password1": "root-chosen-secret-77", "password2": "root-chosen-secret-77", "usable_password": "true"},
    )
    client.post("/admin/accounts/user/", {"action": "reactivate", "_selected_action": [staff.pk]})

    staff.refresh_from_db()
    assert staff.check_password("root-chosen-secret-77") and staff.is_active


@pytest.mark.django_db(transaction=True)
def test_removing_an_image_message_deletes_its_image(friends_with_chat, make_user, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from conftest import image_bytes

    settings.MEDIA_ROOT = tmp_path / "media"
    alice, bob, chat = friends_with_chat

    def image_message(client_id):
        upload = SimpleUploadedFile("x.png", image_bytes("PNG"), content_type="image/png")
        return services.send_message(sender=bob, chat_id=chat.pk, text="", client_id=client_id, image=upload).message

    def stored(message) -> bool:
        return (settings.MEDIA_ROOT / message.image_url.removeprefix(settings.MEDIA_URL)).exists()

    removed, kept = image_message("img1"), image_message("img2")
    assert stored(removed) and stored(kept)

    services.remove_message(message_id=removed.id, moderator=make_user(username="mod", is_staff=True))

    # Its URL serves nothing more, to whoever kept the link; the chat's other image stays.
    assert not stored(removed) and stored(kept)
    # One removed before images went with their message: removing it again deletes its image.
    message_store().soft_delete(kept.id, deleted_by=alice.pk)
    services.remove_message(message_id=kept.id, moderator=make_user(username="mod2", is_staff=True))
    assert not stored(kept)


def test_a_moderator_cannot_delete_staff_or_give_a_group_more_permissions(client, make_user):
    from django.contrib.auth.models import Group

    moderator = make_user(username="mod.deleter", is_staff=True)
    team = Group.objects.create(name="moderators")
    moderator.groups.add(team)
    moderator.user_permissions.add(
        *Permission.objects.filter(codename__in=["delete_user", "view_user", "change_group", "view_group"])
    )
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(moderator)

    deleted = client.post(f"/admin/accounts/user/{root.pk}/delete/", {"post": "yes"})
    granted = client.post(
        f"/admin/auth/group/{team.pk}/change/",
        {"name": "moderators", "permissions": [Permission.objects.get(codename="add_user").pk]},
    )

    assert (deleted.status_code, granted.status_code) == (403, 403)
    assert User.objects.filter(pk=root.pk).exists()
    assert not team.permissions.exists()


def test_your_own_password_is_changed_in_the_admin_knowing_the_current_one_and_ends_your_tokens(mod_client, moderator):
    api = APIClient()
    session = api.post("/api/auth/login", {"login": "mod", "password": PASSWORD}, format="json").json()

    set_directly = mod_client.get(f"/admin/accounts/user/{moderator.pk}/password/")
    spelled_otherwise = mod_client.post(
        f"/admin/accounts/user/0{moderator.pk}/password/",
        {"password1": "no-old-password-77", "password2": "no-old-password-77", "usable_password": "true"},
    )
    assert spelled_otherwise.status_code == 302 and spelled_otherwise["Location"].endswith("/admin/password_change/")
    changed = mod_client.post(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": "mod-own-new-secret-77", "new_password2": "mod-own-new-secret-77"},
    )

    moderator.refresh_from_db()
    assert set_directly.status_code == 302 and set_directly["Location"].endswith("/admin/password_change/")
    assert changed.status_code == 302 and moderator.check_password("mod-own-new-secret-77")
    assert api.post("/api/auth/refresh", {"refresh": session["refresh"]}, format="json").status_code == 401
