-- 117: the large MES process tables become monthly partitioned tables (docs/operations.md,
-- "Partitions and retention"), so that retention drops whole months (DETACH + DROP) instead
-- of deleting rows.
--
-- Partition key: sent_at for tc_4001_cut, tc_4002_wpd, tc_4003_speed (the telegram's own time,
-- part of the retransmission key (line_code, sequence_no, sent_at, raw)). PostgreSQL wants the
-- partition key in every unique key; with sent_at it already is, so the key is unchanged, a
-- retransmission has the same sent_at, lands in the same partition and is still skipped by the
-- writer's ON CONFLICT, also when it arrives in the next month. received_at would have had to
-- join the key and let such a retransmission through. The primary key becomes (id, sent_at)
-- (nothing references these ids by foreign key; forward_outbox.source_id is a plain bigint).
-- rejected_telegrams (no unique key) is partitioned by received_at.
-- tc_4000_schedule stays a plain table: a few hundred rows a day, the per-coil record kept
-- forever, with the statement triggers of 070/071 on it.
--
-- Months are calendar months in UTC. Every table has a DEFAULT partition as the safety net:
-- a row whose month has no partition (a wrong MES clock, a maintenance job that did not run)
-- is stored there instead of failing the insert; the orchestrator raises partition.default
-- while it holds rows, and ccl_month_partition moves them out when their month is created.
--
-- Conversion: the old table's rows are copied into the new one (a partition per month that
-- has rows, plus this month and the next 3), in the migration's one transaction: the tables
-- are locked meanwhile, so stop the services for `ccl migrate` (about 1 minute per 10 million
-- rows on the plant server; see docs/operations.md).

-- The partition of `parent` for the UTC month of `month`, created when missing (idempotent;
-- used by this migration and by the partition maintenance of the services). Rows of that month
-- already in the DEFAULT partition are moved into the new partition.
CREATE FUNCTION ccl_month_partition(parent regclass, month date) RETURNS text
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
        EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       partition_name, parent, lower_bound, upper_bound);
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

-- Migration-only: turn `old_name` into a partitioned table by `key_column` with the same
-- columns, defaults and sequence; the caller adds the keys and indexes under their old names.
CREATE FUNCTION ccl_partition_convert(table_name text, key_column text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    old_name text := table_name || '_unpartitioned';
    month date;
    copied bigint;
BEGIN
    EXECUTE format('ALTER TABLE %I RENAME TO %I', table_name, old_name);
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (%I)',
                   table_name, old_name, key_column);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', table_name || '_default', table_name);
    FOR month IN EXECUTE format(
            'SELECT DISTINCT date_trunc(''month'', %I AT TIME ZONE ''UTC'')::date FROM %I'
            ' UNION SELECT (date_trunc(''month'', now() AT TIME ZONE ''UTC'') + n * interval ''1 month'')::date'
            ' FROM generate_series(0, 3) AS n', key_column, old_name) LOOP
        PERFORM ccl_month_partition(table_name::regclass, month);
    END LOOP;
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', table_name, old_name);
    GET DIAGNOSTICS copied = ROW_COUNT;
    EXECUTE format('ALTER SEQUENCE %I OWNED BY %I.id', table_name || '_id_seq', table_name);
    EXECUTE format('DROP TABLE %I', old_name);
    RETURN copied;
END
$$;

SELECT ccl_partition_convert('tc_4001_cut', 'sent_at');
ALTER TABLE tc_4001_cut ADD PRIMARY KEY (id, sent_at), ADD UNIQUE (line_code, sequence_no, sent_at, raw);
CREATE INDEX tc_4001_cut_coil ON tc_4001_cut (coil_number, received_at DESC);
CREATE INDEX tc_4001_cut_received ON tc_4001_cut (received_at);

SELECT ccl_partition_convert('tc_4002_wpd', 'sent_at');
ALTER TABLE tc_4002_wpd ADD PRIMARY KEY (id, sent_at), ADD UNIQUE (line_code, sequence_no, sent_at, raw);
CREATE INDEX tc_4002_wpd_coil ON tc_4002_wpd (coil_number, received_at DESC);
CREATE INDEX tc_4002_wpd_received ON tc_4002_wpd (received_at);

SELECT ccl_partition_convert('tc_4003_speed', 'sent_at');
ALTER TABLE tc_4003_speed ADD PRIMARY KEY (id, sent_at), ADD UNIQUE (line_code, sequence_no, sent_at, raw);
CREATE INDEX tc_4003_speed_received ON tc_4003_speed (received_at);

SELECT ccl_partition_convert('rejected_telegrams', 'received_at');
ALTER TABLE rejected_telegrams ADD PRIMARY KEY (id, received_at);
CREATE INDEX rejected_telegrams_received ON rejected_telegrams (received_at);

DROP FUNCTION ccl_partition_convert(text, text);
