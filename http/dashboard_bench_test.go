package http

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/checkin-ledger/ledger/token"
)

// BenchmarkDashboardSummary is GET /v1/dashboard/summary, routed,
// authenticated and rendered, on memory read models holding 1,000,000
// passes (100,000 people, 2,000 venues in 12 districts, 14 days), the
// whole city and one district; it reports the p50 and p99 latency and the
// CPU time per call (steadier on a shared machine). The
// target is p99 < 10 ms:
//
//	go test -run X -bench DashboardSummary -benchtime 2000x ./http/
func BenchmarkDashboardSummary(b *testing.B) {
	l := storetest.Generate(100_000, 2_000, 1_000_000, 14, 1)
	store := memory.New(memory.Options{})
	if err := storetest.Feed(context.Background(), store, l.Envelopes, projections.KeyringOpener(l.Keys), 5000); err != nil {
		b.Fatal(err)
	}
	l = storetest.Log{}
	signer, err := token.NewSigner(testKey, nil)
	if err != nil {
		b.Fatal(err)
	}
	// A busy afternoon in the middle of the generated fortnight.
	now := storetest.Base.Add(7*24*time.Hour + 7*time.Hour)
	loc := time.FixedZone("CST", 8*3600)
	srv := New(Options{Reads: store, Signer: signer, Now: func() time.Time { return now }, Location: loc})
	tok, err := signer.IssueBearer(domain.Actor{Role: domain.RoleDashboard}, 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{"", "?district=371302"} {
		b.Run("district="+q, func(b *testing.B) {
			var took []time.Duration
			cpu0 := cpuTime()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/v1/dashboard/summary"+q, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				start := time.Now()
				srv.Handler().ServeHTTP(rec, req)
				took = append(took, time.Since(start))
				if rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body.String())
				}
			}
			cpu := cpuTime() - cpu0
			slices.Sort(took)
			b.ReportMetric(float64(cpu.Microseconds())/float64(len(took))/1000, "cpu-ms/op")
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkPassIngestWithStreams posts single passes (self scans, 32 at a
// time) through the API on the real event store, with no dashboard stream
// open and with 100 open, each reading its events: the passes/s of the two
// are the ratio to compare (the target: 100 streams cost at most 5%), and
// so is the CPU time per pass.
//
//	go test -run X -bench PassIngestWithStreams -benchtime 3000x -count 3 ./http/
func BenchmarkPassIngestWithStreams(b *testing.B) {
	for _, streams := range []int{0, 100} {
		b.Run("streams="+strconv.Itoa(streams), func(b *testing.B) {
			e := newTestServer(b)
			manager := e.register("吴一", 31)
			venue := e.approvedVenue(manager, "兰山超市")
			code := e.signer.IssueVenueCode(venue)
			var people []registered
			for i := range 8 {
				people = append(people, e.register("郑"+strconv.Itoa(i), 40+i))
			}
			ts := httptest.NewServer(e.srv.Handler())
			defer func() {
				ts.CloseClientConnections()
				ts.Close()
			}()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			dash := e.bearer(domain.Actor{Role: domain.RoleDashboard})
			var readers sync.WaitGroup
			for range streams {
				resp, r := openStream(b, ctx, ts.URL+"/v1/dashboard/stream?access_token="+dash)
				readers.Add(1)
				go func() {
					defer readers.Done()
					defer resp.Body.Close()
					buf := make([]byte, 32<<10)
					for {
						if _, err := r.Read(buf); err != nil {
							return
						}
					}
				}()
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			body := `{"method":"self_scan","venue_code":"` + code + `","direction":"in"}`
			jobs := make(chan registered)
			var posters sync.WaitGroup
			for range 32 {
				posters.Add(1)
				go func() {
					defer posters.Done()
					for p := range jobs {
						req, _ := http.NewRequest("POST", ts.URL+"/v1/passes", stringsReader(body))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("Authorization", "Bearer "+p.Token)
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						resp.Body.Close()
						if resp.StatusCode != 201 {
							b.Errorf("pass: %d", resp.StatusCode)
						}
					}
				}()
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				jobs <- people[i%len(people)]
			}
			close(jobs)
			posters.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "passes/s")
			// CPU time per pass (this process: server, store, client and
			// streams alike) is steadier than wall time on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/pass")
			cancel()
			ts.CloseClientConnections()
			readers.Wait()
		})
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
