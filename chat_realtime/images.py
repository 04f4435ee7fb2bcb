"""Uploaded images: trusted only after Pillow has decoded them.

The file name and the declared content type say nothing; the bytes decide.
"""

from __future__ import annotations

import io
import logging
import posixpath
import uuid
import warnings
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from chat_realtime.errors import ValidationFailed

logger = logging.getLogger(__name__)

ACCEPTED_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "MPO"}
# A JPEG with a second picture after it (MPO: many phone cameras write one, for depth or stereo) is a JPEG;
# its first picture is the photo.
FORMAT_OF = {"MPO": "JPEG"}
AVATAR_SIZE = 512


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image
    format: str


def decode_image(upload, *, field: str, max_bytes: int) -> DecodedImage:
    """Decode an upload fully, refusing anything that is not a bounded JPEG/PNG/GIF/WebP."""

    def refuse(message: str) -> ValidationFailed:
        return ValidationFailed({field: [message]})

    size = getattr(upload, "size", None)
    if size is None or size == 0:
        raise refuse("The file is empty.")
    if size > max_bytes:
        raise refuse(f"The image is too large: at most {max_bytes // (1024 * 1024)} MB.")
    upload.seek(0)
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise refuse(f"The image is too large: at most {max_bytes // (1024 * 1024)} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ACCEPTED_FORMATS:
                raise refuse("Use a JPEG, PNG, GIF or WebP image.")
            width, height = image.size
            if width * height > settings.IMAGE_MAX_PIXELS:
                raise refuse("The image has too many pixels.")
            image.load()
    except ValidationFailed:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise refuse("This file is not an image we can read (JPEG, PNG, GIF or WebP).") from None
    except (OSError, SyntaxError, ValueError):
        raise refuse("The image is damaged or incomplete.") from None
    return DecodedImage(image=image, format=FORMAT_OF.get(image.format, image.format))


def avatar_file(upload, *, field: str = "avatar") -> ContentFile:
    """A square-bounded, metadata-free re-encoding of an uploaded avatar.

    Re-encoding drops EXIF (camera, GPS position) and anything hidden after
    the image data; the result is a PNG when the image has transparency,
    a JPEG otherwise.
    """
    decoded = decode_image(upload, field=field, max_bytes=settings.AVATAR_MAX_BYTES)
    image = ImageOps.exif_transpose(decoded.image)
    image.thumbnail((AVATAR_SIZE, AVATAR_SIZE))
    has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    out = io.BytesIO()
    if has_alpha:
        _bare(image.convert("RGBA")).save(out, format="PNG", optimize=True)
        extension = "png"
    else:
        _bare(image.convert("RGB")).save(out, format="JPEG", quality=88, optimize=True)
        extension = "jpg"
    return ContentFile(out.getvalue(), name=f"{uuid.uuid4().hex}.{extension}")


# What a file says about how to show its pixels, kept through re-encoding; anything else in it is not.
RENDERING_INFO = ("transparency", "icc_profile", "gamma")


def _bare(image: Image.Image) -> Image.Image:
    """The image without what its file said beside the pixels: Pillow writes some of `info` back out when
    it saves (a JPEG's comment, a PNG's text), and that is what re-encoding is meant to drop."""
    image.info = {key: value for key, value in image.info.items() if key in RENDERING_INFO}
    return image


MESSAGE_IMAGE_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}


def message_image_url(upload, *, chat_id: int, field: str = "image") -> str:
    """Store an image attached to a message; its public URL.

    What the file says beside its pixels (EXIF's camera and GPS position, XMP,
    comments) and anything hidden after the image data are dropped: JPEG, PNG
    and WebP are re-encoded (an animated WebP frame by frame, its timing kept),
    a GIF keeps its frames' own bytes (see `_gif_without_metadata`).
    """
    decoded = decode_image(upload, field=field, max_bytes=settings.IMAGE_MAX_BYTES)
    image, extension = decoded.image, MESSAGE_IMAGE_EXTENSIONS[decoded.format]
    out = io.BytesIO()
    if decoded.format == "GIF":
        upload.seek(0)
        try:
            out.write(_gif_without_metadata(upload.read()))
        except IndexError:
            raise ValidationFailed({field: ["The image is damaged or incomplete."]}) from None
    elif decoded.format == "WEBP" and getattr(image, "is_animated", False):
        width, height = image.size
        if image.n_frames * width * height > settings.IMAGE_MAX_PIXELS:
            raise ValidationFailed({field: ["The animation has too many pixels (its frames together)."]})
        try:
            _save_animated_webp(image, out)
        except (OSError, ValueError, EOFError):  # a later frame that does not decode
            raise ValidationFailed({field: ["The image is damaged or incomplete."]}) from None
    else:
        image = _bare(ImageOps.exif_transpose(image))
        if decoded.format == "JPEG":
            image.convert("RGB").save(out, format="JPEG", quality=90, optimize=True)
        elif decoded.format == "PNG":
            image.save(out, format="PNG", optimize=True)
        else:
            image.save(out, format="WEBP", quality=90, icc_profile=image.info.get("icc_profile"))
    name = default_storage.save(f"messages/{int(chat_id)}/{uuid.uuid4().hex}.{extension}", ContentFile(out.getvalue()))
    return default_storage.url(name)


def _save_animated_webp(image: Image.Image, out: io.BytesIO) -> None:
    """Each frame re-encoded with its own duration; one frame in memory at a time."""
    durations = []
    for frame in ImageSequence.Iterator(image):
        frame.load()  # a WebP frame's duration is known once it is decoded
        durations.append(frame.info["duration"])
    image.save(
        out,
        format="WEBP",
        save_all=True,
        duration=durations,
        loop=image.info.get("loop", 0),
        quality=90,
        icc_profile=image.info.get("icc_profile"),
    )


# A GIF's blocks (the GIF89a specification): the image data, the frames' timing, the loop count and the colour
# profile are kept.
GIF_TRAILER, GIF_IMAGE, GIF_EXTENSION = 0x3B, 0x2C, 0x21
GIF_GRAPHIC_CONTROL, GIF_APPLICATION = 0xF9, 0xFF
GIF_LOOP_APPLICATIONS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")
GIF_COLOUR_PROFILE = b"ICCRGBG1012"


def _gif_without_metadata(data: bytes) -> bytes:
    """The GIF without its comments, plain-text blocks, other applications' data (XMP, say) or anything after
    its trailer. Re-encoded by Pillow, a GIF's frames would be quantized again, at about a second per hundred
    frames; they need no change. A frame's timing and the loop count are written anew, their fixed fields
    only, so that no payload rides along in sub-blocks after them. IndexError if a block is cut short, or if
    no image comes before the end."""
    out = bytearray(data[:13])  # signature and logical screen descriptor
    position = 13 + _colour_table_size(data[10])
    out += data[13:position]
    frames = 0
    while position < len(data):
        introducer = data[position]
        if introducer == GIF_IMAGE:
            # descriptor, local colour table, the LZW minimum code size, then the data's sub-blocks
            end = _after_sub_blocks(data, position + 10 + _colour_table_size(data[position + 9]) + 1)
            out += data[position:end]
            frames += 1
        elif introducer == GIF_EXTENSION:
            end = _after_sub_blocks(data, position + 2)
            out += _kept_extension(data[position:end])
        else:
            break  # the trailer, or a byte no block starts with, where browsers stop too
        position = end
    if not frames:
        raise IndexError("no image before the GIF ends")  # Pillow looks past such a byte; browsers do not
    out.append(GIF_TRAILER)  # also ends a GIF cut short after a whole block, which browsers show as it is
    return bytes(out)


def _kept_extension(block: bytes) -> bytes:
    """Of one extension block (introducer to terminator), what is kept: b"" for none of it."""
    label, first = block[1], block[2]
    if label == GIF_GRAPHIC_CONTROL and first >= 4:
        return bytes([GIF_EXTENSION, GIF_GRAPHIC_CONTROL, 4, *block[3:7], 0])
    if label == GIF_APPLICATION and first == 11:
        application = block[3:14]
        if application in GIF_LOOP_APPLICATIONS:
            loop = _loop_sub_block(block, 14)
            return bytes([GIF_EXTENSION, GIF_APPLICATION, 11, *application, *loop, 0]) if loop else b""
        if application == GIF_COLOUR_PROFILE:
            return block
    return b""


def _loop_sub_block(block: bytes, position: int) -> bytes:
    """The loop count's sub-block (its id 1, then the count) among an application block's, written anew; b""
    for none. Others (a buffering hint, id 2) are dropped."""
    while (size := block[position]) != 0:
        if size >= 3 and block[position + 1] & 0x07 == 1:
            return bytes([3, 1, *block[position + 2 : position + 4]])
        position += size + 1
    return b""


def _colour_table_size(flags: int) -> int:
    return 3 << ((flags & 0x07) + 1) if flags & 0x80 else 0


def _after_sub_blocks(data: bytes, position: int) -> int:
    while (size := data[position]) != 0:
        position += size + 1
    return position + 1


def delete_message_image(url: str) -> None:
    """Delete an image `message_image_url` stored (its message was removed): its URL serves it no more.
    Anything else the URL might name is left alone; a storage that fails to delete is logged."""
    name = _message_image_name(url)
    if name is None:
        logger.warning("not deleting %r: not a message image of this storage", url)
        return
    try:
        default_storage.delete(name)
    except Exception:
        logger.exception("could not delete the message image %s", name)


def _message_image_name(url: str) -> str | None:
    name_from_url = getattr(default_storage, "name_from_url", None)  # storages whose URLs are not base + name
    if name_from_url is not None:
        name = name_from_url(url)
    else:
        path, base = urlsplit(url).path, urlsplit(default_storage.base_url).path
        name = unquote(path[len(base) :]) if path.startswith(base) else None
    if name is None or not name.startswith("messages/") or posixpath.normpath(name) != name:
        return None
    return name
