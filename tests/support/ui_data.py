"""A small, realistic line for the data pages' tests: coils with schedules, WPD passes and
CUTs, line speed, an image pair with real JPEG files, defects, links, alerts, AI models.

``seed_line(sql, image_root, now)``: ``sql(statement, params) -> rows`` (e.g. Harness.sql);
everything is dated before ``now`` (the present the UI under test is given: time is an
input); returns a dict of the ids and names the tests look for.
"""

from __future__ import annotations

import datetime
import json
import random
from pathlib import Path

CURRENT = "C26A0003"
PREVIOUS = "C26A0002"
OLDEST = "C26A0001"


def write_pair(image_root: Path, coil: str, stamp: str, boxes: list[tuple[int, int, int, int]]) -> tuple[Path, Path]:
    """A grey steel-like original and a labeled copy with the boxes drawn (real JPEG files)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(stamp)
    image = Image.new("L", (640, 480), 150)
    pixels = image.load()
    for y in range(480):
        for x in range(0, 640, 2):
            value = 140 + (x // 40) % 3 * 6 + rng.randint(-6, 6)
            pixels[x, y] = value
            pixels[x + 1, y] = value
    draw = ImageDraw.Draw(image)
    for x, y, w, h in boxes:  # the defects themselves: dark marks
        draw.line((x + 2, y + h // 2, x + w - 2, y + h // 2 + 3), fill=60, width=3)
        draw.ellipse((x + w // 3, y + h // 3, x + w // 3 + 6, y + h // 3 + 6), fill=80)
    original = image.filter(ImageFilter.SMOOTH).convert("RGB")
    labeled = original.copy()
    draw = ImageDraw.Draw(labeled)
    for x, y, w, h in boxes:
        draw.rectangle((x, y, x + w, y + h), outline=(255, 40, 40), width=3)
    (image_root / "original").mkdir(parents=True, exist_ok=True)
    (image_root / "labeled").mkdir(parents=True, exist_ok=True)
    paths = (image_root / "original" / f"{coil}_{stamp}_original.jpg", image_root / "labeled" / f"{coil}_{stamp}_labeled.jpg")
    original.save(paths[0], "JPEG", quality=85)
    labeled.save(paths[1], "JPEG", quality=85)
    return paths


def seed_line(sql, image_root: Path, now: datetime.datetime) -> dict:
    out: dict = {}
    for n, (coil, customer, bom, minutes_ago) in enumerate(
            [(OLDEST, "포스코", "PCM-A01", 90), (PREVIOUS, "현대자동차", "VCM-C03", 50), (CURRENT, "삼성전자", "GI-D04", 12)]):
        sql("""INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number, mo_number,
                   product_group, material_code, customer_name, ccl_bom, thickness, width, weight, length_value,
                   through_plate, sequence_order, raw)
               VALUES ('CCL1', %s, %s - make_interval(mins => %s), %s - make_interval(mins => %s), %s, %s,
                       'CCL', 'SGCC', %s, %s, 0.5, 1219, 8200, 2400, 'N', %s, '\\x00')""",
            (n + 1, now, minutes_ago + 20, now, minutes_ago + 20, coil, f"MO-{n + 1:04d}", customer, bom, n + 1))
        sql("""INSERT INTO tc_4002_wpd (line_code, sequence_no, sent_at, received_at, coil_number, raw)
               VALUES ('CCL1', %s, %s - make_interval(mins => %s), %s - make_interval(mins => %s), %s, '\\x00')""",
            (n + 1, now, minutes_ago, now, minutes_ago, coil))
        if coil != CURRENT:
            sql("""INSERT INTO tc_4001_cut (line_code, sequence_no, sent_at, received_at, coil_number, cut_mode,
                       winding_length, raw)
                   VALUES ('CCL1', %s, %s - make_interval(mins => %s), %s - make_interval(mins => %s), %s, 1,
                           2390, '\\x00')""", (n + 1, now, minutes_ago - 30, now, minutes_ago - 30, coil))
    # a customer changed its mind: the newest schedule of OLDEST wins
    sql("""INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number, customer_name,
               ccl_bom, thickness, width, length_value, raw)
           VALUES ('CCL1', 99, %s - interval '95 minutes', %s - interval '95 minutes', %s, 'LG전자', 'PCM-A01',
                   0.5, 1219, 2400, '\\x01')""", (now, now, OLDEST))
    sql("""INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)
           SELECT 'CCL1', g, %s - make_interval(secs => g * 10), %s - make_interval(secs => g * 10),
                  95 + (g %% 7) * 3, '\\x00' FROM generate_series(600, 1, -1) g""", (now, now))  # stored oldest first

    boxes = [(120, 200, 90, 40), (400, 90, 60, 60)]
    original, labeled = write_pair(image_root, CURRENT, "20261127101500000", boxes)
    ids = {}
    for kind, path in (("original", original), ("labeled", labeled)):
        ids[kind] = sql("""INSERT INTO images (coil_number, kind, filename, path, bytes, width, height, format, sha256,
                               captured_at)
                           VALUES (%s, %s, %s, %s, %s, 640, 480, 'JPEG', repeat('0', 64), %s - interval '2 minutes')
                           RETURNING id""",
                        (CURRENT, kind, path.name, str(path.relative_to(image_root)), path.stat().st_size, now))[0][0]
    sql("UPDATE images SET pair_id = %s WHERE id = %s", (ids["original"], ids["labeled"]))
    out["images"] = ids
    (model,) = sql("""INSERT INTO ai_models (name, version, deployed, accuracy_score, precision_score, recall_score,
                          f1_score) VALUES ('yolo-ccl', 'v7', true, 0.93, 0.91, 0.89, 0.90) RETURNING id""")[0]
    (other,) = sql("""INSERT INTO ai_models (name, version, accuracy_score, precision_score, recall_score, f1_score)
                      VALUES ('yolo-ccl', 'v8', 0.95, 0.94, 0.92, 0.93) RETURNING id""")[0]
    sql("""INSERT INTO ai_model_metrics (model_id, recorded_at, accuracy_score, precision_score, recall_score, f1_score)
           SELECT m, %s - make_interval(hours => h), 0.85 + h / 400.0, 0.84 + h / 500.0, 0.82 + h / 450.0,
                  0.83 + h / 470.0 FROM generate_series(1, 48) h, (VALUES (%s), (%s)) v(m)""", (now, model, other))
    out["models"] = {"deployed": model, "other": other}

    defects = []
    rows = [(CURRENT, "scratch", 0.97, "critical", 1, 120, 200, 90, 40, 310.5, True),
            (CURRENT, "stain", 0.72, "medium", 2, 400, 90, 60, 60, 1210.0, True),
            (CURRENT, "dent", 0.45, "low", 3, 50, 300, 20, 20, 2050.0, False),
            (PREVIOUS, "pinhole", 0.88, "high", 40, 10, 10, 5, 5, 800.0, False),
            (OLDEST, "edge_crack", 0.91, "high", 80, 600, 100, 30, 80, 100.0, False)]
    for coil, kind, confidence, severity, minutes, x, y, w, h, metre, with_image in rows:
        defects.append(sql(
            """INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, needs_review,
                   defect_position_x, defect_position_y, defect_size_width, defect_size_height, defect_position_meter,
                   detection_time, original_image_id, labeled_image_id, model_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s - make_interval(mins => %s), %s, %s, %s)
               RETURNING id""",
            (coil, kind, confidence, severity, confidence < 0.5, x, y, w, h, metre, now, minutes,
             ids["original"] if with_image else None, ids["labeled"] if with_image else None, model))[0][0])
    out["defects"] = defects
    sql("""INSERT INTO link_status (link, kind, connected, last_seen_at, alive_count, details) VALUES
           ('mes-9304', 'mes', true, %s, 42, '{}'), ('gokiwon-9308', 'gokiwon', true, %s, NULL, '{}'),
           ('gokiwon-9310', 'gokiwon', false, %s - interval '3 minutes', NULL, '{}'),
           ('jetson-top', 'jetson', true, %s, NULL, %s)""", (now, now, now, now, json.dumps({"address": "10.0.0.21"})))
    sql("""INSERT INTO alerts (rule, subject, severity, message) VALUES
           ('link_down', 'gokiwon-9310', 'warning', '고기원 속도 채널 연결 끊김')""")
    return out


def notify(sql, payload: dict) -> None:
    """Announce a stored row exactly as the services do: NOTIFY ccl_events with a JSON payload."""
    sql("SELECT pg_notify('ccl_events', %s)", (json.dumps(payload, ensure_ascii=False),))
