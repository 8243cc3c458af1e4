package http

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/internal/pgtest"
	"github.com/checkin-ledger/ledger/projections/postgres"
)

// TestMain stops the throwaway PostgreSQL the outage tests may start.
func TestMain(m *testing.M) { pgtest.Main(m) }

// pgStore opens an empty PostgreSQL read-model store in a schema of its own
// on a pool of one connection that the test owns, on the tests' database
// (internal/pgtest: it skips without one, and fails in CI).
func pgStore(t *testing.T) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.Need(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	schema := "outage_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	s, err := postgres.Open(ctx, postgres.Options{Pool: pool, Schema: schema})
	if err != nil {
		pool.Close()
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() {
		if c, err := pgxpool.New(ctx, url); err == nil {
			c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close()
		}
		pool.Close()
	})
	return s, pool
}

// TestReadModelOutageIs503: when PostgreSQL cannot be reached, every read
// answers 503 unavailable with Retry-After, never 500.
func TestReadModelOutageIs503(t *testing.T) {
	reads := []struct{ name, path string }{
		{"venues", "/v1/venues"},
		{"alerts", "/v1/alerts?district=371302"},
		{"venue", "/v1/venues/" + uuid.NewString()},
		{"declarations", "/v1/declarations"},
	}
	outages := []struct {
		name   string
		break_ func(t *testing.T, pool *pgxpool.Pool)
	}{
		{"pool closed", func(t *testing.T, pool *pgxpool.Pool) { pool.Close() }},
		{"connection killed", func(t *testing.T, pool *pgxpool.Pool) {
			var pid int
			if err := pool.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			admin, err := pgxpool.New(context.Background(), pgtest.Need(t))
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			var ok bool
			if err := admin.QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
				t.Fatalf("pg_terminate_backend: %v %v", ok, err)
			}
		}},
	}
	for _, o := range outages {
		for _, rd := range reads {
			t.Run(o.name+" "+rd.name, func(t *testing.T) {
				store, pool := pgStore(t)
				e := newTestServer(t, func(opts *Options) { opts.Reads = store; opts.Waiter = nil })
				tok := e.bearer(domain.Actor{Role: domain.RoleAdmin})
				wantStatus(t, e.do("GET", "/v1/venues", tok, nil), http.StatusOK) // up before
				o.break_(t, pool)
				rec := e.do("GET", rd.path, tok, nil)
				wantProblem(t, rec, http.StatusServiceUnavailable, ProblemUnavailable)
				if got := rec.Header().Get("Retry-After"); got == "" {
					t.Fatalf("no Retry-After: %v", rec.Header())
				}
			})
		}
	}
}

// TestStoreDeadlineIs503: a store that does not answer before its deadline
// is an outage too.
func TestStoreDeadlineIs503(t *testing.T) {
	store, _ := pgStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond) // let the deadline pass: the point of the test
	_, err := store.Venues(ctx, domain.VenueFilter{Limit: 1})
	if p, _ := problemFor(err); p.Status != http.StatusServiceUnavailable || p.RetryAfter == 0 {
		t.Fatalf("problem for %v = %+v, want 503 with Retry-After", err, p)
	}
}
