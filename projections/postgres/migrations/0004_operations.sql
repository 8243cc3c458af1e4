-- Which log the tables follow (projections.LogBinder): the event store's
-- stream name and creation time, recorded by the first projector that
-- applies to them. A store of another log is refused.
ALTER TABLE projection_positions ADD COLUMN log_id text;

-- Events the store could not hold (projections.Parker): the projection
-- moved past them; the log still has them, and a rebuild applies them again.
CREATE TABLE parked_events (
    event_id   uuid PRIMARY KEY,
    name       text NOT NULL,
    position   bigint NOT NULL,
    type       text NOT NULL,
    aggregate  text NOT NULL,
    reason     text NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_events_position ON parked_events (name, position);
