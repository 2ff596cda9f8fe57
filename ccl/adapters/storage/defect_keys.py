"""How a query reaches a defect from another table: by its id AND its received_at.

defect_detections is partitioned by month of receipt (schema/123). A join by id alone reads every
month's index for every id, or PostgreSQL hashes every month whole (a coil's 1,000 defects out of
1.5 million over 41 months: ~300 ms against 1.2 ms before partitioning). Naming the partition key
lets it read one month per defect; as a LATERAL subquery with OFFSET 0 (which PostgreSQL does
not flatten into a join) the look-up stays a nested loop with pruning at each row, whatever the
row estimates say.
"""

from __future__ import annotations

#: ``CROSS JOIN LATERAL (...) d``: the defect row ``d`` of the pair (``{id}``, ``{received_at}``)
#: named by the outer query; ``.format(id=..., received_at=...)`` before use.
DEFECT_BY_KEY = ("CROSS JOIN LATERAL (SELECT * FROM defect_detections d0 WHERE d0.id = {id}"
                 " AND d0.received_at = {received_at} OFFSET 0) d")

#: ``CROSS JOIN LATERAL (...) s``: the defect ``{id}`` received within a millisecond of ``{epoch}``
#: (seconds since the epoch, as tracking carries it: a float is exact to a microsecond there),
#: giving ``s.received_at``, the defect's exact key. The tracking save's look-up.
DEFECT_NEAR_RECEIPT = ("CROSS JOIN LATERAL (SELECT s0.received_at FROM defect_detections s0 WHERE s0.id = {id}"
                       " AND s0.received_at BETWEEN to_timestamp({epoch}) - interval '1 ms'"
                       " AND to_timestamp({epoch}) + interval '1 ms' OFFSET 0) s")
