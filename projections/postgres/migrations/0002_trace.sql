-- Contact tracing (issue 4).

-- When the ledger appended each pass, so a trace can be answered as of a
-- past moment (passes recorded after it are left out). Rows projected
-- before this migration have none (NULL, kept by every as_of) until the
-- read models are rebuilt.
ALTER TABLE passes ADD COLUMN recorded_at timestamptz;

-- The two window indexes become covering: a trace reads a few thousand
-- short windows of venues' and persons' passes, and with the columns it
-- needs in the index each window is one or two index pages (an index-only
-- scan once autovacuum has marked the pages all-visible) instead of one
-- heap page per pass, the heap being far larger than shared_buffers. The
-- as_of condition is checked on the included recorded_at. The keys are
-- unchanged, so the entry list and the person's trace use them as before.
DROP INDEX passes_venue_at;
CREATE INDEX passes_venue_at ON passes (venue_id, at, position)
    INCLUDE (person_id, direction, decision, recorded_at, event_id);
DROP INDEX passes_person_at;
CREATE INDEX passes_person_at ON passes (person_id, at, position)
    INCLUDE (venue_id, direction, decision, recorded_at, event_id);

-- Every look at a person's history (TraceRequested events), keyed by event
-- id so a redelivered event is listed once.
CREATE TABLE audit_entries (
    event_id            uuid PRIMARY KEY,
    position            bigint NOT NULL,
    trace_id            uuid NOT NULL,
    analyst             text NOT NULL,
    person_id           uuid NOT NULL,
    from_at             timestamptz,
    to_at               timestamptz,
    depth               integer NOT NULL,
    reason              text NOT NULL,
    kind                text NOT NULL,
    source              text NOT NULL,
    as_of               timestamptz,
    min_overlap_minutes integer NOT NULL,
    buffer_minutes      integer NOT NULL,
    contacts            integer NOT NULL,
    at                  timestamptz NOT NULL
);
-- GET /v1/audit?from=&to=: a window of looks, oldest first.
CREATE INDEX audit_entries_at ON audit_entries (at, position);
