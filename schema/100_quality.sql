-- 100: quality decisions (docs/quality.md, ccl/domain/quality): the roll table, the periodic
-- (roll-mark) series found on the tracked coils, the grading rule books (versioned) and each
-- coil's grade, and the live defect alarm rules (system_settings key alarm_rules).

-- The line's rolls: a periodic series whose pitch is near a roll's circumference (pi x diameter)
-- names that roll. Admins edit it in the UI (관리 > 품질), audited.
CREATE TABLE quality_rolls (
    id            serial      PRIMARY KEY,
    name          text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 80),
    diameter_mm   double precision NOT NULL CHECK (diameter_mm > 0 AND diameter_mm < 10000),
    location      text        NOT NULL DEFAULT '',
    notes         text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text        NOT NULL DEFAULT 'migration'
);

-- A confirmed periodic series on one tracked coil and surface, of one defect type. Live while the
-- coil runs (status live), settled over the whole coil when it completes (status final).
-- pitch_m: fitted pitch; cross_mm: position across the width (see [quality] calibration);
-- likely_roll: the roll table's name whose circumference fits the pitch, or NULL.
CREATE TABLE periodic_series (
    id             bigserial   PRIMARY KEY,
    tracked_coil   text        NOT NULL,
    coil_number    text        NOT NULL,
    surface        text        NOT NULL,
    defect_type    text        NOT NULL,
    pitch_m        double precision NOT NULL,
    cross_mm       double precision NOT NULL,
    start_m        double precision NOT NULL,
    end_m          double precision NOT NULL,
    members        integer     NOT NULL,
    expected       integer     NOT NULL,
    likely_roll    text,
    status         text        NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'final')),
    confirmed_at   timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX periodic_series_coil ON periodic_series (tracked_coil);
CREATE INDEX periodic_series_number ON periodic_series (coil_number);
CREATE INDEX periodic_series_confirmed ON periodic_series (confirmed_at);

-- The defects of a series ("marked"): a defect belongs to at most one series.
CREATE TABLE periodic_members (
    defect_id      bigint      PRIMARY KEY REFERENCES defect_detections (id) ON DELETE CASCADE,
    series_id      bigint      NOT NULL REFERENCES periodic_series (id) ON DELETE CASCADE
);
CREATE INDEX periodic_members_series ON periodic_members (series_id);

-- Grading rule books (ccl/domain/quality/grading.py, JSON): every save is a new version, never
-- edited in place; exactly one is active (the one new grades use).
CREATE TABLE grading_rule_books (
    version        serial      PRIMARY KEY,
    document       jsonb       NOT NULL,
    comment        text        NOT NULL DEFAULT '',
    active         boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text        NOT NULL
);
CREATE UNIQUE INDEX grading_rule_books_one_active ON grading_rule_books (active) WHERE active;

INSERT INTO grading_rule_books (document, comment, active, created_by) VALUES ('{
  "grades": ["A", "B", "C", "X"],
  "rules": [
    {"name": "주기성 결함", "customer": null, "product": null, "grade": "C", "disposition": "downgrade",
     "conditions": [{"kind": "periodic", "defect_type": null, "min_severity": "low", "zone": "any", "threshold": 1}]},
    {"name": "미검토 치명 결함", "customer": null, "product": null, "grade": "B", "disposition": "hold",
     "conditions": [{"kind": "unreviewed_critical", "defect_type": null, "min_severity": "critical", "zone": "any", "threshold": 1}]},
    {"name": "치명 결함 다수", "customer": null, "product": null, "grade": "X", "disposition": "scrap",
     "conditions": [{"kind": "defect_density", "defect_type": null, "min_severity": "critical", "zone": "any", "threshold": 5}]},
    {"name": "검사 불완전", "customer": null, "product": null, "grade": "B", "disposition": "hold",
     "conditions": [{"kind": "incomplete", "defect_type": null, "min_severity": "low", "zone": "any", "threshold": 1}]}
  ]}', 'default rule book (schema 100)', true, 'migration');

-- Each tracked coil's grade: computed by the active rule book when the coil completes, again when
-- a review changes its facts (rule_version: the book that decided; reasons: the rules that fired);
-- an operator's override (grade, disposition, reason) stands over the computed one, audited.
CREATE TABLE coil_grades (
    tracked_coil          text        PRIMARY KEY,
    coil_number           text        NOT NULL,
    grade                 text        NOT NULL,
    disposition           text        NOT NULL CHECK (disposition IN ('ship', 'hold', 'downgrade', 'scrap')),
    rule_version          integer     NOT NULL REFERENCES grading_rule_books (version),
    reasons               jsonb       NOT NULL,
    facts                 jsonb       NOT NULL,
    graded_by             text        NOT NULL CHECK (graded_by IN ('completion', 'review', 'regrade')),
    graded_at             timestamptz NOT NULL DEFAULT now(),
    override_grade        text,
    override_disposition  text        CHECK (override_disposition IN ('ship', 'hold', 'downgrade', 'scrap')),
    override_reason       text,
    overridden_by         text,
    overridden_at         timestamptz
);
CREATE INDEX coil_grades_number ON coil_grades (coil_number);
CREATE INDEX coil_grades_graded ON coil_grades (graded_at);

-- Live defect alarm rules (ccl/domain/quality/alarms.py), edited by admins (관리 > 품질).
INSERT INTO system_settings (key, value) VALUES ('alarm_rules', '[
  {"name": "치명 결함 군집", "kind": "critical_cluster", "severity": "critical", "count": 3, "window_m": 50},
  {"name": "주기성 결함", "kind": "periodic", "severity": "high"},
  {"name": "카메라 무응답", "kind": "camera_silent", "severity": "critical", "silent_s": 60}
]') ON CONFLICT (key) DO NOTHING;
