"""The data pages (실시간 모니터링, 코일 이력, coil detail, images, 통계, AI 모델) over real HTTP
against a real PostgreSQL seeded with a small line (tests/support/ui_data.py).

Who may call what is tested cell by cell in tests/test_ui_access.py; here: what they answer.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
import shutil
import tempfile
import zoneinfo
from pathlib import Path

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.ui_queries import stats
from ccl.adapters.web.ui import live
from ccl.adapters.web.ui.sessions import COOKIE
from tests.support.ui import json_of, start_ui
from tests.support.ui_data import CURRENT, OLDEST, PREVIOUS, notify, seed_line


#: The present of the seeded line and of the UI under test (time is an input): mid-morning,
#: so everything seeded (up to ~2 hours before) is of the same plant day.
NOW = datetime.datetime(2026, 11, 27, 10, 15, tzinfo=zoneinfo.ZoneInfo("Asia/Seoul"))


def embedded(body: bytes, element_id: str):
    match = re.search(rb'<script type="application/json" id="' + element_id.encode() + rb'"[^>]*>(.*?)</script>',
                      body, re.S)
    return json.loads(match.group(1))


async def line(testcase):
    root = Path(tempfile.mkdtemp(prefix="ccl-images-"))
    testcase.addCleanup(shutil.rmtree, root, True)
    ui = await start_ui(testcase, env={"CCL_IMAGES_ROOT": str(root)}, now=NOW)
    seeded = seed_line(ui.sql, root, NOW)
    return ui, seeded, root, ui.add_user("viewer.kim", "viewer")


def run(coroutine_function):
    def test(self):
        return defer.ensureDeferred(coroutine_function(self))

    test.__name__, test.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return test


class DashboardTests(TestCase):
    @run
    async def test_page_paints_current_coil_speed_images_feed_and_counts(self):
        """The dashboard paints the current coil, 30 minutes of speed, images, defects, today's counts, links, alerts."""
        ui, seeded, _, viewer = await line(self)
        response, body = await ui.get("/", viewer)
        self.assertEqual(response.code, 200)
        state = embedded(body, "dashboard-state")
        self.assertEqual(state["coil"]["coil_number"], CURRENT)
        self.assertEqual(state["coil"]["customer_name"], "삼성전자")
        self.assertEqual(float(state["coil"]["thickness"]), 0.5)
        # one point per 10 s over 100 minutes were stored: the chart gets the last 30 minutes only
        self.assertIn(len(state["speed"]), (179, 180))
        self.assertEqual(state["images"]["original"]["id"], seeded["images"]["original"])
        self.assertEqual(state["images"]["labeled"]["id"], seeded["images"]["labeled"])
        self.assertEqual([d["id"] for d in state["defects"]], sorted(seeded["defects"], reverse=True))
        self.assertEqual(sorted(c["defect_type"] for c in state["today"]),
                         ["dent", "edge_crack", "pinhole", "scratch", "stain"])
        self.assertEqual(sorted(d["defect_type"] for d in state["coil_defects"]), ["dent", "scratch", "stain"])
        self.assertEqual({link["link"]: link["connected"] for link in state["links"]}["gokiwon-9310"], False)
        self.assertEqual([a["message"] for a in state["alerts"]], ["고기원 속도 채널 연결 끊김"])
        self.assertIn("실시간 모니터링".encode(), body)

    @run
    async def test_current_coil_is_the_last_wpd_pass_with_its_newest_schedule(self):
        """The current coil is the last to pass the WPD, shown with its newest schedule."""
        ui, _, _, viewer = await line(self)
        ui.sql("""INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number,
                      customer_name, raw) VALUES ('CCL1', 500, now(), now(), %s, 'KCC', '\\x05')""", (CURRENT,))
        _, body = await ui.get("/api/dashboard?part=coil", viewer)
        self.assertEqual(json_of(body)["data"]["customer_name"], "KCC")
        ui.sql("""INSERT INTO tc_4002_wpd (line_code, sequence_no, sent_at, received_at, coil_number, raw)
                  VALUES ('CCL1', 501, now(), now(), %s, '\\x05')""", (OLDEST,))
        _, body = await ui.get("/api/dashboard?part=coil", viewer)
        coil = json_of(body)["data"]
        self.assertEqual((coil["coil_number"], coil["customer_name"]), (OLDEST, "LG전자"))

    @run
    async def test_parts_only_what_is_new_and_clear_errors(self):
        """Dashboard parts give only what is newer than 'after'; an unknown part is 400 naming the allowed ones."""
        ui, seeded, _, viewer = await line(self)
        newest = max(seeded["defects"])
        _, body = await ui.get(f"/api/dashboard?part=defects&after={newest - 1}", viewer)
        self.assertEqual([d["id"] for d in json_of(body)["data"]], [newest])
        _, body = await ui.get("/api/dashboard?part=speed", viewer)
        points = json_of(body)["data"]
        _, body = await ui.get(f"/api/dashboard?part=speed&after={points[-2]['id']}", viewer)
        self.assertEqual(json_of(body)["data"], points[-1:])
        response, body = await ui.get("/api/dashboard?part=nonsense", viewer)
        self.assertEqual(response.code, 400)
        self.assertIn("speed", json_of(body)["details"]["allowed"])
        _, body = await ui.get("/api/dashboard?part=services", viewer)
        self.assertEqual(json_of(body)["data"]["available"], False)  # no orchestrator in this test

    @run
    async def test_service_states_come_from_the_orchestrator(self):
        """The dashboard's service states come from the orchestrator."""
        from tests.test_ui_system import with_orchestrator

        ui, _ = await with_orchestrator(self)
        viewer = ui.add_user("viewer.choi", "viewer")
        response, body = await ui.get("/api/dashboard?part=services", viewer)
        self.assertEqual(response.code, 200)
        services = json_of(body)["data"]
        self.assertTrue(services["available"])
        self.assertEqual({s["id"]: s["state"] for s in services["services"]}["mes-tcp-service"], "running")

    @run
    async def test_empty_database_paints_without_errors(self):
        """An empty database paints the dashboard without errors."""
        ui = await start_ui(self)
        viewer = ui.add_user("viewer.lee", "viewer")
        response, body = await ui.get("/", viewer)
        self.assertEqual(response.code, 200)
        state = embedded(body, "dashboard-state")
        self.assertEqual((state["coil"], state["speed"], state["images"], state["defects"]), (None, [], None, []))


class _EventStream(protocol.Protocol):
    """A browser's EventSource, reduced to its bytes: sends the GET, collects what comes back."""

    def __init__(self, request: bytes):
        self.request = request
        self.received = b""
        self.closed = defer.Deferred()

    def connectionMade(self):  # noqa: N802
        self.transport.write(self.request)

    def dataReceived(self, data):  # noqa: N802
        self.received += data

    def connectionLost(self, reason):  # noqa: N802
        self.closed.callback(None)


async def until(predicate, timeout: float = 20.0):
    waited = 0.0
    while not predicate():
        if waited > timeout:
            raise AssertionError("condition not reached in time")
        await task.deferLater(reactor, 0.02, lambda: None)
        waited += 0.02


class LiveEventsTests(TestCase):
    @run
    async def test_notify_reaches_a_browser_as_a_server_sent_event(self):
        """A NOTIFY reaches every connected browser as a server-sent event, and closed streams are let go."""
        ui, _, _, viewer = await line(self)
        port = int(ui.base.rsplit(":", 1)[1])
        request = (f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                   f"Cookie: {COOKIE}={viewer.token}\r\n\r\n").encode()
        streams = [_EventStream(request) for _ in range(2)]
        for stream in streams:
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), stream)
        await until(lambda: all(b"event: hello" in s.received for s in streams))
        self.assertIn(b"content-type: text/event-stream", streams[0].received.lower())
        hub = live.hub(ui.ui)
        self.assertEqual(hub.clients, 2)

        (defect,) = ui.sql("""INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity,
                                  detection_time) VALUES (%s, 'dent', 0.8, 'medium', now()) RETURNING id""",
                           (CURRENT,))[0]
        notify(ui.sql, {"table": "defect_detections", "id": defect, "coil_number": CURRENT})
        notify(ui.sql, {"table": "tc_4003_speed", "id": 1})
        for stream in streams:  # one LISTEN, fanned out to both
            await until(lambda stream=stream: b"event: speed" in stream.received)
            events = [block for block in stream.received.split(b"\n\n") if b"event: defect" in block]
            self.assertEqual(len(events), 1)
            data = json.loads(events[0].split(b"data: ", 1)[1])
            self.assertEqual(data, {"table": "defect_detections", "id": defect, "coil_number": CURRENT})

        # a browser that goes away is dropped; the other one keeps its stream
        streams[0].transport.loseConnection()
        await streams[0].closed
        await until(lambda: hub.clients == 1)
        streams[1].transport.loseConnection()
        await streams[1].closed
        await until(lambda: hub.clients == 0)

    def test_topics(self):
        """Events are named by their table or TC, and framed as SSE with escaped newlines."""
        self.assertEqual(live.topic({"table": "tc_4003_speed"}), "speed")
        self.assertEqual(live.topic({"tc_code": "4002"}), "coil")
        self.assertEqual(live.topic({"table": "defect_reviews"}), "review")
        self.assertEqual(live.topic({"table": "something_new"}), "event")
        self.assertEqual(live.topic("plain text"), "event")
        self.assertEqual(live.frame("defect", {"a": "줄\n바꿈"}, 7),
                         'id: 7\nevent: defect\ndata: {"a": "줄\\n바꿈"}\n\n'.encode())


class HistoryTests(TestCase):
    @run
    async def test_search_filters_pages_and_sorts(self):
        """코일 이력 searches by coil, customer (newest schedule), defect type and dates, pages and sorts."""
        ui, _, _, viewer = await line(self)

        async def coils(query=""):
            response, body = await ui.get("/api/coils" + query, viewer)
            self.assertEqual(response.code, 200, body)
            return [row["coil_number"] for row in json_of(body)["rows"]]

        self.assertEqual(await coils(), [CURRENT, PREVIOUS, OLDEST])  # newest first
        self.assertEqual(await coils("?sort=coil_number&order=asc"), [OLDEST, PREVIOUS, CURRENT])
        self.assertEqual(await coils("?coil=a0002"), [PREVIOUS])     # partial, any case
        self.assertEqual(await coils("?customer=LG"), [OLDEST])      # the newest schedule counts
        self.assertEqual(await coils("?customer=%ED%8F%AC%EC%8A%A4%EC%BD%94"), [])  # 포스코: superseded
        self.assertEqual(await coils("?defect_type=pinhole"), [PREVIOUS])
        self.assertEqual(await coils("?coil=%25"), [])               # % is literal, not a wildcard
        self.assertEqual(await coils("?from=2020-01-01&to=2020-01-31"), [])
        self.assertEqual(await coils("?size=25&page=2"), [])
        _, body = await ui.get("/api/coils?size=25", viewer)
        found = json_of(body)
        self.assertEqual((found["total"], found["more"], found["rows"][0]["defects"]), (3, False, 3))

    @run
    async def test_refuses_what_it_cannot_use(self):
        """A bad sort, order, date, range or coil is 400 'bad search', as JSON or as a page."""
        ui, _, _, viewer = await line(self)
        for query in ("?sort=id;DROP TABLE users", "?order=sideways", "?from=yesterday", "?from=2026-02-01&to=2026-01-01",
                      "?coil=" + "x" * 65):
            response, body = await ui.get("/api/coils" + query, viewer)
            self.assertEqual(response.code, 400, query)
            self.assertEqual(json_of(body)["error"], "bad search")
        response, body = await ui.get("/coils?sort=nope", viewer)
        self.assertEqual(response.code, 400)
        self.assertIn(b"<html", body)

    @run
    async def test_page_lists_coils_with_sort_links(self):
        """The 코일 이력 page lists the matching coils with sort and CSV links."""
        ui, _, _, viewer = await line(self)
        response, body = await ui.get("/coils?customer=%EC%82%BC%EC%84%B1", viewer)  # 삼성
        self.assertEqual(response.code, 200)
        self.assertEqual(re.findall(rb'<tr data-coil="([^"]+)"', body), [CURRENT.encode()])
        self.assertIn(b"sort=coil_number", body)
        self.assertIn(b'href="/coils.csv?', body)

    @run
    async def test_csv_export_streams_every_matching_coil(self):
        """The CSV export streams every matching coil with a BOM, formula-like cells neutralised."""
        ui, _, _, viewer = await line(self)
        ui.sql("UPDATE tc_4000_schedule SET customer_name = '=HYPERLINK(1)' WHERE coil_number = %s", (PREVIOUS,))
        response, body = await ui.get("/coils.csv?sort=coil_number&order=asc", viewer)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/csv; charset=utf-8"])
        self.assertIn(b"attachment;", response.headers.getRawHeaders(b"content-disposition")[0])
        self.assertTrue(body.startswith(b"\xef\xbb\xbf"))
        rows = list(csv.reader(io.StringIO(body[3:].decode("utf-8"))))
        self.assertEqual(rows[0], ["coil_number", "received_at", "customer_name", "ccl_bom", "product_group",
                                   "thickness", "width", "length_value", "weight", "defects"])
        self.assertEqual([r[0] for r in rows[1:]], [OLDEST, PREVIOUS, CURRENT])
        self.assertEqual(rows[1][2], "LG전자")
        self.assertEqual(rows[2][2], "'=HYPERLINK(1)")  # no formula in a spreadsheet
        self.assertEqual(rows[3][9], "3")
        self.assertRegex(rows[3][1], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


class CoilDetailTests(TestCase):
    @run
    async def test_detail_json_and_page(self):
        """A coil's detail has its schedule, WPD and CUT events, the speed between them, defects and images."""
        ui, seeded, _, viewer = await line(self)
        response, body = await ui.get(f"/api/coils/{PREVIOUS}", viewer)
        self.assertEqual(response.code, 200)
        detail = json_of(body)
        self.assertEqual(detail["schedules"][0]["customer_name"], "현대자동차")
        self.assertEqual([e["kind"] for e in detail["events"]], ["WPD", "CUT"])
        wpd, cut = detail["events"][0]["received_at"], detail["events"][1]["received_at"]
        # the speed series runs from the WPD pass to the CUT: 30 minutes of 10 s points
        self.assertTrue(all(wpd <= p["t"] <= cut for p in detail["speed"]))
        self.assertIn(len(detail["speed"]), (180, 181))
        self.assertEqual([d["defect_type"] for d in detail["defects"]], ["pinhole"])

        _, body = await ui.get(f"/api/coils/{CURRENT}", viewer)
        detail = json_of(body)
        across = {d["defect_type"]: d["across"] for d in detail["defects"]}
        self.assertAlmostEqual(across["scratch"], (120 + 45) / 640)   # from its image's width
        self.assertIsNone(across["dent"])                                 # no image: unknown
        self.assertEqual(sorted(i["id"] for i in detail["images"]), sorted(seeded["images"].values()))
        self.assertEqual({i["kind"]: i["partner_id"] for i in detail["images"]},
                         {"original": seeded["images"]["labeled"], "labeled": seeded["images"]["original"]})

        response, body = await ui.get(f"/coils/{CURRENT}", viewer)
        self.assertEqual(response.code, 200)
        self.assertIn(b"GI-D04", body)
        self.assertEqual(len(re.findall(rb'<tr class="sev-[a-z]+" data-defect=', body)), 3)
        self.assertIn(f'/images/{seeded["images"]["original"]}/thumb'.encode(), body)
        self.assertIn(b'data-can-review="no"', body)  # a viewer gets no review buttons

    @run
    async def test_unknown_and_malformed_coils(self):
        """An unknown or malformed coil number is 404."""
        ui, _, _, viewer = await line(self)
        for path in ("/coils/C99999999", "/coils/bad%20coil", "/api/coils/C99999999", "/api/coils/" + "A" * 21):
            response, _ = await ui.get(path, viewer)
            self.assertEqual(response.code, 404, path)


class ImageTests(TestCase):
    @run
    async def test_files_by_database_id_only(self):
        """Images and thumbnails are served by database id only, never by a client's path."""
        ui, seeded, root, viewer = await line(self)
        original = seeded["images"]["original"]
        response, body = await ui.get(f"/images/{original}", viewer)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"image/jpeg"])
        self.assertEqual(body, next((root / "original").iterdir()).read_bytes())

        response, body = await ui.get(f"/images/{original}/thumb", viewer)
        self.assertEqual(response.code, 200)
        from PIL import Image
        with Image.open(io.BytesIO(body)) as thumb:
            self.assertEqual(thumb.format, "JPEG")
            self.assertLessEqual(thumb.size, (320, 240))

        # rows whose path leads outside the image root are never served
        outside = Path(tempfile.mkdtemp(prefix="ccl-outside-"))
        self.addCleanup(shutil.rmtree, outside, True)
        (outside / "secret.jpg").write_bytes(b"not for you")
        for n, path in enumerate(("../../../etc/passwd", str(outside / "secret.jpg"), "original/../../x.jpg")):
            (image,) = ui.sql("""INSERT INTO images (coil_number, kind, filename, path, bytes, width, height, format,
                                    sha256, captured_at) VALUES ('C1', 'original', %s, %s, 1, 1, 1, 'JPEG',
                                    repeat('0', 64), now()) RETURNING id""", (f"evil{n}.jpg", path))[0]
            for suffix in ("", "/thumb"):
                response, body = await ui.get(f"/images/{image}{suffix}", viewer)
                self.assertEqual(response.code, 404, path)
                self.assertNotIn(b"not for you", body)
        response, _ = await ui.get("/images/../../etc/passwd", viewer)
        self.assertEqual(response.code, 404)

    @run
    async def test_info_has_the_partner_and_the_defect_boxes(self):
        """An image's info names its partner and the defect boxes, not its path."""
        ui, seeded, _, viewer = await line(self)
        response, body = await ui.get(f"/api/images/{seeded['images']['labeled']}", viewer)
        self.assertEqual(response.code, 200)
        info = json_of(body)
        self.assertEqual(info["partner"], {"id": seeded["images"]["original"], "kind": "original"})
        self.assertNotIn("path", info)
        boxes = sorted((d["defect_position_x"], d["defect_position_y"], d["defect_size_width"], d["defect_size_height"])
                       for d in info["defects"])
        self.assertEqual(boxes, [(120, 200, 90, 40), (400, 90, 60, 60)])


class StatisticsTests(TestCase):
    @run
    async def test_range_statistics(self):
        """통계 gives Pareto, confidence histogram, customers and daily trend for the range; bad ranges are 400."""
        ui, _, _, viewer = await line(self)
        response, body = await ui.get("/api/statistics", viewer)
        self.assertEqual(response.code, 200)
        found = json_of(body)
        self.assertEqual(found["total"], 5)
        self.assertEqual(sum(p["n"] for p in found["pareto"]), 5)
        self.assertAlmostEqual(found["pareto"][-1]["cumulative"], 1.0)
        self.assertEqual(len(found["confidence"]), stats.HISTOGRAM_BINS)
        self.assertEqual({b["bin"]: b["n"] for b in found["confidence"] if b["n"]}, {10: 1, 15: 1, 18: 1, 19: 1, 20: 1})
        self.assertEqual({c["customer_name"]: (c["n"], c["coils"]) for c in found["by_customer"]},
                         {"삼성전자": (3, 1), "현대자동차": (1, 1), "LG전자": (1, 1)})
        self.assertEqual(sum(d["n"] for d in found["daily"]), 5)
        _, body = await ui.get("/api/statistics?from=2020-01-01&to=2020-01-02", viewer)
        self.assertEqual(json_of(body)["total"], 0)
        for query in ("?from=2026-02-02&to=2026-02-01", "?from=2020-01-01&to=2026-01-01", "?to=tomorrow"):
            response, _ = await ui.get("/api/statistics" + query, viewer)
            self.assertEqual(response.code, 400, query)
        response, body = await ui.get("/statistics", viewer)
        self.assertEqual(response.code, 200)
        self.assertEqual(embedded(body, "stats-state")["total"], 5)

    def test_fold(self):
        """Cells fold into the Pareto with cumulative shares, the daily trend per severity, and the histogram."""
        import datetime

        day = (datetime.date(2026, 11, 27) - datetime.date(1970, 1, 1)).days
        folded = stats.fold([(day, "dent", "low", 3, 2), (day, "scratch", "high", 18, 5), (day + 1, "dent", "critical", 20, 1)])
        self.assertEqual([(p["defect_type"], p["n"]) for p in folded["pareto"]], [("scratch", 5), ("dent", 3)])
        self.assertEqual([round(p["cumulative"], 3) for p in folded["pareto"]], [0.625, 1.0])
        self.assertEqual(folded["daily"], [
            {"day": "2026-11-27", "low": 2, "medium": 0, "high": 5, "critical": 0, "n": 7},
            {"day": "2026-11-28", "low": 0, "medium": 0, "high": 0, "critical": 1, "n": 1}])
        self.assertEqual(sum(b["n"] for b in folded["confidence"]), 8)


class ModelTests(TestCase):
    @run
    async def test_models_history_and_marking_the_deployed_one(self):
        """AI models are listed with their metrics history; an admin marks another one deployed, audited."""
        ui, seeded, _, viewer = await line(self)
        admin = ui.add_user("admin.park", "admin")
        _, body = await ui.get("/api/models", viewer)
        found = json_of(body)
        self.assertEqual([m["deployed"] for m in found["models"]], [True, False])
        self.assertEqual(len(found["history"]), 96)  # 48 rows each, under the 200 kept
        other = seeded["models"]["other"]
        response, body = await ui.post(f"/api/models/{other}/deploy", admin, json={})
        self.assertEqual(response.code, 200, body)
        self.assertEqual(json_of(body), {"deployed": other, "previous": seeded["models"]["deployed"]})
        self.assertEqual(ui.sql("SELECT id FROM ai_models WHERE deployed"), [(other,)])
        self.assertEqual(ui.sql("SELECT actor, action, target, result, details FROM audit_logs WHERE action = 'model.deploy'"),
                         [("admin.park", "model.deploy", str(other), "ok", {"previous": seeded["models"]["deployed"]})])
        response, body = await ui.post("/api/models/424242/deploy", admin, json={})
        self.assertEqual(response.code, 404)
        self.assertEqual(ui.sql("SELECT id FROM ai_models WHERE deployed"), [(other,)])
        response, body = await ui.get("/models", admin)
        self.assertIn(f'class="deploy" data-model="{seeded["models"]["deployed"]}"'.encode(), body)
        response, body = await ui.get("/models", viewer)
        self.assertNotIn(b'class="deploy"', body)
