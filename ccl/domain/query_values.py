"""Values read from a page's query arguments, refused with the page's own error type."""

from __future__ import annotations

import datetime


def optional_day(text: str | None, name: str, refuse: type[ValueError]) -> datetime.date | None:
    """A YYYY-MM-DD day, None when empty; ``refuse(message)`` when it is not a day."""
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise refuse(f"{name}: expected a date YYYY-MM-DD, got {text!r}") from None
