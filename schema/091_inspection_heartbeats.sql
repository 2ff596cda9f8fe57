-- 091: heartbeats of the Jetson boxes (POST /inspection/heartbeat of ccl-defects, docs/ingest-api.md):
-- for each camera, how many frames it inspected over a period. Coil tracking reads them to tell
-- each camera's inspected share of a coil ("no defects" vs "no data"); keep the column names.
-- A retried heartbeat (same camera and period) is stored once: the unique key below.
CREATE TABLE inspection_heartbeats (
    id                bigserial   PRIMARY KEY,
    camera_id         text        NOT NULL,
    box_id            text,
    period_start      timestamptz NOT NULL,
    period_end        timestamptz NOT NULL,
    frames_inspected  integer     NOT NULL CHECK (frames_inspected >= 0),
    frames_expected   integer,
    received_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (camera_id, period_start, period_end)
);
-- Coverage of a coil: a camera's heartbeats ending within the coil's passage.
CREATE INDEX inspection_heartbeats_camera_end ON inspection_heartbeats (camera_id, period_end);
