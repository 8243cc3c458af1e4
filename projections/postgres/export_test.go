package postgres

// MigrateUpTo is migrateUpTo, for the tests of a migration over a database
// an older build left.
var MigrateUpTo = migrateUpTo
