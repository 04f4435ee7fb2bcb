"""Django storage on Cloudinary, for uploaded images when CLOUD_NAME is set.

Thin on purpose: the `cloudinary` package does the work; this maps Django's
storage API onto it. Names are Cloudinary public ids with their extension.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from urllib.parse import unquote, urlsplit

import cloudinary
import cloudinary.api
import cloudinary.uploader
from django.conf import settings
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible


@deconstructible
class CloudinaryStorage(Storage):
    def __init__(self) -> None:
        cloudinary.config(secure=True, **settings.CLOUDINARY)

    def _save(self, name: str, content) -> str:
        folder, filename = posixpath.split(name)
        stem, extension = posixpath.splitext(filename)
        public_id = posixpath.join(folder, f"{stem}-{uuid.uuid4().hex[:8]}")
        content.seek(0)
        result = cloudinary.uploader.upload(
            content, public_id=public_id, resource_type="image", overwrite=False, unique_filename=False
        )
        return f"{result['public_id']}.{result.get('format') or extension.lstrip('.')}"

    def _open(self, name: str, mode: str = "rb"):
        raise NotImplementedError("Images on Cloudinary are read through their URL.")

    def exists(self, name: str) -> bool:
        # _save gives every upload a fresh public id, so a name is never reused.
        return False

    def delete(self, name: str) -> None:
        public_id, _ = posixpath.splitext(name)
        cloudinary.uploader.destroy(public_id, resource_type="image", invalidate=True)

    def url(self, name: str) -> str:
        public_id, extension = posixpath.splitext(name)
        return cloudinary.CloudinaryImage(public_id, format=extension.lstrip(".") or None).build_url(secure=True)

    def name_from_url(self, url: str) -> str | None:
        """The name whose `url` this is (what `url` made of it), or None if it is no URL of an upload."""
        path = urlsplit(url).path
        if "/image/upload/" not in path:
            return None
        # Cloudinary may put the upload's version before the public id: it is not part of the name.
        return unquote(re.sub(r"^v\d+/", "", path.split("/image/upload/", 1)[1])) or None

    def size(self, name: str) -> int:
        return int(cloudinary.api.resource(posixpath.splitext(name)[0])["bytes"])
