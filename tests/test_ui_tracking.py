"""What the UI shows of coil tracking, over real HTTP against a real PostgreSQL: the coil page
(tracked metre with its band, weld zone, surfaces, completeness, exit coils), the completeness
badge of 코일 이력, the dashboard's current coil (inspected metres) and feed, and the 라인 추적
page (delay log, coil-number disagreements).

The tracking tables are derived data (docs/tracking.md); here they are written as the tracker
would leave them, so that each page's answer can be checked exactly. The tracker itself is
tested in tests/test_tracking_*.py, the chain from the line to the tables in
tests/test_simulate_line.py.
"""

from __future__ import annotations

import datetime
import json
import zoneinfo

from twisted.trial.unittest import TestCase

from ccl.adapters.web.ui import live
from tests.support.ui import json_of, start_ui
from tests.test_ui_data_pages import embedded, run

KST = zoneinfo.ZoneInfo("Asia/Seoul")
NOW = datetime.datetime(2026, 11, 27, 10, 15, tzinfo=KST)
HEAD = NOW - datetime.timedelta(minutes=40)


def at(minutes: float) -> datetime.datetime:
    return HEAD + datetime.timedelta(minutes=minutes)


def seed(sql) -> dict:
    """Coil A (tracked, complete, cut into two exit coils), coil B (running, its box sent one
    defect as A's), coil C (scheduled, never tracked); a stop and a speed gap in the delay log."""
    for number, minutes, length in (("A", 0, 1200), ("B", 10, 900), ("C", 20, 800)):
        sql("INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number, customer_name,"
            " width, length_value, raw) VALUES ('CCL1', %s, %s, %s, %s, '동국씨엠', 1212, %s, %s)",
            (minutes + 1, at(minutes), at(minutes), number, length, number.encode()))
    for number, minutes in (("A", 1), ("B", 11)):
        sql("INSERT INTO tc_4002_wpd (line_code, sequence_no, sent_at, received_at, coil_number, raw)"
            " VALUES ('CCL1', %s, %s, %s, %s, %s)", (minutes + 100, at(minutes), at(minutes), number, number.encode()))

    def defect(coil: str, minutes: float, camera: str = "top", metre: float | None = None, kind: str = "scratch"):
        return sql("INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, detection_time,"
                   " camera_id, defect_position_meter) VALUES (%s, %s, 0.9, 'high', %s, %s, %s) RETURNING id",
                   (coil, kind, at(minutes), camera, metre))[0][0]

    ids = {
        "a_top": defect("A", 3, "top", 5.0),            # tracked at 250.5 +- 0.4 on A
        "a_bottom_weld": defect("A", 2, "bottom"),      # tracked at 1.2 on A: weld zone, bottom surface
        "b_sent_as_a": defect("A", 12, "top", 3.0),     # the box said A; tracking put it on B: flagged
        "b_untracked": defect("B", 13, "top", 44.0),    # not placed yet: the box's metre
    }
    coils = {
        "A": dict(tail=at(11), length=1196.4, u=1.8, inspected={"top": 1196.4, "bottom": 1196.4},
                  coverage={"top": 1.0, "bottom": 1.0}, completeness="complete", cut=True),
        "B": dict(tail=None, length=None, u=None, inspected={"top": 312.5, "bottom": 310.0},
                  coverage={"top": None, "bottom": None}, completeness="running", cut=False),
    }
    for number, c in coils.items():
        sql("INSERT INTO tracking_coils (tracked_coil, coil_number, head_wpd_at, tail_wpd_at, head_at_camera,"
            " tail_at_camera, length_m, length_uncertainty_m, inspected_m, mes_length_m, length_disagrees,"
            " schedule_present, wpd_seen, speed_gap_free, cut_seen, coverage, completeness, model_version, computed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, false, true, %s, true, %s, %s, %s, 1, %s)",
            (number, number, at(1 if number == "A" else 11), c["tail"], json.dumps({"top": at(2).isoformat()}),
             json.dumps({}), c["length"], c["u"], json.dumps(c["inspected"]), 1200 if number == "A" else 900,
             c["tail"] is not None, c["cut"], json.dumps(c["coverage"]), c["completeness"], NOW))
    for piece, (number, start, end) in enumerate((("A", 0.0, 600.2), ("A", 600.2, 1196.4)), 1):
        sql("INSERT INTO tracking_exit_coils (tracked_coil, piece, coil_number, start_m, end_m, cut_at, cut_mode,"
            " winding_length, scrap, length_disagrees) VALUES ('A', %s, %s, %s, %s, %s, 2, %s, false, false)",
            (piece, number, start, end, at(15 + piece), round(end - start)))

    def placed(defect_id, camera, surface, coil, metre, u, *, weld=False, box="A", disagrees=False, exit_piece=None):
        sql("INSERT INTO tracking_defects (defect_id, camera_id, surface, detected_at, time_source, status,"
            " tracked_coil, metre, uncertainty_m, in_weld_zone, box_coil, coil_disagrees, exit_coil, exit_piece,"
            " exit_metre, model_version, computed_at) VALUES (%s, %s, %s, %s, 'box', 'placed', %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, 1, %s)",
            (defect_id, camera, surface, NOW - datetime.timedelta(minutes=20), coil, metre, u, weld, box, disagrees,
             "A" if exit_piece else None, exit_piece, metre if exit_piece else None, NOW))

    placed(ids["a_top"], "top", "top", "A", 250.5, 0.4, exit_piece=1)
    placed(ids["a_bottom_weld"], "bottom", "bottom", "A", 1.2, 0.4, weld=True, exit_piece=1)
    placed(ids["b_sent_as_a"], "top", "top", "B", 2.5, 0.5, weld=True, disagrees=True)
    for kind, start, end, coil, metre in (("stop", at(5), at(7), "A", 400.0), ("speed_gap", at(14), at(14.2), "B", 80.0)):
        sql("INSERT INTO tracking_delays (kind, started_at, ended_at, duration_s, tracked_coil, metre, computed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)", (kind, start, end, (end - start).total_seconds(), coil, metre, NOW))
    return ids


def row_of(page: str, marker: str) -> str:
    """The table row of ``page`` that starts with ``marker``."""
    row = page[page.index(marker):]
    return row[:row.index("</tr>")]


async def plant(testcase):
    ui = await start_ui(testcase, now=NOW, env={"CCL_TRACKING_WELD_ZONE_M": "2.5"})
    ids = seed(ui.sql)
    return ui, ids, ui.add_user("viewer.kim", "viewer")


class CoilPageTests(TestCase):
    @run
    async def test_coil_page_shows_tracked_metres_completeness_and_exit_coils(self):
        """The coil page: completeness badge and checks, the exit coils, each defect at its tracked
        metre with its band, weld zone and surface; a defect its box sent with this coil's number
        but tracked onto another coil says where it went."""
        ui, ids, viewer = await plant(self)
        response, body = await ui.get("/coils/A", viewer)
        self.assertEqual(response.code, 200)
        page = body.decode()
        self.assertIn('data-completeness="complete"', page)
        self.assertIn("완전", page)
        self.assertIn("1,196.4 ± 1.8 m", page)
        self.assertIn('id="exit-coils"', page)
        self.assertIn("600.2", page)
        state = embedded(body, "coil-state")
        self.assertEqual(state["weld_zone_m"], 2.5)
        self.assertEqual(state["tracking"]["completeness"], "complete")
        self.assertEqual([e["piece"] for e in state["tracking"]["exit_coils"]], [1, 2])
        defects = {d["id"]: d for d in state["defects"]}
        self.assertEqual(set(defects), {ids["a_top"], ids["a_bottom_weld"], ids["b_sent_as_a"]})
        top = defects[ids["a_top"]]
        self.assertEqual((top["tracked_metre"], top["uncertainty_m"], top["on_coil"], top["surface"], top["exit_piece"]),
                         (250.5, 0.4, True, "top", 1))
        weld = defects[ids["a_bottom_weld"]]
        self.assertEqual((weld["in_weld_zone"], weld["surface"], weld["on_coil"]), (True, "bottom", True))
        gone = defects[ids["b_sent_as_a"]]
        self.assertEqual((gone["tracked_coil"], gone["on_coil"], gone["coil_disagrees"]), ("B", False, True))
        row = row_of(page, f'data-defect="{ids["a_top"]}"')
        self.assertIn("250.5", row)
        self.assertIn("± 0.4", row)
        self.assertIn("상면", row)
        row = row_of(page, f'data-defect="{ids["a_bottom_weld"]}"')
        self.assertIn("용접부", row)
        self.assertIn("하면", row)
        row = row_of(page, f'data-defect="{ids["b_sent_as_a"]}"')
        self.assertIn("다른 코일로 추적", row)
        self.assertIn('href="/coils/B"', row)
        self.assertIn("코일 번호 불일치", row)

    @run
    async def test_the_coil_the_box_did_not_name_shows_what_tracking_put_on_it(self):
        """Coil B's page holds its own defects and the one its box sent as A's (placed on B),
        the untracked one at the box's metre; B is still running, its coverage unknown."""
        ui, ids, viewer = await plant(self)
        response, body = await ui.get("/api/coils/B", viewer)
        self.assertEqual(response.code, 200)
        detail = json_of(body)
        defects = {d["id"]: d for d in detail["defects"]}
        self.assertEqual(set(defects), {ids["b_sent_as_a"], ids["b_untracked"]})
        self.assertTrue(defects[ids["b_sent_as_a"]]["on_coil"])
        self.assertEqual(defects[ids["b_sent_as_a"]]["coil_number"], "A")  # what the box said, kept
        untracked = defects[ids["b_untracked"]]
        self.assertEqual((untracked["tracking_status"], untracked["defect_position_meter"]), (None, 44.0))
        self.assertEqual(detail["tracking"]["completeness"], "running")
        response, body = await ui.get("/coils/B", viewer)
        page = body.decode()
        self.assertIn('data-completeness="running"', page)
        self.assertIn("알 수 없음 (하트비트 없음)", page)

    @run
    async def test_a_coil_without_tracking_says_no_data_not_no_defects(self):
        """Coil C was scheduled but never tracked: its page and badge say "no tracking data"."""
        ui, ids, viewer = await plant(self)
        response, body = await ui.get("/coils/C", viewer)
        self.assertEqual(response.code, 200)
        page = body.decode()
        self.assertIn('data-completeness="none"', page)
        self.assertIn("이 코일의 추적 데이터가 없습니다. 결함이 없다는 뜻이 아닙니다.", page)
        self.assertIsNone(embedded(body, "coil-state")["tracking"])
        response, body = await ui.get("/coils/C?lang=en", viewer)
        self.assertIn("No tracking data", body.decode())


class HistoryTests(TestCase):
    @run
    async def test_every_coil_has_its_completeness_badge(self):
        """코일 이력: A complete, B running, C without tracking data, each in its row and in the JSON."""
        ui, ids, viewer = await plant(self)
        response, body = await ui.get("/coils?from=2026-11-27&to=2026-11-27", viewer)
        self.assertEqual(response.code, 200)
        page = body.decode()
        for coil, badge in (("A", "complete"), ("B", "running"), ("C", "none")):
            row = row_of(page, f'<tr data-coil="{coil}">')
            self.assertIn(f'data-completeness="{badge}"', row, coil)
        response, body = await ui.get("/api/coils?from=2026-11-27&to=2026-11-27&sort=coil_number&order=asc", viewer)
        rows = json_of(body)["rows"]
        self.assertEqual([(r["coil_number"], r["completeness"]) for r in rows],
                         [("A", "complete"), ("B", "running"), ("C", None)])


class DashboardTests(TestCase):
    @run
    async def test_current_coil_carries_its_inspected_metres_and_the_feed_its_tracked_place(self):
        """The current coil (the last WPD: B) comes with what tracking knows of it (inspected
        metres per camera, from which the page advances the figure); the feed's defects carry
        their tracked metre and band."""
        ui, ids, viewer = await plant(self)
        response, body = await ui.get("/api/dashboard?part=coil", viewer)
        coil = json_of(body)["data"]
        self.assertEqual(coil["coil_number"], "B")
        self.assertEqual(coil["tracking"]["inspected_m"], {"top": 312.5, "bottom": 310.0})
        self.assertEqual(coil["tracking"]["completeness"], "running")
        response, body = await ui.get("/api/dashboard?part=defects", viewer)
        feed = {d["id"]: d for d in json_of(body)["data"]}
        self.assertEqual((feed[ids["a_top"]]["tracked_metre"], feed[ids["a_top"]]["uncertainty_m"]), (250.5, 0.4))
        self.assertIsNone(feed[ids["b_untracked"]]["tracked_metre"])
        response, body = await ui.get("/api/dashboard?part=coil_defects", viewer)
        bar = json_of(body)["data"]
        self.assertEqual({d["id"] for d in bar["defects"] if d["on_coil"]}, {ids["b_sent_as_a"]})
        response, body = await ui.get("/", viewer)
        self.assertEqual(embedded(body, "dashboard-settings"), {"weld_zone_m": 2.5})
        self.assertEqual(embedded(body, "dashboard-state")["coil"]["tracking"]["tracked_coil"], "B")

    def test_tracking_events_reach_the_browsers_as_their_own_topic(self):
        """The tracker's NOTIFYs (placements written, the running coil's inspected metres) are SSE ``tracking``."""
        for table in ("tracking_defects", "tracking_images", "tracking_coils"):
            self.assertEqual(live.topic({"table": table, "tracked_coils": ["A"]}), "tracking")


class TrackingPageTests(TestCase):
    @run
    async def test_delay_log_and_disagreements_of_the_day(self):
        """라인 추적 (default: the UI clock's plant day): the stop and the speed gap with their
        durations and the coil under the camera; the defect whose box named the wrong coil."""
        ui, ids, viewer = await plant(self)
        response, body = await ui.get("/tracking", viewer)
        self.assertEqual(response.code, 200)
        page = body.decode()
        self.assertIn('value="2026-11-27"', page)
        delays = page[page.index('id="delays"'):page.index('id="disagreements"')]
        self.assertIn("라인 정지", delays)
        self.assertIn("속도 데이터 누락", delays)
        self.assertIn("120 초", delays)
        self.assertIn('data-kind="stop"', delays)
        disagreements = page[page.index('id="disagreements"'):]
        self.assertIn(f'data-defect="{ids["b_sent_as_a"]}"', disagreements)
        self.assertEqual(disagreements.count("<tr data-defect="), 1)
        response, body = await ui.get("/api/tracking?from=2026-11-27&to=2026-11-27", viewer)
        found = json_of(body)
        self.assertEqual([(d["kind"], d["duration_s"], d["tracked_coil"]) for d in found["delays"]],
                         [("stop", 120.0, "A"), ("speed_gap", 12.0, "B")])
        self.assertEqual([(p["defect_id"], p["box_coil"], p["tracked_coil"]) for p in found["disagreements"]],
                         [(ids["b_sent_as_a"], "A", "B")])
        response, body = await ui.get("/api/tracking?from=2026-11-26&to=2026-11-26", viewer)
        self.assertEqual(json_of(body)["delays"], [])
        response, body = await ui.get("/tracking?lang=en", viewer)
        self.assertIn("Delay log", body.decode())

    @run
    async def test_bad_ranges_are_refused(self):
        ui, ids, viewer = await plant(self)
        for query, reason in (("from=2026-11-28&to=2026-11-27", "bad range"), ("from=2026-01-01&to=2026-11-27", "bad range"),
                              ("from=yesterday", "bad from")):
            response, body = await ui.get(f"/api/tracking?{query}", viewer)
            self.assertEqual((response.code, json_of(body)["error"]), (400, reason), query)
