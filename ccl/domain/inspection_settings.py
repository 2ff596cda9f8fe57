"""The inspection settings an admin edits on the 관리 page, and their rules.

Stored in ``system_settings`` as ``defect_types`` (list of names), ``severity_thresholds``
(``{"critical": c, "high": h, "medium": m}``) and ``review_threshold`` (a number): the
ingestion service reads the same keys to grade defects.
"""

from __future__ import annotations

import re

import attrs

MAX_TYPES = 50
_TYPE = re.compile(r"^[\w-]{1,40}$")


class SettingsError(ValueError):
    """One or more values are wrong; ``errors`` maps a field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@attrs.frozen
class InspectionSettings:
    defect_types: tuple[str, ...]
    critical: float
    high: float
    medium: float
    review: float

    def as_rows(self) -> dict[str, object]:
        """system_settings key -> JSON value."""
        return {
            "defect_types": list(self.defect_types),
            "severity_thresholds": {"critical": self.critical, "high": self.high, "medium": self.medium},
            "review_threshold": self.review,
        }


def parse_defect_types(text: str) -> tuple[str, ...]:
    """One name a line (commas also split); blanks dropped; duplicates refused."""
    names = [part.strip() for line in text.splitlines() for part in line.split(",")]
    return tuple(name for name in names if name)


def _number(errors: dict, field: str, text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        errors[field] = "must be a number between 0 and 1"
        return 0.0
    if not 0.0 <= value <= 1.0:
        errors[field] = "must be between 0 and 1"
    return value


def validate(defect_types: str, critical: str, high: str, medium: str, review: str) -> InspectionSettings:
    errors: dict[str, str] = {}
    types = parse_defect_types(defect_types or "")
    if not types:
        errors["defect_types"] = "at least one defect type is needed"
    elif len(types) > MAX_TYPES:
        errors["defect_types"] = f"at most {MAX_TYPES} defect types"
    else:
        bad = [name for name in types if not _TYPE.match(name)]
        duplicates = sorted({name for name in types if types.count(name) > 1})
        if bad:
            errors["defect_types"] = f"names are 1-40 letters, digits, _ or -: {', '.join(bad)}"
        elif duplicates:
            errors["defect_types"] = f"listed twice: {', '.join(duplicates)}"
    values = {field: _number(errors, field, text)
              for field, text in (("critical", critical), ("high", high), ("medium", medium), ("review", review))}
    if not {"critical", "high", "medium"} & errors.keys():
        if not 0.0 < values["medium"] < values["high"] < values["critical"] <= 1.0:
            errors["thresholds"] = "need 0 < medium < high < critical <= 1"
    if errors:
        raise SettingsError(errors)
    return InspectionSettings(types, values["critical"], values["high"], values["medium"], values["review"])


def from_rows(rows: dict[str, object]) -> InspectionSettings:
    """The stored values (defaults where a key is missing or malformed)."""
    thresholds = rows.get("severity_thresholds")
    thresholds = thresholds if isinstance(thresholds, dict) else {}
    types = rows.get("defect_types")
    review = rows.get("review_threshold")
    return InspectionSettings(
        tuple(str(t) for t in types) if isinstance(types, list) else (),
        float(thresholds.get("critical", 0.95)), float(thresholds.get("high", 0.85)),
        float(thresholds.get("medium", 0.6)), float(review) if isinstance(review, (int, float)) else 0.5)
