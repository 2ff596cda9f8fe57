"""``[retention]`` of ccl/data/ccl.ini: how many months of each group of partitioned tables
to keep, how many months of partitions to create ahead, and whether the orchestrator applies
the retention by itself."""

from __future__ import annotations

import attrs


@attrs.frozen
class RetentionSettings:
    #: months to keep per group of partitioned tables (0: keep for ever)
    keep_months: dict[str, int]
    months_ahead: int
    #: the orchestrator runs the retention daily (else only ``ccl retention run`` does)
    automatic: bool = True

    @classmethod
    def from_config(cls, config) -> "RetentionSettings":
        return cls(keep_months={"process": config.get_int("retention", "process_months", 0, 1200),
                                "defects": config.get_int("retention", "defect_months", 0, 1200)},
                   months_ahead=config.get_int("retention", "partitions_ahead", 1, 24),
                   automatic=config.get_bool("retention", "automatic"))
