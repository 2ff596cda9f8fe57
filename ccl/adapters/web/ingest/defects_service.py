"""twistd ccl-defects: the AI defect receiver (port 8082)."""

from ccl.adapters.web.ingest.service import DefectsOptions as Options
from ccl.adapters.web.ingest.service import make_defects_service as makeService  # noqa: N812 (twistd's name)

__all__ = ["Options", "makeService"]
