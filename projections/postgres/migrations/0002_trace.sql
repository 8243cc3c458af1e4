-- Contact tracing (issue 4).

-- When the ledger appended each pass, so a trace can be answered as of a
-- past moment (passes recorded after it are left out). Rows projected
-- before this migration have none (NULL, kept by every as_of) until the
-- read models are rebuilt. The as_of condition filters rows already found
-- through passes_venue_at or passes_person_at: it needs no index of its own.
ALTER TABLE passes ADD COLUMN recorded_at timestamptz;

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
