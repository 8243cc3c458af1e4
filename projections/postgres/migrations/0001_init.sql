-- Read models of the check-in ledger. Every statement runs with search_path
-- set to the store's schema, so the same files build the live schema and a
-- rebuild's fresh one.

-- The position each projection has applied, written in the same
-- transaction as the rows it reflects.
CREATE TABLE projection_positions (
    name             text PRIMARY KEY,
    position         bigint NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_recorded_at timestamptz
);

-- Ids of the non-pass events applied (registrations, reviews, sub-admin
-- changes), so that one appended again after JetStream's duplicate window
-- changes nothing. Passes, health records and alerts are keyed by event id
-- in their own tables.
CREATE TABLE applied_events (
    event_id uuid PRIMARY KEY,
    position bigint NOT NULL
);

CREATE TABLE persons (
    person_id       uuid PRIMARY KEY,
    registered      boolean NOT NULL DEFAULT false,
    name_masked     text NOT NULL DEFAULT '',
    id_type         text NOT NULL DEFAULT '',
    id_masked       text NOT NULL DEFAULT '',
    id_hash         text NOT NULL DEFAULT '',
    verification    text NOT NULL DEFAULT '',
    guardian_id     uuid,
    relation        text NOT NULL DEFAULT '',
    registered_at   timestamptz,
    reg_position    bigint NOT NULL DEFAULT 0,
    position        bigint NOT NULL DEFAULT 0
);
CREATE INDEX persons_id_hash ON persons (id_hash) WHERE id_hash <> '';
CREATE INDEX persons_guardian ON persons (guardian_id, reg_position) WHERE guardian_id IS NOT NULL;

CREATE TABLE venues (
    venue_id         uuid PRIMARY KEY,
    name             text NOT NULL,
    type             text NOT NULL,
    district         text NOT NULL,
    address          text NOT NULL,
    lat              double precision NOT NULL,
    lng              double precision NOT NULL,
    status           text NOT NULL,
    reason           text NOT NULL DEFAULT '',
    manager_id       uuid NOT NULL,
    require_green    boolean NOT NULL,
    nat_within_hours integer NOT NULL,
    applied_at       timestamptz NOT NULL,
    reviewed_at      timestamptz,
    applied_position bigint NOT NULL
);
-- The review queue: a district's pending venues, first come first served.
CREATE INDEX venues_queue ON venues (district, status, applied_position);

CREATE TABLE venue_admins (
    venue_id  uuid NOT NULL,
    person_id uuid NOT NULL,
    position  bigint NOT NULL,
    PRIMARY KEY (venue_id, person_id)
);

-- One row per pass. "at" is the device's occurred_at. The s_* columns are
-- the "one screen" shown at the pass, kept so that a retry older than the
-- duplicate window gets the original answer.
CREATE TABLE passes (
    event_id     uuid PRIMARY KEY,
    position     bigint NOT NULL,
    venue_id     uuid NOT NULL,
    person_id    uuid NOT NULL,
    at           timestamptz NOT NULL,
    direction    text NOT NULL,
    method       text NOT NULL,
    decision     text NOT NULL,
    reason       text NOT NULL,
    operator     text NOT NULL,
    guardian_id  uuid,
    s_name       text NOT NULL,
    s_colour     text NOT NULL,
    s_nat_result text NOT NULL,
    s_nat_at     timestamptz,
    s_doses      integer NOT NULL,
    s_venue_id   uuid,
    s_venue_name text NOT NULL,
    s_at         timestamptz,
    s_direction  text NOT NULL,
    s_decision   text NOT NULL,
    s_reason     text NOT NULL
);
-- A venue's entry list, newest first, with keyset paging on (at, position);
-- also a venue's passes in a window (co-presence for tracing).
CREATE INDEX passes_venue_at ON passes (venue_id, at, position);
-- A person's trace in a window.
CREATE INDEX passes_person_at ON passes (person_id, at, position);

CREATE TABLE health_records (
    event_id      uuid PRIMARY KEY,
    position      bigint NOT NULL,
    id_hash       text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    code_colour   text NOT NULL,
    nat_result    text NOT NULL,
    nat_at        timestamptz,
    vaccine_doses integer NOT NULL
);
CREATE INDEX health_latest ON health_records (id_hash, occurred_at, position);
CREATE INDEX health_nat ON health_records (id_hash, nat_at, position) WHERE nat_at IS NOT NULL;

CREATE TABLE alerts (
    event_id      uuid PRIMARY KEY,
    position      bigint NOT NULL,
    district      text NOT NULL,
    venue_id      uuid NOT NULL,
    person_id     uuid NOT NULL,
    pass_event_id uuid NOT NULL,
    code_colour   text NOT NULL,
    decision      text NOT NULL,
    reason        text NOT NULL,
    at            timestamptz NOT NULL
);
-- A district's alerts, newest first.
CREATE INDEX alerts_district_at ON alerts (district, at, position);
