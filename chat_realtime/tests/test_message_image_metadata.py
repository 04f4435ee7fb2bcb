"""A message's image keeps its pixels and its animation, and nothing else its file carried."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageDraw, ImageSequence

from chat_realtime.errors import ValidationFailed
from chat_realtime.images import message_image_url

SECRET = b"home 48.8584N 2.2945E"
# An XMP packet as an application extension of a GIF (identifier, sub-blocks, terminator).
GIF_XMP = b"\x21\xff\x0bXMP DataXMP" + bytes([len(SECRET)]) + SECRET + b"\x00"
HIDDEN_AFTER = b"<script>alert(1)</script>"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


def stored(settings, url: str) -> bytes:
    return (settings.MEDIA_ROOT / url.removeprefix(settings.MEDIA_URL)).read_bytes()


def upload(data: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def frames(count: int, mode: str = "RGBA") -> list[Image.Image]:
    """A red dot crossing a transparent (or dark) field."""
    out = []
    for index in range(count):
        frame = Image.new(mode, (60, 40), (0, 0, 0, 0) if mode == "RGBA" else (10, 20, 30))
        ImageDraw.Draw(frame).ellipse((index * 10, 10, index * 10 + 12, 22), fill=(255, 0, 0))
        out.append(frame)
    return out


def animation(fmt: str, **metadata) -> bytes:
    first, *rest = frames(5)
    out = io.BytesIO()
    first.save(
        out, format=fmt, save_all=True, append_images=rest, duration=[100, 200, 300, 400, 500], loop=3, **metadata
    )
    return out.getvalue()


def timeline(data: bytes) -> tuple[list[int], int, list[bytes]]:
    """Each frame's duration, the loop count, and each frame as drawn."""
    image = Image.open(io.BytesIO(data))
    durations, drawn = [], []
    for frame in ImageSequence.Iterator(image):
        drawn.append(frame.convert("RGBA").tobytes())
        durations.append(frame.info["duration"])
    return durations, image.info.get("loop"), drawn


def test_a_gif_keeps_its_frames_timing_and_loop_and_loses_comments_xmp_and_what_follows(media):
    original = animation("GIF", comment=SECRET, disposal=2)
    with_xmp = original[:-1] + GIF_XMP + original[-1:] + HIDDEN_AFTER

    url = message_image_url(upload(with_xmp, "dot.gif"), chat_id=1)

    kept = stored(media, url)
    assert url.endswith(".gif")
    assert SECRET not in kept and b"XMP" not in kept and HIDDEN_AFTER not in kept
    assert kept.endswith(b"\x3b")
    assert timeline(kept) == timeline(original)
    assert timeline(kept)[:2] == ([100, 200, 300, 400, 500], 3)


def test_a_still_gif_keeps_its_transparency(media):
    out = io.BytesIO()
    Image.new("P", (20, 10)).save(out, format="GIF", transparency=0, comment=SECRET)

    kept = stored(media, message_image_url(upload(out.getvalue(), "still.gif"), chat_id=1))

    assert SECRET not in kept
    assert Image.open(io.BytesIO(kept)).convert("RGBA").getpixel((0, 0))[3] == 0


def test_a_gif_cut_short_after_a_whole_frame_is_ended_as_browsers_show_it(media):
    out = io.BytesIO()
    Image.new("RGB", (20, 10), (0, 200, 0)).save(out, format="GIF")

    kept = stored(media, message_image_url(upload(out.getvalue()[:-1], "short.gif"), chat_id=1))

    assert kept == out.getvalue()


def test_a_gif_ends_where_a_byte_no_block_starts_with_stands_as_browsers_show_it(media):
    original = animation("GIF")
    stray = original[:-1] + b"\x00\x99" + original[-1:]  # a doubled terminator, a common encoder slip

    kept = stored(media, message_image_url(upload(stray, "stray.gif"), chat_id=1))

    assert kept == original


def test_a_gifs_timing_and_loop_blocks_carry_nothing_beyond_their_fields(media):
    original = animation("GIF")
    payload = bytes([len(SECRET)]) + SECRET
    # Each graphic control block and the loop block gets a sub-block more, a payload riding along.
    loop_at = original.index(b"NETSCAPE2.0") + 11
    smuggled = original[: loop_at + 4] + payload + original[loop_at + 4 :]
    control_at = smuggled.index(b"\x21\xf9\x04")
    smuggled = smuggled[: control_at + 7] + payload + smuggled[control_at + 7 :]
    assert Image.open(io.BytesIO(smuggled)).n_frames == 5

    kept = stored(media, message_image_url(upload(smuggled, "smuggled.gif"), chat_id=1))

    assert SECRET not in kept
    assert timeline(kept) == timeline(original)


def test_a_gifs_loop_count_after_a_buffering_hint_is_kept(media):
    original = animation("GIF")
    loop_at = original.index(b"NETSCAPE2.0") + 11
    hinted = original[:loop_at] + b"\x05\x02\x00\x10\x00\x00" + original[loop_at:]  # id 2: a buffer size

    kept = stored(media, message_image_url(upload(hinted, "hinted.gif"), chat_id=1))

    assert kept == original
    assert Image.open(io.BytesIO(kept)).info["loop"] == 3


def test_a_gif_with_no_image_before_it_ends_is_refused(media):
    original = animation("GIF")
    first_block = 13 + 3 * 2 ** ((original[10] & 0x07) + 1)
    stray = original[:first_block] + b"\x99" + original[first_block:]  # Pillow looks past it; browsers stop

    with pytest.raises(ValidationFailed):
        message_image_url(upload(stray, "stray-first.gif"), chat_id=1)

    assert not (media.MEDIA_ROOT / "messages").exists()


def test_a_gifs_colour_profile_is_kept(media):
    original = animation("GIF")
    profile = b"\x21\xff\x0bICCRGBG1012" + b"\x05" + b"icc01" + b"\x00"
    with_profile = original[:-1] + profile + original[-1:]

    kept = stored(media, message_image_url(upload(with_profile, "profile.gif"), chat_id=1))

    assert kept == with_profile


def test_a_gif_cut_short_inside_a_frame_is_refused_and_nothing_is_stored(media):
    broken = animation("GIF")[:-10]

    with pytest.raises(ValidationFailed) as refused:
        message_image_url(upload(broken, "broken.gif"), chat_id=1)

    assert refused.value.fields == {"image": ["The image is damaged or incomplete."]}
    assert not (media.MEDIA_ROOT / "messages").exists()


def test_an_animated_webp_keeps_its_frames_timing_and_loop_and_loses_exif_and_xmp(media):
    original = animation("WEBP", exif=b"Exif\x00\x00" + SECRET, xmp=SECRET, lossless=True)

    kept = stored(media, message_image_url(upload(original + HIDDEN_AFTER, "dot.webp"), chat_id=1))

    assert SECRET not in kept and HIDDEN_AFTER not in kept
    durations, loop, drawn = timeline(kept)
    assert (durations, loop) == ([100, 200, 300, 400, 500], 3)
    for frame, expected in zip(drawn, frames(5), strict=True):
        # Re-encoded lossily: the dot is where it was, red on a clear field.
        image = Image.frombytes("RGBA", (60, 40), frame)
        assert image.getpixel((1, 1))[3] == 0
        left, top, right, bottom = expected.getbbox()
        red, green, blue, alpha = image.getpixel(((left + right) // 2, (top + bottom) // 2))
        assert red > 200 and green < 60 and alpha > 200


def test_a_still_webp_is_turned_upright_and_loses_its_exif(media):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to show
    exif[0x010E] = SECRET.decode()  # image description
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 0, 200)).save(out, format="WEBP", exif=exif, xmp=SECRET)

    kept = stored(media, message_image_url(upload(out.getvalue(), "photo.webp"), chat_id=1))

    assert SECRET not in kept
    image = Image.open(io.BytesIO(kept))
    assert (image.format, image.size) == ("WEBP", (30, 40))
    assert not image.getexif()


def test_an_animation_with_more_pixels_than_allowed_in_its_frames_together_is_refused(media):
    media.IMAGE_MAX_PIXELS = 60 * 40 * 4  # four of its five frames

    with pytest.raises(ValidationFailed) as refused:
        message_image_url(upload(animation("WEBP"), "long.webp"), chat_id=1)

    assert "too many pixels" in refused.value.fields["image"][0]
    assert not (media.MEDIA_ROOT / "messages").exists()


def test_a_jpeg_carrying_a_second_picture_is_taken_as_the_photo_it_shows(media):
    photo, depth = Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (40, 30), (0, 0, 0))
    out = io.BytesIO()
    photo.save(out, format="MPO", save_all=True, append_images=[depth])
    assert Image.open(io.BytesIO(out.getvalue())).format == "MPO"  # as many phone cameras write them

    url = message_image_url(upload(out.getvalue(), "photo.jpg"), chat_id=1)

    kept = Image.open(io.BytesIO(stored(media, url)))
    assert url.endswith(".jpg") and kept.format == "JPEG"
    red, green, blue = kept.getpixel((20, 15))
    assert red > 180 and green < 40


def test_an_animated_webp_with_a_damaged_later_frame_is_refused_and_nothing_is_stored(media):
    data = bytearray(animation("WEBP", lossless=True))
    last_frame = data.rfind(b"ANMF")
    for index in range(last_frame + 40, min(last_frame + 80, len(data))):
        data[index] ^= 0xFF

    with pytest.raises(ValidationFailed) as refused:
        message_image_url(upload(bytes(data), "broken.webp"), chat_id=1)

    assert refused.value.fields == {"image": ["The image is damaged or incomplete."]}
    assert not (media.MEDIA_ROOT / "messages").exists()
