package http

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/checkin-ledger/ledger/token"
)

// selfScan records a self scan of person at venue through the API and
// returns its position.
func (e *testEnv) selfScan(person registered, venue uuid.UUID, dir string) uint64 {
	e.t.Helper()
	rec := e.do("POST", "/v1/passes", person.Token, map[string]any{"method": "self_scan",
		"venue_code": e.signer.IssueVenueCode(venue), "direction": dir})
	wantStatus(e.t, rec, http.StatusCreated)
	return decodeJSON[passResponse](e.t, rec).Position
}

func TestDashboardRoles(t *testing.T) {
	e := newTestServer(t)
	city := e.bearer(domain.Actor{Role: domain.RoleDashboard})
	short, err := e.signer.IssueBearer(domain.Actor{Role: domain.RoleDashboard}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute) // short has expired
	others := map[string]string{
		"admin":       e.bearer(domain.Actor{Role: domain.RoleAdmin}),
		"reviewer":    e.bearer(domain.Actor{Role: domain.RoleReviewer}),
		"analyst":     e.bearer(domain.Actor{Role: domain.RoleAnalyst}),
		"auditor":     e.bearer(domain.Actor{Role: domain.RoleAuditor, Subject: "auditor:a"}),
		"health-feed": e.bearer(domain.Actor{Role: domain.RoleHealthFeed}),
		"scanner":     e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: uuid.New()}),
		"person":      e.register("周一", 41).Token,
	}
	for _, route := range []string{"/v1/dashboard/summary", "/v1/dashboard/stream"} {
		t.Run(route, func(t *testing.T) {
			for role, tok := range others {
				if rec := e.do("GET", route, tok, nil); rec.Code != 403 {
					t.Fatalf("%s: %d %s", role, rec.Code, rec.Body.String())
				}
			}
			wantProblem(t, e.do("GET", route, "", nil), 401, ProblemUnauthorized)
			wantProblem(t, e.do("GET", route, "not-a-token", nil), 401, ProblemUnauthorized)
			wantProblem(t, e.do("GET", route, short, nil), 401, ProblemUnauthorized)
			wantProblem(t, e.do("GET", route+"?district=37130", city, nil), 400, ProblemValidation)
		})
	}
	// The query token is the stream's alone: the summary takes no such
	// parameter (refused before authentication, so the token is never read).
	wantProblem(t, e.do("GET", "/v1/dashboard/summary?access_token="+city, "", nil), 400, ProblemValidation)
	wantProblem(t, e.do("GET", "/v1/dashboard/stream?access_token="+short, "", nil), 401, ProblemUnauthorized)
	wantProblem(t, e.do("GET", "/v1/dashboard/stream?access_token=x.y.z", "", nil), 401, ProblemUnauthorized)
	wantProblem(t, e.do("GET", "/v1/dashboard/stream?access_token="+others["admin"], "", nil), 403, ProblemForbidden)
	rec := e.do("GET", "/v1/dashboard/summary", city, nil)
	wantStatus(t, rec, 200)
}

func TestDashboardSummary(t *testing.T) {
	w := newPassWorld(t)
	e := w.e
	city := e.bearer(domain.Actor{Role: domain.RoleDashboard})
	lanshan := e.bearer(domain.Actor{Role: domain.RoleDashboard, District: "371302"})
	luozhuang := e.bearer(domain.Actor{Role: domain.RoleDashboard, District: "371311"})

	e.waitApplied(e.selfScan(w.visitor, w.venueA, "in"))
	e.waitApplied(e.selfScan(w.managerB, w.venueA, "in"))
	e.waitApplied(e.selfScan(w.managerB, w.venueA, "out"))

	get := func(tok, query string) dashboardJSON {
		t.Helper()
		rec := e.do("GET", "/v1/dashboard/summary"+query, tok, nil)
		wantStatus(t, rec, 200)
		return decodeJSON[dashboardJSON](t, rec)
	}
	d := get(city, "")
	if d.PassesToday != 3 || d.DeniedToday != 0 || d.PassesTotal != 3 || d.District != "" || d.Position == 0 ||
		len(d.ByDistrict) != 1 || d.ByDistrict[0].District != "371302" || d.ByDistrict[0].Passes != 3 ||
		len(d.ByVenueType) != 1 || d.ByVenueType[0].VenueType != "restaurant" ||
		len(d.OccupancyTop) != 1 || d.OccupancyTop[0].VenueID != w.venueA || d.OccupancyTop[0].Occupancy != 1 ||
		d.OccupancyTop[0].Name != "兰山超市" {
		t.Fatalf("city dashboard: %+v", d)
	}
	if len(d.PassesPerHour) < 23 || len(d.PassesPerHour) > 25 {
		t.Fatalf("%d hours in a day", len(d.PassesPerHour))
	}
	sum := int64(0)
	for _, h := range d.PassesPerHour {
		sum += h.Passes
	}
	if sum != 3 {
		t.Fatalf("hours add up to %d", sum)
	}
	if got := get(city, "?district=371302"); got.District != "371302" || got.PassesToday != 3 {
		t.Fatalf("city token, district 371302: %+v", got)
	}
	if got := get(lanshan, ""); got.District != "371302" || got.PassesToday != 3 {
		t.Fatalf("Lanshan's token: %+v", got)
	}
	if got := get(luozhuang, ""); got.District != "371311" || got.PassesToday != 0 || got.PassesTotal != 0 ||
		len(got.OccupancyTop) != 0 {
		t.Fatalf("Luozhuang's token sees Lanshan: %+v", got)
	}
	wantProblem(t, e.do("GET", "/v1/dashboard/summary?district=371302", luozhuang, nil), 403, ProblemForbidden)
	wantProblem(t, e.do("GET", "/v1/dashboard/stream?district=371302", luozhuang, nil), 403, ProblemForbidden)
	// No person is named anywhere in the dashboard.
	body := e.do("GET", "/v1/dashboard/summary", city, nil).Body.String()
	for _, s := range []string{"钱", "吴", w.visitor.ID.String(), w.managerB.ID.String(), residentID(t, 33)} {
		if strings.Contains(body, s) {
			t.Fatalf("the dashboard shows %q: %s", s, body)
		}
	}
}

// readEvent reads one SSE event (skipping comments) and returns its data.
func readEvent(t testing.TB, r *bufio.Reader) (event string, data []byte) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && event != "":
			return event, data
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: ")...)
		}
	}
}

func openStream(t testing.TB, ctx context.Context, url string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp, bufio.NewReader(resp.Body)
}

// streamServer serves e on a test server until the test ends: its URL, and
// a city dashboard's token for the streams.
func (e *testEnv) streamServer() (url, tok string) {
	ts := httptest.NewServer(e.srv.Handler())
	e.t.Cleanup(ts.Close)
	return ts.URL, e.bearer(domain.Actor{Role: domain.RoleDashboard})
}

// firstSummary opens the stream at url until the test ends and reads its
// first event, which must be a summary: the reader, and the event's data.
func firstSummary(t testing.TB, url string) (*bufio.Reader, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, r := openStream(t, ctx, url)
	t.Cleanup(func() { resp.Body.Close() })
	ev, data := readEvent(t, r)
	if ev != "summary" {
		t.Fatalf("first event %q: %s", ev, data)
	}
	return r, data
}

func TestDashboardStream(t *testing.T) {
	w := newPassWorld(t)
	e := w.e
	url, tok := e.streamServer()
	r, data := firstSummary(t, url+"/v1/dashboard/stream?access_token="+tok)
	var first dashboardJSON
	if err := json.Unmarshal(data, &first); err != nil {
		t.Fatalf("first event: %v %s", err, data)
	}
	if first.PassesToday != 0 {
		t.Fatalf("first event: %+v", first)
	}
	start := time.Now()
	e.selfScan(w.managerA, w.venueB, "in")
	for {
		_, data = readEvent(t, r)
		var d dashboardJSON
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		if d.PassesToday == 1 {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("no update with the pass after %v: %+v", time.Since(start), d)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the update took %v", took)
	}
	t.Logf("update %v after the pass", time.Since(start))
}

// TestDashboardStreamsLeakNothing opens 200 streams, reads an event on each,
// drops them, and checks the hub and every goroutine are gone.
func TestDashboardStreamsLeakNothing(t *testing.T) {
	e := newTestServer(t)
	url, tok := e.streamServer()
	http.DefaultClient.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	var bodies []*http.Response
	for i := range 200 {
		district := ""
		if i%2 == 1 {
			district = "&district=371302"
		}
		resp, r := openStream(t, ctx, url+"/v1/dashboard/stream?access_token="+tok+district)
		if ev, _ := readEvent(t, r); ev != "summary" {
			t.Fatalf("stream %d: event %q", i, ev)
		}
		bodies = append(bodies, resp)
	}
	e.srv.hub.mu.Lock()
	open := e.srv.hub.subs
	e.srv.hub.mu.Unlock()
	if open != 200 {
		t.Fatalf("hub counts %d streams", open)
	}
	cancel()
	for _, b := range bodies {
		b.Body.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	subs := func() int {
		e.srv.hub.mu.Lock()
		defer e.srv.hub.mu.Unlock()
		return e.srv.hub.subs
	}
	// The streams' handlers, the hub's watcher, the server's and the
	// client's connections: none may be left.
	left := func() []string {
		buf := make([]byte, 8<<20)
		var out []string
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			for _, f := range []string{"dashboardStream", "(*dashHub).watch", "net/http.(*conn).serve", "net/http.(*persistConn)"} {
				if strings.Contains(g, f) {
					out = append(out, g)
				}
			}
		}
		return out
	}
	if !ledgertest.Poll(10*time.Second, func() bool { return subs() == 0 && len(left()) == 0 }) {
		t.Fatalf("%d streams, %d goroutines left:\n%s", subs(), len(left()), strings.Join(left(), "\n\n"))
	}
}

func TestDashboardPage(t *testing.T) {
	e := newTestServer(t)
	rec := e.do("GET", "/dashboard", "", nil)
	wantStatus(t, rec, 200)
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" ||
		!strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'self'") ||
		!strings.Contains(rec.Body.String(), "/dashboard/assets/app.js") {
		t.Fatalf("page: %s %v", ct, rec.Header())
	}
	for name, ct := range map[string]string{"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"} {
		rec := e.do("GET", "/dashboard/assets/"+name, "", nil)
		wantStatus(t, rec, 200)
		if rec.Header().Get("Content-Type") != ct {
			t.Fatalf("%s: %s", name, rec.Header().Get("Content-Type"))
		}
	}
	js := e.do("GET", "/dashboard/assets/app.js", "", nil).Body.String()
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "https://", "eval("} {
		if strings.Contains(js, bad) {
			t.Fatalf("the page's script uses %s", bad)
		}
	}
	for _, bad := range []string{"nope.js", "..%2Fdashboard.go", "%2e%2e", "index.html%00"} {
		wantStatus(t, e.do("GET", "/dashboard/assets/"+bad, "", nil), 404)
	}
}

// TestShutdownEndsStreams checks that a graceful shutdown does not wait for
// the open dashboard streams: they end at once, and Serve returns.
func TestShutdownEndsStreams(t *testing.T) {
	e := newTestServer(t)
	base, shutdown := e.serveOnPort()
	tok := e.bearer(domain.Actor{Role: domain.RoleDashboard})
	resp, r := openStream(t, context.Background(), base+"/v1/dashboard/stream?access_token="+tok)
	defer resp.Body.Close()
	readEvent(t, r)
	start := time.Now()
	shutdown()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("shutdown took %v", took)
	}
	if _, err := io.Copy(io.Discard, r); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Logf("stream ended with %v", err)
	}
}

// TestDashboardStreamEndsWithItsToken opens a stream with a token valid for
// a minute, lets the minute pass and posts a pass: the stream ends instead
// of sending its update (a token checked only when the stream opened read
// the city for as long as the connection lasted); the client's reconnect
// is refused, 401.
func TestDashboardStreamEndsWithItsToken(t *testing.T) {
	w := newPassWorld(t)
	e := w.e
	url, _ := e.streamServer()
	tok, err := e.signer.IssueBearer(domain.Actor{Role: domain.RoleDashboard, Subject: "dashboard:wall"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := firstSummary(t, url+"/v1/dashboard/stream?access_token="+tok)
	e.clock.Advance(2 * time.Minute)
	e.selfScan(w.managerA, w.venueB, "in")
	done := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(r)
		done <- fmt.Sprintf("%q %v", b, err)
	}()
	select {
	case got := <-done:
		if strings.Contains(got, "data:") {
			t.Fatalf("the expired token's stream was sent %s", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream of an expired token is still open 5 s after a pass")
	}
	res, err := http.Get(url + "/v1/dashboard/stream?access_token=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reconnect with the expired token: %d", res.StatusCode)
	}
}

// TestDashboardHubForgetsDroppedDistricts keeps one stream open and opens
// and drops streams of 30 other districts: the hub keeps the summary of the
// open stream's district only (it kept one for every district ever asked
// while any stream was open: a dashboard token walking the 6-digit codes
// grew the server's memory without bound).
func TestDashboardHubForgetsDroppedDistricts(t *testing.T) {
	e := newTestServer(t)
	url, tok := e.streamServer()
	firstSummary(t, url+"/v1/dashboard/stream?district=371302&access_token="+tok) // held open
	for i := range 30 {
		sctx, scancel := context.WithCancel(context.Background())
		resp, r := openStream(t, sctx, fmt.Sprintf("%s/v1/dashboard/stream?district=%06d&access_token=%s", url, 100000+i, tok))
		if ev, _ := readEvent(t, r); ev != "summary" {
			t.Fatalf("stream %d: event %q", i, ev)
		}
		scancel()
		resp.Body.Close()
	}
	kept := func() []string {
		e.srv.hub.mu.Lock()
		defer e.srv.hub.mu.Unlock()
		var ks []string
		for k := range e.srv.hub.latest {
			ks = append(ks, k)
		}
		return ks
	}
	if !ledgertest.Poll(5*time.Second, func() bool { ks := kept(); return len(ks) == 1 && ks[0] == "371302" }) {
		t.Fatalf("the hub keeps the summaries of %d districts: %v", len(kept()), kept())
	}
}

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
