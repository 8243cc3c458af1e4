package memory_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/google/uuid"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) projections.Store { return memory.New(memory.Options{}) })
}

// BenchmarkMemoryApply replays 1,000,000 passes (plus their people and
// venues) into a fresh store per iteration, in batches of 5,000 decoded
// events, and reports events/s and heap bytes per pass held.
func BenchmarkMemoryApply(b *testing.B) {
	const passes = 1_000_000
	l := storetest.Generate(100_000, 2_000, passes, 14, 1)
	events := len(l.Envelopes)
	batches := prepared(b, l)
	l = storetest.Log{}
	benchApply(b, batches, events, passes)
}

// benchApply applies batches, which hold events events of which passes are
// passes, into a fresh store per iteration, and reports events/s and heap
// bytes per pass held.
func benchApply(b *testing.B, batches []projections.Batch, events, passes int) {
	perPass := heapPerPass(b, batches, passes)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
		apply(b, batches)
	}
	b.ReportMetric(perPass, "heap-bytes/pass")
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// heapPerPass measures the live heap a store holds after applying batches,
// divided by the passes in it.
func heapPerPass(b *testing.B, batches []projections.Batch, passes int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := apply(b, batches)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	runtime.KeepAlive(batches)
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(passes)
}

// BenchmarkMemoryReplay measures what a restart does: decode every
// envelope (JSON, masks with AES-GCM) and apply it, as the projector does
// with its parallel decoders.
func BenchmarkMemoryReplay(b *testing.B) {
	const passes = 1_000_000
	l := storetest.Generate(100_000, 2_000, passes, 14, 1)
	open := projections.KeyringOpener(l.Keys)
	b.ResetTimer()
	for b.Loop() {
		s := memory.New(memory.Options{})
		p := projections.New(sliceLog(l.Envelopes), s, projections.Options{Opener: open})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		if err := p.WaitFor(ctx, l.Envelopes[len(l.Envelopes)-1].Position); err != nil {
			b.Fatal(err)
		}
		cancel()
		<-done
	}
	b.ReportMetric(float64(len(l.Envelopes))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func prepared(b *testing.B, l storetest.Log) []projections.Batch {
	b.Helper()
	out, err := batchesOf(l)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func apply(b *testing.B, batches []projections.Batch) *memory.Store {
	s := memory.New(memory.Options{})
	for _, bt := range batches {
		if _, err := s.Apply(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// sliceLog is a ledger.Log over envelopes in memory, for the replay
// benchmark: it measures the projector and the store, not the event store.
type sliceLog []domain.Envelope

func (l sliceLog) Follow(ctx context.Context, from uint64, fn func([]domain.Envelope) error) error {
	i := 0
	for i < len(l) && l[i].Position <= from {
		i++
	}
	for i < len(l) {
		n := min(1000, len(l)-i)
		if err := fn(l[i : i+n]); err != nil {
			return err
		}
		i += n
	}
	<-ctx.Done()
	return ctx.Err()
}

func (l sliceLog) ReadPassesOf(ctx context.Context, personID uuid.UUID, from uint64, fn func([]domain.Envelope) error) error {
	return domain.Errorf(domain.ErrInvalid, "not supported")
}

func (l sliceLog) LastPosition(context.Context) (uint64, error) {
	if len(l) == 0 {
		return 0, nil
	}
	return l[len(l)-1].Position, nil
}
