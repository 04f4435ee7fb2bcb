"""The Cloudinary backend maps Django's storage API onto the cloudinary package.

Cloudinary itself is outside: its uploader is replaced by a recorder here.
"""

from unittest import mock

import pytest
from django.core.files.base import ContentFile

from chat_realtime.cloudinary_storage import CloudinaryStorage


@pytest.fixture
def storage(settings):
    settings.CLOUDINARY = {"cloud_name": "demo-cloud", "api_key": "key", "api_secret": "secret"}
    return CloudinaryStorage()


def test_saving_uploads_the_bytes_under_a_fresh_public_id(storage):
    with mock.patch("cloudinary.uploader.upload") as upload:
        upload.side_effect = lambda file, public_id, **kw: {"public_id": public_id, "format": "png"}

        name = storage.save("avatars/abc.png", ContentFile(b"\x89PNG...", name="abc.png"))

    (file,), kwargs = upload.call_args
    assert file.read() == b"\x89PNG..."
    assert kwargs["resource_type"] == "image"
    assert kwargs["public_id"].startswith("avatars/abc-")
    assert name == kwargs["public_id"] + ".png"


def test_two_uploads_with_one_name_never_overwrite_each_other(storage):
    with mock.patch("cloudinary.uploader.upload") as upload:
        upload.side_effect = lambda file, public_id, **kw: {"public_id": public_id, "format": "jpg"}
        first = storage.save("avatars/me.jpg", ContentFile(b"one", name="me.jpg"))
        second = storage.save("avatars/me.jpg", ContentFile(b"two", name="me.jpg"))

    assert first != second


def test_the_url_is_the_cloudinary_https_url_of_the_public_id(storage):
    url = storage.url("avatars/abc-1234.png")

    assert url.startswith("https://res.cloudinary.com/demo-cloud/image/upload/")
    assert url.endswith("avatars/abc-1234.png")


def test_deleting_destroys_the_public_id(storage):
    with mock.patch("cloudinary.uploader.destroy") as destroy:
        storage.delete("avatars/abc-1234.png")

    destroy.assert_called_once_with("avatars/abc-1234", resource_type="image", invalidate=True)


def test_the_name_of_an_upload_is_read_back_from_its_url(storage):
    name = "messages/3/abc-1234.png"

    assert storage.name_from_url(storage.url(name)) == name
    assert storage.name_from_url(f"https://res.cloudinary.com/demo-cloud/image/upload/v1712/{name}") == name
    assert storage.name_from_url("https://example.com/elsewhere.png") is None
