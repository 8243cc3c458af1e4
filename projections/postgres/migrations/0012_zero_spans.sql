-- A venue whose stays all had no length (an entry and an exit at one
-- instant) got no stay_spans row (issue 11, found by an outside tester):
-- StaysMeeting skipped its windows and retirement never deleted its stays.
-- Apply now gives such a venue a span of 0; this gives the venues already
-- kept without one theirs. Reads stays once, with its venue index.
INSERT INTO stay_spans (venue_id, longest)
SELECT venue_id, max(end_at - start_at) FROM stays
WHERE venue_id NOT IN (SELECT venue_id FROM stay_spans)
GROUP BY venue_id;
