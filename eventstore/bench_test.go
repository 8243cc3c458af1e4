package eventstore_test

// Benchmarks of the event store on an embedded server with SyncAlways (an
// fsync before every acknowledgement), the store's only mode. Each reports
// events/s beside ns/op. Run:
//
//	go test -run X -bench . -benchtime 5s ./eventstore
//	EVENTSTORE_BENCH_EVENTS=1000000 go test -run X -bench Follow -benchtime 3x ./eventstore
//
// DESIGN.md has the figures and the nats bench baseline of the same run.

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/google/uuid"
)

func reportEvents(b *testing.B, events int64) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend appends one event at a time, each to a new aggregate
// (version 0), from one goroutine: one fsync per event.
func BenchmarkAppend(b *testing.B) {
	s := open(b, "")
	c := context.Background()
	var n int64
	for b.Loop() {
		agg := person()
		if _, err := s.Append(c, agg, 0, event(agg, 1)); err != nil {
			b.Fatal(err)
		}
		n++
	}
	reportEvents(b, n)
}

// BenchmarkAppendParallel appends one event per call from many goroutines
// (GOMAXPROCS × 32), each call to its own aggregate.
func BenchmarkAppendParallel(b *testing.B) {
	s := open(b, "")
	c := context.Background()
	var n atomic.Int64
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			agg := person()
			if _, err := s.Append(c, agg, 0, event(agg, 1)); err != nil {
				b.Error(err)
				return
			}
			n.Add(1)
		}
	})
	reportEvents(b, n.Load())
}

// BenchmarkRecordParallel records one pass per call from many goroutines
// (64 and 256: many scanners at once): the group commit gathers them into
// atomic batches.
func BenchmarkRecordParallel(b *testing.B) {
	for _, goroutines := range []int{64, 256} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			s := open(b, "")
			c := context.Background()
			venue := uuid.New()
			var n atomic.Int64
			b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Record(c, event(domain.PassAggregate(venue, uuid.New()), 1)); err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			})
			reportEvents(b, n.Load())
		})
	}
}

// BenchmarkRecordSize records batches of one size from one goroutine
// (no gathering wait), written as one atomic batch (MinBatch 1) or event by
// event (each with its own fsync): ns/op is the latency of one such write.
// The crossing point of the two is the MinBatch default.
func BenchmarkRecordSize(b *testing.B) {
	modes := []struct {
		name     string
		minBatch int
	}{{"atomic", 1}, {"each", serverMaxBatch + 1}}
	for _, mode := range modes {
		for _, size := range []int{2, 4, 8, 16, 100, 500} {
			if mode.minBatch > 1 && size > 16 {
				continue
			}
			b.Run(fmt.Sprintf("%s/size=%d", mode.name, size), func(b *testing.B) {
				s := open(b, "", func(o *eventstore.Options) {
					o.GroupCommitWait = -1
					o.MinBatch = mode.minBatch
				})
				c := context.Background()
				venue := uuid.New()
				evs := make([]domain.Envelope, size)
				var n int64
				for b.Loop() {
					for i := range evs {
						evs[i] = event(domain.PassAggregate(venue, uuid.New()), i)
					}
					if _, err := s.Record(c, evs...); err != nil {
						b.Fatal(err)
					}
					n += int64(size)
				}
				reportEvents(b, n)
			})
		}
	}
}

// serverMaxBatch is the server's default atomic batch limit.
const serverMaxBatch = 1000

// BenchmarkLoad loads an aggregate of 3 events.
func BenchmarkLoad(b *testing.B) {
	s := open(b, "")
	c := context.Background()
	agg := person()
	if _, err := s.Append(c, agg, 0, event(agg, 1), event(agg, 2), event(agg, 3)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		evs, _, err := s.Load(c, agg)
		if err != nil || len(evs) != 3 {
			b.Fatalf("load: %d events, %v", len(evs), err)
		}
	}
}

// BenchmarkRecordBatch records 1,000 passes per call (an offline scanner's
// batch) from 4 goroutines; the store splits each into MaxBatch (500).
func BenchmarkRecordBatch(b *testing.B) {
	s := open(b, "")
	c := context.Background()
	venue := uuid.New()
	var n atomic.Int64
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		evs := make([]domain.Envelope, 1000)
		for pb.Next() {
			for i := range evs {
				evs[i] = event(domain.PassAggregate(venue, uuid.New()), i)
			}
			if _, err := s.Record(c, evs...); err != nil {
				b.Error(err)
				return
			}
			n.Add(int64(len(evs)))
		}
	})
	reportEvents(b, n.Load())
}

// BenchmarkFollow replays a log of EVENTSTORE_BENCH_EVENTS passes (default
// 200,000) with Follow, envelope decoding included; one op is one replay.
func BenchmarkFollow(b *testing.B) {
	total := 200_000
	if v, err := strconv.Atoi(os.Getenv("EVENTSTORE_BENCH_EVENTS")); err == nil && v > 0 {
		total = v
	}
	s := open(b, "")
	fill(b, s, total)
	var n int64
	for b.Loop() {
		n += int64(replay(b, s, total))
	}
	reportEvents(b, n)
}

// fill records total passes in batches of 1,000.
func fill(b *testing.B, s *eventstore.Store, total int) {
	b.Helper()
	c := context.Background()
	venue := uuid.New()
	evs := make([]domain.Envelope, 0, 1000)
	for done := 0; done < total; done += len(evs) {
		evs = evs[:0]
		for i := 0; i < 1000 && done+i < total; i++ {
			evs = append(evs, event(domain.PassAggregate(venue, uuid.New()), i))
		}
		if _, err := s.Record(c, evs...); err != nil {
			b.Fatal(err)
		}
	}
}

// replay follows the log from the start until total events arrived.
func replay(b *testing.B, s *eventstore.Store, total int) int {
	b.Helper()
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := 0
	err := s.Follow(c, 0, func(evs []domain.Envelope) error {
		got += len(evs)
		if got >= total {
			cancel()
		}
		return nil
	})
	if got < total {
		b.Fatalf("follow: %d of %d events: %v", got, total, err)
	}
	return got
}
