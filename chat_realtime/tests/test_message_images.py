"""Message images are deleted with their message; nothing else a URL might name is."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from chat_realtime.images import delete_message_image


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    names = ["messages/3/a.png", "avatars/b.png", "c.png"]
    for name in names:
        default_storage.save(name, ContentFile(b"x"))
    return settings.MEDIA_ROOT


@pytest.mark.parametrize(
    "url",
    [
        "/media/avatars/b.png",
        "/media/c.png",
        "/media/messages/../c.png",
        "/media/messages/3/../../avatars/b.png",
        "/elsewhere/messages/3/a.png",
    ],
)
def test_only_a_message_image_is_deleted(media, url):
    delete_message_image(url)

    assert sorted(str(p.relative_to(media)) for p in media.rglob("*.png")) == [
        "avatars/b.png",
        "c.png",
        "messages/3/a.png",
    ]


def test_a_message_image_is_deleted_by_its_url(media):
    delete_message_image(default_storage.url("messages/3/a.png"))

    assert not (media / "messages/3/a.png").exists()
