-- 071: the newest schedule row of every coil, for 코일 이력 (ccl/adapters/storage/ui_queries/history.py).
--
-- A coil can be rescheduled; the history lists only its newest TC 4000 row (newest received_at,
-- then highest id). Finding it per candidate row was one index probe each (thousands per page
-- over a month); this table names it directly. Kept current by STATEMENT-level triggers on
-- tc_4000_schedule (a schedule arrives every few minutes: negligible), in the same
-- transaction as the change, so it is never stale.

CREATE TABLE ui_coil_latest (
    coil_number    text        PRIMARY KEY,
    schedule_id    bigint      NOT NULL UNIQUE,
    received_at    timestamptz NOT NULL,
    customer_name  text
);
CREATE INDEX ui_coil_latest_received ON ui_coil_latest (received_at, schedule_id);
CREATE INDEX ui_coil_latest_customer ON ui_coil_latest (customer_name, schedule_id);

INSERT INTO ui_coil_latest (coil_number, schedule_id, received_at, customer_name)
SELECT DISTINCT ON (coil_number) coil_number, id, received_at, customer_name
FROM tc_4000_schedule ORDER BY coil_number, received_at DESC, id DESC;

-- New rows: the newest of them replaces a coil's entry if it is newer (concurrent writers of
-- one coil serialise on its row through ON CONFLICT).
CREATE FUNCTION ui_coil_latest_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ui_coil_latest AS l (coil_number, schedule_id, received_at, customer_name)
    SELECT DISTINCT ON (c.coil_number) c.coil_number, c.id, c.received_at, c.customer_name
    FROM changed c ORDER BY c.coil_number, c.received_at DESC, c.id DESC
    ON CONFLICT (coil_number) DO UPDATE
        SET schedule_id = excluded.schedule_id, received_at = excluded.received_at,
            customer_name = excluded.customer_name
        WHERE (excluded.received_at, excluded.schedule_id) > (l.received_at, l.schedule_id);
    RETURN NULL;
END $$;

-- Updated or deleted rows (no service does this; an administrator might): recompute the coils.
CREATE FUNCTION ui_coil_latest_recompute() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM ui_coil_latest WHERE coil_number IN (SELECT c.coil_number FROM changed c);
    INSERT INTO ui_coil_latest (coil_number, schedule_id, received_at, customer_name)
    SELECT DISTINCT ON (s.coil_number) s.coil_number, s.id, s.received_at, s.customer_name
    FROM tc_4000_schedule s WHERE s.coil_number IN (SELECT c.coil_number FROM changed c)
    ORDER BY s.coil_number, s.received_at DESC, s.id DESC;
    RETURN NULL;
END $$;

CREATE TRIGGER tc_4000_schedule_latest_insert AFTER INSERT ON tc_4000_schedule
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_coil_latest_inserted();
CREATE TRIGGER tc_4000_schedule_latest_update_old AFTER UPDATE ON tc_4000_schedule
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_coil_latest_recompute();
CREATE TRIGGER tc_4000_schedule_latest_update_new AFTER UPDATE ON tc_4000_schedule
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_coil_latest_recompute();
CREATE TRIGGER tc_4000_schedule_latest_delete AFTER DELETE ON tc_4000_schedule
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ui_coil_latest_recompute();

-- fresh statistics for the planner (the migration of a big history fills the table at once)
ANALYZE ui_coil_latest;
