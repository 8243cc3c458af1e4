package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections/storetest"
)

var (
	vacuumOnce sync.Once
	vacuumErr  error
)

// benchTrace runs Ledger.Trace end to end on the 1,000,000 passes of the
// query benchmarks (20,000 people, 1,000 venues, 14 days): validation, the
// index person's lookup, the window reads, the stays and overlaps, the
// names and venues, and the TraceRequested audit event appended to an
// embedded JetStream (fsync before every acknowledgement) before the answer.
// Each iteration traces a random person over the whole 14 days with a
// 15-minute minimum overlap and a 5-minute buffer.
func benchTrace(b *testing.B, depth int) {
	s := loadedStore(b)
	l, _ := benchBatches(b)
	ctx := context.Background()
	// What autovacuum does on its own some time after a bulk load (it is
	// off on the test machines): mark the pages all-visible, so the window
	// reads are index-only scans of the covering indexes (migration 0002).
	vacuumOnce.Do(func() { _, vacuumErr = testPool.Exec(ctx, "VACUUM (ANALYZE) "+s.Schema()+".passes") })
	if vacuumErr != nil {
		b.Fatal(vacuumErr)
	}
	es, err := eventstore.Open(ctx, eventstore.Options{Dir: b.TempDir(), MasterKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		b.Fatal(err)
	}
	defer es.Close()
	hasher, err := pii.NewHasher(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		b.Fatal(err)
	}
	ledger := &ledger.Ledger{Events: es, Log: es, Keys: es, Hasher: hasher, Reads: s, Dwell: domain.DefaultDwell,
		Now: func() time.Time { return storetest.Base.Add(15 * 24 * time.Hour) }}
	analyst := domain.Actor{Role: domain.RoleAnalyst, Subject: "analyst:bench"}
	var contacts, people, traces int
	latencies(b, func(r *rand.Rand) error {
		res, err := ledger.Trace(ctx, analyst, domain.TraceQuery{
			PersonID: l.People[r.IntN(len(l.People))], From: storetest.Base, To: storetest.Base.Add(14 * 24 * time.Hour),
			Depth: depth, MinOverlap: 15 * time.Minute, Buffer: 5 * time.Minute, Reason: "benchmark",
		})
		if err == nil && res.Index.Visits == 0 {
			err = fmt.Errorf("person %v has no stays", res.Index.PersonID)
		}
		contacts += len(res.Contacts)
		people += res.Index.Contacts + res.Index.SecondContacts
		traces++
		return err
	})
	b.ReportMetric(float64(contacts)/float64(traces), "contacts/trace")
	b.ReportMetric(float64(people)/float64(traces), "people/trace")
}

// BenchmarkPostgresTraceContactsDepth1 is a depth-1 contact trace over 14
// days on 1,000,000 passes (target: under 50 ms).
func BenchmarkPostgresTraceContactsDepth1(b *testing.B) { benchTrace(b, 1) }

// BenchmarkPostgresTraceContactsDepth2 is a depth-2 contact trace over 14
// days on 1,000,000 passes (target: under 500 ms).
func BenchmarkPostgresTraceContactsDepth2(b *testing.B) { benchTrace(b, 2) }
