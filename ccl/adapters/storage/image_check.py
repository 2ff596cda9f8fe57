"""Is a received image file complete? A structural walk, much cheaper than decoding every pixel.

Pillow has already decoded the header (format and size); this walks the rest of the file:
JPEG markers up to an end-of-image marker after the scan data, PNG chunks with their CRCs up
to IEND, and for raw formats (BMP) the pixel data the header promises. A truncated or
padded-with-garbage file fails here. The file is read through mmap, never loaded whole.
"""

from __future__ import annotations

import mmap
import struct
import zlib

_STANDALONE = {0x01, *range(0xD0, 0xD8)}


class Incomplete(ValueError):
    """The file ends early or its structure is broken; the message says where."""


def check_complete(path, image_format: str, tile=None) -> None:
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        if size == 0:
            raise Incomplete("the file is empty")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if image_format == "JPEG":
                _jpeg(data, size)
            elif image_format == "PNG":
                _png(data, size)
            else:
                _raw(tile, size)


def _jpeg(data, size: int) -> None:
    if data[:2] != b"\xff\xd8":
        raise Incomplete("no JPEG start-of-image marker")
    position = 2
    while True:
        if position + 4 > size:
            raise Incomplete("the JPEG headers end early")
        if data[position] != 0xFF:
            raise Incomplete(f"no JPEG marker at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker == 0xD9:
            raise Incomplete("the JPEG ends before any image data")
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        position += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
    # In scan data 0xFF is always followed by 0x00 or a restart marker, so FF D9 is the real end.
    if position > size or data.rfind(b"\xff\xd9", position) < 0:
        raise Incomplete("the JPEG is truncated (no end-of-image marker after the image data)")


def _png(data, size: int) -> None:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Incomplete("no PNG signature")
    position = 8
    view = memoryview(data)
    try:
        while True:
            if position + 12 > size:
                raise Incomplete("the PNG is truncated (no IEND chunk)")
            length, kind = struct.unpack(">I4s", data[position:position + 8])
            end = position + 8 + length
            if end + 4 > size:
                raise Incomplete(f"the PNG is truncated inside a {kind.decode('latin-1')} chunk")
            (crc,) = struct.unpack(">I", data[end:end + 4])
            if zlib.crc32(view[position + 4:end]) & 0xFFFFFFFF != crc:
                raise Incomplete(f"a {kind.decode('latin-1')} chunk of the PNG is corrupt (CRC)")
            if kind == b"IEND":
                return
            position = end + 4
    finally:
        view.release()


def _raw(tile, size: int) -> None:
    """BMP and other raw layouts: the header says where the pixels start and how many bytes they take."""
    for entry in tile or []:
        decoder, box, offset, args = entry[0], entry[1], entry[2], entry[3]
        if decoder != "raw":
            continue  # compressed (RLE) bitmaps: Pillow's header checks must do
        stride = args[1] if isinstance(args, tuple) and len(args) > 1 and args[1] else 0
        height = box[3] - box[1]
        if stride and offset + stride * height > size:
            raise Incomplete(f"the image is truncated: {size} bytes, the header promises {offset + stride * height}")
