"""Names and kinds of stored images. Every stored name is built here, never taken from a client."""

from __future__ import annotations

import re

KINDS = ("original", "labeled")
#: Pillow format name -> file extension. Anything else is refused.
FORMATS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp"}
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "bmp": "image/bmp"}
_STORED = re.compile(r"(?P<coil>[A-Za-z0-9-]{1,20})_(?P<stamp>\d{17})_(?P<kind>original|labeled)\.(?P<ext>jpg|png|bmp)")


def image_filename(coil_number: str, stamp: str, kind: str, ext: str) -> str:
    """``<coil>_<YYYYMMDDHHMMSSfff>_<kind>.<ext>``; the arguments are already validated."""
    if kind not in KINDS or ext not in CONTENT_TYPES or not re.fullmatch(r"\d{17}", stamp):
        raise ValueError("invalid image name parts")
    return f"{coil_number}_{stamp}_{kind}.{ext}"


def thumbnail_filename(filename: str) -> str:
    return filename.rsplit(".", 1)[0] + ".jpg"


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"image type must be one of {', '.join(KINDS)}")
    return kind


def is_stored_name(kind: str, filename: str) -> bool:
    """True only for a name this service could have made for ``kind`` (no separators, no '..')."""
    match = _STORED.fullmatch(filename)
    return bool(match) and match.group("kind") == kind


def next_stamp_ms(now_ms: int, last_ms: int | None) -> int:
    """The millisecond for a new file of a coil: now, or one after the coil's last, whichever is later."""
    return now_ms if last_ms is None or now_ms > last_ms else last_ms + 1


def name_from_path(path: str | None) -> str | None:
    """The file name in an ``*_image_path`` a Jetson sent (it may send a full path)."""
    if not path:
        return None
    return path.replace("\\", "/").rsplit("/", 1)[-1] or None
