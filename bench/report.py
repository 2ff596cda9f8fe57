"""Coil report and training export: how long drawing and packing take (in their thread), and
the part that runs on the reactor (turning the read rows into the report's defects).

    python bench/report.py [--defects 130,1000,10000] [--images 200]

Synthetic defects (no database): the PDF drawn by ccl.adapters.reports.pdf.render_pdf with the
[report] fonts; images as JPEG files of 640x480 packed by training_zip.build_zip. Prints seconds,
pages and bytes. Run alone (the machine's cores are shared)."""

from __future__ import annotations

import argparse
import datetime
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ccl.adapters.reports.pdf import render_pdf  # noqa: E402
from ccl.adapters.reports.settings import ReportSettings  # noqa: E402
from ccl.adapters.reports.training_zip import build_zip  # noqa: E402
from ccl.application.reports import _defect  # noqa: E402
from ccl.domain.coil_report import CoilReport  # noqa: E402
from ccl.domain.review_accuracy import export_items  # noqa: E402


def rows(count: int, rng: random.Random) -> list[dict]:
    return [{"id": i, "defect_type": rng.choice(["scratch", "dent", "stain", "roll_mark", "pinhole"]),
             "severity": rng.choice(["low", "medium", "high", "critical"]), "confidence_score": rng.random(),
             "detection_time": "2026-11-27T10:00:00+09:00", "camera_id": rng.choice(["top", "bottom"]),
             "surface": None, "metre": rng.uniform(0, 2400), "uncertainty_m": 1.5, "across": rng.random(),
             "review_status": "new", "box_metre": None} for i in range(1, count + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defects", default="130,1000,10000")
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(14)
    settings = ReportSettings()
    render_pdf(CoilReport("WARMUP", datetime.datetime.now(datetime.timezone.utc), None, None, ()), settings, None)
    for count in (int(n) for n in args.defects.split(",")):
        found = rows(count, rng)
        started = time.perf_counter()
        defects = tuple(_defect(row) for row in found)
        converted = time.perf_counter() - started
        report = CoilReport("C26B0100", datetime.datetime.now(datetime.timezone.utc), {"customer_name": "포스코"},
                            {"tracked_coil": "C26B0100", "length_m": 2400.0, "completeness": "complete"}, defects)
        started = time.perf_counter()
        data = render_pdf(report, settings, None)
        drawn = time.perf_counter() - started
        print(f"report of {count:>6} defects: rows -> defects {converted * 1000:7.1f} ms (reactor),"
              f" PDF {drawn:6.2f} s (thread), {report.pages} pages, {len(data) / 1024:,.0f} KiB")
    root = Path(tempfile.mkdtemp(prefix="ccl-bench-images-"))
    try:
        from PIL import Image

        (root / "original").mkdir()
        image = Image.effect_noise((640, 480), 40).convert("RGB")
        image.save(root / "original" / "x.jpg", "JPEG", quality=85)
        items = export_items([{"id": i, "final_label": "scratch", "original_label": "scratch", "outcome": "confirmed",
                               "coil_number": "C1", "original_path": "original/x.jpg", "original_format": "JPEG"}
                              for i in range(1, args.images + 1)])
        started = time.perf_counter()
        path = build_zip(items, root)
        packed = time.perf_counter() - started
        print(f"training export of {args.images} images: {packed:.2f} s (thread), {Path(path).stat().st_size / 1e6:.1f} MB")
        Path(path).unlink()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
