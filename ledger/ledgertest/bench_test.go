package ledgertest_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// benchCity registers people with health records at one approved venue.
func benchCity(b *testing.B, people int) (*harness, uuid.UUID, []uuid.UUID) {
	b.Helper()
	h := newHarness(b)
	vid, _ := h.approvedVenue(domain.ApplyVenue{})
	ids := make([]uuid.UUID, people)
	for i := range ids {
		var number string
		ids[i], number = h.register("张三")
		h.health(number, domain.ColourGreen, domain.NATNegative, time.Now().Add(-time.Hour))
	}
	h.caughtUp(h.lastPosition())
	return h, vid, ids
}

// BenchmarkRecordPass: many scanners recording one pass each at once, through
// Ledger.RecordPass (read-model lookups, decision, group commit, fsync).
func BenchmarkRecordPass(b *testing.B) {
	h, vid, ids := benchCity(b, 200)
	scanner := domain.Actor{Role: domain.RoleScanner, VenueID: vid, Subject: "scanner"}
	b.SetParallelism(32) // 32 × GOMAXPROCS concurrent scanners
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cmd := domain.RecordPass{Method: domain.MethodStaffScan, VenueID: vid,
				PersonID: ids[rand.IntN(len(ids))], Direction: domain.DirectionIn}
			if _, err := h.Ledger.RecordPass(h.ctx, scanner, cmd); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "passes/s")
}

// BenchmarkRecordPasses: offline scanners posting batches of 1,000 passes.
func BenchmarkRecordPasses(b *testing.B) {
	h, vid, ids := benchCity(b, 200)
	scanner := domain.Actor{Role: domain.RoleScanner, VenueID: vid, Subject: "scanner"}
	batch := make([]domain.RecordPass, domain.MaxBatchPasses)
	b.ResetTimer()
	for range b.N {
		for i := range batch {
			id, _ := uuid.NewV7()
			batch[i] = domain.RecordPass{EventID: id, Method: domain.MethodStaffScan, VenueID: vid,
				PersonID: ids[rand.IntN(len(ids))], Direction: domain.DirectionIn, OccurredAt: time.Now().Add(-time.Hour)}
		}
		items, err := h.Ledger.RecordPasses(h.ctx, scanner, batch)
		if err != nil {
			b.Fatal(err)
		}
		if items[len(items)-1].Status != domain.BatchAccepted {
			b.Fatalf("last item %+v", items[len(items)-1])
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "passes/s")
}

// BenchmarkRecordRaw is the baseline of BenchmarkRecordPasses: the same
// 1,000 pass events, built beforehand, handed straight to Events.Record.
func BenchmarkRecordRaw(b *testing.B) {
	h, vid, ids := benchCity(b, 200)
	envs := make([]domain.Envelope, domain.MaxBatchPasses)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for i := range envs {
			pid := ids[rand.IntN(len(ids))]
			rec := domain.PassRecorded{VenueID: vid, PersonID: pid, Direction: domain.DirectionIn,
				Method: domain.MethodStaffScan, Decision: domain.DecisionPass, Operator: "scanner",
				Screen: domain.Screen{NameMasked: "张*", CodeColour: domain.ColourGreen, VenueID: vid, VenueName: "兰山超市",
					At: time.Now(), Direction: domain.DirectionIn, Decision: domain.DecisionPass}}
			env, err := domain.NewEnvelope(domain.PassAggregate(vid, pid), rec, domain.Meta{Actor: "scanner"}, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			envs[i] = env
		}
		b.StartTimer()
		if _, err := h.Store.Record(h.ctx, envs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(envs))/b.Elapsed().Seconds(), "passes/s")
}

// BenchmarkRecordRawSingle is the baseline of BenchmarkRecordPass: one
// prebuilt pass event per Events.Record call, from as many goroutines.
func BenchmarkRecordRawSingle(b *testing.B) {
	h, vid, ids := benchCity(b, 200)
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			pid := ids[rand.IntN(len(ids))]
			rec := domain.PassRecorded{VenueID: vid, PersonID: pid, Direction: domain.DirectionIn,
				Method: domain.MethodStaffScan, Decision: domain.DecisionPass, Operator: "scanner"}
			env, err := domain.NewEnvelope(domain.PassAggregate(vid, pid), rec, domain.Meta{Actor: "scanner"}, time.Now())
			if err == nil {
				_, err = h.Store.Record(h.ctx, env)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "passes/s")
}
