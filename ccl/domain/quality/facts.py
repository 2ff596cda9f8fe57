"""What grading knows of a coil (``CoilFacts``), from what tracking and the defects say.

- defects: every defect tracking placed on the coil, with its severity, review status, area
  (mm², from its box and the camera's calibration) and zone: ``weld`` within the weld zone
  (tracking's ``in_weld_zone``), ``edge`` within ``[quality] edge_zone_mm`` of either strip edge
  (the schedule's width), else ``centre``;
- periodic types: the defect types of the coil's confirmed roll-mark series;
- completeness (tracking): ``complete`` is complete; ``unknown`` (a camera without heartbeats)
  is None; anything else is incomplete, with the checks that failed as its reasons.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ccl.domain.quality.grading import CoilDefect, CoilFacts
from ccl.domain.quality.settings import QualitySettings


def coil_facts(coil: Any, defects: Iterable[Any], periodic_types: Sequence[str], settings: QualitySettings) -> CoilFacts:
    """``coil``: a ports.quality.CoilRecord; ``defects``: ports.quality.QualityDefect rows."""
    facts = []
    for d in defects:
        cross = settings.cross_mm(d.camera_id, d.x_px, d.width_px)
        facts.append(CoilDefect(d.defect_type, d.severity, settings.zone(d.in_weld_zone, cross, coil.strip_width_mm),
                                settings.area_mm2(d.camera_id, d.width_px, d.height_px), d.review_status))
    complete, reasons = _completeness(coil)
    return CoilFacts(coil.coil_number, coil.customer, coil.product, coil.length_m, tuple(facts),
                     tuple(sorted(set(periodic_types))), complete, reasons)


def _completeness(coil: Any) -> tuple[bool | None, tuple[str, ...]]:
    reasons = [name for name in ("schedule_present", "wpd_seen", "speed_gap_free", "cut_seen")
               if not coil.checks.get(name, False)]
    reasons += [f"coverage {camera} {share:.0%}" for camera, share in sorted(coil.coverage.items())
                if share is not None and share < 1.0]
    if coil.completeness == "complete":
        return True, ()
    if coil.completeness == "unknown":
        return None, tuple(reasons) or ("coverage unknown",)
    return False, tuple(reasons) or (coil.completeness,)


def facts_document(facts: CoilFacts) -> dict:
    """A short summary of the facts a grade was decided on (stored beside the grade)."""
    by_zone: dict[str, int] = {}
    for d in facts.defects:
        by_zone[d.zone] = by_zone.get(d.zone, 0) + 1
    return {"customer": facts.customer, "product": facts.product, "length_m": facts.length_m,
            "defects": len(facts.defects), "by_zone": by_zone,
            "unreviewed_critical": sum(1 for d in facts.defects if d.severity == "critical" and d.review_status == "new"),
            "false_positive": sum(1 for d in facts.defects if d.review_status == "false_positive"),
            "periodic_types": list(facts.periodic_types), "complete": facts.complete,
            "incomplete_reasons": list(facts.incomplete_reasons)}


def decision_document(decision: Any) -> dict:
    return {"grade": decision.grade, "disposition": decision.disposition,
            "fired": [attrs.asdict(f) for f in decision.fired]}
