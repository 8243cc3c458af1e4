package postgres_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/google/uuid"
)

// TestMigratePartitionsKeepsRows builds tables as the build before
// migration 0005 left them, with passes and alerts on three days (one at
// the last microsecond of a day, one at the first of the next), then opens
// the store: every row is kept, in the partition of its UTC day, and the
// store reads, applies and retires on the converted tables.
func TestMigratePartitionsKeepsRows(t *testing.T) {
	needDB(t)
	ctx := context.Background()
	schema := freshSchema(t)
	if err := postgres.MigrateUpTo(ctx, testPool, schema, 4); err != nil {
		t.Fatalf("migrate to 0004: %v", err)
	}
	venue, person := uuid.New(), uuid.New()
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	times := []time.Time{
		day.Add(9 * time.Hour),
		day.Add(24*time.Hour - time.Microsecond), // still the first day
		day.Add(24 * time.Hour),                  // the second day's first instant
		day.Add(50 * time.Hour),
	}
	var passIDs []uuid.UUID
	for i, at := range times {
		id := uuid.New()
		passIDs = append(passIDs, id)
		if _, err := testPool.Exec(ctx, `INSERT INTO `+schema+`.passes (event_id, position, venue_id, person_id, at,
			direction, method, decision, reason, operator, s_name, s_colour, s_nat_result, s_doses, s_venue_name,
			s_direction, s_decision, s_reason, recorded_at)
			VALUES ($1, $2, $3, $4, $5, 'in', 'self_scan', 'deny', 'red code', '', '张*', 'red', 'none', 0, '', 'in', 'deny', '', $5)`,
			id, int64(i+1)<<16, venue, person, at); err != nil {
			t.Fatalf("insert pass: %v", err)
		}
		if _, err := testPool.Exec(ctx, `INSERT INTO `+schema+`.alerts (event_id, position, district, venue_id, person_id,
			pass_event_id, code_colour, decision, reason, at) VALUES ($1, $2, '371302', $3, $4, $5, 'red', 'deny', 'red code', $6)`,
			uuid.New(), int64(i+1)<<16|1, venue, person, id, at); err != nil {
			t.Fatalf("insert alert: %v", err)
		}
	}
	if _, err := testPool.Exec(ctx, `UPDATE `+schema+`.projection_positions SET position = $1`, int64(len(times))<<16|1); err != nil {
		t.Fatal(err)
	}

	s := openWith(t, postgres.Options{Schema: schema}) // Open applies 0005, which partitions the tables
	for _, table := range []string{"passes", "alerts"} {
		rows, err := testPool.Query(ctx, `SELECT c.relname, (SELECT count(*) FROM `+schema+`.`+table+` WHERE tableoid = c.oid)
			FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY c.relname`, schema+"."+table)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		var counts []int64
		for rows.Next() {
			var name string
			var n int64
			if err := rows.Scan(&name, &n); err != nil {
				t.Fatal(err)
			}
			got, counts = append(got, name), append(counts, n)
		}
		rows.Close()
		want := []string{table + "_p20261120", table + "_p20261121", table + "_p20261122"}
		if !slices.Equal(got, want) || !slices.Equal(counts, []int64{2, 1, 1}) {
			t.Fatalf("%s partitions %v holding %v rows, want %v holding [2 1 1]", table, got, counts, want)
		}
	}
	es := storetest.Must(s.Entries(ctx, domain.EntryQuery{VenueID: venue}))(t)
	if len(es) != 4 || es[0].EventID != passIDs[3] || !es[0].At.Equal(times[3]) {
		t.Fatalf("entries after the migration: %+v", es)
	}
	if _, ok, err := s.Pass(ctx, passIDs[1]); !ok || err != nil {
		t.Fatalf("pass by id after the migration: %v %v", ok, err)
	}
	if al := storetest.Must(s.Alerts(ctx, "371302", 0))(t); len(al) != 4 {
		t.Fatalf("alerts after the migration: %d", len(al))
	}
	// Retiring the first day drops its partitions and nothing else.
	st := storetest.Must(s.RetirePasses(ctx, day.Add(24*time.Hour)))(t)
	if st.Partitions != 2 {
		t.Fatalf("retire stats: %+v, want the first day's two partitions", st)
	}
	es = storetest.Must(s.Entries(ctx, domain.EntryQuery{VenueID: venue}))(t)
	if len(es) != 2 || es[1].EventID != passIDs[2] {
		t.Fatalf("entries after retiring the first day: %+v", es)
	}
	if al := storetest.Must(s.Alerts(ctx, "371302", 0))(t); len(al) != 2 {
		t.Fatalf("alerts after retiring the first day: %d", len(al))
	}
}

// TestRetireWhileApplying retires, again and again and from two sweepers
// at once (two replicas), while the projector applies passes that cross
// day boundaries (new partitions made on demand, old ones dropped): no
// batch or retirement fails, none is parked, and at the end the tables
// hold exactly the passes at or after the last cut-off.
func TestRetireWhileApplying(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	venue := uuid.New()
	const batches, perBatch = 60, 50
	step := 2 * time.Hour // a batch spans four days: a new partition every few batches
	var (
		wg      sync.WaitGroup
		cut     time.Time
		cutMu   sync.Mutex
		applied = make(chan struct{})
		latest  atomic.Int64 // the latest pass applied, Unix nanoseconds
		retires atomic.Int64
	)
	latest.Store(day.UnixNano())
	sweeper := func() {
		for {
			select {
			case <-applied:
				return
			default:
			}
			// A day behind what was applied: the partial day moves
			// across partitions while new ones are made.
			before := time.Unix(0, latest.Load()).UTC().Add(-24 * time.Hour)
			retires.Add(1)
			if _, err := s.RetirePasses(ctx, before); err != nil {
				t.Errorf("retire before %s: %v", before, err)
				return
			}
			cutMu.Lock()
			if before.After(cut) {
				cut = before
			}
			cutMu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}
	wg.Go(sweeper)
	wg.Go(sweeper)
	var pos uint64
	var all []time.Time
	for b := range batches {
		var cs []projections.Change
		after := pos
		for i := range perBatch {
			pos++
			at := day.Add(time.Duration(b*perBatch/4+i) * step / 12)
			all = append(all, at)
			p := uuid.New()
			cs = append(cs, projections.Change{EventID: uuid.New(), Type: domain.TypePassRecorded, Aggregate: domain.PassAggregate(venue, p),
				Position: pos, OccurredAt: at, RecordedAt: at, Event: &domain.PassRecorded{VenueID: venue, PersonID: p,
					Direction: "in", Method: "self_scan", Decision: "pass"}})
		}
		if _, err := s.Apply(ctx, projections.Batch{After: after, Changes: cs, Last: pos}); err != nil {
			t.Fatalf("apply batch %d while retiring: %v", b, err)
		}
		latest.Store(cs[len(cs)-1].OccurredAt.UnixNano())
	}
	close(applied)
	wg.Wait()
	cutMu.Lock()
	last := cut
	cutMu.Unlock()
	// One more with the last cut-off: what a batch applied before it
	// brought is gone, what came after it was kept out.
	if _, err := s.RetirePasses(ctx, last); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, at := range all {
		if !at.Before(last) {
			want++
		}
	}
	var got int
	if err := testPool.QueryRow(ctx, `SELECT count(*) FROM `+s.Schema()+`.passes`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if n := retires.Load(); want == 0 || want == len(all) || n < 4 {
		t.Fatalf("%d retirements kept %d of %d passes: the test tested nothing", n, want, len(all))
	}
	t.Logf("%d retirements while %d batches were applied; %d of %d passes kept", retires.Load(), batches, want, len(all))
	if got != want {
		t.Fatalf("%d passes left, want %d (at or after the cut-off %s)", got, want, last)
	}
	var parked int
	if err := testPool.QueryRow(ctx, `SELECT count(*) FROM `+s.Schema()+`.parked_events`).Scan(&parked); err != nil {
		t.Fatal(err)
	}
	if parked != 0 {
		t.Fatalf("%d events parked", parked)
	}
}

// TestRetireLeavesDashboardCounts: tables beside the passes (the anonymous
// daily counts the dashboards keep, whatever their names) are not touched
// by a retirement, even named like a day's partition of passes.
func TestRetireLeavesDashboardCounts(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	sc := s.Schema()
	for _, q := range []string{
		`CREATE TABLE ` + sc + `.daily_counts (day date PRIMARY KEY, passes bigint NOT NULL)`,
		`INSERT INTO ` + sc + `.daily_counts VALUES ('2026-11-01', 120000), ('2026-11-02', 130000)`,
		`CREATE TABLE ` + sc + `.passes_p20261101_counts (n int)`,
		`INSERT INTO ` + sc + `.passes_p20261101_counts VALUES (1)`,
	} {
		if _, err := testPool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RetirePasses(ctx, time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	var days, n int
	if err := testPool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+sc+`.daily_counts), (SELECT count(*) FROM `+sc+`.passes_p20261101_counts)`).Scan(&days, &n); err != nil {
		t.Fatalf("dashboard tables after a retirement: %v", err)
	}
	if days != 2 || n != 1 {
		t.Fatalf("dashboard tables after a retirement: %d days, %d rows", days, n)
	}
}

// TestRetireKilledMidway terminates a retirement's backend while it waits,
// inside its transaction, for a reader of the passes (after it recorded
// its cut-off, before its partitions are dropped): nothing of it stays —
// every pass and alert is there, the cut-off is not recorded — and the
// next retirement does the whole work.
func TestRetireKilledMidway(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	venue, person := uuid.New(), uuid.New()
	day := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	var cs []projections.Change
	for i := range 48 {
		at := day.Add(time.Duration(i) * time.Hour)
		id := uuid.New()
		cs = append(cs,
			projections.Change{EventID: id, Type: domain.TypePassRecorded, Aggregate: domain.PassAggregate(venue, person),
				Position: uint64(2*i + 1), OccurredAt: at, Event: &domain.PassRecorded{VenueID: venue, PersonID: person,
					Direction: "in", Method: "self_scan", Decision: "deny"}},
			projections.Change{EventID: uuid.New(), Type: domain.TypeAlertRaised, Aggregate: domain.AlertAggregate("371302"),
				Position: uint64(2*i + 2), OccurredAt: at, Event: &domain.AlertRaised{District: "371302", VenueID: venue,
					PersonID: person, PassEventID: id, CodeColour: "red", Decision: "deny"}})
	}
	if _, err := s.Apply(ctx, projections.Batch{Changes: cs, Last: 96}); err != nil {
		t.Fatal(err)
	}
	// Today's partitions exist already (a sweep before), so the
	// retirement's first wait is its DROP behind the reader.
	if _, err := s.RetirePasses(ctx, day); err != nil {
		t.Fatal(err)
	}
	counts := func() (passes, alerts int) {
		t.Helper()
		if err := testPool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+s.Schema()+`.passes), (SELECT count(*) FROM `+s.Schema()+`.alerts)`).Scan(&passes, &alerts); err != nil {
			t.Fatal(err)
		}
		return passes, alerts
	}
	reader, err := testPool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback(ctx)
	if _, err := reader.Exec(ctx, `SELECT count(*) FROM `+s.Schema()+`.passes`); err != nil {
		t.Fatal(err)
	}
	before := day.Add(30 * time.Hour)
	failed := make(chan error, 1)
	go func() {
		_, err := s.RetirePasses(ctx, before)
		failed <- err
	}()
	var pid int
	waiting := func() bool {
		// This test's own backend only: its statement names its schema.
		err := testPool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE 'DROP TABLE IF EXISTS "' || $1 || '".%'`, s.Schema()).Scan(&pid)
		return err == nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for !waiting() {
		if time.Now().After(deadline) {
			t.Fatal("the retirement never waited behind the reader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := testPool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if err := <-failed; err == nil {
		t.Fatal("a retirement whose backend was terminated reported success")
	}
	reader.Rollback(ctx)
	if p, a := counts(); p != 48 || a != 48 {
		t.Fatalf("after the killed retirement: %d passes, %d alerts, want 48 and 48", p, a)
	}
	var cut time.Time
	if err := testPool.QueryRow(ctx, `SELECT before FROM `+s.Schema()+`.retirement`).Scan(&cut); err != nil || !cut.Equal(day) {
		t.Fatalf("cut-off after the killed retirement: %s %v, want the earlier %s", cut, err, day)
	}
	st, err := s.RetirePasses(ctx, before)
	if err != nil || st.Partitions != 2 {
		t.Fatalf("the retirement again: %+v %v, want the first day's two partitions", st, err)
	}
	if p, a := counts(); p != 18 || a != 18 {
		t.Fatalf("after the retirement: %d passes, %d alerts, want 18 and 18", p, a)
	}
}
