-- The audit chain's entry of a source event (issue 11): RecordAudit looks a
-- redelivered source up here before it appends, so that a source that comes
-- again after the event store's duplicate window, and not as the chain's
-- head, gets no second entry.
CREATE INDEX audit_chain_source ON audit_chain (source_event_id);
