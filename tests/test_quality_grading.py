"""Coil grading and disposition by customer rules."""

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.quality.grading import (
    CoilDefect, CoilFacts, Decision, RuleBookError, book_document, changes, grade, parse_book)

BOOK = {
    "grades": ["A", "B", "C", "D"],
    "rules": [
        {"name": "incomplete data", "grade": "B", "disposition": "hold",
         "conditions": [{"kind": "incomplete"}]},
        {"name": "critical unreviewed", "grade": "B", "disposition": "hold",
         "conditions": [{"kind": "unreviewed_critical", "threshold": 1}]},
        {"name": "roll mark", "grade": "C", "disposition": "downgrade",
         "conditions": [{"kind": "periodic"}]},
        {"name": "Hyundai edge scratches", "customer": "HYUNDAI", "grade": "C", "disposition": "downgrade",
         "conditions": [{"kind": "defect_density", "defect_type": "scratch", "zone": "edge", "threshold": 2}]},
        {"name": "big holes", "product": "PPGI-0.5", "grade": "D", "disposition": "scrap",
         "conditions": [{"kind": "defect_size", "defect_type": "pinhole", "min_severity": "high", "threshold": 50},
                        {"kind": "defect_count", "defect_type": "pinhole", "min_severity": "high", "threshold": 3}]},
    ],
}


def coil(*defects, customer="HYUNDAI", product="PPGI-0.5", length_m=500.0, periodic=(), complete=True,
         reasons=()):
    return CoilFacts("C1", customer, product, length_m, tuple(defects), tuple(periodic), complete, tuple(reasons))


def scratch(zone="edge", severity="medium", review="confirmed"):
    return CoilDefect("scratch", severity, zone, 10.0, review)


def pinhole(area, severity="high", review="confirmed"):
    return CoilDefect("pinhole", severity, "centre", area, review)


class GradeTests(SynchronousTestCase):
    book = parse_book(BOOK)

    def test_a_clean_complete_coil_ships_at_the_best_grade(self):
        """No rule fires: the first grade and 'ship', with no reasons."""
        self.assertEqual(grade(coil(), self.book), Decision("A", "ship", ()))

    def test_completeness_unknown_is_not_clean(self):
        """'No data' is not 'no defects': a coil of unknown completeness is held, saying why."""
        decision = grade(coil(complete=None), self.book)
        self.assertEqual((decision.grade, decision.disposition), ("B", "hold"))
        self.assertIn("unknown", decision.reasons[0])
        held = grade(coil(complete=False, reasons=("speed gap 12 s",)), self.book)
        self.assertIn("speed gap 12 s", held.reasons[0])

    def test_density_counts_per_100_metres_in_the_zone_for_the_customer_only(self):
        """11 edge scratches on 500 m is 2.2 per 100 m: downgrade for HYUNDAI; centre ones and other
        customers do not count."""
        edge = [scratch() for _ in range(11)]
        self.assertEqual(grade(coil(*edge), self.book).disposition, "downgrade")
        self.assertEqual(grade(coil(*edge[:9]), self.book).disposition, "ship")  # 1.8 per 100 m
        self.assertEqual(grade(coil(*[scratch("centre") for _ in range(11)]), self.book).disposition, "ship")
        self.assertEqual(grade(coil(*edge, customer="POSCO"), self.book).disposition, "ship")

    def test_false_positives_do_not_count(self):
        """Defects a reviewer called false positives are left out of counts and densities."""
        edge = [scratch(review="false_positive") for _ in range(11)]
        self.assertEqual(grade(coil(*edge), self.book).disposition, "ship")

    def test_every_condition_of_a_rule_must_hold_and_the_worst_rule_wins(self):
        """Big pinholes alone do not scrap; three big ones do, over a roll-mark downgrade, and both
        rules' reasons are given."""
        one_big = coil(pinhole(80), pinhole(10), pinhole(10))
        self.assertEqual(grade(one_big, self.book).disposition, "scrap")
        two = coil(pinhole(80), pinhole(10))
        self.assertEqual(grade(two, self.book).disposition, "ship")
        small = coil(pinhole(10), pinhole(10), pinhole(10))
        self.assertEqual(grade(small, self.book).disposition, "ship")
        both = grade(coil(pinhole(80), pinhole(10), pinhole(10), periodic=("scratch",)), self.book)
        self.assertEqual((both.grade, both.disposition), ("D", "scrap"))
        self.assertEqual([f.rule for f in both.fired], ["roll mark", "big holes"])
        self.assertEqual(len(both.reasons), 3)

    def test_severity_threshold_and_product_scope(self):
        """Medium pinholes are below min_severity high; another product is out of the rule's scope."""
        self.assertEqual(grade(coil(*[pinhole(80, "medium")] * 3), self.book).disposition, "ship")
        self.assertEqual(grade(coil(*[pinhole(80)] * 3, product="PPGI-0.8"), self.book).disposition, "ship")

    def test_unreviewed_critical_holds_until_reviewed(self):
        """A critical defect nobody reviewed holds the coil; once confirmed the rule no longer fires."""
        new = CoilDefect("dent", "critical", "centre", None, "new")
        self.assertEqual(grade(coil(new), self.book).disposition, "hold")
        reviewed = CoilDefect("dent", "critical", "centre", None, "confirmed")
        self.assertEqual(grade(coil(reviewed), self.book).disposition, "ship")

    def test_density_needs_a_length(self):
        """Without a known length a density cannot be computed and the rule does not fire on it."""
        self.assertEqual(grade(coil(*[scratch()] * 30, length_m=None), self.book).disposition, "ship")


class BookTests(SynchronousTestCase):
    def test_a_book_round_trips_through_its_json(self):
        """parse_book(book_document(b)) gives b back."""
        book = parse_book(BOOK)
        self.assertEqual(parse_book(book_document(book)), book)

    def test_every_problem_of_a_book_is_named_with_its_path(self):
        """Unknown grade, disposition, kind, severity and zone, a negative threshold, no conditions,
        duplicate names: each reported at its place."""
        bad = {"grades": ["A", "B"], "rules": [
            {"name": "x", "grade": "Z", "disposition": "burn", "conditions": [
                {"kind": "colour", "min_severity": "awful", "zone": "middle", "threshold": -1}]},
            {"name": "y", "grade": "A", "disposition": "ship", "conditions": []},
            {"name": "y", "grade": "A", "disposition": "ship", "conditions": [{"kind": "periodic"}]},
            {"name": "z", "grade": "A", "disposition": "ship", "conditions": [{"kind": "periodic"}]},
            {"name": "z", "grade": "A", "disposition": "ship", "conditions": [{"kind": "periodic"}]},
        ]}
        with self.assertRaises(RuleBookError) as caught:
            parse_book(bad)
        self.assertEqual(set(caught.exception.errors), {
            "rules[0].grade", "rules[0].disposition", "rules[0].conditions[0].kind",
            "rules[0].conditions[0].min_severity", "rules[0].conditions[0].zone",
            "rules[0].conditions[0].threshold", "rules[1].conditions", "rules.z"})

    def test_a_book_needs_grades_and_rules(self):
        """An empty or malformed document is refused, not read as 'no rules'."""
        for document in ({}, {"grades": [], "rules": []}, {"grades": ["A", "A"], "rules": []}, {"grades": ["A"]}):
            self.assertRaises(RuleBookError, parse_book, document)

    def test_changes_lists_only_coils_whose_outcome_moves(self):
        """The editor's preview: coils graded alike under both books are not listed."""
        ship, hold = Decision("A", "ship", ()), Decision("B", "hold", ())
        self.assertEqual(changes([("C1", ship), ("C2", ship)], [("C1", ship), ("C2", hold)]), [("C2", ship, hold)])
