-- 001: every table of shared/spec/architecture.md.
-- Applied by `ccl migrate` inside one transaction and recorded in schema_migrations.

-- MES process data: one table per TC. Header columns, the layout's body fields, the raw bytes.
-- A retransmission (same line, sequence, send time and bytes) hits the UNIQUE key and is stored once.
CREATE TABLE tc_4000_schedule (
    id              bigserial PRIMARY KEY,
    tc_code         char(4)     NOT NULL DEFAULT '4000',
    line_code       text        NOT NULL,
    sequence_no     integer     NOT NULL,
    sent_at         timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    peer            text,
    coil_number     text        NOT NULL,
    mo_number       text,
    product_group   text,
    material_code   text,
    customer_name   text,
    ccl_bom         text,
    thickness       numeric(9, 3),
    width           integer,
    weight          integer,
    length_value    integer,
    through_plate   text,
    sequence_order  integer,
    raw             bytea       NOT NULL,
    UNIQUE (line_code, sequence_no, sent_at, raw)
);
CREATE INDEX tc_4000_schedule_coil ON tc_4000_schedule (coil_number, received_at DESC);
CREATE INDEX tc_4000_schedule_received ON tc_4000_schedule (received_at);
CREATE INDEX tc_4000_schedule_customer ON tc_4000_schedule (customer_name);

CREATE TABLE tc_4001_cut (
    id              bigserial PRIMARY KEY,
    tc_code         char(4)     NOT NULL DEFAULT '4001',
    line_code       text        NOT NULL,
    sequence_no     integer     NOT NULL,
    sent_at         timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    peer            text,
    coil_number     text        NOT NULL,
    cut_mode        integer,
    winding_length  integer,
    raw             bytea       NOT NULL,
    UNIQUE (line_code, sequence_no, sent_at, raw)
);
CREATE INDEX tc_4001_cut_coil ON tc_4001_cut (coil_number, received_at DESC);
CREATE INDEX tc_4001_cut_received ON tc_4001_cut (received_at);

CREATE TABLE tc_4002_wpd (
    id              bigserial PRIMARY KEY,
    tc_code         char(4)     NOT NULL DEFAULT '4002',
    line_code       text        NOT NULL,
    sequence_no     integer     NOT NULL,
    sent_at         timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    peer            text,
    coil_number     text        NOT NULL,
    raw             bytea       NOT NULL,
    UNIQUE (line_code, sequence_no, sent_at, raw)
);
CREATE INDEX tc_4002_wpd_coil ON tc_4002_wpd (coil_number, received_at DESC);
CREATE INDEX tc_4002_wpd_received ON tc_4002_wpd (received_at);

CREATE TABLE tc_4003_speed (
    id              bigserial PRIMARY KEY,
    tc_code         char(4)     NOT NULL DEFAULT '4003',
    line_code       text        NOT NULL,
    sequence_no     integer     NOT NULL,
    sent_at         timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    peer            text,
    line_speed      integer,
    raw             bytea       NOT NULL,
    UNIQUE (line_code, sequence_no, sent_at, raw)
);
CREATE INDEX tc_4003_speed_received ON tc_4003_speed (received_at);

-- Telegrams we refused (NAK), kept whole for diagnosis.
CREATE TABLE rejected_telegrams (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL,
    peer            text,
    listener        text        NOT NULL DEFAULT 'mes',
    result_code     char(2)     NOT NULL,
    reason          text        NOT NULL,
    tc_code         text,
    sequence_no     integer,
    raw             bytea       NOT NULL
);
CREATE INDEX rejected_telegrams_received ON rejected_telegrams (received_at);

-- How far the local MES journal has been applied to the database. Written in the same
-- transaction as the rows it covers, so a replay after a crash neither skips nor doubles.
CREATE TABLE journal_progress (
    journal         text        PRIMARY KEY,
    applied_upto    bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Store-and-forward to 고기원: an entry is written in the transaction that stores its telegram.
CREATE TABLE forward_outbox (
    id              bigserial PRIMARY KEY,
    channel         text        NOT NULL,
    source_table    text        NOT NULL,
    source_id       bigint      NOT NULL,
    tc_code         char(4)     NOT NULL,
    sequence_no     integer     NOT NULL,
    raw             bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    state           text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'refused')),
    attempts        integer     NOT NULL DEFAULT 0,
    first_sent_at   timestamptz,
    last_sent_at    timestamptz,
    delivered_at    timestamptz,
    refused_at      timestamptz,
    refused_code    char(2)
);
CREATE INDEX forward_outbox_pending ON forward_outbox (channel, id) WHERE state = 'pending';
CREATE INDEX forward_outbox_refused ON forward_outbox (refused_at) WHERE state = 'refused';

-- Last-seen state of each link (MES peers, 고기원 channels, Jetson boxes) for the UI.
CREATE TABLE link_status (
    link            text        PRIMARY KEY,
    kind            text        NOT NULL,
    connected       boolean     NOT NULL DEFAULT false,
    last_seen_at    timestamptz,
    alive_count     integer,
    details         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ai_models (
    id              serial      PRIMARY KEY,
    name            text        NOT NULL,
    version         text        NOT NULL DEFAULT '',
    deployed        boolean     NOT NULL DEFAULT false,
    accuracy_score  double precision CHECK (accuracy_score BETWEEN 0 AND 1),
    precision_score double precision CHECK (precision_score BETWEEN 0 AND 1),
    recall_score    double precision CHECK (recall_score BETWEEN 0 AND 1),
    f1_score        double precision CHECK (f1_score BETWEEN 0 AND 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);
CREATE UNIQUE INDEX ai_models_one_deployed ON ai_models (deployed) WHERE deployed;

CREATE TABLE ai_model_metrics (
    id              bigserial   PRIMARY KEY,
    model_id        integer     NOT NULL REFERENCES ai_models (id),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    accuracy_score  double precision,
    precision_score double precision,
    recall_score    double precision,
    f1_score        double precision
);
CREATE INDEX ai_model_metrics_model ON ai_model_metrics (model_id, recorded_at);

CREATE TABLE images (
    id              bigserial   PRIMARY KEY,
    coil_number     text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('original', 'labeled')),
    filename        text        NOT NULL,
    path            text        NOT NULL,
    bytes           bigint      NOT NULL,
    width           integer     NOT NULL,
    height          integer     NOT NULL,
    format          text        NOT NULL,
    sha256          char(64)    NOT NULL,
    captured_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    camera_id       text        NOT NULL DEFAULT 'top',
    pair_id         bigint,
    thumbnail_path  text,
    purged_at       timestamptz,
    UNIQUE (kind, filename)
);
CREATE INDEX images_coil ON images (coil_number, captured_at DESC);
CREATE INDEX images_captured ON images (captured_at);
CREATE INDEX images_kind_captured ON images (kind, captured_at DESC);

CREATE TABLE defect_detections (
    id                    bigserial   PRIMARY KEY,
    event_id              uuid        UNIQUE,
    coil_number           text        NOT NULL,
    defect_type           text        NOT NULL,
    confidence_score      double precision NOT NULL CHECK (confidence_score BETWEEN 0 AND 1),
    severity              text        NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    needs_review          boolean     NOT NULL DEFAULT false,
    defect_position_x     integer     CHECK (defect_position_x >= 0),
    defect_position_y     integer     CHECK (defect_position_y >= 0),
    defect_size_width     integer     CHECK (defect_size_width >= 0),
    defect_size_height    integer     CHECK (defect_size_height >= 0),
    defect_position_meter double precision CHECK (defect_position_meter >= 0),
    detection_time        timestamptz NOT NULL,
    received_at           timestamptz NOT NULL DEFAULT now(),
    original_image_path   text,
    labeled_image_path    text,
    original_image_id     bigint      REFERENCES images (id),
    labeled_image_id      bigint      REFERENCES images (id),
    model_id              integer     REFERENCES ai_models (id),
    camera_id             text        NOT NULL DEFAULT 'top',
    batch_info            jsonb,
    review_status         text        NOT NULL DEFAULT 'new'
                          CHECK (review_status IN ('new', 'confirmed', 'false_positive', 'reclassified')),
    reviewed_by           text,
    reviewed_at           timestamptz,
    review_comment        text,
    original_defect_type  text
);
CREATE INDEX defect_detections_coil ON defect_detections (coil_number, detection_time);
CREATE INDEX defect_detections_time ON defect_detections (detection_time);
CREATE INDEX defect_detections_type_time ON defect_detections (defect_type, detection_time);

CREATE TABLE users (
    id                  serial      PRIMARY KEY,
    username            text        NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._-]{1,64}$'),
    display_name        text        NOT NULL DEFAULT '',
    password_hash       text        NOT NULL,
    role                text        NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled            boolean     NOT NULL DEFAULT false,
    failed_logins       integer     NOT NULL DEFAULT 0,
    locked_until        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    last_login_at       timestamptz
);

-- Only a digest of the session token is stored: a leaked table is no leaked session.
CREATE TABLE sessions (
    token_hash      bytea       PRIMARY KEY,
    user_id         integer     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    client_address  text,
    user_agent      text
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE audit_logs (
    id              bigserial   PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text        NOT NULL,
    client_address  text,
    action          text        NOT NULL,
    target          text,
    result          text        NOT NULL,
    details         jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_logs_at ON audit_logs (at);
CREATE INDEX audit_logs_actor ON audit_logs (actor, at);
CREATE INDEX audit_logs_action ON audit_logs (action, at);

CREATE TABLE system_settings (
    key             text        PRIMARY KEY,
    value           jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL DEFAULT 'migration'
);
INSERT INTO system_settings (key, value) VALUES
    ('defect_types', '["scratch", "dent", "stain", "pinhole", "coating_defect", "edge_crack", "roll_mark", "other"]'),
    ('severity_thresholds', '{"critical": 0.95, "high": 0.85, "medium": 0.6}'),
    ('review_threshold', '0.5');

-- Bearer tokens of the Jetson boxes; only a digest is stored.
CREATE TABLE ingest_tokens (
    id              serial      PRIMARY KEY,
    name            text        NOT NULL UNIQUE,
    token_hash      bytea       NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    last_used_at    timestamptz
);

CREATE TABLE alerts (
    id              bigserial   PRIMARY KEY,
    rule            text        NOT NULL,
    subject         text        NOT NULL,
    severity        text        NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
    message         text        NOT NULL,
    details         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    raised_at       timestamptz NOT NULL DEFAULT now(),
    cleared_at      timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (rule, subject) WHERE cleared_at IS NULL;
CREATE INDEX alerts_raised ON alerts (raised_at);
