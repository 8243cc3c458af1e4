package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/projections/storetest"
)

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
func BenchmarkDenseRetire(b *testing.B) {
	s, c := loadedDense(b, true)
	ctx := context.Background()
	sc := s.Schema()
	var took time.Duration
	var passes, stays int64
	for b.Loop() {
		b.StopTimer()
		// The oldest day is the first of the partitions' names
		// (passes_pYYYYMMDD): a min(at) would read the table.
		var name string
		if err := testPool.QueryRow(ctx, `SELECT min(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = to_regclass($1)`, sc+".passes").Scan(&name); err != nil {
			b.Fatal(err)
		}
		day, err := time.Parse("passes_p20060102", name)
		if err != nil {
			b.Fatal(err)
		}
		if !day.Before(storetest.Base.AddDate(0, 0, c.Days-2)) {
			b.Fatalf("the city has no day left to retire before its last two (oldest partition %s)", name)
		}
		before := day.AddDate(0, 0, 1).Add(time.Hour)
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
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "retire-ms")
	b.ReportMetric(float64(passes), "day-passes")
	b.ReportMetric(float64(stays), "day-stays")
}
