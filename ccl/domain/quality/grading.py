"""Coil grading and disposition by customer rules.

A *rule book* is a list of rules, each for a customer and/or a product (BOM) or for every coil.
A rule holds conditions on the coil's facts and the grade and disposition it gives when all of
them hold. Grading a coil fires every rule of its scope whose conditions hold; the coil gets the
worst disposition of those (ship < hold < downgrade < scrap) with the grade of that rule, and
every fired rule's reasons. No rule firing means the book's default (first grade, ship).

Rule books are plain JSON (so they can be stored versioned and edited in the UI): ``parse_book``
checks one and says exactly what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ccl.domain.ingest.defects import SEVERITIES

DISPOSITIONS = ("ship", "hold", "downgrade", "scrap")
ZONES = ("any", "edge", "centre", "weld")
CONDITION_KINDS = ("defect_density", "defect_count", "defect_size", "periodic", "unreviewed_critical",
                   "incomplete")


class RuleBookError(ValueError):
    """What is wrong with a rule book: ``errors`` maps a path (``rules[2].conditions[0].kind``) to why."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{path}: {why}" for path, why in errors.items()))
        self.errors = errors


@attrs.frozen
class CoilDefect:
    defect_type: str
    severity: str
    zone: str  # edge | centre | weld
    area_mm2: float | None = None
    review_status: str = "new"  # defect_detections.review_status: new, confirmed, false_positive, reclassified


@attrs.frozen
class CoilFacts:
    """What grading knows of one coil."""

    coil_number: str
    customer: str | None
    product: str | None
    length_m: float | None
    defects: tuple[CoilDefect, ...]
    periodic_types: tuple[str, ...] = ()
    complete: bool | None = None  # None: completeness unknown
    incomplete_reasons: tuple[str, ...] = ()


@attrs.frozen
class Condition:
    kind: str
    defect_type: str | None = None  # None: any type
    min_severity: str = "low"
    zone: str = "any"
    threshold: float = 1.0

    def holds(self, facts: CoilFacts) -> str | None:
        """The reason in words when the condition holds for the coil, else None."""
        if self.kind == "periodic":
            hits = [t for t in facts.periodic_types if self.defect_type in (None, t)]
            return f"주기성 결함(periodic) {', '.join(sorted(set(hits)))}" if hits else None
        if self.kind == "incomplete":
            if facts.complete is True:
                return None
            why = ", ".join(facts.incomplete_reasons) or ("unknown" if facts.complete is None else "incomplete")
            return f"검사 데이터 불완전(incomplete): {why}"
        if self.kind == "unreviewed_critical":
            count = sum(1 for d in facts.defects if d.severity == "critical" and d.review_status == "new"
                        and self._matches(d))
            return f"미검토 치명 결함(unreviewed critical) {count}" if count >= self.threshold else None
        matching = [d for d in facts.defects if self._matches(d) and d.review_status != "false_positive"]
        what = f"{self.defect_type or 'any'}≥{self.min_severity}@{self.zone}"
        if self.kind == "defect_count":
            return f"결함 수(count) {what} {len(matching)} ≥ {self.threshold:g}" if len(matching) >= self.threshold else None
        if self.kind == "defect_density":
            if not facts.length_m:
                return None
            density = len(matching) / facts.length_m * 100.0
            if density >= self.threshold:
                return f"결함 밀도(per 100 m) {what} {density:.1f} ≥ {self.threshold:g}"
            return None
        if self.kind == "defect_size":
            largest = max((d.area_mm2 for d in matching if d.area_mm2 is not None), default=None)
            if largest is not None and largest >= self.threshold:
                return f"결함 크기(area mm²) {what} {largest:g} ≥ {self.threshold:g}"
            return None
        raise AssertionError(f"unchecked condition kind {self.kind}")  # parse_book refuses others

    def _matches(self, defect: CoilDefect) -> bool:
        return ((self.defect_type is None or defect.defect_type == self.defect_type)
                and _rank(defect.severity) >= _rank(self.min_severity)
                and (self.zone == "any" or defect.zone == self.zone))


@attrs.frozen
class Rule:
    name: str
    grade: str
    disposition: str
    conditions: tuple[Condition, ...]
    customer: str | None = None
    product: str | None = None

    def applies_to(self, facts: CoilFacts) -> bool:
        return self.customer in (None, facts.customer) and self.product in (None, facts.product)


@attrs.frozen
class RuleBook:
    grades: tuple[str, ...]  # best first
    rules: tuple[Rule, ...]


@attrs.frozen
class Firing:
    rule: str
    grade: str
    disposition: str
    reasons: tuple[str, ...]


@attrs.frozen
class Decision:
    grade: str
    disposition: str
    fired: tuple[Firing, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f"{f.rule}: {reason}" for f in self.fired for reason in f.reasons)


def grade(facts: CoilFacts, book: RuleBook) -> Decision:
    """The coil's grade and disposition under ``book``, with every rule that fired and why."""
    fired = []
    for rule in book.rules:
        if not rule.applies_to(facts):
            continue
        reasons = [condition.holds(facts) for condition in rule.conditions]
        if all(reason is not None for reason in reasons):
            fired.append(Firing(rule.name, rule.grade, rule.disposition, tuple(reasons)))
    if not fired:
        return Decision(book.grades[0], "ship", ())
    worst = max(fired, key=lambda f: (DISPOSITIONS.index(f.disposition), book.grades.index(f.grade)))
    return Decision(worst.grade, worst.disposition, tuple(fired))


def parse_book(document: Mapping[str, Any]) -> RuleBook:
    """A rule book from its JSON form, or RuleBookError naming every problem."""
    errors: dict[str, str] = {}
    grades = document.get("grades") if isinstance(document, Mapping) else None
    if not (isinstance(grades, list) and grades and all(isinstance(g, str) and g.strip() for g in grades)
            and len(set(grades)) == len(grades)):
        errors["grades"] = "a list of distinct grade names, best first"
        grades = []
    raw_rules = document.get("rules") if isinstance(document, Mapping) else None
    if not isinstance(raw_rules, list):
        errors["rules"] = "a list of rules"
        raw_rules = []
    rules = []
    for number, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, f"rules[{number}]", grades, errors)
        if rule is not None:
            rules.append(rule)
    names = [rule.name for rule in rules]
    for name in {n for n in names if names.count(n) > 1}:
        errors[f"rules.{name}"] = "rule names must be unique"
    if errors:
        raise RuleBookError(errors)
    return RuleBook(tuple(grades), tuple(rules))


def book_document(book: RuleBook) -> dict[str, Any]:
    """The JSON form of a rule book (``parse_book(book_document(b)) == b``)."""
    return {"grades": list(book.grades), "rules": [
        {"name": r.name, "customer": r.customer, "product": r.product, "grade": r.grade,
         "disposition": r.disposition,
         "conditions": [attrs.asdict(c) for c in r.conditions]} for r in book.rules]}


def _parse_rule(raw: Any, path: str, grades: Sequence[str], errors: dict[str, str]) -> Rule | None:
    if not isinstance(raw, Mapping):
        errors[path] = "a rule is an object"
        return None
    before = len(errors)
    name = raw.get("name")
    if not (isinstance(name, str) and name.strip() and len(name) <= 80):
        errors[f"{path}.name"] = "a name of 1-80 characters"
    if raw.get("grade") not in grades:
        errors[f"{path}.grade"] = f"one of the grades {list(grades)}"
    if raw.get("disposition") not in DISPOSITIONS:
        errors[f"{path}.disposition"] = f"one of {list(DISPOSITIONS)}"
    for scope in ("customer", "product"):
        if raw.get(scope) is not None and not (isinstance(raw[scope], str) and raw[scope].strip()):
            errors[f"{path}.{scope}"] = "a name, or null for every coil"
    raw_conditions = raw.get("conditions")
    if not (isinstance(raw_conditions, list) and raw_conditions):
        errors[f"{path}.conditions"] = "at least one condition"
        raw_conditions = []
    conditions = [_parse_condition(c, f"{path}.conditions[{n}]", errors) for n, c in enumerate(raw_conditions)]
    if len(errors) > before:
        return None
    return Rule(name.strip(), raw["grade"], raw["disposition"], tuple(conditions),
                _blank_none(raw.get("customer")), _blank_none(raw.get("product")))


def _parse_condition(raw: Any, path: str, errors: dict[str, str]) -> Condition:
    if not isinstance(raw, Mapping):
        errors[path] = "a condition is an object"
        return Condition("defect_count")
    kind = raw.get("kind")
    if kind not in CONDITION_KINDS:
        errors[f"{path}.kind"] = f"one of {list(CONDITION_KINDS)}"
    defect_type = raw.get("defect_type")
    if defect_type is not None and not (isinstance(defect_type, str) and defect_type.strip()):
        errors[f"{path}.defect_type"] = "a defect type, or null for any"
    severity = raw.get("min_severity", "low")
    if severity not in SEVERITIES:
        errors[f"{path}.min_severity"] = f"one of {list(SEVERITIES)}"
    zone = raw.get("zone", "any")
    if zone not in ZONES:
        errors[f"{path}.zone"] = f"one of {list(ZONES)}"
    threshold = raw.get("threshold", 1)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1e9:
        errors[f"{path}.threshold"] = "a number >= 0"
        threshold = 1
    return Condition(kind if kind in CONDITION_KINDS else "defect_count", _blank_none(defect_type),
                     severity if severity in SEVERITIES else "low", zone if zone in ZONES else "any",
                     float(threshold))


def changes(before: Iterable[tuple[str, Decision]], after: Iterable[tuple[str, Decision]]) -> list[tuple[str, Decision, Decision]]:
    """The coils whose grade or disposition differs between two gradings (the editor's preview)."""
    old = dict(before)
    return [(coil, old[coil], new) for coil, new in after
            if coil in old and (old[coil].grade, old[coil].disposition) != (new.grade, new.disposition)]


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def _blank_none(value: Any) -> Any:
    return value.strip() if isinstance(value, str) and value.strip() else None
