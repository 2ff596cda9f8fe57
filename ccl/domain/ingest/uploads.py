"""The text fields of an image-pair upload (the files are checked by decoding, elsewhere)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

import attrs

from ccl.domain.ingest.coils import InvalidCoilNumber, check_coil_number
from ccl.domain.ingest.defects import Defect, InvalidDefect, Thresholds, validate_defect
from ccl.domain.ingest.times import parse_timestamp

FILE_FIELDS = ("original_image", "labeled_image")


class InvalidUpload(ValueError):
    """``status`` 400 (malformed) or 422 (well-formed but invalid), with a reason and details."""

    def __init__(self, status: int, error: str, details=None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = details


@attrs.frozen
class UploadFields:
    coil_number: str
    captured_at: datetime
    camera_id: str
    defects: list[Defect]


def check_file_fields(names: list[str]) -> None:
    """Exactly one original_image and one labeled_image, nothing else."""
    for name in names:
        if name not in FILE_FIELDS:
            raise InvalidUpload(400, f"unexpected file field {name!r}", {"expected": list(FILE_FIELDS)})
    for name in FILE_FIELDS:
        count = names.count(name)
        if count == 0:
            raise InvalidUpload(400, f"the file {name!r} is missing", {"required": list(FILE_FIELDS)})
        if count > 1:
            raise InvalidUpload(400, f"the file {name!r} is sent twice")


def validate_fields(texts: Mapping[str, str], thresholds: Thresholds, *, now: datetime) -> UploadFields:
    try:
        coil = check_coil_number(texts.get("coil_number"))
    except InvalidCoilNumber as error:
        raise InvalidUpload(400, "invalid coil_number", str(error)) from None

    captured_at = now
    if texts.get("captured_at", "").strip():
        try:
            captured_at = parse_timestamp(texts["captured_at"])
        except ValueError as error:
            raise InvalidUpload(400, "invalid captured_at", str(error)) from None

    camera_id = texts.get("camera_id", "").strip() or "top"
    if len(camera_id) > 50:
        raise InvalidUpload(400, "invalid camera_id", "at most 50 characters")

    defects: list[Defect] = []
    raw = texts.get("defect_data", "")
    if raw.strip():
        try:
            data = json.loads(raw)
        except ValueError as error:
            raise InvalidUpload(400, "defect_data is not valid JSON", str(error)) from None
        if isinstance(data, dict):
            items = data["defects"] if isinstance(data.get("defects"), list) else [data]
        elif isinstance(data, list):
            items = data
        else:
            raise InvalidUpload(400, "defect_data must be a JSON object or array of defects")
        problems = []
        for index, item in enumerate(items):
            try:
                # A defect without its own camera is from the camera of the pair.
                if isinstance(item, Mapping) and "camera_id" not in item:
                    item = {**item, "camera_id": camera_id}
                defects.append(validate_defect(item, thresholds, now=captured_at, coil_number=coil))
            except InvalidDefect as error:
                problems.append({"index": index, "errors": error.errors})
        if problems:
            raise InvalidUpload(422, "invalid defect_data", problems)
    return UploadFields(coil, captured_at, camera_id, defects)
