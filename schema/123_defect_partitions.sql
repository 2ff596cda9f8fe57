-- 123: defect_detections becomes a monthly partitioned table like the process tables (117), so
-- that `[retention] defect_months` drops whole months (docs/operations.md, "Partitions and
-- retention"). ~50,000 defects a day make it the largest table after the speed samples.
--
-- Partition key: received_at, the server's own clock (the DEFAULT partition then only catches a
-- month whose partition was not made ahead, never a box's wrong clock). Pages and statistics
-- filter on detection_time, as before, through each month's indexes.
--
-- PostgreSQL wants the partition key in every unique key, and in a foreign key to a partitioned
-- table. What that changes:
-- * event_id was UNIQUE: a box resending a defect is answered with the stored row. The event ids
--   move to their own table, defect_event_ids, written in the same statement as the defect
--   (defect_store.py); its primary key refuses a repeat exactly as the old constraint did.
-- * tracking_defects, periodic_members and defect_reviews carry the defect's received_at
--   (defect_received_at). Every query that reaches a defect from these tables names both
--   columns, so PostgreSQL reads one month's index per defect instead of every month's
--   (storage/defect_keys.py). Their foreign keys to defect_detections go: a composite key to a
--   partitioned table costs ~50 us a row to check (each check plans over every month), which
--   made the tracking save of a 1,000-defect batch 10 times dearer. What the keys held is kept
--   so: the tracking save inserts only rows whose defect it finds (a LATERAL look-up, skipping
--   the others as before), and for the other writers a BEFORE INSERT trigger looks the defect
--   up, so a row naming no stored defect fails on NOT NULL.
-- * Nothing deletes single defects; the retention job deletes the rows of those tables that
--   belong to a month before it drops the month (ccl/adapters/storage/partitions.py,
--   DEPENDENTS), in the same transaction (what ON DELETE CASCADE did).
-- The primary key becomes (id, received_at); ids still come from the one sequence.
--
-- Conversion copies the rows in the migration's one transaction (stop the services for
-- `ccl migrate`; bench/partition_migration.py measures it, docs/performance.md).

CREATE TABLE defect_event_ids (
    event_id   uuid    PRIMARY KEY,
    defect_id  bigint  NOT NULL
);
CREATE INDEX defect_event_ids_defect ON defect_event_ids (defect_id);
INSERT INTO defect_event_ids (event_id, defect_id)
    SELECT event_id, id FROM defect_detections WHERE event_id IS NOT NULL;

-- The referencing tables take the defect's received_at (their rows all have a defect: foreign keys until now).
ALTER TABLE tracking_defects DROP CONSTRAINT tracking_defects_defect_id_fkey, ADD COLUMN defect_received_at timestamptz;
ALTER TABLE periodic_members DROP CONSTRAINT periodic_members_defect_id_fkey, ADD COLUMN defect_received_at timestamptz;
ALTER TABLE defect_reviews DROP CONSTRAINT defect_reviews_defect_id_fkey, ADD COLUMN defect_received_at timestamptz;
UPDATE tracking_defects t SET defect_received_at = d.received_at FROM defect_detections d WHERE d.id = t.defect_id;
UPDATE periodic_members t SET defect_received_at = d.received_at FROM defect_detections d WHERE d.id = t.defect_id;
UPDATE defect_reviews t SET defect_received_at = d.received_at FROM defect_detections d WHERE d.id = t.defect_id;

ALTER TABLE defect_detections RENAME TO defect_detections_unpartitioned;
CREATE TABLE defect_detections (LIKE defect_detections_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (received_at);
CREATE TABLE defect_detections_default PARTITION OF defect_detections DEFAULT;
SELECT ccl_month_partition('defect_detections', month)
FROM (SELECT DISTINCT date_trunc('month', received_at AT TIME ZONE 'UTC')::date AS month
      FROM defect_detections_unpartitioned
      UNION SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + n * interval '1 month')::date
      FROM generate_series(0, 3) AS n) AS months;
INSERT INTO defect_detections SELECT * FROM defect_detections_unpartitioned;
ALTER SEQUENCE defect_detections_id_seq OWNED BY defect_detections.id;
DROP TABLE defect_detections_unpartitioned;  -- its indexes and triggers go with it

ALTER TABLE defect_detections
    ADD PRIMARY KEY (id, received_at),
    ADD FOREIGN KEY (original_image_id) REFERENCES images (id),
    ADD FOREIGN KEY (labeled_image_id) REFERENCES images (id),
    ADD FOREIGN KEY (model_id) REFERENCES ai_models (id);
CREATE INDEX defect_detections_coil ON defect_detections (coil_number, detection_time);
CREATE INDEX defect_detections_coil_type ON defect_detections (coil_number, defect_type);
CREATE INDEX defect_detections_type_time ON defect_detections (defect_type, detection_time);
CREATE INDEX defect_detections_time_cover ON defect_detections (detection_time)
    INCLUDE (defect_type, severity, confidence_score, coil_number);
CREATE INDEX defect_detections_original_image ON defect_detections (original_image_id)
    WHERE original_image_id IS NOT NULL;
CREATE INDEX defect_detections_labeled_image ON defect_detections (labeled_image_id)
    WHERE labeled_image_id IS NOT NULL;

-- The statistics roll-up's marks (070), now on the partitioned table (statement level, as before).
CREATE TRIGGER defect_detections_stats_insert AFTER INSERT ON defect_detections
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_defects();
CREATE TRIGGER defect_detections_stats_update_old AFTER UPDATE ON defect_detections
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_defects();
CREATE TRIGGER defect_detections_stats_update_new AFTER UPDATE ON defect_detections
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_defects();
CREATE TRIGGER defect_detections_stats_delete AFTER DELETE ON defect_detections
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_defects();

-- The defect's received_at for a writer that does not give it (reviews, roll-mark members; the
-- tracking save gives it): one look-up by id over the months, a row at a time. No such defect:
-- NULL, and the row is refused by NOT NULL.
CREATE FUNCTION ccl_defect_received_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.defect_received_at IS NULL THEN
        SELECT d.received_at INTO NEW.defect_received_at FROM defect_detections d WHERE d.id = NEW.defect_id;
    END IF;
    RETURN NEW;
END $$;

ALTER TABLE tracking_defects ALTER COLUMN defect_received_at SET NOT NULL;
CREATE TRIGGER tracking_defects_received_at BEFORE INSERT ON tracking_defects
    FOR EACH ROW EXECUTE FUNCTION ccl_defect_received_at();
ALTER TABLE periodic_members ALTER COLUMN defect_received_at SET NOT NULL;
CREATE TRIGGER periodic_members_received_at BEFORE INSERT ON periodic_members
    FOR EACH ROW EXECUTE FUNCTION ccl_defect_received_at();
ALTER TABLE defect_reviews ALTER COLUMN defect_received_at SET NOT NULL;
CREATE TRIGGER defect_reviews_received_at BEFORE INSERT ON defect_reviews
    FOR EACH ROW EXECUTE FUNCTION ccl_defect_received_at();

-- JIT off for this database: a plan over every month's partition is costed as the sum of them
-- all, which crosses jit_above_cost, and PostgreSQL then spends from 0.2 to several seconds
-- compiling a query that runs in milliseconds (a coil's 1,000 defects over 41 months,
-- bench/defect_keys.py). ALTER DATABASE needs the database's owner, as `ccl migrate` does.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'schema 123 must turn JIT off for database %: run ccl migrate as the database''s owner',
        current_database();
END $$;
