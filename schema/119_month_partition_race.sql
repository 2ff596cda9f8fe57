-- 119: ccl_month_partition (117) made safe to call from two sessions at once: the
-- orchestrators of two plant servers at the turn of a day, or one and `ccl retention run`. Both
-- saw the partition missing; the second CREATE waited for the first's lock on the parent and
-- then failed with duplicate_table (the orchestrator's alert round then skipped its database
-- rules). Now the second finds it made and returns its name. Otherwise unchanged.
CREATE OR REPLACE FUNCTION ccl_month_partition(parent regclass, month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    first_day timestamp := date_trunc('month', month::timestamp);
    lower_bound timestamptz := first_day AT TIME ZONE 'UTC';
    upper_bound timestamptz := (first_day + interval '1 month') AT TIME ZONE 'UTC';
    parent_name text;
    partition_name text;
    default_name text;
    key_column text;
    moved bigint := 0;
BEGIN
    SELECT c.relname INTO parent_name FROM pg_class c WHERE c.oid = parent;
    partition_name := parent_name || '_p' || to_char(first_day, 'YYYYMM');
    IF to_regclass(quote_ident(partition_name)) IS NOT NULL THEN
        RETURN partition_name;
    END IF;
    SELECT a.attname INTO key_column FROM pg_partitioned_table p
        JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
        WHERE p.partrelid = parent;
    SELECT c.relname INTO default_name FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partdefid
        WHERE p.partrelid = parent;
    IF default_name IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM %I WHERE %I >= $1 AND %I < $2', default_name, key_column, key_column)
            INTO moved USING lower_bound, upper_bound;
    END IF;
    IF moved = 0 THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           partition_name, parent, lower_bound, upper_bound);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            -- Another session made it meanwhile (it waited for that one's lock on the parent).
            RETURN partition_name;
        END;
    ELSE
        -- The DEFAULT partition holds rows of this month: take them out, then attach.
        EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', partition_name, parent);
        EXECUTE format('WITH gone AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *) INSERT INTO %I SELECT * FROM gone',
                       default_name, key_column, key_column, partition_name) USING lower_bound, upper_bound;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       parent, partition_name, lower_bound, upper_bound);
        RAISE NOTICE 'moved % rows of % from % into %', moved, to_char(first_day, 'YYYY-MM'), default_name, partition_name;
    END IF;
    RETURN partition_name;
END
$$;
