package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/google/uuid"
)

// The dense-city benchmarks (issue 11) run on storetest.NewDenseCity with
// DENSE_PASSES passes (default 1,000,000: 20,000 people, 400 venues, 14
// days, 25 stays each among six usual venues). The city is projected once
// through the store's own Apply, from envelopes prepared as the projector
// prepares them, into a schema named by its parameters (DenseCity.Name),
// which is kept: the next run finds it complete and reuses it. Drop it with
// DROP SCHEMA <name> CASCADE.
//
//	DENSE_PASSES=10000000 go test -run '^$' -bench Dense -benchtime 20x ./projections/postgres/

var (
	denseOnce  sync.Once
	denseStore *postgres.Store
	denseCity  storetest.DenseCity
	denseLoad  string
	denseErr   error
)

func densePasses() int {
	if n, err := strconv.Atoi(os.Getenv("DENSE_PASSES")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// loadedDense returns the store holding the dense city, loading it when its
// schema is missing or incomplete, or when days of it were retired
// (BenchmarkDenseRetire).
func loadedDense(b *testing.B) (*postgres.Store, storetest.DenseCity) {
	b.Helper()
	return denseCityStore(b, false)
}

// denseCityStore is loadedDense; with retired, a city some of whose days
// were retired is taken as it is.
func denseCityStore(b *testing.B, retired bool) (*postgres.Store, storetest.DenseCity) {
	b.Helper()
	needDB(b)
	denseOnce.Do(func() {
		ctx := context.Background()
		c := storetest.NewDenseCity(densePasses(), 5)
		denseCity = c
		schema := c.Name()
		s, err := postgres.Open(ctx, postgres.Options{Pool: testPool, Schema: schema, Stays: &domain.StayRules{}})
		if err != nil {
			denseErr = err
			return
		}
		cp, err := s.Checkpoint(ctx)
		if err != nil {
			denseErr = err
			return
		}
		// A city some of whose days BenchmarkDenseRetire retired is
		// loaded again, as is one loaded only in part.
		var gone bool
		if cp.Position == uint64(c.Events()) && !retired {
			if err := testPool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+schema+".retirement)").Scan(&gone); err != nil {
				denseErr = err
				return
			}
		}
		if cp.Position != uint64(c.Events()) || gone {
			if _, err := testPool.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
				denseErr = err
				return
			}
			if s, err = postgres.Open(ctx, postgres.Options{Pool: testPool, Schema: schema, Stays: &domain.StayRules{}}); err != nil {
				denseErr = err
				return
			}
			if denseErr = loadDense(ctx, s, c); denseErr != nil {
				return
			}
		}
		if denseErr = vacuumDense(ctx, schema, "ANALYZE"); denseErr != nil {
			return
		}
		_ = testPool.QueryRow(ctx, "SELECT obj_description($1::regnamespace)", schema).Scan(&denseLoad)
		denseStore = s
	})
	if denseErr != nil {
		b.Fatal(denseErr)
	}
	return denseStore, denseCity
}

// vacuumDense vacuums the tables Apply writes, as autovacuum would on a
// server (this machine's PostgreSQL runs without it): each pass upserts a
// presence row and its venue's counts, and 10 M passes leave millions of
// dead versions of 4,000 venues' rows that every later upsert walks past.
func vacuumDense(ctx context.Context, schema, options string) error {
	var tables []string
	for _, t := range []string{"passes", "stays", "presence", "dashboard_venues", "dashboard_hours", "dashboard_held", "stay_spans"} {
		tables = append(tables, schema+"."+t)
	}
	if options != "" {
		options = "(" + options + ") "
	}
	_, err := testPool.Exec(ctx, "VACUUM "+options+strings.Join(tables, ", "))
	return err
}

// loadDense projects the city into s and records on the schema how fast:
// the whole load, and its last tenth (the rate at the city's full size).
// The stays are built once at the end from the passes (what Open does for
// tables built under other rules; TestStaysFollowPasses holds them equal to
// Apply's), which is faster than keeping them batch by batch:
// BenchmarkDenseApply measures Apply as it is.
func loadDense(ctx context.Context, s *postgres.Store, c storetest.DenseCity) error {
	total := c.Events()
	postgres.SkipStays(s, true)
	defer postgres.SkipStays(s, false)
	start := time.Now()
	var tailStart time.Time
	var tailFrom uint64
	err := c.Batches(ctx, 5000, func(bt projections.Batch) error {
		if tailStart.IsZero() && bt.After >= uint64(total)*9/10 {
			tailStart, tailFrom = time.Now(), bt.After
		}
		_, err := s.Apply(ctx, bt)
		return err
	})
	if err != nil {
		return fmt.Errorf("load %s: %w", c.Name(), err)
	}
	all := time.Since(start)
	tail := time.Since(tailStart)
	stays := time.Now()
	if err := postgres.BuildStays(ctx, s); err != nil {
		return fmt.Errorf("load %s: stays: %w", c.Name(), err)
	}
	note := fmt.Sprintf("loaded %s: %d events in %.1f s (%.0f events/s, stays left out); last tenth %.0f events/s; stays built in %.1f s",
		time.Now().UTC().Format(time.RFC3339), total, all.Seconds(), float64(total)/all.Seconds(),
		float64(uint64(total)-tailFrom)/tail.Seconds(), time.Since(stays).Seconds())
	_, err = testPool.Exec(ctx, fmt.Sprintf("COMMENT ON SCHEMA %s IS '%s'", s.Schema(), note))
	return err
}

// BenchmarkDenseApply projects a live day after the city's 14 (20,000
// people, one stay each: 40,000 passes) through Apply, stays kept, 5,000
// events a batch, into the tables holding the city (target: at 10 M passes
// at least 0.8 of the rate at 1 M); then takes the day out again.
func BenchmarkDenseApply(b *testing.B) {
	s, c := loadedDense(b)
	ctx := context.Background()
	base := uint64(c.Events())
	var (
		lastRec *time.Time
		newest  *time.Time
	)
	schema := s.Schema()
	if err := testPool.QueryRow(ctx, "SELECT last_recorded_at FROM "+schema+".projection_positions").Scan(&lastRec); err != nil {
		b.Fatal(err)
	}
	if err := testPool.QueryRow(ctx, "SELECT newest_recorded_at FROM "+schema+".stay_state").Scan(&newest); err != nil {
		b.Fatal(err)
	}
	// The day's passes and stays are taken out through the tables' own
	// ranges (the day's partitions; each venue's stays from the day's
	// start), not by scanning every row: a scan of 10 M passes would read
	// them through the shared buffers, and the next round would find the
	// indexes it writes to evicted.
	dayStart := storetest.Base.Add(time.Duration(c.Days)*24*time.Hour - 3*time.Hour).Format(time.RFC3339)
	undo := func() {
		for _, q := range []string{
			fmt.Sprintf("DELETE FROM %s.passes WHERE position > %d AND at >= '%s'", schema, base, dayStart),
			fmt.Sprintf("DELETE FROM %s.stays WHERE venue_id = ANY(ARRAY(SELECT venue_id FROM %[1]s.venues)) AND start_at >= '%s'", schema, dayStart),
		} {
			if _, err := testPool.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := testPool.Exec(ctx, "UPDATE "+schema+".projection_positions SET position = $1, last_recorded_at = $2", int64(base), lastRec); err != nil {
			b.Fatal(err)
		}
		if _, err := testPool.Exec(ctx, "UPDATE "+schema+".stay_state SET newest_recorded_at = $1", newest); err != nil {
			b.Fatal(err)
		}
		if err := vacuumDense(ctx, schema, ""); err != nil {
			b.Fatal(err)
		}
	}
	undo() // a run stopped half way may have left a day in; and vacuumed
	var batches []projections.Batch
	if err := c.DayAfter(ctx, 20_000, base, 5000, func(bt projections.Batch) error {
		batches = append(batches, bt)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	events := 0
	for _, bt := range batches {
		events += len(bt.Changes)
	}
	// "stays" is Apply as it is; "without-stays" leaves the stays table
	// alone (the cost of keeping it, measured in the same run).
	for _, kept := range []bool{true, false} {
		name := "stays"
		if !kept {
			name = "without-stays"
		}
		b.Run(name, func(b *testing.B) {
			postgres.SkipStays(s, !kept)
			defer postgres.SkipStays(s, false)
			var (
				took time.Duration
				io   serverIO
			)
			for b.Loop() {
				before := readServerIO(ctx, b, schema)
				start := time.Now()
				for _, bt := range batches {
					if _, err := s.Apply(ctx, bt); err != nil {
						b.Fatal(err)
					}
				}
				took += time.Since(start)
				b.StopTimer()
				io = io.plus(readServerIO(ctx, b, schema).minus(before))
				undo()
				b.StartTimer()
			}
			n := float64(events) * float64(b.N)
			b.ReportMetric(n/took.Seconds(), "events/s")
			b.ReportMetric(float64(io.reads)/n, "reads/event")
			b.ReportMetric(float64(io.backendWrites)/n, "backend-writes/event")
			b.ReportMetric(float64(io.walBytes)/n, "wal-bytes/event")
		})
	}
}

// serverIO is what PostgreSQL did for the schema's tables, as its
// statistics count it: blocks read into the shared buffers (from the OS, a
// miss), buffers the backends had to write back themselves to make room
// (a dirty page evicted), and WAL written (the server's, all schemas).
// They tell a cache that holds the city's working set from one that does
// not: the rate alone cannot.
type serverIO struct{ reads, backendWrites, walBytes int64 }

func (a serverIO) minus(b serverIO) serverIO {
	return serverIO{a.reads - b.reads, a.backendWrites - b.backendWrites, a.walBytes - b.walBytes}
}

func (a serverIO) plus(b serverIO) serverIO {
	return serverIO{a.reads + b.reads, a.backendWrites + b.backendWrites, a.walBytes + b.walBytes}
}

func readServerIO(ctx context.Context, b *testing.B, schema string) serverIO {
	var io serverIO
	err := testPool.QueryRow(ctx, `SELECT
		(SELECT coalesce(sum(coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0)), 0)::bigint
			FROM pg_statio_user_tables WHERE schemaname = $1),
		(SELECT buffers_backend FROM pg_stat_bgwriter), (SELECT wal_bytes::bigint FROM pg_stat_wal)`, schema).
		Scan(&io.reads, &io.backendWrites, &io.walBytes)
	if err != nil {
		b.Fatal(err)
	}
	return io
}

// BenchmarkDenseEntries reads the newest 50 entries of a random venue of
// the dense city (target at 10 M passes: p99 under 5 ms).
func BenchmarkDenseEntries(b *testing.B) {
	s, c := loadedDense(b)
	ctx := context.Background()
	b.Log(denseLoad)
	latencies(b, func(r *rand.Rand) error {
		es, err := s.Entries(ctx, domain.EntryQuery{VenueID: c.VenueID(r.IntN(c.Venues)), Limit: 50})
		if err == nil && len(es) != 50 {
			err = fmt.Errorf("first page has %d entries", len(es))
		}
		return err
	})
}

// BenchmarkDenseHistory14d reads a random person's 14-day history (50
// passes) in the dense city (target at 10 M passes: p99 under 5 ms).
func BenchmarkDenseHistory14d(b *testing.B) {
	s, c := loadedDense(b)
	ctx := context.Background()
	from, to := storetest.Base.Add(-2*time.Hour), storetest.Base.Add(14*24*time.Hour)
	latencies(b, func(r *rand.Rand) error {
		vs, err := s.Trace(ctx, c.PersonID(r.IntN(c.People)), from, to)
		if err == nil && len(vs) != 2*c.StaysEach {
			err = fmt.Errorf("history of %d passes, want %d", len(vs), 2*c.StaysEach)
		}
		return err
	})
}

// BenchmarkDenseTrace runs Ledger.Trace end to end (validation, the window
// reads, stays and overlaps, names and venues, the audit event appended
// with fsync) on the dense city: a random person over the 14 days, 15
// minutes minimum overlap, 5 minutes buffer, at depth 1 and 2 (targets at
// 10 M passes: 50 ms and 500 ms). "passes" is the read models seen only
// through their pass window reads (the path before issue 11, the baseline),
// "stays" the store as it is.
func BenchmarkDenseTrace(b *testing.B) {
	s, c := loadedDense(b)
	ctx := context.Background()
	// The ledger of the test stack (its event store takes the audit events),
	// reading the store under benchmark instead of the stack's read models.
	env := ledgertest.Start(b, ledgertest.Options{NoProjector: true, Dwell: domain.DefaultDwell,
		Now: func() time.Time { return storetest.Base.Add(15 * 24 * time.Hour) }})
	// Both paths give the same answer on the dense city (the contract suite
	// holds both to a brute force on a smaller, stranger city).
	rules := domain.StayRules{Dwell: domain.DefaultDwell}
	for depth := 1; depth <= 2; depth++ {
		search := domain.ContactSearch{PersonID: c.PersonID(7), Depth: depth, AsOf: storetest.Base.Add(15 * 24 * time.Hour),
			Window: domain.TraceWindow{From: storetest.Base.Add(-2 * time.Hour), To: storetest.Base.Add(14 * 24 * time.Hour),
				MinOverlap: 15 * time.Minute, Buffer: 5 * time.Minute}}
		viaStays, err := domain.FindContacts(ledger.BindTraceReads(ctx, s, rules), search, rules)
		if err != nil {
			b.Fatal(err)
		}
		viaPasses, err := domain.FindContacts(ledger.BindTraceReads(ctx, passReadsOnly{s}, rules), search, rules)
		if err != nil {
			b.Fatal(err)
		}
		if !slices.Equal(viaStays.Contacts(), viaPasses.Contacts()) || !slices.Equal(viaStays.Stays, viaPasses.Stays) || viaStays.Len() == 0 {
			b.Fatalf("depth %d: %d contacts from the stays, %d from the passes", depth, viaStays.Len(), viaPasses.Len())
		}
	}
	for _, depth := range []int{1, 2} {
		for _, path := range []string{"passes", "stays"} {
			b.Run(fmt.Sprintf("depth=%d/%s", depth, path), func(b *testing.B) {
				l := *env.Ledger
				timed := &timedReads{Store: s}
				l.Reads = timed
				if path == "passes" {
					l.Reads = passReadsOnly{s}
				}
				defer func() {
					if path == "stays" {
						n := float64(b.N) * float64(time.Millisecond)
						b.ReportMetric(float64(timed.stays)/n, "stay-reads-ms/trace")
						b.ReportMetric(float64(timed.names)/n, "names-ms/trace")
					}
				}()
				benchTraces(b, &l, func(r *rand.Rand) domain.TraceQuery {
					return domain.TraceQuery{
						PersonID: c.PersonID(r.IntN(c.People)), From: storetest.Base.Add(-2 * time.Hour), To: storetest.Base.Add(14 * 24 * time.Hour),
						Depth: depth, MinOverlap: 15 * time.Minute, Buffer: 5 * time.Minute, Reason: "benchmark",
					}
				}, func(res ledger.TraceResult) error {
					if res.Index.Visits != c.StaysEach {
						return fmt.Errorf("person %v has %d stays, want %d", res.Index.PersonID, res.Index.Visits, c.StaysEach)
					}
					return nil
				})
			})
		}
	}
}

// benchTraces times l.Trace of the queries query draws, as an analyst,
// failing on an error or on an answer check refuses, and reports the
// co-presences and the people found per trace.
func benchTraces(b *testing.B, l *ledger.Ledger, query func(*rand.Rand) domain.TraceQuery, check func(ledger.TraceResult) error) {
	analyst := domain.Actor{Role: domain.RoleAnalyst, Subject: "analyst:bench"}
	var contacts, people, traces int
	latencies(b, func(r *rand.Rand) error {
		res, err := l.Trace(context.Background(), analyst, query(r))
		if err == nil {
			err = check(res)
		}
		contacts += len(res.Contacts)
		people += res.Index.Contacts + res.Index.SecondContacts
		traces++
		return err
	})
	b.ReportMetric(float64(contacts)/float64(traces), "contacts/trace")
	b.ReportMetric(float64(people)/float64(traces), "people/trace")
}

// timedReads is the store as the "stays" path reads it, adding up the time
// of its stay reads (StaysOfPersons and StaysMeeting: what PostgreSQL
// answers, rows scanned as they come) and of its names read: the rest of a
// trace is the pairing and the answer in Go, the venues and the audit
// append. (The figures say where a slow trace spends its time. Since
// StaysMeeting streams, 2026-12-04, the stay reads leave out the pairing
// that runs as the rows come, and with it whatever PostgreSQL read
// meanwhile: not comparable with the figures before.)
type timedReads struct {
	*postgres.Store
	stays, names time.Duration
}

func (t *timedReads) StaysOfPersons(ctx context.Context, ids []uuid.UUID, from, to, asOf time.Time) ([]domain.Presence, bool, error) {
	defer t.add(&t.stays, time.Now())
	return t.Store.StaysOfPersons(ctx, ids, from, to, asOf)
}

// StaysMeeting adds the read's time less the pairing's, which runs in each
// as the rows come.
func (t *timedReads) StaysMeeting(ctx context.Context, ws []domain.VenueWindow, asOf time.Time, each func([]domain.Presence)) (bool, error) {
	var pairing time.Duration
	defer func(start time.Time) { t.stays += time.Since(start) - pairing }(time.Now())
	return t.Store.StaysMeeting(ctx, ws, asOf, func(run []domain.Presence) {
		defer t.add(&pairing, time.Now())
		each(run)
	})
}

func (t *timedReads) PersonNames(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]string, error) {
	defer t.add(&t.names, time.Now())
	return t.Store.PersonNames(ctx, ids)
}

func (t *timedReads) add(d *time.Duration, start time.Time) { *d += time.Since(start) }

// passReadsOnly shows a store only as a ledger.ReadModel: the trace then
// reads pass windows and builds the stays itself (the baseline).
type passReadsOnly struct{ ledger.ReadModel }

// BenchmarkDenseRetire retires the oldest day of the dense city (DENSE_PASSES,
// as the other dense benchmarks: a day of the 10 M city is 714,000 passes
// and 357,000 stays of 200,000 people among 4,000 venues) through
// RetirePasses, each round the next day, and each run goes on from the
// day the last one left. It destroys the city: the other dense benchmarks
// load it again (loadedDense loads a city with retired days anew), so run it
// last; it stops two days before the city's end.
//
// The cut-off moves from the day before's (none at the first round) to an
// hour into the next day: the day at once, as after a service stopped for a
// day. (The running service's sweeper moves it a minute at a time, so a
// day's rows go with the minutes of its passes, and its partition, empty
// by then, is dropped a minute after midnight: BenchmarkRetireDay's
// RETIRE_SWEEP. The dense city has no passes between 22:00 and 07:00.)
//
//	DENSE_PASSES=10000000 go test -run '^$' -bench DenseRetire -benchtime 1x ./projections/postgres/
//
// DENSE_REBUILD_STAYS=1 first builds the city's stays again from its passes
// (as Open does under new rules), untimed but reported (rebuild-s): a
// city loaded by a build before 2026-12-06 holds its stays in the order they
// were built, by person, and a rebuild lays them in the order they start.
func BenchmarkDenseRetire(b *testing.B) {
	s, c := denseCityStore(b, true)
	ctx := context.Background()
	sc := s.Schema()
	var rebuild time.Duration // reported after the loop (b.Loop's start drops metrics reported before it)
	if os.Getenv("DENSE_REBUILD_STAYS") == "1" {
		if _, err := testPool.Exec(ctx, "UPDATE "+sc+".stay_state SET rules = ''"); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := postgres.BuildStays(ctx, s); err != nil {
			b.Fatal(err)
		}
		rebuild = time.Since(start)
		if err := vacuumDense(ctx, sc, "ANALYZE"); err != nil {
			b.Fatal(err)
		}
	}
	var took time.Duration
	var passes, stays int64
	for b.Loop() {
		b.StopTimer()
		// The oldest day is the first of the partitions' names
		// (passes_pYYYYMMDD, their days sort as they do): a min(at)
		// would read the table.
		var name string
		if err := testPool.QueryRow(ctx, `SELECT min(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = to_regclass($1)`, sc+".passes").Scan(&name); err != nil {
			b.Fatal(err)
		}
		day, ok := postgres.PartitionDayOf("passes", name)
		if !ok {
			b.Fatalf("no day partition of passes (%q)", name)
		}
		if !day.Before(storetest.Base.AddDate(0, 0, c.Days-2)) {
			b.Fatalf("the city has no day left to retire before its last two (oldest partition %s)", name)
		}
		before := day.AddDate(0, 0, 1).Add(time.Hour)
		// The running service's sweeper retires at its start, and a
		// Store's first retirement deletes stays from the start of the
		// index (see RetirePasses): that sweep, untimed, retires
		// nothing here (no pass is before day).
		if _, err := s.RetirePasses(ctx, day); err != nil {
			b.Fatal(err)
		}
		var held, stayRows int64
		if err := testPool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+sc+`.passes WHERE at < $1),
			(SELECT count(*) FROM `+sc+`.stays WHERE start_at < $1)`, before).Scan(&held, &stayRows); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		st, err := s.RetirePasses(ctx, before)
		took += time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if st.Partitions < 1 || held == 0 {
			b.Fatalf("retire stats %+v; %d passes were before the cut-off", st, held)
		}
		var left, early int64
		if err := testPool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+sc+`.passes WHERE at < $1),
			(SELECT count(*) FROM `+sc+`.stays WHERE start_at < $1 AND NOT (has_exit AND NOT has_entry AND end_at >= $1))`,
			before).Scan(&left, &early); err != nil {
			b.Fatal(err)
		}
		if left != 0 || early != 0 {
			b.Fatalf("after the retirement to %s: %d passes and %d stays holding a pass before it are left", before, left, early)
		}
		passes, stays = held, stayRows
		b.StartTimer()
	}
	if rebuild > 0 {
		b.ReportMetric(rebuild.Seconds(), "rebuild-s")
	}
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "retire-ms")
	b.ReportMetric(float64(passes), "day-passes")
	b.ReportMetric(float64(stays), "day-stays")
}
