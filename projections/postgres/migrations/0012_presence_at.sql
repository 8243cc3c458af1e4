-- Retention (issue 11): a presence row is its pair's newest pass, and goes
-- once that pass expires. Every sweep of the retirement (a minute apart)
-- deletes the rows older than its cut-off; presence_inside holds only the
-- rows of people inside, so that delete read the whole table each time
-- (at a city's day of 714,000 passes, 300-500 ms a sweep). New times are
-- the newest, so this index is written at its right edge.
CREATE INDEX presence_at ON presence (at);
