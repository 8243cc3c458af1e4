package postgres_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// retireBatches returns days of perDay passes each from day on (spread
// evenly over each day, at 2,000 venues and 50,000 people), as decoded
// batches of 5,000.
func retireBatches(day time.Time, days, perDay int) []projections.Batch {
	r := rand.New(rand.NewPCG(11, 12))
	venues := make([]uuid.UUID, 2000)
	people := make([]uuid.UUID, 50_000)
	for i := range venues {
		venues[i] = uuid.New()
	}
	for i := range people {
		people[i] = uuid.New()
	}
	var (
		out   []projections.Batch
		cur   []projections.Change
		after uint64
		pos   uint64
	)
	step := 24 * time.Hour / time.Duration(perDay)
	for d := range days {
		for i := range perDay {
			at := day.AddDate(0, 0, d).Add(time.Duration(i) * step)
			v, p := venues[r.IntN(len(venues))], people[r.IntN(len(people))]
			dir := domain.DirectionIn
			if r.IntN(2) == 1 {
				dir = domain.DirectionOut
			}
			pos++
			cur = append(cur, projections.Change{EventID: uuid.New(), Type: domain.TypePassRecorded,
				Aggregate: domain.PassAggregate(v, p), Position: pos << 16, OccurredAt: at, RecordedAt: at, Actor: "bench",
				Event: &domain.PassRecorded{VenueID: v, PersonID: p, Direction: dir, Method: "self_scan", Decision: "pass",
					Screen: domain.Screen{NameMasked: "张*", CodeColour: "green", NATResult: "negative", VenueID: v,
						VenueName: "临沂大学图书馆", At: at, Direction: dir, Decision: "pass"}}})
			if len(cur) == 5000 {
				out = append(out, projections.Batch{After: after, Changes: cur, Last: pos << 16, LastRecordedAt: at})
				after, cur = pos<<16, nil
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, projections.Batch{After: after, Changes: cur, Last: pos << 16})
	}
	return out
}

// BenchmarkRetireDay retires a day of 100,000 passes: the tables hold two
// days of 100,000 passes each, and RetirePasses is given the end of the
// first day plus an hour, so it drops the first day's partition and deletes
// the next day's first hour (about 4,200 passes) row by row. The baseline,
// in the same run: the same DELETE of every expired row (104,200) from an
// unpartitioned copy of the same rows with the same indexes (0002's
// covering ones), which is what retirement cost before the partitions.
//
// RETIRE_PER_DAY sets the passes a day (default 100,000; a day of the 10 M
// dense city is about 714,000). Half the passes are entries, half exits,
// at random: the stays of the retired day go with it, and those that cross
// the cut-off with their exit after it are built again.
//
// RETIRE_SWEEP=1 measures the day as the running service retires it: its
// sweeper moves the cut-off a minute at a time, so the sweep before this
// one retired all of the first day but its last minute (untimed), and this
// one, a minute past midnight, drops the day's partition and deletes two
// minutes of rows; the baseline deletes the same two minutes of the flat
// copy.
//
//	go test ./projections/postgres/ -run '^$' -bench BenchmarkRetireDay -benchtime 3x
func BenchmarkRetireDay(b *testing.B) {
	needDB(b)
	ctx := context.Background()
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	perDay := 100_000
	if n, err := strconv.Atoi(os.Getenv("RETIRE_PER_DAY")); err == nil && n > 0 {
		perDay = n
	}
	batches := retireBatches(day, 2, perDay)
	prev, before := day, day.AddDate(0, 0, 1).Add(time.Hour)
	sweep := os.Getenv("RETIRE_SWEEP") == "1"
	if sweep {
		prev, before = day.AddDate(0, 0, 1).Add(-time.Minute), day.AddDate(0, 0, 1).Add(time.Minute)
	}
	var retire, baseline time.Duration
	var retired, deleted int64
	for b.Loop() {
		b.StopTimer()
		s := openStore(b)
		for _, bt := range batches {
			if _, err := s.Apply(ctx, bt); err != nil {
				b.Fatal(err)
			}
		}
		sc := s.Schema()
		for _, q := range []string{
			`CREATE TABLE ` + sc + `.flat (LIKE ` + sc + `.passes INCLUDING DEFAULTS)`,
			`INSERT INTO ` + sc + `.flat SELECT * FROM ` + sc + `.passes`,
			`ALTER TABLE ` + sc + `.flat ADD PRIMARY KEY (event_id)`,
			`CREATE INDEX ON ` + sc + `.flat (venue_id, at, position) INCLUDE (person_id, direction, decision, recorded_at, event_id)`,
			`CREATE INDEX ON ` + sc + `.flat (person_id, at, position) INCLUDE (venue_id, direction, decision, recorded_at, event_id)`,
			`VACUUM ANALYZE ` + sc + `.flat`,
			// Statistics for the dropped day's estimate; no VACUUM,
			// so the block range index on at is not yet summarised
			// (RetirePasses summarises the partial day itself).
			`ANALYZE ` + sc + `.passes`,
		} {
			if _, err := testPool.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		// The sweep before this one: it made today's and tomorrow's
		// partitions (once a day, not a retirement's cost) and retired
		// nothing (RETIRE_SWEEP: all of the first day but a minute).
		if _, err := s.RetirePasses(ctx, prev); err != nil {
			b.Fatal(err)
		}
		if _, err := testPool.Exec(ctx, `DELETE FROM `+sc+`.flat WHERE at < $1`, prev); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		st, err := s.RetirePasses(ctx, before)
		retire += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st.Partitions != 1 || (!sweep && st.Passes < int64(perDay)) {
			b.Fatalf("retire stats: %+v", st)
		}
		retired = st.Passes
		start = time.Now()
		tag, err := testPool.Exec(ctx, `DELETE FROM `+sc+`.flat WHERE at < $1`, before)
		baseline += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		deleted = tag.RowsAffected()
		var left, flat int
		if err := testPool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+sc+`.passes), (SELECT count(*) FROM `+sc+`.flat)`).Scan(&left, &flat); err != nil {
			b.Fatal(err)
		}
		var early int
		if err := testPool.QueryRow(ctx, `SELECT count(*) FROM `+sc+`.stays
			WHERE start_at < $1 AND NOT (has_exit AND NOT has_entry AND end_at >= $1)`, before).Scan(&early); err != nil || early != 0 {
			b.Fatalf("%d stays before the cut-off hold a pass before it after the retirement (%v)", early, err)
		}
		if left != flat {
			b.Fatalf("%d passes left after retirement, the baseline kept %d", left, flat)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(retire.Milliseconds())/n, "retire-ms")
	b.ReportMetric(float64(baseline.Milliseconds())/n, "delete-baseline-ms")
	b.ReportMetric(float64(retire)/float64(baseline), "ratio")
	b.ReportMetric(float64(retired), "retired-passes")
	b.ReportMetric(float64(deleted), "baseline-deleted")
}

// createDayPartitions creates table's day partitions (migration 0005's
// naming) for every day the passes of batches fall on, as the store does
// when it applies them: for a raw COPY beside it.
func createDayPartitions(tb testing.TB, schema, table string, batches []projections.Batch) {
	tb.Helper()
	days := map[time.Time]bool{}
	for _, bt := range batches {
		for _, c := range bt.Changes {
			if _, ok := c.Event.(*domain.PassRecorded); ok {
				y, m, d := c.OccurredAt.UTC().Date()
				days[time.Date(y, m, d, 0, 0, 0, 0, time.UTC)] = true
			}
		}
	}
	for d := range days {
		name := table + "_p" + d.Format("20060102")
		q := `CREATE TABLE ` + pgx.Identifier{schema, name}.Sanitize() + ` PARTITION OF ` + pgx.Identifier{schema, table}.Sanitize() +
			` FOR VALUES FROM ('` + d.Format(time.RFC3339) + `') TO ('` + d.AddDate(0, 0, 1).Format(time.RFC3339) + `')`
		if _, err := testPool.Exec(context.Background(), q); err != nil {
			tb.Fatal(err)
		}
	}
}
