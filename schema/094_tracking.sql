-- 094: coil tracking (docs/tracking.md, ccl/domain/tracking). Derived data: every row here is
-- recomputed from the stored telegrams, defects and images by `ccl tracking rebuild` (and,
-- live, by the tracking component of ccl-defects); nothing else writes these tables.

-- Where each defect and image is: one row per defect / image, replaced when it moves.
-- status: placed | no_coil (before the first weld known) | no_speed | unknown_camera.
-- metre: from the tracked coil's head (its weld), +- uncertainty_m (a bound, see the docs).
-- exit_*: the coil it ends up on after the shear (TC 4001), NULL until cut; exit_scrap: a crop.
-- box_coil: the coil number the box sent (kept, never overwritten); coil_disagrees: it is neither
-- the tracked nor the exit coil. provisional: past the newest speed sample, placed again soon.
CREATE TABLE tracking_defects (
    defect_id         bigint      PRIMARY KEY REFERENCES defect_detections (id) ON DELETE CASCADE,
    camera_id         text        NOT NULL,
    surface           text,
    detected_at       timestamptz NOT NULL,
    time_source       text        NOT NULL CHECK (time_source IN ('box', 'received')),
    status            text        NOT NULL CHECK (status IN ('placed', 'no_coil', 'no_speed', 'unknown_camera')),
    tracked_coil      text,
    metre             double precision,
    uncertainty_m     double precision,
    in_weld_zone      boolean     NOT NULL DEFAULT false,
    box_coil          text        NOT NULL,
    coil_disagrees    boolean     NOT NULL DEFAULT false,
    exit_coil         text,
    exit_piece        integer,
    exit_metre        double precision,
    exit_scrap        boolean     NOT NULL DEFAULT false,
    provisional       boolean     NOT NULL DEFAULT false,
    model_version     integer     NOT NULL,
    computed_at       timestamptz NOT NULL
);
-- The coil map: a coil's defects along its length (and per surface, filtered on the way).
CREATE INDEX tracking_defects_coil_metre ON tracking_defects (tracked_coil, metre) WHERE tracked_coil IS NOT NULL;
CREATE INDEX tracking_defects_exit ON tracking_defects (exit_coil, exit_piece, exit_metre) WHERE exit_coil IS NOT NULL;
-- Rebuilds and the live tracker read a period.
CREATE INDEX tracking_defects_detected ON tracking_defects (detected_at);
-- The flagged coil-number disagreements (few).
CREATE INDEX tracking_defects_disagree ON tracking_defects (tracked_coil) WHERE coil_disagrees;

CREATE TABLE tracking_images (LIKE tracking_defects INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE tracking_images RENAME COLUMN defect_id TO image_id;
ALTER TABLE tracking_images ADD PRIMARY KEY (image_id),
    ADD FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE CASCADE;
CREATE INDEX tracking_images_coil_metre ON tracking_images (tracked_coil, metre) WHERE tracked_coil IS NOT NULL;
CREATE INDEX tracking_images_exit ON tracking_images (exit_coil, exit_piece, exit_metre) WHERE exit_coil IS NOT NULL;
CREATE INDEX tracking_images_detected ON tracking_images (detected_at);

-- One row per tracked coil (a weld to the next). tracked_coil is the coil number; a later pass
-- of a number already run gets "#2", "#3". Times are when the head / tail weld got there.
-- head_at_camera, tail_at_camera, inspected_m: {"camera id": value}. coverage: {"camera id":
-- share 0..1 inspected, or null = unknown (no heartbeats)}. completeness: running | complete |
-- partial | unknown. length_disagrees: integrated vs MES length (length_value, or an exit
-- coil's winding_length) beyond [tracking] length_tolerance_*.
CREATE TABLE tracking_coils (
    tracked_coil          text        PRIMARY KEY,
    coil_number           text        NOT NULL,
    head_wpd_at           timestamptz NOT NULL,
    tail_wpd_at           timestamptz,
    head_at_camera        jsonb       NOT NULL,
    tail_at_camera        jsonb       NOT NULL,
    head_at_shear         timestamptz,
    tail_at_shear         timestamptz,
    length_m              double precision,
    length_uncertainty_m  double precision,
    inspected_m           jsonb       NOT NULL,
    mes_length_m          integer,
    length_disagrees      boolean     NOT NULL,
    schedule_present      boolean     NOT NULL,
    wpd_seen              boolean     NOT NULL,
    speed_gap_free        boolean     NOT NULL,
    cut_seen              boolean     NOT NULL,
    coverage              jsonb       NOT NULL,
    completeness          text        NOT NULL CHECK (completeness IN ('running', 'complete', 'partial', 'unknown')),
    head_crop_m           double precision,
    tail_crop_m           double precision,
    model_version         integer     NOT NULL,
    computed_at           timestamptz NOT NULL
);
CREATE INDEX tracking_coils_number ON tracking_coils (coil_number);
CREATE INDEX tracking_coils_head ON tracking_coils (head_wpd_at);

-- The coils a tracked coil was cut into at the shear (pieces between two TC 4001), in metres
-- from the tracked coil's head. coil_number: as the cut telegram named it; scrap: a crop.
CREATE TABLE tracking_exit_coils (
    tracked_coil      text        NOT NULL REFERENCES tracking_coils (tracked_coil) ON DELETE CASCADE,
    piece             integer     NOT NULL,
    coil_number       text        NOT NULL,
    start_m           double precision NOT NULL,
    end_m             double precision NOT NULL,
    cut_at            timestamptz NOT NULL,
    cut_mode          integer,
    winding_length    integer,
    scrap             boolean     NOT NULL,
    length_disagrees  boolean     NOT NULL,
    PRIMARY KEY (tracked_coil, piece)
);
CREATE INDEX tracking_exit_coils_number ON tracking_exit_coils (coil_number);

-- The line's delay log: stops (line speed 0) and gaps in the speed data; ended_at NULL: still
-- on. tracked_coil / metre: what was under the first camera when it began.
CREATE TABLE tracking_delays (
    kind          text        NOT NULL CHECK (kind IN ('stop', 'speed_gap')),
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    duration_s    double precision NOT NULL,
    tracked_coil  text,
    metre         double precision,
    computed_at   timestamptz NOT NULL,
    PRIMARY KEY (started_at, kind)
);

-- What each rebuild (CLI or the live tracker's catch-up) changed.
CREATE TABLE tracking_runs (
    id           bigserial   PRIMARY KEY,
    kind         text        NOT NULL,
    period_from  timestamptz NOT NULL,
    period_to    timestamptz NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz NOT NULL DEFAULT now(),
    report       jsonb       NOT NULL
);
CREATE INDEX tracking_runs_started ON tracking_runs (started_at);
