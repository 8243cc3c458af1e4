-- Stays by day (issue 11): the stays table is partitioned by day (UTC) of
-- start_at, as passes and alerts are by at (0005), and named alike
-- (stays_pYYYYMMDD holds the stays that start in [day, day + 1)). Retiring
-- a day drops its partition instead of deleting its stays row by row, and
-- the indexes Apply writes to are the live days' (small enough to stay in
-- memory), not one B-tree of every stay in the retention. The store
-- creates a partition the first time a stay starting on its day is
-- written (partitions.go). Existing stays are converted with their rows.
ALTER TABLE stays RENAME TO stays_unpartitioned;
DROP INDEX stays_venue_start;
DROP INDEX stays_person_start;
CREATE TABLE stays (LIKE stays_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (start_at);

DO $$
DECLARE
    day date;
BEGIN
    FOR day IN SELECT DISTINCT (start_at AT TIME ZONE 'UTC')::date FROM stays_unpartitioned LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF stays FOR VALUES FROM (%L) TO (%L)',
            'stays_p' || to_char(day, 'YYYYMMDD'),
            day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END
$$;
INSERT INTO stays SELECT * FROM stays_unpartitioned;
DROP TABLE stays_unpartitioned;

-- As in 0006.
CREATE INDEX stays_venue_start ON stays (venue_id, start_at) INCLUDE (end_at, person_id, has_entry, has_exit);
CREATE INDEX stays_person_start ON stays (person_id, start_at) INCLUDE (venue_id, end_at, has_entry, has_exit);
