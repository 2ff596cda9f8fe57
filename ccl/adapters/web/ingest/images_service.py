"""twistd ccl-images: the image-pair receiver (port 8081)."""

from ccl.adapters.web.ingest.service import ImagesOptions as Options
from ccl.adapters.web.ingest.service import make_images_service as makeService  # noqa: N812 (twistd's name)

__all__ = ["Options", "makeService"]
