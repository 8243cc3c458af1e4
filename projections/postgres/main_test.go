package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/internal/pgtest"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// testURL is the database the tests use (internal/pgtest: DATABASE_URL, or
// a throwaway cluster started from the machine's initdb and postgres); ""
// when neither exists.
var (
	testURL  string
	testPool *pgxpool.Pool
	noDBWhy  string
)

func TestMain(m *testing.M) {
	testURL, noDBWhy = pgtest.URL()
	if testURL != "" {
		pool, err := pgxpool.New(context.Background(), testURL)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = pool.Ping(ctx)
			cancel()
			if err != nil {
				pool.Close()
			}
		}
		if err != nil {
			noDBWhy = err.Error()
			testURL = ""
		} else {
			testPool = pool
		}
	}
	code := m.Run()
	if testPool != nil {
		dropBenchSchema()
		testPool.Close()
	}
	pgtest.Stop()
	os.Exit(code)
}

// needDB skips the test when there is no PostgreSQL, except under CI=true.
func needDB(tb testing.TB) {
	tb.Helper()
	if testURL == "" {
		pgtest.Missing(tb, noDBWhy)
	}
}

// freshSchema returns a new schema name, dropped when the test ends.
func freshSchema(tb testing.TB) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		_, _ = testPool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	})
	return schema
}

// openStore opens a store keeping the trace city's stays in a fresh schema
// of the test database.
func openStore(tb testing.TB) *postgres.Store {
	tb.Helper()
	return openWith(tb, postgres.Options{Stays: &storetest.TraceCityRules})
}

// openWith opens a store with o on the test database: o.Pool nil is the
// test pool, o.Schema "" a fresh schema.
func openWith(tb testing.TB, o postgres.Options) *postgres.Store {
	tb.Helper()
	needDB(tb)
	if o.Pool == nil {
		o.Pool = testPool
	}
	if o.Schema == "" {
		o.Schema = freshSchema(tb)
	}
	s, err := postgres.Open(context.Background(), o)
	if err != nil {
		tb.Fatalf("open store in %s: %v", o.Schema, err)
	}
	return s
}
