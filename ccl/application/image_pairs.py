"""Use case: receive an image pair (original + labeled) from a Jetson box.

The order is what makes a failure leave nothing behind: check every text field, decode
both files, only then give the files their names, then store the rows. If the rows cannot
be stored, the files are removed again and the caller answers an error.
"""

from __future__ import annotations

from datetime import datetime, timezone

import attrs
from twisted.internet.defer import inlineCallbacks

from ccl.application.jetson_links import LinkTracker
from ccl.domain.ingest.uploads import FILE_FIELDS, check_file_fields, validate_fields
from ccl.ports import IImageFiles, IIngestRecords, ImageRecord, IThumbnails


@attrs.frozen
class ReceivedFile:
    field: str  # original_image | labeled_image
    path: object  # temp path
    size: int
    sha256: str


@attrs.define
class PairIngestion:
    files: IImageFiles
    records: IIngestRecords
    thumbnails: IThumbnails
    links: LinkTracker
    now: object = lambda: datetime.now(timezone.utc)
    #: This machine's name ([images] host_name), written into each row: where the files are.
    stored_on: str | None = None

    @inlineCallbacks
    def ingest(self, texts: dict[str, str], received: list[ReceivedFile], *, address: str | None = None):
        received_at = self.now()
        check_file_fields([f.field for f in received])
        thresholds = yield self.records.thresholds()
        fields = validate_fields(texts, thresholds, now=received_at)
        by_field = {f.field: f for f in received}
        checked = yield self.files.inspect([by_field[name].path for name in FILE_FIELDS])
        inspected = dict(zip(FILE_FIELDS, checked))
        kinds = {name: name.split("_")[0] for name in FILE_FIELDS}
        stored = yield self.files.commit(fields.coil_number, int(received_at.timestamp() * 1000),
                                         {kinds[n]: (by_field[n].path, inspected[n].ext) for n in FILE_FIELDS})
        records = []
        for item in stored:
            field = f"{item.kind}_image"
            info, got = inspected[field], by_field[field]
            records.append(ImageRecord(
                coil_number=fields.coil_number, kind=item.kind, filename=item.filename, path=str(item.path),
                bytes=got.size, width=info.width, height=info.height, format=info.format, sha256=got.sha256,
                captured_at=fields.captured_at, received_at=received_at, camera_id=fields.camera_id,
                stored_on=self.stored_on))
        try:
            ids, defects = yield self.records.store_pair(records, fields.defects)
        except BaseException:
            yield self.files.remove([item.path for item in stored])
            raise
        self.links.seen(fields.camera_id, "upload", address=address)
        # Thumbnails are derived data: made after the reply, so they never slow the line down.
        for record in records:
            self.thumbnails.request(ids[record.kind], record.kind, record.filename)
        reply = {"coil_number": fields.coil_number, "defects_recorded": defects.stored,
                 "upload_time": received_at.isoformat(), "captured_at": fields.captured_at.isoformat(),
                 "camera_id": fields.camera_id}
        for record in records:
            reply[f"{record.kind}_image"] = {"id": ids[record.kind], "filename": record.filename,
                                             "path": record.path, "size": record.bytes, "width": record.width,
                                             "height": record.height, "format": record.format,
                                             "sha256": record.sha256}
        if defects.duplicates:
            reply["duplicate_event_ids"] = defects.duplicates
        return reply
