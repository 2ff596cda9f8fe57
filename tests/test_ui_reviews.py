"""Operator actions on a defect: stored on the defect, kept as history, audited, announced."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.postgres import Database
from tests.support.ui import json_of, start_ui
from tests.test_postgres_adapter import wait_for


def d(coroutine_function):
    def run(self):
        return defer.ensureDeferred(coroutine_function(self))
    run.__name__, run.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return run


async def with_defect(testcase):
    ui = await start_ui(testcase)
    (defect,) = ui.sql(
        "INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, detection_time)"
        " VALUES ('C2601', 'scratch', 0.55, 'low', now()) RETURNING id")[0]
    return ui, defect


class ReviewTests(TestCase):
    @d
    async def test_confirm_is_stored_kept_audited_and_announced(self):
        """A confirmation is stored with reviewer, time and comment, kept in the history, audited and announced."""
        ui, defect = await with_defect(self)
        events = []
        listener = Database(reactor, ui.dsn, size=1)
        self.addCleanup(listener.close)
        await listener.start()
        await listener.listen("ccl_events", events.append)
        kim = ui.add_user("kim", "operator")
        response, body = await ui.post(f"/api/defects/{defect}/review", kim, json={"action": "confirm", "comment": "확인함"})
        self.assertEqual(response.code, 200, body)
        answer = json_of(body)
        self.assertEqual(answer["defect"]["review_status"], "confirmed")
        self.assertEqual(ui.sql("SELECT review_status, reviewed_by, reviewed_at IS NOT NULL, review_comment, defect_type,"
                                " original_defect_type FROM defect_detections"),
                         [("confirmed", "kim", True, "확인함", "scratch", None)])
        self.assertEqual(ui.sql("SELECT action, previous_status, from_type, to_type, comment, reviewed_by FROM defect_reviews"),
                         [("confirm", "new", "scratch", "scratch", "확인함", "kim")])
        (actor, action, target, details), = ui.sql("SELECT actor, action, target, details FROM audit_logs")
        self.assertEqual((actor, action, target), ("kim", "defect.review", str(defect)))
        self.assertEqual(details["action"], "confirm")
        await wait_for(lambda: events)
        self.assertEqual((events[0]["table"], events[0]["defect_id"], events[0]["coil_number"]),
                         ("defect_reviews", defect, "C2601"))

    @d
    async def test_reclassify_keeps_the_first_original_type_and_every_step(self):
        """Reclassifying twice keeps the first original type, and every review step is kept."""
        ui, defect = await with_defect(self)
        boss = ui.add_user("boss", "admin")
        kim = ui.add_user("kim", "operator")
        response, body = await ui.post(f"/api/defects/{defect}/review", kim,
                                       json={"action": "reclassify", "defect_type": "dent", "comment": "찍힘"})
        self.assertEqual(response.code, 200, body)
        response, body = await ui.post(f"/api/defects/{defect}/review", boss,
                                       json={"action": "reclassify", "defect_type": "stain"})
        self.assertEqual(response.code, 200, body)
        self.assertEqual(ui.sql("SELECT defect_type, original_defect_type, review_status, reviewed_by FROM defect_detections"),
                         [("stain", "scratch", "reclassified", "boss")])
        response, body = await ui.post(f"/api/defects/{defect}/review", kim, json={"action": "false_positive",
                                                                                   "comment": "오검출"})
        self.assertEqual(response.code, 200)
        response, body = await ui.get(f"/api/defects/{defect}/reviews", ui.add_user("lee", "viewer"))
        self.assertEqual(response.code, 200)
        history = json_of(body)["reviews"]
        self.assertEqual([(h["action"], h["from_type"], h["to_type"], h["previous_status"], h["reviewed_by"])
                          for h in history],
                         [("reclassify", "scratch", "dent", "new", "kim"),
                          ("reclassify", "dent", "stain", "reclassified", "boss"),
                          ("false_positive", "stain", "stain", "reclassified", "kim")])
        self.assertEqual(json_of(body)["defect"]["review_status"], "false_positive")
        self.assertEqual(ui.sql("SELECT count(*) FROM audit_logs WHERE action = 'defect.review'"), [(3,)])

    @d
    async def test_bad_requests_change_nothing(self):
        """Bad review requests get 400 or 409 with a reason and change nothing."""
        ui, defect = await with_defect(self)
        kim = ui.add_user("kim", "operator")
        cases = (
            ({"action": "reclassify", "defect_type": "unicorn"}, 400, "unknown defect type"),
            ({"action": "reclassify", "defect_type": "scratch"}, 409, "nothing to change"),
            ({"action": "reclassify"}, 400, "defect_type needed"),
            ({"action": "confirm", "defect_type": "dent"}, 400, "defect_type only for reclassify"),
            ({"action": "delete"}, 400, "bad action"),
            ({"action": "confirm", "comment": "x" * 1001}, 400, "bad comment"),
            ({"action": "confirm", "comment": 5}, 400, "bad comment"),
        )
        for body, code, error in cases:
            response, answer = await ui.post(f"/api/defects/{defect}/review", kim, json=body)
            self.assertEqual((response.code, json_of(answer)["error"]), (code, error), body)
        response, answer = await ui.post(f"/api/defects/{defect}/review", kim, data=b"{not json",
                                         headers={"content-type": "application/json"})
        self.assertEqual(response.code, 400)
        response, answer = await ui.post("/api/defects/999999/review", kim, json={"action": "confirm"})
        self.assertEqual(response.code, 404)
        self.assertEqual(ui.sql("SELECT review_status, defect_type FROM defect_detections"), [("new", "scratch")])
        self.assertEqual(ui.sql("SELECT count(*) FROM defect_reviews"), [(0,)])
        self.assertEqual(ui.sql("SELECT count(*) FROM audit_logs"), [(0,)])

    @d
    async def test_defect_types_follow_the_settings(self):
        """The offered defect types, and those a reclassification accepts, are the configured ones."""
        ui, defect = await with_defect(self)
        ui.sql("""UPDATE system_settings SET value = '["scratch", "얼룩"]' WHERE key = 'defect_types'""")
        response, body = await ui.get("/api/defect-types", ui.add_user("lee", "viewer"))
        self.assertEqual(json_of(body)["defect_types"], ["scratch", "얼룩"])
        response, body = await ui.post(f"/api/defects/{defect}/review", ui.add_user("kim", "operator"),
                                       json={"action": "reclassify", "defect_type": "얼룩"})
        self.assertEqual(response.code, 200, body)
