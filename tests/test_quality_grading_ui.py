"""Grading through the UI over a real PostgreSQL: the stored grade names its rule book version and
reasons; a review that changes the facts re-grades the coil; an override needs a reason and is
audited; rule books are saved as new versions (never edited in place) with a preview of what
would change; rolls and alarm rules are admin edits, audited."""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from tests.support.ui import json_of, start_ui

BOOK_V2 = {"grades": ["A", "B", "C", "X"], "rules": [
    {"name": "치명 결함 1개 이상", "grade": "X", "disposition": "scrap",
     "conditions": [{"kind": "defect_count", "min_severity": "critical", "threshold": 1}]}]}


def d(coroutine_function):
    def run(self):
        return defer.ensureDeferred(coroutine_function(self))
    run.__name__, run.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return run


async def graded_coil(testcase):
    """Coil G1, complete, with one unreviewed critical dent (centre) and one scratch at the edge,
    graded at completion by the default rule book (v1)."""
    ui = await start_ui(testcase)
    ui.sql("INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number, customer_name,"
           " ccl_bom, width, length_value, raw) VALUES ('CCL1', 1, now(), now(), 'G1', 'ACME', 'BOM-7', 1200, 500, 'x')")
    ui.sql("INSERT INTO tracking_coils (tracked_coil, coil_number, head_wpd_at, tail_wpd_at, head_at_camera,"
           " tail_at_camera, head_at_shear, tail_at_shear, length_m, length_uncertainty_m, inspected_m, mes_length_m,"
           " length_disagrees, schedule_present, wpd_seen, speed_gap_free, cut_seen, coverage, completeness,"
           " model_version, computed_at) VALUES ('G1', 'G1', now() - interval '10 min', now() - interval '5 min',"
           " '{}', '{}', now() - interval '9 min', now() - interval '4 min', 500, 1, '{\"top\": 500}', 500, false,"
           " true, true, true, true, '{\"top\": 1.0}', 'complete', 1, now())")
    ids = []
    for defect_type, confidence, severity, x, metre in (("dent", 0.99, "critical", 600, 100.0),
                                                          ("scratch", 0.7, "medium", 10, 250.0)):
        (defect,) = ui.sql(
            "INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, detection_time,"
            " defect_position_x, defect_size_width, defect_size_height) VALUES ('G1', %s, %s, %s, now(), %s, 4, 4)"
            " RETURNING id", (defect_type, confidence, severity, x))[0]
        ui.sql("INSERT INTO tracking_defects (defect_id, camera_id, surface, detected_at, time_source, status,"
               " tracked_coil, metre, uncertainty_m, box_coil, model_version, computed_at) VALUES"
               " (%s, 'top', 'top', now(), 'box', 'placed', 'G1', %s, 1, 'G1', 1, now())", (defect, metre))
        ids.append(defect)
    decision = await ui.ui.uses.grading.grade("G1", "completion")
    return ui, ids, decision


class GradingTests(TestCase):
    @d
    async def test_the_grade_names_its_rule_version_reasons_and_facts(self):
        """The unreviewed critical dent fires the default book's hold rule: B/hold by v1, with its
        reason and the facts (zones from the calibration: the scratch at 12 mm is at the edge)."""
        ui, ids, decision = await graded_coil(self)
        self.assertEqual((decision.grade, decision.disposition), ("B", "hold"))
        (grade, disposition, version, reasons, facts, graded_by), = ui.sql(
            "SELECT grade, disposition, rule_version, reasons, facts, graded_by FROM coil_grades")
        self.assertEqual((grade, disposition, version, graded_by), ("B", "hold", 1, "completion"))
        self.assertEqual([r["rule"] for r in reasons], ["미검토 치명 결함"])
        self.assertIn("미검토 치명 결함(unreviewed critical) 1", reasons[0]["reasons"][0])
        self.assertEqual(facts["by_zone"], {"centre": 1, "edge": 1})
        self.assertEqual((facts["customer"], facts["product"], facts["complete"]), ("ACME", "BOM-7", True))
        # the coil page shows it
        boss = ui.add_user("boss", "admin")
        response, body = await ui.get("/coils/G1", boss)
        self.assertEqual(response.code, 200)
        self.assertIn('data-grade="B" data-disposition="hold"', body.decode())

    @d
    async def test_a_review_re_grades_the_coil(self):
        """Marking the critical dent a false positive takes the reason away: the coil is graded A/ship
        again (graded_by review), still naming v1."""
        ui, ids, _ = await graded_coil(self)
        kim = ui.add_user("kim", "operator")
        response, body = await ui.post(f"/api/defects/{ids[0]}/review", kim,
                                       json={"action": "false_positive", "comment": "그림자"})
        self.assertEqual(response.code, 200, body)
        self.assertEqual(ui.sql("SELECT grade, disposition, rule_version, reasons, graded_by FROM coil_grades"),
                         [("A", "ship", 1, [], "review")])

    @d
    async def test_an_override_needs_a_reason_and_is_audited(self):
        """An operator overrides B/hold to A/ship with a reason: stored beside the computed grade and
        audited; without a reason, 400 and nothing changes; a viewer may not."""
        ui, ids, _ = await graded_coil(self)
        kim = ui.add_user("kim", "operator")
        response, body = await ui.post("/api/coils/G1/grade", kim, json={"grade": "A", "disposition": "ship",
                                                                         "reason": " "})
        self.assertEqual(response.code, 400, body)
        self.assertEqual(ui.sql("SELECT override_grade FROM coil_grades"), [(None,)])
        response, body = await ui.post("/api/coils/G1/grade", kim, json={"grade": "A", "disposition": "ship",
                                                                         "reason": "고객 승인 (메일 12/04)"})
        self.assertEqual(response.code, 200, body)
        self.assertEqual(json_of(body)["grades"][0]["final_grade"], "A")
        self.assertEqual(ui.sql("SELECT grade, disposition, override_grade, override_disposition, override_reason,"
                                " overridden_by FROM coil_grades"),
                         [("B", "hold", "A", "ship", "고객 승인 (메일 12/04)", "kim")])
        (actor, action, target, details), = ui.sql(
            "SELECT actor, action, target, details FROM audit_logs WHERE action = 'grade.override'")
        self.assertEqual((actor, target, details["before"]["grade"], details["reason"]), ("kim", "G1", "B",
                                                                                          "고객 승인 (메일 12/04)"))
        viewer = ui.add_user("lee", "viewer")
        response, _ = await ui.post("/api/coils/G1/grade", viewer, json={"grade": "X", "disposition": "scrap",
                                                                         "reason": "x"})
        self.assertEqual(response.code, 403)

    @d
    async def test_rule_books_are_versioned_previewed_and_audited(self):
        """A draft naming a wrong field is refused with its path; the preview says G1 would go from
        B/hold to X/scrap without storing anything; saving makes v2 active, keeps v1 as it was and is
        audited; the next grade names v2."""
        ui, ids, _ = await graded_coil(self)
        boss = ui.add_user("boss", "admin")
        bad = {"grades": ["A"], "rules": [{"name": "r", "grade": "Z", "disposition": "ship",
                                           "conditions": [{"kind": "count"}]}]}
        response, body = await ui.post("/api/admin/rule-book/preview", boss, json={"document": json.dumps(bad)})
        self.assertEqual(response.code, 400)
        self.assertEqual(sorted(json_of(body)["details"]), ["rules[0].conditions[0].kind", "rules[0].grade"])
        response, body = await ui.post("/api/admin/rule-book/preview", boss, json={"document": json.dumps(BOOK_V2)})
        self.assertEqual(response.code, 200, body)
        (change,) = json_of(body)["changes"]
        self.assertEqual((change["tracked_coil"], change["before"]["grade"], change["after"]["grade"],
                          change["after"]["disposition"]), ("G1", "B", "X", "scrap"))
        self.assertEqual(ui.sql("SELECT count(*) FROM grading_rule_books"), [(1,)])
        v1 = ui.sql("SELECT document FROM grading_rule_books WHERE version = 1")[0][0]
        response, body = await ui.post("/api/admin/rule-book", boss, json={"document": json.dumps(BOOK_V2),
                                                                           "comment": "고객 ACME 요구"})
        self.assertEqual(json_of(body)["version"], 2)
        self.assertEqual(ui.sql("SELECT version, active, comment, created_by FROM grading_rule_books ORDER BY version"),
                         [(1, False, "default rule book (schema 100)", "migration"), (2, True, "고객 ACME 요구", "boss")])
        self.assertEqual(ui.sql("SELECT document FROM grading_rule_books WHERE version = 1")[0][0], v1)
        (details,), = ui.sql("SELECT details FROM audit_logs WHERE action = 'grading.rule_book' AND target = 'v2'")
        self.assertEqual(details["previous_version"], 1)
        await ui.ui.uses.grading.grade("G1", "regrade")
        self.assertEqual(ui.sql("SELECT grade, disposition, rule_version FROM coil_grades"), [("X", "scrap", 2)])
        operator = ui.add_user("kim", "operator")
        response, _ = await ui.post("/api/admin/rule-book", operator, json={"document": json.dumps(BOOK_V2)})
        self.assertEqual(response.code, 403)

    @d
    async def test_rolls_and_alarm_rules_are_admin_edits_audited(self):
        """A roll is added (bad diameter refused), changed and deleted; alarm rules with an unknown kind
        are refused, good ones stored: every change in the audit log."""
        ui = await start_ui(self)
        boss = ui.add_user("boss", "admin")
        response, _ = await ui.post("/admin/quality/rolls", boss, data={"name": "BR-2", "diameter_mm": "-3"})
        self.assertEqual(response.code, 400)
        response, _ = await ui.post("/admin/quality/rolls", boss, data={"name": "BR-2", "diameter_mm": "636.6",
                                                                         "location": "출측 브라이들"})
        self.assertEqual(response.code, 303)
        (roll_id,), = ui.sql("SELECT id FROM quality_rolls")
        response, _ = await ui.post("/admin/quality/rolls", boss, data={"id": str(roll_id), "name": "BR-2",
                                                                         "diameter_mm": "640"})
        self.assertEqual(ui.sql("SELECT name, diameter_mm, updated_by FROM quality_rolls"), [("BR-2", 640.0, "boss")])
        response, _ = await ui.post(f"/admin/quality/rolls/{roll_id}/delete", boss, data={})
        self.assertEqual(response.code, 303)
        self.assertEqual(ui.sql("SELECT count(*) FROM quality_rolls"), [(0,)])
        response, body = await ui.post("/admin/quality/alarms", boss, data={"rules": '[{"name": "x", "kind": "loud"}]'})
        self.assertEqual(response.code, 400)
        rules = [{"name": "치명 3건/30m", "kind": "critical_cluster", "count": 3, "window_m": 30}]
        response, _ = await ui.post("/admin/quality/alarms", boss, data={"rules": json.dumps(rules)})
        self.assertEqual(response.code, 303)
        self.assertEqual(ui.sql("SELECT value, updated_by FROM system_settings WHERE key = 'alarm_rules'"),
                         [(rules, "boss")])
        self.assertEqual([a for (a,) in ui.sql("SELECT action FROM audit_logs ORDER BY id")],
                         ["quality.roll", "quality.roll", "quality.roll.delete", "quality.alarm_rules"])

    @d
    async def test_grades_in_coil_history_and_statistics(self):
        """Coil history shows the grade in force and filters by grade and disposition; statistics count
        the graded coils by grade and disposition (with the overridden ones)."""
        ui, ids, _ = await graded_coil(self)
        kim = ui.add_user("kim", "operator")
        response, body = await ui.get("/api/coils?coil=G1", kim)
        (row,) = json_of(body)["rows"]
        self.assertEqual((row["grade"], row["disposition"], row["overridden"]), ("B", "hold", False))
        for query, found in (("disposition=hold", 1), ("disposition=ship", 0), ("grade=B", 1), ("grade=A", 0)):
            response, body = await ui.get(f"/api/coils?{query}", kim)
            self.assertEqual(len(json_of(body)["rows"]), found, query)
        response, body = await ui.get("/api/coils?disposition=burn", kim)
        self.assertEqual(response.code, 400)
        await ui.post("/api/coils/G1/grade", kim, json={"grade": "A", "disposition": "ship", "reason": "승인"})
        response, body = await ui.get("/api/coils?disposition=ship", kim)
        self.assertEqual([r["coil_number"] for r in json_of(body)["rows"]], ["G1"])
        response, body = await ui.get("/api/statistics", kim)
        self.assertEqual(json_of(body)["by_grade"], [{"grade": "A", "disposition": "ship", "coils": 1, "overridden": 1}])
        response, body = await ui.get("/coils", kim)
        self.assertIn('data-disposition="ship"', body.decode())
