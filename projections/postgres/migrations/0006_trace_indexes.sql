-- Stays for contact tracing (issue 11): every stay the passes give
-- (domain.Presences over all of a person's passes at a venue, under the
-- stay rules in stay_state), kept up to date by Apply, so that a trace's
-- overlap joins read the stays that meet a window instead of every pass
-- within a maximum stay (a day) of it. Plain tables and plain CREATE INDEX,
-- so that they also apply where the pass tables are partitioned.
CREATE TABLE stays (
    person_id uuid NOT NULL,
    venue_id  uuid NOT NULL,
    start_at  timestamptz NOT NULL,
    end_at    timestamptz NOT NULL,
    -- start_at is an entry pass's time, end_at an exit pass's (Presence's
    -- Entry and Exit): a pair's stays give back its passes, so Apply
    -- rebuilds them from the stays without reading the passes.
    has_entry boolean NOT NULL,
    has_exit  boolean NOT NULL
);
-- The stays at a venue that meet a window: start_at between the window's
-- start less the venue's longest stay (stay_spans) and its end, end_at
-- checked in the index.
CREATE INDEX stays_venue_start ON stays (venue_id, start_at) INCLUDE (end_at, person_id, has_entry, has_exit);
-- A person's stays in a window; also the stays Apply replaces.
CREATE INDEX stays_person_start ON stays (person_id, start_at) INCLUDE (venue_id, end_at, has_entry, has_exit);

-- The longest stay ever kept at each venue: the lower bound of the window
-- scans on stays_venue_start (only grows; a bound, not a statistic).
CREATE TABLE stay_spans (
    venue_id uuid PRIMARY KEY,
    longest  interval NOT NULL
);

-- One row: the rules the stays were built with (the store rebuilds them
-- from the passes at Open when its rules differ), and the newest
-- recorded_at of the passes applied (a trace as of an earlier moment must
-- leave later passes out, which the stays cannot: it reads passes).
CREATE TABLE stay_state (
    one                boolean PRIMARY KEY DEFAULT true CHECK (one),
    rules              text NOT NULL,
    newest_recorded_at timestamptz
);
