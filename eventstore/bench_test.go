package eventstore_test

// Benchmarks of the event store on an embedded server with SyncAlways (an
// fsync before every acknowledgement), the store's only mode. Each reports
// events/s beside ns/op. Run:
//
//	go test -run X -bench 'Append|Record|Load' -benchtime 3s ./eventstore
//	EVENTSTORE_BENCH_EVENTS=1000000 go test -run X -bench Follow -benchtime 3x ./eventstore
//
// DESIGN.md has the figures and the nats bench baseline of the same run.

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
// packs.
func BenchmarkRecordParallel(b *testing.B) {
	for _, goroutines := range []int{64, 256} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			recordParallel(b, goroutines)
		})
	}
}

// BenchmarkRecordInflight is BenchmarkRecordParallel with 256 goroutines
// and 1, 2 or 4 packs in flight.
func BenchmarkRecordInflight(b *testing.B) {
	for _, inflight := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			recordParallel(b, 256, func(o *eventstore.Options) { o.MaxInflight = inflight })
		})
	}
}

// recordParallel records one pass per call from goroutines goroutines and
// reports events/s and the 50th and 99th percentile of a call's latency.
func recordParallel(b *testing.B, goroutines int, mod ...func(*eventstore.Options)) {
	s := open(b, "", mod...)
	c := context.Background()
	venue := uuid.New()
	var (
		n   atomic.Int64
		mu  sync.Mutex
		lat []time.Duration
	)
	b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			e := event(domain.PassAggregate(venue, uuid.New()), 1)
			start := time.Now()
			if _, err := s.Record(c, e); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
			n.Add(1)
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	reportEvents(b, n.Load())
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
	}
}

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
// batch) from GOMAXPROCS × 2 goroutines (4 on the test machine); the
// committer packs what several callers handed it together.
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

// BenchmarkOpen opens a store holding EVENTSTORE_BENCH_EVENTS passes
// (default 200,000) recorded just before, within the duplicate window: the
// server reads its stream and the store rebuilds its dedup table from the
// packs. One op is one Open and Close.
func BenchmarkOpen(b *testing.B) {
	total := 200_000
	if v, err := strconv.Atoi(os.Getenv("EVENTSTORE_BENCH_EVENTS")); err == nil && v > 0 {
		total = v
	}
	dir := b.TempDir()
	s, err := eventstore.Open(context.Background(), eventstore.Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	fill(b, s, total)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := eventstore.Open(context.Background(), eventstore.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		// Until Ready the table of recent ids is still being rebuilt.
		for s.Ready(context.Background()) != nil {
			time.Sleep(time.Millisecond)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
