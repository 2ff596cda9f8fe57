"""Image files of the image store as read for people (the UI's image routes, the coil report,
the training export): by the path stored in the database, never by a path from a client."""

from __future__ import annotations

from pathlib import Path


def inside(root: Path, stored: str | None) -> Path | None:
    """The file ``stored`` names (absolute, or relative to ``root``) if it lies below ``root``."""
    if not stored:
        return None
    base = root.resolve()
    candidate = Path(stored)
    if not candidate.is_absolute():
        candidate = base / candidate
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if base not in resolved.parents or not resolved.is_file():
        return None
    return resolved
