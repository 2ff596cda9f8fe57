"""What the MES receiver writes into its journal: one received telegram, taken or refused.

A record is the unit of durability: the receiver ACKs (or NAKs) a telegram only once its
record is on disk, and the writer applies records to PostgreSQL in ``number`` order.
"""

from __future__ import annotations

import attrs

TELEGRAM = "telegram"  # an accepted process telegram (ACKed)
REJECTED = "rejected"  # a refused telegram or garbage (NAKed), kept whole for diagnosis
KINDS = (TELEGRAM, REJECTED)


@attrs.frozen
class JournalRecord:
    #: Position in the journal: 1, 2, 3, ... without gaps, in arrival order.
    number: int
    kind: str
    #: Arrival time, seconds since the epoch (UTC).
    received_at: float
    #: "ip:port" of the sender.
    peer: str
    #: Which listener took it ("mes").
    listener: str
    raw: bytes
    #: For REJECTED records: the NAK result code and why, plus what of the header was readable.
    code: str | None = None
    reason: str | None = None
    tc_code: str | None = None
    sequence_no: int | None = None
    #: The decoded telegram when the receiver already has it (never written to disk), so the
    #: writer does not decode twice in normal operation. Replayed records have None.
    decoded: object | None = attrs.field(default=None, eq=False, repr=False)


# What the writer makes of a record before storing it ------------------------------------


@attrs.frozen
class ProcessRow:
    """One accepted process telegram as a row of its table (header + body columns)."""

    number: int
    table: str
    #: Column name -> value, header columns first, then the layout's record fields.
    columns: dict
    tc_code: str
    sequence_no: int
    coil_number: str | None
    raw: bytes
    #: Forwarding channel of its layout (None: stored, not forwarded).
    forward: str | None


@attrs.frozen
class RejectedRow:
    """One refused telegram (or garbage), kept whole with its reason."""

    number: int
    received_at: float
    peer: str
    listener: str
    code: str
    reason: str
    tc_code: str | None
    sequence_no: int | None
    raw: bytes


@attrs.define
class BatchOutcome:
    """What one committed batch changed."""

    stored: dict = attrs.Factory(dict)      # tc_code -> rows newly inserted
    duplicates: dict = attrs.Factory(dict)  # tc_code -> retransmissions already stored
    rejected: int = 0
    skipped: int = 0                        # records already applied by an earlier run
    channels: set = attrs.Factory(set)      # forward channels that got outbox rows
    forwarded: list = attrs.Factory(list)   # (channel, journal record number, outbox id) of those rows
