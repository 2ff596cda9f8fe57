"""What makes an AI model's registration valid (name, version, description).

A model is known by its name and version (unique together, ``ai_models``); the boxes send its
database id as ``model_id``. Names and versions are short tokens so that they read the same in
the UI, the CLI, file names of exports and the boxes' configuration.
"""

from __future__ import annotations

import re

import attrs

_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
DESCRIPTION_MAX = 500


class ModelError(ValueError):
    """A registration that cannot be stored as given (the message says why)."""


@attrs.frozen
class ModelRegistration:
    name: str
    version: str
    description: str = ""


def check_registration(name: str | None, version: str | None, description: str | None = "") -> ModelRegistration:
    """The registration with surrounding blanks removed, or ModelError naming what is wrong."""
    name, version, description = (name or "").strip(), (version or "").strip(), (description or "").strip()
    if not _TOKEN.match(name):
        raise ModelError("model name must be 1-64 characters of A-Z a-z 0-9 . _ + - (starting with a letter or digit)")
    if not _TOKEN.match(version):
        raise ModelError("version must be 1-64 characters of A-Z a-z 0-9 . _ + - (starting with a letter or digit)")
    if len(description) > DESCRIPTION_MAX:
        raise ModelError(f"description must be at most {DESCRIPTION_MAX} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in description):
        raise ModelError("description must not contain control characters")
    return ModelRegistration(name, version, description)
