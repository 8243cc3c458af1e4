-- Erasure (PersonErased): an erased person's row keeps their id with blank
-- masks and no document hash; erased says so.
ALTER TABLE persons ADD COLUMN erased boolean NOT NULL DEFAULT false;
-- A person's declarations, blanked at their erasure.
CREATE INDEX declarations_person ON declarations (person_id);
