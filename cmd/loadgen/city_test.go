package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/cmd/internal/secrets"
	"github.com/checkin-ledger/ledger/domain"
	ledgerhttp "github.com/checkin-ledger/ledger/http"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
)

// cityKey is the root secret the test servers and the simulator share
// (LEDGER_TOKEN_KEY).
const cityKey = "city-test-root-secret-0123456789abcdef"

func cityGetenv(k string) string {
	if k == "LEDGER_TOKEN_KEY" {
		return cityKey
	}
	return ""
}

// cityServer is a fresh ledger behind its HTTP API, keyed as `ledger
// serve` keys itself from LEDGER_TOKEN_KEY.
type cityServer struct {
	env *ledgertest.Env
	url string
}

func startCityServer(t *testing.T) *cityServer {
	t.Helper()
	keys, err := secrets.Load(secrets.Source{DataDir: t.TempDir(), Getenv: cityGetenv})
	if err != nil {
		t.Fatal(err)
	}
	env := ledgertest.Start(t, ledgertest.Options{MasterKey: keys.Master, HashKey: keys.IDHash, SigningKey: keys.Token, ClockSkew: 5 * time.Minute})
	srv := ledgerhttp.New(ledgerhttp.Options{Ledger: env.Ledger, Reads: env.Reads, Signer: env.Signer, Waiter: env.Projector, ClockSkew: 5 * time.Minute})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &cityServer{env: env, url: ts.URL}
}

// runCity runs `loadgen city` and returns its summary line.
func runCity(t *testing.T, args ...string) citySummary {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := loadgen(ctx, append([]string{"city", "--progress=false"}, args...), &out, &errOut, cityGetenv); err != nil {
		t.Fatalf("loadgen city: %v\n%s", err, errOut.String())
	}
	t.Logf("loadgen city %s:\n%s", strings.Join(args, " "), errOut.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one JSON line on stdout, got %d:\n%s", len(lines), out.String())
	}
	var sum citySummary
	if err := json.Unmarshal([]byte(lines[0]), &sum); err != nil {
		t.Fatalf("summary %q: %v", lines[0], err)
	}
	return sum
}

// storedPasses counts the passes a server's read models hold.
func storedPasses(t *testing.T, s *cityServer) int {
	t.Helper()
	ctx := context.Background()
	venues, err := s.env.Reads.Venues(ctx, domain.VenueFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range venues {
		es, err := s.env.Reads.Entries(ctx, domain.EntryQuery{VenueID: v.ID, Limit: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		n += len(es)
	}
	return n
}

// TestCityDeterministic builds the same small city on two fresh servers
// and gets the same counts; a second run of the same seed and end against
// one of them is answered as duplicates and stores nothing twice.
func TestCityDeterministic(t *testing.T) {
	a, b := startCityServer(t), startCityServer(t)
	end := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	args := []string{"--people", "60", "--days", "2", "--seed", "42", "-c", "8"}
	sa := runCity(t, append(args, "--url", a.url, "--data", t.TempDir(), "--end", end)...)
	sb := runCity(t, append(args, "--url", b.url, "--data", t.TempDir(), "--end", end)...)
	if !reflect.DeepEqual(sa.Counts, sb.Counts) {
		t.Fatalf("same seed, other counts:\n%+v\n%+v", sa.Counts, sb.Counts)
	}
	c := sa.Counts
	p := c.Passes
	switch {
	case sa.Errors != 0 || sb.Errors != 0:
		t.Fatalf("errors: %d, %d (first: %s)", sa.Errors, sb.Errors, sa.FirstError)
	case c.People != 60 || c.Dependants == 0 || c.Families == 0 || c.Verified == 0 || c.Unverified == 0:
		t.Fatalf("people: %+v", c)
	case len(c.VenueTypes) != len(domain.VenueTypes()) || c.CodesIssued != c.Approved || c.Approved == 0:
		t.Fatalf("venues: %d types of %d, %d approved, %d codes", len(c.VenueTypes), len(domain.VenueTypes()), c.Approved, c.CodesIssued)
	case c.Yellow == 0 || c.Red == 0 || c.Health != c.People+c.Dependants:
		t.Fatalf("health feed: %+v", c)
	case p.Sent == 0 || p.Accepted != p.Sent || p.Rejected != 0 || p.Pass+p.Deny != p.Accepted:
		t.Fatalf("passes: %+v (rejected by %v)", p, c.Rejected)
	case p.Deny == 0 || p.Family == 0 || p.Manual == 0 || p.MissingExits == 0:
		t.Fatalf("passes lack a kind: %+v", p)
	case c.Declarations.Arrival == 0 || c.Declarations.Truck == 0:
		t.Fatalf("declarations: %+v", c.Declarations)
	}
	if got := storedPasses(t, a); got != p.Accepted {
		t.Fatalf("server holds %d passes, the simulator counted %d accepted", got, p.Accepted)
	}

	// The same seed and end again: every event id is already stored.
	again := runCity(t, append(args, "--url", a.url, "--data", t.TempDir(), "--end", end)...)
	if !reflect.DeepEqual(again.Counts, sa.Counts) {
		t.Fatalf("second run, other counts:\n%+v\n%+v", again.Counts, sa.Counts)
	}
	if again.Duplicates < p.Accepted {
		t.Fatalf("second run: %d duplicates, want at least the %d passes", again.Duplicates, p.Accepted)
	}
	if got := storedPasses(t, a); got != p.Accepted {
		t.Fatalf("after a second run the server holds %d passes, want %d", got, p.Accepted)
	}
}

// TestCityRetriesThroughOutage answers the simulator's first requests 503
// and then refuses connections for a while, as a restarting server does;
// each request is sent again with the same body and counted once.
func TestCityRetriesThroughOutage(t *testing.T) {
	s := startCityServer(t)
	// A proxy in front of the server loses the answers of the first pass
	// requests after the server has taken them: half as a 503, half as a
	// connection closed without an answer.
	target := s.url
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var mu sync.Mutex
	seen := map[string]bool{}
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lost := 0
		if r.Method == "POST" && strings.HasPrefix(r.URL.Path, "/v1/passes") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			mu.Lock()
			if !seen[string(body)] && len(seen) < 40 {
				seen[string(body)] = true // lose the first attempt only
				lost = 1 + len(seen)%2
			}
			mu.Unlock()
		}
		forward(target, w, r, lost)
	})}
	go proxy.Serve(ln)
	t.Cleanup(func() { proxy.Close() })
	sum := runCity(t, "--people", "30", "--days", "1", "--seed", "5", "-c", "1", "--url", "http://"+addr, "--data", t.TempDir())
	p := sum.Counts.Passes
	if sum.Retries < 40 || sum.Errors != 0 || p.Rejected != 0 || p.Accepted != p.Sent {
		t.Fatalf("retries %d, errors %d (%s), passes %+v", sum.Retries, sum.Errors, sum.FirstError, p)
	}
	if got := storedPasses(t, s); got != p.Accepted {
		t.Fatalf("server holds %d passes, the simulator counted %d", got, p.Accepted)
	}
}

// forward sends r on to target. With lost 1 the answer is dropped and the
// client gets a 503 instead; with 2 the connection is closed without an
// answer (an acknowledgement lost on the way).
func forward(target string, w http.ResponseWriter, r *http.Request, lost int) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if lost == 2 {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	if lost > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// TestCityRefusesForeignKey: a simulator whose key is not the server's
// says so before it sends anything.
func TestCityRefusesForeignKey(t *testing.T) {
	s := startCityServer(t)
	var out, errOut bytes.Buffer
	other := func(k string) string {
		if k == "LEDGER_TOKEN_KEY" {
			return "another-deployment-secret-0123456789abcdef"
		}
		return ""
	}
	err := loadgen(context.Background(), []string{"city", "--progress=false", "--people", "5", "--url", s.url}, &out, &errOut, other)
	if err == nil || !strings.Contains(err.Error(), "refuses the simulator's tokens") || out.Len() != 0 {
		t.Fatalf("err %v, stdout %q", err, out.String())
	}
	if pos, _ := s.env.Store.LastPosition(context.Background()); pos != 0 {
		t.Fatalf("the log holds events at %d", pos)
	}
}

// TestCityRefusedRegistrations runs the city of one seed, then the same seed
// with an --end years back against the same server: its people's documents
// are registered already (their ids differ, as their birth dates are the
// end's), so every registration is refused; the run ends saying so, not
// with a request for the nil person's id ("wait for the read models: 400
// id: must be a UUID").
func TestCityRefusedRegistrations(t *testing.T) {
	s := startCityServer(t)
	end := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	runCity(t, "--url", s.url, "--people", "20", "--days", "1", "--seed", "5", "--end", end)
	var out, errOut bytes.Buffer
	err := loadgen(context.Background(), []string{"city", "--progress=false", "--url", s.url, "--people", "20", "--days", "1",
		"--seed", "5", "--end", time.Now().Add(-50 * time.Hour).UTC().Format(time.RFC3339)}, &out, &errOut, cityGetenv)
	if err == nil || !strings.Contains(err.Error(), "register: 409") || strings.Contains(err.Error(), "UUID") {
		t.Fatalf("second run: %v\n%s", err, errOut.String())
	}
	var sum citySummary
	if jerr := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &sum); jerr != nil || sum.Errors != 20 || sum.Counts.People != 0 {
		t.Fatalf("second run's summary (%v): %s", jerr, out.String())
	}
}

// TestCityEndWithinRetention: a history that would start before the
// server's retention is refused before anything is sent.
func TestCityEndWithinRetention(t *testing.T) {
	var out, errOut bytes.Buffer
	err := loadgen(context.Background(), []string{"city", "--progress=false", "--url", "http://127.0.0.1:1", "--days", "3",
		"--end", time.Now().AddDate(0, 0, -26).UTC().Format(time.RFC3339)}, &out, &errOut, cityGetenv)
	if err == nil || !strings.Contains(err.Error(), "retention") {
		t.Fatalf("--end 26 days ago with --days 3: %v", err)
	}
	if out.Len() != 0 {
		t.Fatalf("a refused run wrote %q", out.String())
	}
}
