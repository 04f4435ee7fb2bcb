import io
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from PIL import Image

from accounts.models import User
from conftest import image_bytes


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def upload(data: bytes, name: str = "me.png", content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def test_me_shows_my_own_email_and_phone(auth_client, user):
    body = auth_client.get("/api/me").json()

    assert body == {
        "id": user.id,
        "username": "alice",
        "avatar_url": None,
        "last_seen": None,
        "email": "alice@example.com",
        "phone_number": "+15550001111",
        "date_joined": body["date_joined"],
    }


def test_the_public_user_shape_never_carries_email_or_phone(user):
    from accounts.api import PublicUserSerializer

    assert set(PublicUserSerializer(user).data) == {"id", "username", "avatar_url", "last_seen"}


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "RGB"), ("JPEG", "RGB"), ("GIF", "P"), ("WEBP", "RGB"), ("PNG", "RGBA")]
)
def test_a_real_image_becomes_the_avatar(auth_client, user, fmt, mode):
    response = auth_client.patch("/api/me", {"avatar": upload(image_bytes(fmt, (900, 600), mode), f"a.{fmt.lower()}")})

    assert response.status_code == 200, response.json()
    user.refresh_from_db()
    assert response.json()["avatar_url"] == user.avatar.url
    with user.avatar.open("rb") as stored:
        image = Image.open(stored)
        assert max(image.size) == 512
        assert image.format in ("PNG", "JPEG")


def test_a_phone_cameras_jpeg_with_a_second_picture_becomes_the_avatar(auth_client, user):
    out = io.BytesIO()
    Image.new("RGB", (900, 600), (200, 80, 40)).save(
        out, format="MPO", save_all=True, append_images=[Image.new("RGB", (900, 600))]
    )

    response = auth_client.patch("/api/me", {"avatar": upload(out.getvalue(), "photo.jpg")})

    assert response.status_code == 200, response.json()
    user.refresh_from_db()
    with user.avatar.open("rb") as stored:
        assert Image.open(stored).format == "JPEG"


def test_the_avatar_is_reencoded_without_its_metadata(auth_client, user):
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # camera make
    out = io.BytesIO()
    Image.new("RGB", (40, 40)).save(out, format="JPEG", exif=exif)

    auth_client.patch("/api/me", {"avatar": upload(out.getvalue(), "a.jpg", "image/jpeg")})

    user.refresh_from_db()
    with user.avatar.open("rb") as stored:
        assert b"SpyCam" not in stored.read()


@pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
def test_the_avatar_keeps_no_comment_of_its_file(auth_client, user, fmt):
    out = io.BytesIO()
    Image.new("RGB", (40, 30)).save(out, format=fmt, comment=b"home 48.8584N 2.2945E")

    auth_client.patch("/api/me", {"avatar": upload(out.getvalue(), f"a.{fmt.lower()}", f"image/{fmt.lower()}")})

    user.refresh_from_db()
    with user.avatar.open("rb") as stored:
        assert b"48.8584N" not in stored.read()


def test_a_transparent_palette_avatar_keeps_its_transparency(auth_client, user):
    image = Image.new("P", (40, 30))
    image.info["transparency"] = 0
    out = io.BytesIO()
    image.save(out, format="PNG", transparency=0)

    auth_client.patch("/api/me", {"avatar": upload(out.getvalue(), "a.png", "image/png")})

    user.refresh_from_db()
    with user.avatar.open("rb") as stored:
        assert Image.open(stored).convert("RGBA").getpixel((0, 0))[3] == 0


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"#!/bin/sh\necho not an image\n", "evil.png"),
        (b"GIF89a" + b"\x00" * 20, "broken.gif"),
        (image_bytes("PNG")[:60], "truncated.png"),
        (image_bytes("BMP"), "bitmap.png"),
        (b"", "empty.png"),
    ],
)
def test_a_fake_or_broken_image_is_refused_and_the_old_avatar_stays(auth_client, user, data, name):
    auth_client.patch("/api/me", {"avatar": upload(image_bytes("PNG"), "first.png")})
    user.refresh_from_db()
    before = user.avatar.name

    response = auth_client.patch("/api/me", {"avatar": upload(data, name)})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["avatar"]
    user.refresh_from_db()
    assert user.avatar.name == before


@override_settings(AVATAR_MAX_BYTES=10_000)
def test_an_oversized_image_is_refused(auth_client, user):
    noisy = io.BytesIO()
    Image.frombytes("RGB", (100, 100), os.urandom(100 * 100 * 3)).save(noisy, format="PNG")
    assert len(noisy.getvalue()) > 10_000

    response = auth_client.patch("/api/me", {"avatar": upload(noisy.getvalue())})

    assert response.status_code == 400
    assert "too large" in response.json()["error"]["fields"]["avatar"][0]
    user.refresh_from_db()
    assert not user.avatar


@override_settings(IMAGE_MAX_PIXELS=100 * 100)
def test_an_image_with_too_many_pixels_is_refused(auth_client, user):
    response = auth_client.patch("/api/me", {"avatar": upload(image_bytes("PNG", (101, 100)))})

    assert response.status_code == 400
    assert "pixels" in response.json()["error"]["fields"]["avatar"][0]


def test_replacing_the_avatar_deletes_the_old_file(auth_client, user, django_capture_on_commit_callbacks):
    auth_client.patch("/api/me", {"avatar": upload(image_bytes("PNG"), "one.png")})
    user.refresh_from_db()
    first = user.avatar.name

    with django_capture_on_commit_callbacks(execute=True):
        auth_client.patch("/api/me", {"avatar": upload(image_bytes("PNG"), "two.png")})

    user.refresh_from_db()
    assert user.avatar.name != first
    assert not user.avatar.storage.exists(first)


def test_patch_me_changes_the_username_with_the_same_rules_as_sign_up(auth_client, user, make_user):
    make_user(username="taken")

    taken = auth_client.patch("/api/me", {"username": "TAKEN"}, format="json")
    bad = auth_client.patch("/api/me", {"username": "no spaces"}, format="json")
    fine = auth_client.patch("/api/me", {"username": "alice.b"}, format="json")

    assert taken.status_code == bad.status_code == 400
    assert fine.status_code == 200
    assert User.objects.get(pk=user.pk).username == "alice.b"


def test_profile_page_uploads_an_avatar(client, user):
    client.force_login(user)

    response = client.post("/accounts/profile/", {"username": "alice", "avatar": upload(image_bytes("PNG"))})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.avatar
    page = client.get("/accounts/profile/").content.decode()
    assert user.avatar.url in page
    assert "Member since" in page


def test_profile_page_shows_a_fake_image_error_inline(client, user):
    client.force_login(user)

    response = client.post("/accounts/profile/", {"username": "alice", "avatar": upload(b"not an image")})

    assert response.status_code == 400
    assert "not an image we can read" in response.content.decode()


def test_a_profile_update_does_not_undo_a_ban_made_meanwhile(user):
    from accounts import services
    from accounts.models import User as UserModel

    stale = UserModel.objects.get(pk=user.pk)  # loaded at the start of the request
    UserModel.objects.filter(pk=user.pk).update(is_active=False)  # a moderator bans meanwhile

    services.update_profile(user=stale, username="alice.renamed")

    fresh = UserModel.objects.get(pk=user.pk)
    assert (fresh.username, fresh.is_active) == ("alice.renamed", False)
