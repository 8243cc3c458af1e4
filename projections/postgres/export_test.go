package postgres

import "context"

// MigrateUpTo is migrateUpTo, for the tests of a migration over a database
// an older build left.
var MigrateUpTo = migrateUpTo

// PartitionDayOf is partitionDayOf.
var PartitionDayOf = partitionDayOf

// SkipStays makes Apply leave the stays table alone (a benchmark's bulk
// load, followed by BuildStays): the tables are then not a read model
// until BuildStays.
func SkipStays(s *Store, skip bool) { s.skipStays = skip }

// BuildStays builds every stay from the passes, as Open does for tables
// built under other rules.
func BuildStays(ctx context.Context, s *Store) error {
	if _, err := s.pool.Exec(ctx, s.sql(`UPDATE {s}.stay_state SET rules = ''`)); err != nil {
		return err
	}
	return s.rebuildStays(ctx)
}
