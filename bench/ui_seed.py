"""Seed a database like a plant after ~1.5 years: 50,000 coils, 1,000,000 defects.

Used by bench/ui_queries.py (and handy for trying the UI on realistic volumes). Everything
goes in with COPY through psycopg2 (a few hundred thousand rows a second here). The data is
deterministic (seeded random) and ends "now", so the dashboard's last 30 minutes are busy.
"""

from __future__ import annotations

import datetime
import io
import random
import time

import psycopg2

from ccl.adapters.storage import partitions

TYPES = ["scratch", "dent", "stain", "pinhole", "coating_defect", "edge_crack", "roll_mark", "other"]
TYPE_WEIGHTS = [30, 12, 20, 8, 15, 5, 7, 3]
CUSTOMERS = ["현대자동차", "삼성전자", "LG전자", "포스코", "동국제강", "한화", "대우건설", "KCC", "기아", "SK"]
BOMS = ["PCM-A01", "PCM-B02", "VCM-C03", "GI-D04", "GL-E05"]
COIL_MINUTES = 15          # one coil through the line every 15 minutes
SPEED_SECONDS = 20         # one speed telegram per 20 s over the whole history ...
RECENT_SPEED_SECONDS = 1   # ... and one per second in the last two hours
IMAGE_EVERY = 10           # one image pair per 10th defect


def _copy(cursor, table: str, columns: tuple[str, ...], lines) -> int:
    buffer = io.StringIO()
    count = 0
    for line in lines:
        buffer.write("\t".join("\\N" if v is None else str(v) for v in line))
        buffer.write("\n")
        count += 1
        if buffer.tell() > 8 << 20:
            buffer.seek(0)
            cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)
            buffer = io.StringIO()
    buffer.seek(0)
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)
    return count


def _ts(moment: datetime.datetime) -> str:
    return moment.isoformat()


def seed(dsn: str, coils: int = 50_000, defects: int = 1_000_000, seed_value: int = 4002,
         report=print) -> dict[str, int]:
    rng = random.Random(seed_value)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    start = now - datetime.timedelta(minutes=COIL_MINUTES * coils)
    counts: dict[str, int] = {}
    connection = psycopg2.connect(dsn)
    connection.autocommit = False
    began = time.monotonic()
    with connection, connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        # Every seeded month has its partitions, as on a plant whose history was migrated
        # (schema 117, 123): else those rows would all sit in the DEFAULT partitions.
        partitions.ensure_partitions(connection, (start - datetime.timedelta(days=1)).date(),
                                     (now.year - start.year) * 12 + now.month - start.month + 2)
        coil_rows = []
        for n in range(coils):
            entered = start + datetime.timedelta(minutes=COIL_MINUTES * n)
            coil_rows.append((f"C{26000000 + n}", entered, rng.choice(CUSTOMERS), rng.choice(BOMS),
                              rng.choice([0.35, 0.4, 0.5, 0.6, 0.8, 1.0]), rng.choice([914, 1000, 1219, 1250]),
                              rng.randint(1500, 4500)))

        def schedules():
            for n, (coil, entered, customer, bom, thick, width, length) in enumerate(coil_rows):
                at = entered - datetime.timedelta(minutes=30)
                yield ("CCL1", n % 10000, _ts(at), _ts(at), coil, f"MO{n:07d}", "CCL", "SGCC", customer, bom,
                       thick, width, rng.randint(5000, 15000), length, "N", n % 100, "\\\\x00")

        counts["tc_4000_schedule"] = _copy(cursor, "tc_4000_schedule", (
            "line_code", "sequence_no", "sent_at", "received_at", "coil_number", "mo_number", "product_group",
            "material_code", "customer_name", "ccl_bom", "thickness", "width", "weight", "length_value",
            "through_plate", "sequence_order", "raw"), schedules())
        counts["tc_4002_wpd"] = _copy(cursor, "tc_4002_wpd", (
            "line_code", "sequence_no", "sent_at", "received_at", "coil_number", "raw"),
            (("CCL1", n % 10000, _ts(r[1]), _ts(r[1]), r[0], "\\\\x00") for n, r in enumerate(coil_rows)))
        # the newest coil is still on the line: no CUT yet
        counts["tc_4001_cut"] = _copy(cursor, "tc_4001_cut", (
            "line_code", "sequence_no", "sent_at", "received_at", "coil_number", "cut_mode", "winding_length",
            "raw"),
            (("CCL1", n % 10000, _ts(r[1] + datetime.timedelta(minutes=14)),
              _ts(r[1] + datetime.timedelta(minutes=14)), r[0], 1, r[6], "\\\\x00")
             for n, r in enumerate(coil_rows[:-1])))

        def speeds():
            moment, n = start, 0
            recent = now - datetime.timedelta(hours=2)
            while moment <= now:
                n += 1
                yield ("CCL1", n % 100000, _ts(moment), _ts(moment), 80 + int(40 * rng.random()), "\\\\x00")
                moment += datetime.timedelta(seconds=RECENT_SPEED_SECONDS if moment >= recent else SPEED_SECONDS)

        counts["tc_4003_speed"] = _copy(cursor, "tc_4003_speed", (
            "line_code", "sequence_no", "sent_at", "received_at", "line_speed", "raw"), speeds())

        cursor.execute("""INSERT INTO ai_models (name, version, deployed, accuracy_score, precision_score,
                                                 recall_score, f1_score)
                          SELECT 'yolo-ccl', 'v' || g, g = 5, 0.80 + g / 100.0, 0.78 + g / 100.0,
                                 0.75 + g / 100.0, 0.76 + g / 100.0 FROM generate_series(1, 5) g""")
        cursor.execute("""INSERT INTO ai_model_metrics (model_id, recorded_at, accuracy_score, precision_score,
                                                        recall_score, f1_score)
                          SELECT m.id, now() - make_interval(hours => h), 0.8 + random() / 10, 0.8 + random() / 10,
                                 0.8 + random() / 10, 0.8 + random() / 10
                          FROM ai_models m, generate_series(1, 500) h""")

        per_coil = defects / coils
        images_wanted = []

        def defect_lines():
            made = 0
            for n, (coil, entered, *_rest) in enumerate(coil_rows):
                length = coil_rows[n][6]
                k = int(per_coil) + (1 if rng.random() < per_coil - int(per_coil) else 0)
                if n == len(coil_rows) - 1:
                    k = min(k, defects - made)
                for _ in range(k):
                    if made >= defects:
                        return
                    made += 1
                    confidence = rng.random() ** 0.5
                    severity = ("critical" if confidence >= 0.95 else "high" if confidence >= 0.85
                                else "medium" if confidence >= 0.6 else "low")
                    metre = rng.random() * length
                    detected = entered + datetime.timedelta(seconds=metre / length * 14 * 60)
                    image = None
                    if made % IMAGE_EVERY == 0:
                        image = f"{coil}_{detected:%Y%m%d%H%M%S}{len(images_wanted) % 1000:03d}"
                        images_wanted.append((coil, detected, image))
                    yield (coil, rng.choices(TYPES, TYPE_WEIGHTS)[0], round(confidence, 4), severity,
                           "t" if confidence < 0.5 else "f", rng.randint(0, 4000), rng.randint(0, 3000),
                           rng.randint(5, 200), rng.randint(5, 200), round(metre, 2), _ts(detected), _ts(detected),
                           f"{image}_original.jpg" if image else None)
            while made < defects:  # rounding left a few: give them to the newest coil
                made += 1
                coil, entered = coil_rows[-1][0], coil_rows[-1][1]
                yield (coil, "other", 0.7, "medium", "f", 10, 10, 10, 10, 1.0, _ts(entered), _ts(entered), None)

        counts["defect_detections"] = _copy(cursor, "defect_detections", (
            "coil_number", "defect_type", "confidence_score", "severity", "needs_review", "defect_position_x",
            "defect_position_y", "defect_size_width", "defect_size_height", "defect_position_meter",
            "detection_time", "received_at", "original_image_path"), defect_lines())

        def image_lines():
            for coil, at, stamp in images_wanted:
                for kind in ("original", "labeled"):
                    name = f"{stamp}_{kind}.jpg"
                    yield (coil, kind, name, f"{kind}/{name}", 250000, 4096, 3000, "JPEG", "0" * 64, _ts(at), _ts(at))

        counts["images"] = _copy(cursor, "images", (
            "coil_number", "kind", "filename", "path", "bytes", "width", "height", "format", "sha256",
            "captured_at", "received_at"), image_lines())
        # pair the halves (labeled.pair_id = original.id) and point defects at their original image
        cursor.execute("""UPDATE images l SET pair_id = o.id FROM images o
                          WHERE l.kind = 'labeled' AND o.kind = 'original' AND o.coil_number = l.coil_number
                            AND o.filename = replace(l.filename, '_labeled.', '_original.')""")
        cursor.execute("""UPDATE defect_detections d SET original_image_id = o.id, labeled_image_id = l.id
                          FROM images o JOIN images l ON l.pair_id = o.id
                          WHERE o.filename = d.original_image_path""")
        cursor.execute("""INSERT INTO link_status (link, kind, connected, last_seen_at, alive_count) VALUES
                          ('mes:9304', 'mes', true, now(), 1234), ('gokiwon:9308', 'gokiwon', true, now(), NULL),
                          ('gokiwon:9309', 'gokiwon', true, now(), NULL), ('gokiwon:9310', 'gokiwon', false, now() - interval '5 minutes', NULL),
                          ('jetson-top', 'jetson', true, now(), NULL), ('jetson-bottom', 'jetson', true, now(), NULL)""")
        cursor.execute("""INSERT INTO alerts (rule, subject, severity, message, raised_at, cleared_at)
                          SELECT 'rule' || (g % 7), 'subject' || g, 'warning', '경보 ' || g,
                                 now() - make_interval(hours => g), CASE WHEN g > 5 THEN now() END
                          FROM generate_series(1, 1000) g""")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connection.close()
    counts["seconds"] = round(time.monotonic() - began, 1)
    report(f"seeded {counts}")
    return counts
