-- Declarations (arrival declarations and truck passes) and their review
-- queue. One row per declaration, changed by its submission, its joining the
-- district's review queue and its review; one row per event of its history,
-- keyed by event id. Redelivered events are caught by applied_events.

CREATE TABLE declarations (
    declaration_id     uuid PRIMARY KEY,
    kind               text NOT NULL DEFAULT '',
    person_id          uuid,
    family_member_ids  uuid[] NOT NULL DEFAULT '{}',
    district           text NOT NULL DEFAULT '',
    status             text NOT NULL DEFAULT '',
    reason             text NOT NULL DEFAULT '',
    queued             boolean NOT NULL DEFAULT false,
    submitted_at       timestamptz,
    queued_at          timestamptz,
    queue_position     bigint NOT NULL DEFAULT 0,
    reviewed_at        timestamptz,
    -- arrival declaration
    arrival_date       text NOT NULL DEFAULT '',
    origin             text NOT NULL DEFAULT '',
    nat_result         text NOT NULL DEFAULT '',
    nat_at             timestamptz,
    -- truck pass; the contact is masked
    plate_number       text NOT NULL DEFAULT '',
    nat_proof_at       timestamptz,
    itinerary_ok       boolean NOT NULL DEFAULT false,
    health_code_colour text NOT NULL DEFAULT '',
    logistics_park     text NOT NULL DEFAULT '',
    contact_name       text NOT NULL DEFAULT '',
    contact_phone      text NOT NULL DEFAULT ''
);
-- The review queue: a district's queued declarations by status, first come
-- first served.
CREATE INDEX declarations_queue ON declarations (district, status, queue_position) WHERE queued;
CREATE INDEX declarations_queue_all ON declarations (queue_position) WHERE queued;

CREATE TABLE declaration_steps (
    event_id       uuid PRIMARY KEY,
    declaration_id uuid NOT NULL,
    position       bigint NOT NULL,
    type           text NOT NULL,
    at             timestamptz NOT NULL,
    actor          text NOT NULL DEFAULT '',
    decision       text NOT NULL DEFAULT '',
    reason         text NOT NULL DEFAULT ''
);
CREATE INDEX declaration_steps_by_declaration ON declaration_steps (declaration_id, position);
