"""The coil number rule: it becomes part of file names, so it is strict."""

from __future__ import annotations

import re

_COIL = re.compile(r"[A-Za-z0-9-]{1,20}")


class InvalidCoilNumber(ValueError):
    """The coil number breaks the rule; the message says how."""


def check_coil_number(value: object) -> str:
    """Return ``value`` when it is 1-20 characters of A-Z a-z 0-9 and '-', else raise."""
    if not isinstance(value, str) or value == "":
        raise InvalidCoilNumber("coil_number is required (1-20 characters of A-Z a-z 0-9 -)")
    if len(value) > 20:
        raise InvalidCoilNumber(f"coil_number has {len(value)} characters; at most 20 are allowed")
    if not _COIL.fullmatch(value):
        raise InvalidCoilNumber("coil_number may only contain A-Z a-z 0-9 and -")
    return value
