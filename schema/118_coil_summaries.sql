-- 118: per-coil summaries, kept forever. The retention job (`ccl retention run`,
-- ccl/adapters/storage/partitions.py) writes the summary of every coil named in a month of
-- process data before it drops that month, so what a coil was (lengths, cuts, defects by type
-- and severity, grade) outlives its telegrams and speed samples.
-- grade, disposition: the coil's quality grade from coil_grades (schema 100; an operator's
-- override first; of several passes of a coil number, the last graded). A later run only adds to a summary: counts never go down (a coil whose
-- telegrams span two months is summarised twice, the second time with part of it gone).
CREATE TABLE coil_summaries (
    coil_number          text        PRIMARY KEY,
    first_seen_at        timestamptz,
    last_seen_at         timestamptz,
    mes_length_m         integer,
    tracked_length_m     double precision,
    cut_pieces           integer     NOT NULL DEFAULT 0,
    winding_length_m     bigint,
    defects              integer     NOT NULL DEFAULT 0,
    defects_by_type      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    defects_by_severity  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    grade                text,
    disposition          text,
    summarized_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX coil_summaries_last_seen ON coil_summaries (last_seen_at);
