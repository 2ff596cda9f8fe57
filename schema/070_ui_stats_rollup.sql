-- 070: daily roll-up of the defects for 통계 (ccl/adapters/storage/ui_queries/rollup.py).
--
-- A closed plant day (Asia/Seoul) is summed once into ui_stats_cells (Pareto, trend,
-- confidence histogram) and ui_stats_coils (customer breakdown) by ccl-ui's refresh job, and
-- listed in ui_stats_days. A change to an already summed day (a late defect, a review that
-- reclassifies, a new schedule changing a coil's customer) appends its day to ui_stats_dirty
-- in the same transaction, by STATEMENT-level triggers (one small INSERT per statement, not per
-- row; ingestion of today's defects adds nothing at all). A day counts as summed only while it
-- has no pending mark, so the statistics read the roll-up for clean days and the defects
-- themselves for the rest: always exact, the roll-up only makes it fast.

CREATE TABLE ui_stats_days (
    day date PRIMARY KEY
);

-- Per day, three kinds of rows, each counting along ONE dimension (the others NULL): per
-- defect type (Pareto), per severity (daily trend), per confidence bin (histogram). ~32 rows
-- a day instead of the ~150 of the full cross product: a year reads ~12,000 rows.
CREATE TABLE ui_stats_cells (
    day          date     NOT NULL,
    defect_type  text,
    severity     text,
    bin          smallint,
    n            integer  NOT NULL,
    CHECK (num_nonnulls(defect_type, severity, bin) = 1)
);
CREATE INDEX ui_stats_cells_day ON ui_stats_cells (day);

-- Per day and customer (of the coil's newest schedule, '' for none): defects and coils, split
-- by prev_day, the coil's latest defect day BEFORE this day (NULL: none). A range from..to
-- then counts each coil once, on its first day in the range: the rows whose prev_day is NULL
-- or before "from" (see ui_queries/stats.py).
CREATE TABLE ui_stats_coils (
    day            date    NOT NULL,
    customer_name  text    NOT NULL,
    prev_day       date,
    n              integer NOT NULL,
    coils          integer NOT NULL
);
CREATE INDEX ui_stats_coils_day ON ui_stats_coils (day);

CREATE TABLE ui_stats_dirty (
    id   bigserial PRIMARY KEY,
    day  date      NOT NULL
);
CREATE INDEX ui_stats_dirty_day ON ui_stats_dirty (day);

-- Rows of today (plant time, at the start of the writing transaction) are never summed yet:
-- no mark for them, so the ingestion of live defects writes nothing here.
-- A changed defect also changes the prev_day of its coil's later days: those are marked too
-- (an index probe per changed coil; nothing for today's rows).
CREATE FUNCTION ui_stats_mark_defects() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH past AS (
        SELECT c.coil_number, c.detection_time FROM changed c
        WHERE c.detection_time < (date_trunc('day', now() AT TIME ZONE 'Asia/Seoul') AT TIME ZONE 'Asia/Seoul'))
    INSERT INTO ui_stats_dirty (day)
    SELECT (p.detection_time AT TIME ZONE 'Asia/Seoul')::date FROM past p
    UNION
    SELECT (d.detection_time AT TIME ZONE 'Asia/Seoul')::date
    FROM (SELECT coil_number, min(detection_time) AS since FROM past GROUP BY 1) p
    JOIN defect_detections d ON d.coil_number = p.coil_number AND d.detection_time > p.since;
    RETURN NULL;
END $$;

-- A coil's customer is that of its newest schedule: a schedule row changes the customer of the
-- coil's defects on every day they were found.
CREATE FUNCTION ui_stats_mark_schedules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ui_stats_dirty (day)
    SELECT DISTINCT (d.detection_time AT TIME ZONE 'Asia/Seoul')::date
    FROM defect_detections d WHERE d.coil_number IN (SELECT c.coil_number FROM changed c);
    RETURN NULL;
END $$;

CREATE TRIGGER defect_detections_stats_insert AFTER INSERT ON defect_detections
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_defects();
CREATE TRIGGER defect_detections_stats_update_old AFTER UPDATE ON defect_detections
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_defects();
CREATE TRIGGER defect_detections_stats_update_new AFTER UPDATE ON defect_detections
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_defects();
CREATE TRIGGER defect_detections_stats_delete AFTER DELETE ON defect_detections
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_defects();

CREATE TRIGGER tc_4000_schedule_stats_insert AFTER INSERT ON tc_4000_schedule
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_schedules();
CREATE TRIGGER tc_4000_schedule_stats_update AFTER UPDATE ON tc_4000_schedule
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_schedules();
CREATE TRIGGER tc_4000_schedule_stats_delete AFTER DELETE ON tc_4000_schedule
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_stats_mark_schedules();
