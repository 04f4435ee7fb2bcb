import pytest

from accounts.models import Report
from messaging import services as messaging_services

REPORTS = "/api/reports"


@pytest.fixture
def bobs_message(friends_with_chat):
    alice, bob, chat = friends_with_chat
    return messaging_services.send_message(sender=bob, chat_id=chat.pk, text="buy pills", client_id="m1").message


def test_reporting_a_message_you_can_see(auth_client, user, bobs_message):
    response = auth_client.post(
        REPORTS, {"message_id": bobs_message.id, "reason": "spam", "note": "again"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["status"] == "open"
    report = Report.objects.get()
    assert (report.reporter_id, report.reported_user_id, report.message_id, report.chat_id, report.note) == (
        user.pk,
        bobs_message.sender_id,
        bobs_message.id,
        bobs_message.chat_id,
        "again",
    )


def test_reporting_the_same_thing_twice_is_409(auth_client, bobs_message):
    auth_client.post(REPORTS, {"message_id": bobs_message.id, "reason": "spam"}, format="json")

    again = auth_client.post(REPORTS, {"message_id": bobs_message.id, "reason": "hate"}, format="json")

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_reported"
    assert Report.objects.count() == 1


def test_a_message_you_cannot_see_is_404(client, make_user, bobs_message):
    from rest_framework.test import APIClient

    outsider = APIClient()
    outsider.force_authenticate(make_user())

    response = outsider.post(REPORTS, {"message_id": bobs_message.id, "reason": "spam"}, format="json")

    assert response.status_code == 404
    assert not Report.objects.exists()


def test_reporting_a_person(auth_client, make_user):
    troll = make_user(username="troll")

    response = auth_client.post(REPORTS, {"user_id": troll.pk, "reason": "harassment"}, format="json")

    assert response.status_code == 201
    assert Report.objects.get().target_key == f"user:{troll.pk}"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"reason": "spam"}, 400, "message_id"),
        ({"user_id": 1, "message_id": "1", "reason": "spam"}, 400, "message_id"),
        ({"user_id": 999999, "reason": "spam"}, 404, None),
        ({"user_id": "x", "reason": "spam"}, 400, "user_id"),
        ({"message_id": "nope", "reason": "spam"}, 404, None),
    ],
)
def test_malformed_or_unknown_reports_are_refused(auth_client, body, status, field):
    response = auth_client.post(REPORTS, body, format="json")

    assert response.status_code == status
    if field:
        assert field in response.json()["error"]["fields"]
    assert not Report.objects.exists()


def test_an_unknown_reason_and_yourself_are_refused(auth_client, user, make_user):
    other = make_user()

    bad_reason = auth_client.post(REPORTS, {"user_id": other.pk, "reason": "boring"}, format="json")
    yourself = auth_client.post(REPORTS, {"user_id": user.pk, "reason": "spam"}, format="json")

    assert bad_reason.status_code == 400 and "reason" in bad_reason.json()["error"]["fields"]
    assert yourself.status_code == 400 and yourself.json()["error"]["code"] == "cannot_report_self"


def test_reporting_from_the_chat_page(client, user, bobs_message):
    client.force_login(user)
    page = client.get(f"/chats/{bobs_message.chat_id}/").content.decode()
    # Each bubble's Report loads its form when it opens: the page carries none of them.
    assert f'hx-get="/accounts/report/?message_id={bobs_message.id}"' in page and "Send report" not in page
    form = client.get(f"/accounts/report/?message_id={bobs_message.id}", HTTP_HX_REQUEST="true").content.decode()
    assert f'name="message_id" value="{bobs_message.id}"' in form and "Send report" in form

    response = client.post(
        "/accounts/report/", {"message_id": bobs_message.id, "reason": "spam"}, HTTP_HX_REQUEST="true"
    )
    again = client.post("/accounts/report/", {"message_id": bobs_message.id, "reason": "spam"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200 and "Thank you" in response.content.decode()
    assert again.status_code == 409 and "already reported" in again.content.decode()


def test_a_report_outlives_the_deleted_accounts_it_names(auth_client, user, bobs_message):
    auth_client.post(REPORTS, {"message_id": bobs_message.id, "reason": "spam"}, format="json")

    from accounts.models import User

    User.objects.filter(pk=bobs_message.sender_id).delete()

    report = Report.objects.get()
    assert report.reported_user is None and report.message_id == bobs_message.id


def test_the_ban_rule_lives_in_the_service(make_user):
    from accounts import services
    from chat_realtime.errors import ApplicationError

    moderator = make_user(username="mod", is_staff=True)
    staff = make_user(username="other.staff", is_staff=True)
    boss = make_user(username="boss", is_staff=True, is_superuser=True)

    with pytest.raises(ApplicationError, match="yourself"):
        services.deactivate_user(user=moderator, moderator=moderator)
    with pytest.raises(ApplicationError, match="superuser"):
        services.deactivate_user(user=staff, moderator=moderator)
    services.deactivate_user(user=staff, moderator=boss)

    staff.refresh_from_db()
    moderator.refresh_from_db()
    assert (staff.is_active, moderator.is_active) == (False, True)


def test_the_report_form_of_a_person_names_them(client, user, make_user):
    bob = make_user()
    client.force_login(user)

    form = client.get(f"/accounts/report/?user_id={bob.pk}")

    assert form.status_code == 200
    assert f'name="user_id" value="{bob.pk}"' in form.content.decode()


@pytest.mark.parametrize(
    "query",
    ["", "?message_id=", "?message_id=%3Cscript%3E", "?message_id=" + "1" * 65, "?user_id=abc", "?user_id=-1"],
)
def test_a_report_form_for_nothing_reportable_is_400_and_says_so(client, user, query):
    client.force_login(user)

    response = client.get(f"/accounts/report/{query}")

    assert response.status_code == 400
    assert "Say which message or person to report." in response.content.decode()
    assert "<script" not in response.content.decode()


def test_the_report_form_is_for_signed_in_people(client):
    response = client.get("/accounts/report/?message_id=1")

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
