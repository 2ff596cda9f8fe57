-- 050: history of operator reviews of a defect (confirm, false positive, reclassify).
-- defect_detections keeps the latest state (review_status, reviewed_by/at, review_comment,
-- original_defect_type); this table keeps every action, shown on the coil detail page.
CREATE TABLE defect_reviews (
    id               bigserial   PRIMARY KEY,
    defect_id        bigint      NOT NULL REFERENCES defect_detections (id) ON DELETE CASCADE,
    action           text        NOT NULL CHECK (action IN ('confirm', 'false_positive', 'reclassify')),
    previous_status  text        NOT NULL,
    from_type        text        NOT NULL,
    to_type          text        NOT NULL,
    comment          text        NOT NULL DEFAULT '' CHECK (length(comment) <= 1000),
    reviewed_by      text        NOT NULL,
    reviewed_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX defect_reviews_defect ON defect_reviews (defect_id, reviewed_at);
