package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// testLog is a real event store (embedded JetStream) holding a generated
// city: registrations, venues, passes, plus health records, alerts,
// verifications and sub-admin changes.
type testLog struct {
	*eventstore.Store
	gen  storetest.Log
	last uint64
}

func newTestLog(t *testing.T, passes int) *testLog {
	t.Helper()
	ctx := context.Background()
	// The generated city's passes are of 2022: a retention that keeps
	// them in the log (a message expires at its latest pass's
	// occurred_at + the retention).
	es, err := eventstore.Open(ctx, eventstore.Options{Dir: t.TempDir(), PassRetention: 20 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("open event store: %v", err)
	}
	t.Cleanup(func() { es.Close() })
	gen := storetest.Generate(200, 20, passes, 3, 42)
	envs := append([]domain.Envelope(nil), gen.Envelopes...)
	at := storetest.Base.Add(time.Hour)
	extra := func(agg string, ev domain.Event) {
		e, err := domain.NewEnvelope(agg, ev, domain.Meta{OccurredAt: at}, at)
		if err != nil {
			t.Fatal(err)
		}
		at = at.Add(time.Second)
		envs = append(envs, e)
	}
	for i, p := range gen.People[:20] {
		extra(domain.PersonAggregate(p), &domain.PersonVerified{PersonID: p, Method: "face", Result: "approved"})
		extra(domain.HealthAggregate(fmt.Sprintf("hash-42-%d", i)), &domain.HealthStatusRecorded{
			IDHash: fmt.Sprintf("hash-42-%d", i), IDType: "resident_id", CodeColour: "green", NATResult: "negative", NATAt: at, VaccineDoses: 3})
		extra(domain.AlertAggregate("371302"), &domain.AlertRaised{District: "371302", VenueID: gen.Venues[0], PersonID: p,
			PassEventID: uuid.New(), CodeColour: "yellow", Decision: "deny", Reason: "yellow code"})
		extra(domain.VenueAggregate(gen.Venues[i%len(gen.Venues)]), &domain.SubAdminAdded{VenueID: gen.Venues[i%len(gen.Venues)], PersonID: p})
		if i%2 == 0 {
			extra(domain.VenueAggregate(gen.Venues[i%len(gen.Venues)]), &domain.SubAdminRemoved{VenueID: gen.Venues[i%len(gen.Venues)], PersonID: p})
		}
	}
	tl := &testLog{Store: es, gen: gen}
	tl.record(t, envs)
	return tl
}

func (l *testLog) record(t *testing.T, envs []domain.Envelope) {
	t.Helper()
	for len(envs) > 0 {
		n := min(500, len(envs))
		res, err := l.Record(context.Background(), envs[:n]...)
		if err != nil {
			t.Fatalf("record: %v", err)
		}
		l.last = res[len(res)-1].Position
		envs = envs[n:]
	}
}

// digest returns a checksum of every read-model table in schema, rows in key
// order: two schemas with equal digests hold the same rows.
func digest(t *testing.T, schema string) map[string]string {
	t.Helper()
	tables := map[string]string{
		"persons":        "person_id",
		"venues":         "venue_id",
		"venue_admins":   "venue_id, person_id",
		"passes":         "event_id",
		"health_records": "event_id",
		"alerts":         "event_id",
		"applied_events": "event_id",
		"audit_entries":  "event_id",
		"audit_chain":    "event_id",
		// The dashboard's counts: a crash mid-batch must not count twice.
		"dashboard_hours":  "hour, district, venue_type",
		"dashboard_held":   "district, day",
		"dashboard_venues": "venue_id",
		"presence":         "venue_id, person_id",
	}
	out := map[string]string{}
	for table, key := range tables {
		var sum string
		var n int64
		err := testPool.QueryRow(context.Background(), fmt.Sprintf(
			`SELECT count(*), COALESCE(md5(string_agg(t::text, '|' ORDER BY %s)), '') FROM %s.%s t`, key, schema, table)).Scan(&n, &sum)
		if err != nil {
			t.Fatalf("digest %s.%s: %v", schema, table, err)
		}
		out[table] = fmt.Sprintf("%d rows %s", n, sum)
	}
	var pos int64
	if err := testPool.QueryRow(context.Background(), `SELECT position FROM `+schema+`.projection_positions`).Scan(&pos); err != nil {
		t.Fatalf("position of %s: %v", schema, err)
	}
	out["position"] = fmt.Sprint(pos)
	return out
}

func sameTables(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %s, want %s (as a clean rebuild)", k, got[k], w)
		}
	}
}

// cleanBuild rebuilds the read models from the log into a new schema.
func cleanBuild(t *testing.T, l *testLog) string {
	t.Helper()
	schema := freshSchema(t)
	pos, err := postgres.Rebuild(context.Background(), l, postgres.RebuildOptions{
		Pool: testPool, Schema: schema, Opener: projections.KeyringOpener(l.gen.Keys),
	})
	if err != nil {
		t.Fatalf("clean rebuild: %v", err)
	}
	if pos < l.last {
		t.Fatalf("clean rebuild reached %d, log at %d", pos, l.last)
	}
	return schema
}

// interrupting wraps a writer and, on the applies it chooses, cancels the
// projector's context a moment after the apply starts: the process dies
// somewhere inside the batch (before, during or after COPY, or at commit).
type interrupting struct {
	projections.Writer
	rnd      *rand.Rand
	cancel   context.CancelFunc
	applies  atomic.Int64
	failures atomic.Int64
}

func (w *interrupting) Apply(ctx context.Context, b projections.Batch) (projections.Checkpoint, error) {
	n := w.applies.Add(1)
	if n%3 == 0 {
		time.AfterFunc(time.Duration(w.rnd.IntN(4000))*time.Microsecond, w.cancel)
	}
	cp, err := w.Writer.Apply(ctx, b)
	if err != nil {
		w.failures.Add(1)
	}
	return cp, err
}

func TestProjectorKilledMidBatchMatchesCleanRebuild(t *testing.T) {
	needDB(t)
	l := newTestLog(t, 30_000)
	want := digest(t, cleanBuild(t, l))

	store := openStore(t)
	w := &interrupting{Writer: store, rnd: rand.New(rand.NewPCG(1, 2))}
	restarts := 0
	for {
		cp, err := store.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cp.Position >= l.last {
			break
		}
		if restarts > 500 {
			t.Fatalf("no progress after %d restarts (at %d of %d)", restarts, cp.Position, l.last)
		}
		// A new process: a new projector on the same tables.
		ctx, cancel := context.WithCancel(context.Background())
		w.cancel = cancel
		p := projections.New(l, w, projections.Options{Opener: projections.KeyringOpener(l.gen.Keys), MaxBatch: 2000})
		go func() {
			// Caught up: stop this process too.
			if p.WaitFor(ctx, l.last) == nil {
				cancel()
			}
		}()
		err = p.Run(ctx)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("projector: %v", err)
		}
		restarts++
	}
	if w.failures.Load() == 0 {
		t.Fatal("no apply was interrupted: the test did not test anything")
	}
	t.Logf("%d restarts, %d applies interrupted", restarts, w.failures.Load())
	sameTables(t, digest(t, store.Schema()), want)
}

func TestConnectionsKilledDuringProjection(t *testing.T) {
	needDB(t)
	l := newTestLog(t, 30_000)
	want := digest(t, cleanBuild(t, l))

	cfg, err := pgxpool.ParseConfig(testURL)
	if err != nil {
		t.Fatal(err)
	}
	app := "victim_" + uuid.NewString()[:8]
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := openWith(t, postgres.Options{Pool: pool})
	schema := store.Schema()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := projections.New(l, store, projections.Options{
		Opener: projections.KeyringOpener(l.gen.Keys), MaxBatch: 2000,
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	})
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(ctx) }()

	// From another connection, terminate the projector's backends while it
	// works, as a database restart would.
	var killed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for kills := 0; kills < 20 && p.Position() < l.last && ctx.Err() == nil; kills++ {
			var n int64
			_ = testPool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name = $1 AND state <> 'idle'`, app).Scan(&n)
			killed.Add(n)
			time.Sleep(time.Duration(20+rand.IntN(100)) * time.Millisecond)
		}
	})
	waitCtx, waitCancel := context.WithTimeout(ctx, 2*time.Minute)
	defer waitCancel()
	if err := p.WaitFor(waitCtx, l.last); err != nil {
		t.Fatalf("projection did not resume: %v (at %d)", err, p.Position())
	}
	wg.Wait()
	cancel()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("projector: %v", err)
	}
	if killed.Load() == 0 {
		t.Fatal("no backend was terminated: the test did not test anything")
	}
	t.Logf("%d backends terminated", killed.Load())
	sameTables(t, digest(t, schema), want)
}

// TestRebuildSwapsUnderReadersAndLiveProjector rebuilds the live schema
// while a projector keeps writing to it and readers keep reading it.
func TestRebuildSwapsUnderReadersAndLiveProjector(t *testing.T) {
	needDB(t)
	l := newTestLog(t, 10_000)
	store := openWith(t, postgres.Options{})
	live := store.Schema()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := projections.KeyringOpener(l.gen.Keys)
	p := projections.New(l, store, projections.Options{Opener: open, RetryMin: 10 * time.Millisecond})
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(ctx) }()
	if err := p.WaitFor(ctx, l.last); err != nil {
		t.Fatal(err)
	}

	var reads, readErrs atomic.Int64
	var wg sync.WaitGroup
	readCtx, stopReads := context.WithCancel(ctx)
	for range 2 {
		wg.Go(func() {
			for readCtx.Err() == nil {
				es, err := store.Entries(readCtx, domain.EntryQuery{VenueID: l.gen.Venues[0], Limit: 20})
				if err != nil && readCtx.Err() == nil {
					readErrs.Add(1)
					t.Errorf("read during rebuild: %v", err)
					return
				}
				if err == nil && len(es) == 0 {
					t.Errorf("read during rebuild: empty entry list")
					return
				}
				reads.Add(1)
			}
		})
	}
	// More events arrive while the rebuild runs.
	more := storetest.Generate(200, 20, 2_000, 1, 42).Envelopes
	var fresh []domain.Envelope
	for _, e := range more {
		if e.Type == domain.TypePassRecorded {
			e.ID = uuid.New()
			fresh = append(fresh, e)
		}
	}
	var calls atomic.Int64
	rebuilt, err := postgres.Rebuild(ctx, l, postgres.RebuildOptions{
		Pool: testPool, Schema: live, Opener: open, Interval: time.Millisecond,
		Progress: func(done, total uint64) {
			if calls.Add(1) == 2 {
				l.record(t, fresh)
			}
		},
	})
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if calls.Load() < 2 {
		t.Fatalf("progress called %d times", calls.Load())
	}
	// The live projector carries on in the new tables up to the log's end.
	waitCtx, waitCancel := context.WithTimeout(ctx, time.Minute)
	defer waitCancel()
	for {
		cp, err := store.Checkpoint(waitCtx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Position >= l.last {
			break
		}
		if waitCtx.Err() != nil {
			t.Fatalf("live projector stuck at %d of %d after the swap", cp.Position, l.last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopReads()
	wg.Wait()
	cancel()
	<-runErr
	if reads.Load() == 0 || readErrs.Load() > 0 {
		t.Fatalf("reads %d, errors %d", reads.Load(), readErrs.Load())
	}
	t.Logf("rebuilt to %d, %d reads during the rebuild", rebuilt, reads.Load())
	sameTables(t, digest(t, live), digest(t, cleanBuild(t, l)))

	st, err := store.Status(context.Background(), l)
	if err != nil || len(st) != 1 || st[0].Position != l.last || st[0].LagEvents != 0 {
		t.Fatalf("status: %+v %v", st, err)
	}
}
