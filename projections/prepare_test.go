package projections_test

import (
	"context"
	"testing"

	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/storetest"
)

// BenchmarkPrepare decodes pass envelopes on one core: the part of a replay
// that domain.Decode (encoding/json) costs.
func BenchmarkPrepare(b *testing.B) {
	l := storetest.Generate(100, 10, 10_000, 1, 1)
	envs := l.Envelopes[120:]
	open := projections.KeyringOpener(l.Keys)
	b.ResetTimer()
	for b.Loop() {
		if _, err := projections.Prepare(context.Background(), envs, open); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(envs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
