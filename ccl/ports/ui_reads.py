"""Ports of the web UI's read models: what the data pages show, read-only.

The answers are plain dicts and lists of JSON-ready values (named by the query's columns),
handed on to templates and JSON endpoints as they are; see the storage adapter
``ccl/adapters/storage/ui_queries`` for each query.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

#: The longest date range of the 통계 page, in days.
STATISTICS_MAX_DAYS = 366


class NoSuchModel(LookupError):
    """No AI model has this id."""


class ModelExists(Exception):
    """A model of this name and version is registered already (its id: ``args[0]``)."""


class ImageNotOnPeer(LookupError):
    """The image's holding host cannot give it: ``reason`` says why (no peer configured for
    that host, or the peer has no such file). The UI answers 404."""

    def __init__(self, host: str, reason: str):
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class PeerUnavailable(Exception):
    """The holding host's image service did not answer usably (down, timed out, refused our
    credential or certificate, sent too much): the UI answers 502; asking again may work."""

    def __init__(self, host: str, reason: str):
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class IPeerImages(Interface):
    """The image files held in another plant server's image store (docs/operations.md, "Two
    plant servers"), fetched from that machine's ccl-images by the database row's file name."""

    host_name = Attribute("this machine's name as written into images.stored_on ([images] host_name)")

    def fetch(host: str, kind: str, filename: str):
        """Deferred[bytes]: the file's bytes (bounded by [images] max_file_mb); fails with
        ImageNotOnPeer or PeerUnavailable."""


class IDatabaseProbe(Interface):
    def ping():
        """Deferred firing when the database answers a trivial query."""


class IEventFeed(Interface):
    """The events channel every service announces its stores on (one LISTEN per process)."""

    def subscribe(observer):
        """Call ``observer(payload)`` for each event (a dict when the payload is JSON);
        Deferred firing once the subscription is in place."""


class IDashboardReads(Interface):
    def dashboard(now):
        """Deferred[dict]: every part of the live view at once, at ``now`` (an aware datetime)."""

    def part(name: str, now, after_id: int | None = None):
        """Deferred: one part (coil, speed, images, defects, today, links, alerts, coil_defects) at ``now``."""


class ICoilReads(Interface):
    def coil_detail(coil_number: str, now):
        """Deferred[dict] with schedules, events, speed, defects, images of one coil (an open coil's speed up to ``now``)."""

    def image_record(image_id: int):
        """Deferred[dict | None]: the image's row (with its stored path, for the file routes)."""

    def image_defects(image_id: int):
        """Deferred[list[dict]] drawn over the image."""

    def image_partner(image_id: int):
        """Deferred[dict | None]: ``{"id", "kind"}`` of the other image of the pair."""

    def defect_types():
        """Deferred[list[str]]: the defect types of the 관리 settings, for the filters."""


class ICoilHistory(Interface):
    def search(query):
        """Deferred[dict]: one page of coils (``ccl.domain.coil_search.Search``) and the total."""

    def stream_export(query, write_rows):
        """Every matching coil as rows of CSV_COLUMNS, ``write_rows(list_of_rows)`` per chunk
        (it returns False to stop early): Deferred[int] rows written."""


class IStatistics(Interface):
    def statistics(date_from, date_to):
        """Deferred[dict]: Pareto, daily trend, by customer, confidence histogram."""


class IModelRegistry(Interface):
    def models_page():
        """Deferred[dict]: the models and their metrics history."""

    def mark_deployed(model_id: int):
        """Make it the one deployed model: Deferred[int | None] the previous one. Fails with NoSuchModel."""

    def register(registration, registered_by: str):
        """Add a model (``ccl.domain.ai_models.ModelRegistration``), not deployed: Deferred[int] its
        id. Fails with ModelExists (nothing changed) when the name and version are taken."""

    def models():
        """Deferred[list[dict]]: every model (id, name, version, description, deployed, scores,
        created_at, registered_by), the deployed one first, then the newest."""
