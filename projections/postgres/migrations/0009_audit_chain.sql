-- The audit chain (issue 11): every AuditRecorded entry with its chain
-- fields, keyed by event id so that an entry appended twice under one id is
-- listed once. GET /v1/audit lists it in chain order (seq), filtered by
-- person, kind or actor.
CREATE TABLE audit_chain (
    event_id        uuid PRIMARY KEY,
    position        bigint NOT NULL,
    seq             bigint NOT NULL,
    prev_hash       text NOT NULL,
    hash            text NOT NULL,
    kind            text NOT NULL,
    actor           text NOT NULL,
    role            text NOT NULL,
    person_id       uuid,
    venue_id        uuid,
    declaration_id  uuid,
    outcome         text NOT NULL,
    reason          text NOT NULL,
    from_at         timestamptz,
    to_at           timestamptz,
    depth           integer NOT NULL,
    source_event_id uuid NOT NULL,
    source_type     text NOT NULL,
    at              timestamptz NOT NULL
);
CREATE INDEX audit_chain_seq ON audit_chain (seq);
CREATE INDEX audit_chain_person ON audit_chain (person_id, seq) WHERE person_id IS NOT NULL;
CREATE INDEX audit_chain_kind ON audit_chain (kind, seq);
