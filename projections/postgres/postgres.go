// Package postgres is the PostgreSQL read-model store (pgx v5).
//
// All tables of a store live in one schema (default "ledger"), created and
// migrated at Open from the numbered files in migrations/. Apply writes a
// batch and the projection's position in one transaction, with passes loaded
// by COPY, so a crash can neither skip nor double-apply an event. Rebuild
// replays the log into a fresh schema and swaps it in by renaming schemas
// in one transaction while readers keep reading the old tables.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DefaultSchema is the schema the read models live in.
const DefaultSchema = "ledger"

// Options configure Open. Give Pool or URL.
type Options struct {
	// Pool is used as is and not closed by Close.
	Pool *pgxpool.Pool
	// URL opens a pool owned by the store (closed by Close).
	URL string
	// Schema holds the store's tables (DefaultSchema if empty). A name of
	// lower-case letters, digits and underscores.
	Schema string
	// Name is the projection's row in projection_positions
	// (projections.DefaultName if empty).
	Name string
	// Stays are the rules the stays table is built under: give the
	// ledger's (a trace under other rules reads passes instead). Open
	// builds the stays again from the passes when the tables' were built
	// under others. nil: the rules the tables record (the defaults for
	// tables that record none), and no stays built: for the commands that
	// only look (status) or copy the rules (rebuild's source).
	Stays *domain.StayRules
}

// Store is the PostgreSQL read-model store. It implements projections.Store.
type Store struct {
	pool   *pgxpool.Pool
	owned  bool
	schema string
	name   string
	q      queries
	// rules build the stays table; rulesKey is their String.
	rules    domain.StayRules
	rulesKey string
	// skipStays: Apply keeps no stays (opened without rules on tables
	// that record none; benchmarks' bulk loads, export_test.go).
	skipStays bool
	// staysSwept: a retirement of this Store committed, whose stays delete
	// ran from the start of the index (see RetirePasses).
	staysSwept atomic.Bool
}

var _ projections.Store = (*Store)(nil)

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects, creates the schema when missing, applies the migrations not
// yet applied, and makes sure the projection's position row exists.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if o.Name == "" {
		o.Name = projections.DefaultName
	}
	if !identRE.MatchString(o.Schema) {
		return nil, fmt.Errorf("open read models: schema %q: %w", o.Schema, errInvalidSchema)
	}
	s := &Store{pool: o.Pool, schema: o.Schema, name: o.Name}
	if s.pool == nil {
		if o.URL == "" {
			return nil, errors.New("open read models: postgres: neither Pool nor URL given")
		}
		pool, err := pgxpool.New(ctx, o.URL)
		if err != nil {
			return nil, fmt.Errorf("open read models: %w", err)
		}
		s.pool, s.owned = pool, true
	}
	if err := Migrate(ctx, s.pool, s.schema); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO `+s.schema+`.projection_positions (name) VALUES ($1) ON CONFLICT DO NOTHING`, s.name); err != nil {
		s.Close()
		return nil, fmt.Errorf("open read models: position row: %w", err)
	}
	s.q = newQueries(s.schema)
	if err := s.ensureStays(ctx, o.Stays); err != nil {
		s.Close()
		return nil, fmt.Errorf("open read models: %w", err)
	}
	return s, nil
}

var errInvalidSchema = errors.New("postgres: schema must be lower-case letters, digits and underscores")

// Close closes the pool when the store opened it.
func (s *Store) Close() {
	if s.owned {
		s.pool.Close()
	}
}

// Pool returns the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema returns the schema the store's tables live in.
func (s *Store) Schema() string { return s.schema }

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

// Migrate creates schema when missing and applies, in order and each in its
// own transaction, the embedded migrations it has not recorded in its
// schema_migrations table. Concurrent callers (two replicas starting) are
// serialised by an advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	return migrateUpTo(ctx, pool, schema, int(^uint(0)>>1))
}

// migrateUpTo is Migrate up to and including migration version last (the
// tests build a database as an older build left it).
func migrateUpTo(ctx context.Context, pool *pgxpool.Pool, schema string, last int) error {
	if !identRE.MatchString(schema) {
		return fmt.Errorf("migrate %q: %w", schema, errInvalidSchema)
	}
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	for _, m := range ms {
		if m.version > last {
			break
		}
		if err := applyMigration(ctx, pool, schema, m); err != nil {
			return fmt.Errorf("migrate %s: %s: %w", schema, m.name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, pool *pgxpool.Pool, schema string, m migration) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('ledger-migrate:' || $1))`, schema); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+schema+`.schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	var done bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+schema+`.schema_migrations WHERE version = $1)`, m.version).Scan(&done); err != nil {
		return err
	}
	if done {
		return nil
	}
	if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+schema); err != nil {
		return err
	}
	// Simple protocol: a migration file holds several statements.
	if _, err := tx.Exec(ctx, m.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Checkpoint implements projections.Writer.
func (s *Store) Checkpoint(ctx context.Context) (projections.Checkpoint, error) {
	var (
		pos int64
		rec *time.Time
	)
	err := s.pool.QueryRow(ctx, s.q.checkpoint, s.name).Scan(&pos, &rec)
	if err != nil {
		return projections.Checkpoint{}, fmt.Errorf("read position of %s: %w", s.name, err)
	}
	cp := projections.Checkpoint{Position: uint64(pos)}
	if rec != nil {
		cp.RecordedAt = rec.UTC()
	}
	return cp, nil
}

// Position implements ledger.ReadModel.
func (s *Store) Position(ctx context.Context) (uint64, error) {
	cp, err := s.Checkpoint(ctx)
	if err != nil {
		return 0, readErr("%w", err) // an outage wraps ledger.ErrUnavailable
	}
	return cp.Position, nil
}
