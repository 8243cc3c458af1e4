-- Who is inside each venue (issue 12's dashboard at city scale): for every
-- person and venue, the last pass that counts for occupancy (an exit, or an
-- entry let in: Occupancy's rule), kept by Apply with the dashboard's
-- counts. The busiest venues' occupancy at the present is then a count of
-- the rows inside within their venue's dwell (one range of presence_inside
-- over the longest dwell, for the whole city), not a scan of passes. A
-- venue with a pass later than the moment asked for (a dashboard of the
-- past) is still counted from its passes. Retiring passes deletes the rows
-- older than the cut-off: a row's pass is its pair's newest, so every pass
-- of that pair has gone too. Derived from passes, like every table here.
CREATE TABLE presence (
    venue_id  uuid NOT NULL,
    person_id uuid NOT NULL,
    at        timestamptz NOT NULL,
    position  bigint NOT NULL,
    inside    boolean NOT NULL,
    PRIMARY KEY (venue_id, person_id)
);
CREATE INDEX presence_inside ON presence (at) INCLUDE (venue_id) WHERE inside;

INSERT INTO presence (venue_id, person_id, at, position, inside)
SELECT DISTINCT ON (venue_id, person_id) venue_id, person_id, at, position, direction = 'in'
FROM passes
WHERE direction = 'out' OR (direction = 'in' AND decision = 'pass')
ORDER BY venue_id, person_id, at DESC, position DESC;
