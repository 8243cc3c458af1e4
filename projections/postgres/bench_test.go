package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/jackc/pgx/v5"
)

const (
	benchPasses = 1_000_000
	benchPeople = 20_000
	benchVenues = 1_000
	benchDays   = 14
)

var (
	benchOnce sync.Once
	benchLog  storetest.Log
	benchData []projections.Batch
)

// benchBatches returns the generated city as decoded batches of 5,000
// events (decoding is not what these benchmarks measure).
func benchBatches(b *testing.B) (storetest.Log, []projections.Batch) {
	b.Helper()
	benchOnce.Do(func() {
		benchLog = storetest.Generate(benchPeople, benchVenues, benchPasses, benchDays, 3)
		err := storetest.Batches(context.Background(), benchLog.Envelopes, projections.KeyringOpener(benchLog.Keys), 0, 5000,
			func(b projections.Batch) error {
				benchData = append(benchData, b)
				return nil
			})
		if err != nil {
			panic(err)
		}
	})
	return benchLog, benchData
}

func applyAll(b *testing.B, s *postgres.Store, batches []projections.Batch) {
	b.Helper()
	for _, bt := range batches {
		if _, err := s.Apply(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPostgresApply projects 1,000,000 passes (and 20,000
// registrations, 1,000 venues) into fresh tables, 5,000 events per
// transaction, and in the same run COPYs the same pass rows into a table of
// the same shape and indexes, one COPY per 5,000 rows: the raw baseline.
func BenchmarkPostgresApply(b *testing.B) {
	needDB(b)
	l, batches := benchBatches(b)
	events := len(l.Envelopes)
	ctx := context.Background()
	var storeTime, rawTime time.Duration
	for b.Loop() {
		b.StopTimer()
		s, err := postgres.Open(ctx, postgres.Options{Pool: testPool, Schema: freshSchema(b), Stays: &domain.StayRules{}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		applyAll(b, s, batches)
		storeTime += time.Since(start)

		b.StopTimer()
		rawTime += rawCopy(b, batches)
		b.StartTimer()
	}
	storeRate := float64(events) * float64(b.N) / storeTime.Seconds()
	rawRate := float64(benchPasses) * float64(b.N) / rawTime.Seconds()
	b.ReportMetric(storeRate, "events/s")
	b.ReportMetric(rawRate, "raw-copy-rows/s")
	b.ReportMetric(storeRate/rawRate, "ratio")
}

// rawCopy COPYs the batches' passes into a bare passes table (same columns
// and indexes, nothing else) and returns the time it took.
func rawCopy(b *testing.B, batches []projections.Batch) time.Duration {
	b.Helper()
	ctx := context.Background()
	schema := freshSchema(b)
	if err := postgres.Migrate(ctx, testPool, schema); err != nil {
		b.Fatal(err)
	}
	createDayPartitions(b, schema, "passes", batches)
	var rows [][][]any
	for _, bt := range batches {
		var rs [][]any
		for _, c := range bt.Changes {
			ev, ok := c.Event.(*domain.PassRecorded)
			if !ok {
				continue
			}
			sc := ev.Screen
			rs = append(rs, []any{c.EventID, int64(c.Position), ev.VenueID, ev.PersonID, c.OccurredAt, ev.Direction,
				ev.Method, ev.Decision, ev.Reason, ev.Operator, nil, sc.NameMasked, sc.CodeColour, sc.NATResult,
				sc.NATAt, int32(sc.VaccineDoses), sc.VenueID, sc.VenueName, sc.At, sc.Direction, sc.Decision, sc.Reason})
		}
		rows = append(rows, rs)
	}
	cols := []string{"event_id", "position", "venue_id", "person_id", "at", "direction", "method",
		"decision", "reason", "operator", "guardian_id", "s_name", "s_colour", "s_nat_result", "s_nat_at",
		"s_doses", "s_venue_id", "s_venue_name", "s_at", "s_direction", "s_decision", "s_reason"}
	start := time.Now()
	for _, rs := range rows {
		if len(rs) == 0 {
			continue
		}
		if _, err := testPool.CopyFrom(ctx, pgx.Identifier{schema, "passes"}, cols, pgx.CopyFromRows(rs)); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

var (
	queryOnce   sync.Once
	queryStore  *postgres.Store
	queryErr    error
	querySchema = fmt.Sprintf("bench_passes_%d", time.Now().UnixNano())
)

// dropBenchSchema drops the query benchmarks' tables (called by TestMain).
func dropBenchSchema() {
	if queryStore != nil {
		_, _ = testPool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+querySchema+" CASCADE")
	}
}

// loadedStore returns a store holding the generated 1,000,000 passes,
// loaded once per test binary and dropped when it exits.
func loadedStore(b *testing.B) *postgres.Store {
	b.Helper()
	needDB(b)
	queryOnce.Do(func() {
		ctx := context.Background()
		l, batches := benchBatches(b)
		queryStore, queryErr = postgres.Open(ctx, postgres.Options{Pool: testPool, Schema: querySchema})
		if queryErr != nil {
			return
		}
		cp, err := queryStore.Checkpoint(ctx)
		if err != nil {
			queryErr = err
			return
		}
		if want := l.Envelopes[len(l.Envelopes)-1].Position; cp.Position != want {
			if cp.Position != 0 {
				_, _ = testPool.Exec(ctx, "DROP SCHEMA "+querySchema+" CASCADE")
				if queryStore, queryErr = postgres.Open(ctx, postgres.Options{Pool: testPool, Schema: querySchema}); queryErr != nil {
					return
				}
			}
			for _, bt := range batches {
				if _, err := queryStore.Apply(ctx, bt); err != nil {
					queryErr = err
					return
				}
			}
			// The dashboard's small tables are rewritten by every batch;
			// autovacuum keeps them compact in a running service.
			if _, queryErr = testPool.Exec(ctx, "VACUUM "+querySchema+".dashboard_venues, "+querySchema+".presence"); queryErr != nil {
				return
			}
			_, queryErr = testPool.Exec(ctx, "ANALYZE")
		}
	})
	if queryErr != nil {
		b.Fatal(queryErr)
	}
	return queryStore
}

// latencies runs fn b.N times and reports p50, p99 and max in milliseconds.
func latencies(b *testing.B, fn func(r *rand.Rand) error) {
	r := rand.New(rand.NewPCG(9, 9))
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := fn(r); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	pct := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(float64(len(ds))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkPostgresEntriesFirstPage reads the newest 50 entries of a random
// venue among 1,000 holding 1,000,000 passes.
func BenchmarkPostgresEntriesFirstPage(b *testing.B) {
	s := loadedStore(b)
	l, _ := benchBatches(b)
	ctx := context.Background()
	latencies(b, func(r *rand.Rand) error {
		es, err := s.Entries(ctx, domain.EntryQuery{VenueID: l.Venues[r.IntN(len(l.Venues))], Limit: 50})
		if err == nil && len(es) != 50 {
			err = fmt.Errorf("first page has %d entries", len(es))
		}
		return err
	})
}

// BenchmarkPostgresTrace14d reads a random person's 14-day trace (about 50
// visits) among 20,000 people and 1,000,000 passes.
func BenchmarkPostgresTrace14d(b *testing.B) {
	s := loadedStore(b)
	l, _ := benchBatches(b)
	ctx := context.Background()
	from := storetest.Base
	to := from.Add(14 * 24 * time.Hour)
	latencies(b, func(r *rand.Rand) error {
		vs, err := s.Trace(ctx, l.People[r.IntN(len(l.People))], from, to)
		if err == nil && len(vs) == 0 {
			err = fmt.Errorf("empty trace")
		}
		return err
	})
}

var (
	vacuumOnce sync.Once
	vacuumErr  error
)

// benchTrace runs Ledger.Trace end to end on the 1,000,000 passes of the
// query benchmarks (20,000 people, 1,000 venues, 14 days): validation, the
// index person's lookup, the window reads, the stays and overlaps, the
// names and venues, and the TraceRequested audit event appended to an
// embedded JetStream (fsync before every acknowledgement) before the answer.
// Each iteration traces a random person over the whole 14 days with a
// 15-minute minimum overlap and a 5-minute buffer.
func benchTrace(b *testing.B, depth int) {
	s := loadedStore(b)
	l, _ := benchBatches(b)
	ctx := context.Background()
	// What autovacuum does on its own some time after a bulk load (it is
	// off on the test machines): mark the pages all-visible, so the window
	// reads are index-only scans of the covering indexes (migration 0002).
	vacuumOnce.Do(func() { _, vacuumErr = testPool.Exec(ctx, "VACUUM (ANALYZE) "+s.Schema()+".passes") })
	if vacuumErr != nil {
		b.Fatal(vacuumErr)
	}
	// The ledger of the test stack (its event store takes the audit
	// events), reading the loaded store instead of the stack's read models.
	env := ledgertest.Start(b, ledgertest.Options{NoProjector: true, Dwell: domain.DefaultDwell,
		Now: func() time.Time { return storetest.Base.Add(15 * 24 * time.Hour) }})
	led := *env.Ledger
	led.Reads = s
	benchTraces(b, &led, func(r *rand.Rand) domain.TraceQuery {
		return domain.TraceQuery{
			PersonID: l.People[r.IntN(len(l.People))], From: storetest.Base, To: storetest.Base.Add(14 * 24 * time.Hour),
			Depth: depth, MinOverlap: 15 * time.Minute, Buffer: 5 * time.Minute, Reason: "benchmark",
		}
	}, func(res ledger.TraceResult) error {
		if res.Index.Visits == 0 {
			return fmt.Errorf("person %v has no stays", res.Index.PersonID)
		}
		return nil
	})
}

// BenchmarkPostgresTraceContactsDepth1 is a depth-1 contact trace over 14
// days on 1,000,000 passes (target: under 50 ms).
func BenchmarkPostgresTraceContactsDepth1(b *testing.B) { benchTrace(b, 1) }

// BenchmarkPostgresTraceContactsDepth2 is a depth-2 contact trace over 14
// days on 1,000,000 passes (target: under 500 ms).
func BenchmarkPostgresTraceContactsDepth2(b *testing.B) { benchTrace(b, 2) }

// BenchmarkPostgresDashboard reads the dashboard of the whole city and of a
// random district among 1,000,000 passes: the hourly counts, passes held,
// the busiest venues' occupancy and the review queues. now=end is the
// present (the last day, at the newest pass: what a dashboard asks);
// now=past the afternoon of a day in the middle, where the venues have later
// passes and occupancy is read from the passes. The HTTP layer adds the
// alerts feed and JSON (http BenchmarkDashboardSummary).
func BenchmarkPostgresDashboard(b *testing.B) {
	s := loadedStore(b)
	ctx := context.Background()
	var end time.Time
	for _, e := range benchLog.Envelopes {
		if e.Type == domain.TypePassRecorded && e.OccurredAt.After(end) {
			end = e.OccurredAt
		}
	}
	for _, bc := range []struct {
		past bool
		city bool
		top  int
	}{{false, true, 10}, {false, false, 10}, {false, true, 0}, {true, true, 10}, {true, false, 10}} {
		day, now := domain.PassHour(end.Add(-12*time.Hour)), end
		if bc.past {
			day = domain.PassHour(storetest.Base.Add(7 * 24 * time.Hour))
			now = day.Add(15 * time.Hour)
		}
		// top=0 leaves occupancy out: what the counts alone cost.
		b.Run(fmt.Sprintf("now=%s/city=%v/top=%d", map[bool]string{false: "end", true: "past"}[bc.past], bc.city, bc.top), func(b *testing.B) {
			latencies(b, func(r *rand.Rand) error {
				q := domain.DashboardQuery{From: day, To: day.Add(24 * time.Hour), Now: now, Top: bc.top}
				if !bc.city {
					q.District = storetest.Districts[r.IntN(len(storetest.Districts))]
				}
				d, err := s.Dashboard(ctx, q)
				if err == nil && (d.Total.Passes == 0 || (bc.top > 0 && len(d.OccupancyTop) == 0)) {
					err = fmt.Errorf("dashboard: %d passes, %d busy venues", d.Total.Passes, len(d.OccupancyTop))
				}
				return err
			})
		})
	}
}
