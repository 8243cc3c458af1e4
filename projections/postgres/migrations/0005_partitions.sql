-- Retention at city scale (issue 11): the tables of passes and of the
-- alerts they raise are partitioned by day (UTC) of "at", the pass's
-- occurred_at (an alert carries its pass's), so that retiring a day is
-- dropping its partitions, not deleting millions of rows. Partitions are
-- named <table>_pYYYYMMDD and hold [day, day + 1); the store creates each
-- the first time a row for its day is applied (partitions.go), in the
-- applying transaction. Existing tables are converted with their rows.
--
-- A primary key of a partitioned table must hold the partition key: it is
-- (event_id, at). The store still applies a pass once by event id: Apply
-- looks the batch's ids up first (storedPasses), under the position lock
-- that serialises every writer.

-- The cut-off of the last retirement (RetirePasses): rows older than it are
-- not applied again when a replay brings them (the log keeps a pass until
-- the latest pass of its message expires).
CREATE TABLE retirement (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    before timestamptz NOT NULL
);

-- Passes.
ALTER TABLE passes RENAME TO passes_unpartitioned;
ALTER TABLE passes_unpartitioned RENAME CONSTRAINT passes_pkey TO passes_unpartitioned_pkey;
DROP INDEX passes_venue_at;
DROP INDEX passes_person_at;
CREATE TABLE passes (LIKE passes_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (at);

-- Alerts.
ALTER TABLE alerts RENAME TO alerts_unpartitioned;
ALTER TABLE alerts_unpartitioned RENAME CONSTRAINT alerts_pkey TO alerts_unpartitioned_pkey;
DROP INDEX alerts_district_at;
CREATE TABLE alerts (LIKE alerts_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (at);

-- One partition per day that holds rows, then the rows, then the indexes
-- (built once over the loaded rows rather than row by row).
DO $$
DECLARE
    t   text;
    day date;
BEGIN
    FOREACH t IN ARRAY ARRAY['passes', 'alerts'] LOOP
        FOR day IN EXECUTE format('SELECT DISTINCT (at AT TIME ZONE ''UTC'')::date FROM %I', t || '_unpartitioned') LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                t || '_p' || to_char(day, 'YYYYMMDD'), t,
                day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
        END LOOP;
    END LOOP;
END
$$;
INSERT INTO passes SELECT * FROM passes_unpartitioned;
INSERT INTO alerts SELECT * FROM alerts_unpartitioned;
DROP TABLE passes_unpartitioned;
DROP TABLE alerts_unpartitioned;

ALTER TABLE passes ADD PRIMARY KEY (event_id, at);
-- As in 0002: covering indexes for the entry list, a person's trace and
-- the window reads of contact tracing.
CREATE INDEX passes_venue_at ON passes (venue_id, at, position)
    INCLUDE (person_id, direction, decision, recorded_at, event_id);
CREATE INDEX passes_person_at ON passes (person_id, at, position)
    INCLUDE (venue_id, direction, decision, recorded_at, event_id);
-- The one partial day a retirement deletes from: passes arrive mostly in
-- time order, so a block range index finds its expired rows for a few
-- pages of index, and costs next to nothing to keep.
CREATE INDEX passes_at_brin ON passes USING brin (at);

ALTER TABLE alerts ADD PRIMARY KEY (event_id, at);
CREATE INDEX alerts_district_at ON alerts (district, at, position);
CREATE INDEX alerts_at_brin ON alerts USING brin (at);
