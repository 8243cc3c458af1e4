-- The dashboard's anonymous counts, kept by Apply as passes arrive (never a
-- scan of passes at read time) and kept apart from the passes: retention
-- deleting passes leaves the hourly counts (and takes what it deletes off
-- dashboard_held). They hold no person and no pass. Counts of passes stored
-- before this migration come with `ledger projections rebuild`.

-- Passes per UTC hour, district and venue type: every pass, the denied,
-- the abnormal ones (domain.CountPass).
CREATE TABLE dashboard_hours (
    hour       timestamptz NOT NULL,
    district   text NOT NULL,
    venue_type text NOT NULL,
    passes     bigint NOT NULL DEFAULT 0,
    denied     bigint NOT NULL DEFAULT 0,
    abnormal   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, district, venue_type)
);

-- Passes held, per district and UTC day of the pass (the pass tables'
-- partition): retiring a whole day deletes its rows here, retiring part of
-- a day takes the deleted passes off that day's row.
CREATE TABLE dashboard_held (
    district text NOT NULL,
    day      date NOT NULL,
    passes   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (district, day)
);

-- Each venue's latest pass time: the venues whose occupancy may be above
-- zero are those with a pass within their dwell.
CREATE TABLE dashboard_venues (
    venue_id uuid PRIMARY KEY,
    last_at  timestamptz NOT NULL
);
CREATE INDEX dashboard_venues_last_at ON dashboard_venues (last_at);
