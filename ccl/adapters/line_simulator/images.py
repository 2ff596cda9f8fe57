"""Synthetic strip images for ``ccl simulate line``: a coated strip's texture with the defect
drawn on it (the original) and the same with the AI's box and label (the labeled image).

Deterministic for an event id, so a re-run sends the same bytes. CPU work: call it in a thread.
"""

from __future__ import annotations

import io
import random
from collections.abc import Mapping

from PIL import Image, ImageDraw, ImageFilter

SIZE = (320, 160)


def image_pair(defect: Mapping, size: tuple[int, int] = SIZE) -> tuple[bytes, bytes]:
    """(original JPEG, labeled PNG) for a defect dict of the ingest API (type, position, size)."""
    rng = random.Random(defect["event_id"])
    width, height = size
    base = rng.randrange(120, 170)
    strip = Image.new("L", size, base)
    draw = ImageDraw.Draw(strip)
    for y in range(0, height, 2):  # rolling direction streaks of the coating
        shade = base + rng.randrange(-9, 10)
        draw.line([(0, y), (width, y)], fill=shade)
    for _ in range(width * height // 60):  # grain
        x, y = rng.randrange(width), rng.randrange(height)
        strip.putpixel((x, y), base + rng.randrange(-25, 26))
    strip = strip.filter(ImageFilter.SMOOTH).convert("RGB")
    x, y = _clamp(defect.get("defect_position_x", 20), width - 8), _clamp(defect.get("defect_position_y", 20), height - 8)
    w = max(4, min(defect.get("defect_size_width", 12), width - x - 1))
    h = max(4, min(defect.get("defect_size_height", 8), height - y - 1))
    _draw_defect(ImageDraw.Draw(strip), defect.get("defect_type", "other"), (x, y, x + w, y + h), rng)
    labeled = strip.copy()
    marks = ImageDraw.Draw(labeled)
    marks.rectangle((x - 3, y - 3, x + w + 3, y + h + 3), outline=(255, 40, 40), width=2)
    label = f"{defect.get('defect_type', 'defect')} {defect.get('confidence_score', 0):.2f}"
    marks.text((max(0, x - 3), max(0, y - 15)), label, fill=(255, 255, 0))
    return _encoded(strip, "JPEG"), _encoded(labeled, "PNG")


def _draw_defect(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int], rng: random.Random) -> None:
    x0, y0, x1, y1 = box
    if kind in ("scratch", "edge_crack", "roll_mark"):
        draw.line([(x0, y0 + rng.randrange(y1 - y0 + 1)), (x1, y0 + rng.randrange(y1 - y0 + 1))], fill=(40, 40, 40), width=2)
    elif kind == "pinhole":
        draw.ellipse((x0, y0, x0 + 4, y0 + 4), fill=(15, 15, 15))
    elif kind == "stain":
        draw.ellipse(box, fill=(110, 95, 60))
    else:
        draw.ellipse(box, outline=(60, 60, 60), width=2)


def _clamp(value, upper: int) -> int:
    return max(0, min(int(value), upper))


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=85) if fmt == "JPEG" else image.save(buffer, fmt)
    return buffer.getvalue()
