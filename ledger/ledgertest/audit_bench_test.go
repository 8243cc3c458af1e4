package ledgertest_test

import (
	"context"
	"testing"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
)

// BenchmarkAuditRecord: audited events chained one after the other (one
// writer: the audit reaction's usual load), each a head load, an append at
// its version with fsync, and an anchor update.
func BenchmarkAuditRecord(b *testing.B) {
	env := ledgertest.Start(b, ledgertest.Options{NoProjector: true})
	srcs := auditSources(b, b.N)
	b.ResetTimer()
	for i := range b.N {
		if _, err := env.Ledger.RecordAudit(context.Background(), domain.ReactionsActor, srcs[i:i+1]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAuditRecordContended: eight writers on one chain at once (two
// replicas' reactions racing): every lost race decides again.
func BenchmarkAuditRecordContended(b *testing.B) {
	env := ledgertest.Start(b, ledgertest.Options{NoProjector: true})
	srcs := auditSources(b, b.N+64)
	next := make(chan domain.Envelope, len(srcs))
	for _, s := range srcs {
		next <- s
	}
	b.SetParallelism(4) // 4 × GOMAXPROCS (2 here) writers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := env.Ledger.RecordAudit(context.Background(), domain.ReactionsActor, []domain.Envelope{<-next}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAuditVerify: verifying a chain of 5,000 entries (anchor, then
// the chain read from the log and checked).
func BenchmarkAuditVerify(b *testing.B) {
	env := ledgertest.Start(b, ledgertest.Options{NoProjector: true})
	const n = 5000
	srcs := auditSources(b, n)
	if _, err := env.Ledger.RecordAudit(context.Background(), domain.ReactionsActor, srcs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		r, err := env.Ledger.VerifyAudit(context.Background())
		if err != nil || !r.OK() || r.Entries != n {
			b.Fatalf("%+v %v", r, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAuditRecordPack: audited events arriving 100 to a message (a
// pack of looks): one anchor update per pack.
func BenchmarkAuditRecordPack(b *testing.B) {
	env := ledgertest.Start(b, ledgertest.Options{NoProjector: true})
	srcs := auditSources(b, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i += 100 {
		if _, err := env.Ledger.RecordAudit(context.Background(), domain.ReactionsActor, srcs[i:min(i+100, b.N)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
