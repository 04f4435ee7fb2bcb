"""Uploads are trusted only after they decode as a bounded raster image."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from messaging.store import message_store

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><rect width="10" height="10"/></svg>'
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 200
HTML = b"<html><script>alert(1)</script></html>"


def bomb() -> bytes:
    """A small PNG that decodes to 400 million pixels."""
    out = io.BytesIO()
    Image.new("1", (20000, 20000)).save(out, format="PNG", optimize=True)
    return out.getvalue()


HOSTILE = [
    ("drawing.svg", SVG, "image/svg+xml"),
    ("picture.png", SVG, "image/png"),
    ("cat.png", ELF, "image/png"),
    ("cat.jpg", HTML, "image/jpeg"),
    ("bomb.png", bomb(), "image/png"),
]


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.mark.parametrize(("name", "data", "content_type"), HOSTILE)
def test_hostile_avatars_are_refused(auth_client, user, name, data, content_type):
    assert len(data) < 5 * 1024 * 1024

    response = auth_client.patch("/api/me", {"avatar": SimpleUploadedFile(name, data, content_type=content_type)})

    assert response.status_code == 400
    assert "avatar" in response.json()["error"]["fields"]
    user.refresh_from_db()
    assert not user.avatar


@pytest.mark.parametrize(("name", "data", "content_type"), HOSTILE)
def test_hostile_chat_images_are_refused_and_nothing_is_stored(friends_with_chat, name, data, content_type):
    from rest_framework.test import APIClient

    alice, _, chat = friends_with_chat
    api = APIClient()
    api.force_authenticate(alice)

    response = api.post(
        f"/api/chats/{chat.pk}/messages",
        {"image": SimpleUploadedFile(name, data, content_type=content_type), "client_id": "h1"},
    )

    assert response.status_code == 400
    assert "image" in response.json()["error"]["fields"]
    assert message_store().latest(chat.pk) is None
