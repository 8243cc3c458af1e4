// Command loadgen drives a running `ledger serve` with concurrent passes and
// reports throughput and latency beside a do-nothing HTTP server measured in
// the same run.
//
//	loadgen [--url URL] [--data DIR] [--mode single|batch] [-c N] [-d D] [--baseline=false] ...
//	loadgen --wrk FILE ...   set up, write a wrk Lua script for the requests and exit
//	loadgen --noop ADDR      serve only the do-nothing baseline (for wrk)
//	loadgen city [--url URL] [--data DIR] [--people N] [--days D] [--seed S] [--rate R --duration D]
//	                         build a synthetic city through the API, then drive live passes (city.go)
//
// It is a binary of its own so that the service does not ship it. It signs
// its tokens with the ledger's key (the data dir's ledger.key, or
// LEDGER_TOKEN_KEY), so it reads the data dir the server was started with.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/cmd/internal/secrets"
	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/token"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := loadgen(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
		}
		os.Exit(1)
	}
}

// loadgen drives a running `ledger serve` with concurrent passes and reports
// throughput and latency beside a do-nothing HTTP server measured in the
// same run. The server must run with --register-rate 0 (set-up registers
// many people) and share the data dir (or LEDGER_TOKEN_KEY) for tokens.
func loadgen(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "city" {
		return city(ctx, args[1:], stdout, stderr, getenv)
	}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "the ledger's base URL")
	var keys secrets.Flags
	keys.Register(fs)
	mode := fs.String("mode", "single", "single: POST /v1/passes; batch: POST /v1/passes/batch")
	conc := fs.Int("c", 64, "concurrent clients")
	dur := fs.Duration("d", 15*time.Second, "how long to load")
	persons := fs.Int("persons", 2000, "people to register in set-up")
	venues := fs.Int("venues", 20, "venues to register in set-up")
	batchSize := fs.Int("batch", 1000, "passes per batch request (mode batch)")
	spacing := fs.Duration("spacing", time.Second, "mode batch: the time between a batch's passes, ending now (a scanner that was offline for batch × spacing)")
	baseline := fs.Bool("baseline", true, "also load a do-nothing HTTP server in this process for the same time")
	wrkScript := fs.String("wrk", "", "set up, then write a wrk Lua script for --mode's requests to this file and exit (no load)")
	noop := fs.String("noop", "", "serve only the do-nothing baseline on this address until interrupted (for wrk)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *noop != "" {
		return serveNoop(ctx, *noop, stderr)
	}
	if *mode != "single" && *mode != "batch" {
		return fmt.Errorf("unknown --mode %q", *mode)
	}
	sec, err := keys.Load(getenv)
	if err != nil {
		return err
	}
	signer, err := token.NewSigner(sec.Token, time.Now)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2, MaxConnsPerHost: *conc * 2}, Timeout: 30 * time.Second}
	w := &world{base: *base, client: client, signer: signer, out: stderr, spacing: *spacing}
	fmt.Fprintf(stderr, "set-up: %d people, %d venues\n", *persons, *venues)
	if err := w.setUp(ctx, *persons, *venues); err != nil {
		return fmt.Errorf("set-up: %w", err)
	}

	if *wrkScript != "" {
		if err := w.writeWrkScript(*wrkScript, *mode, *batchSize); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s: run wrk -t2 -c%d -d%s --latency -s %s %s\n", *wrkScript, *conc, *dur, *wrkScript, *base)
		return nil
	}

	var op func(ctx context.Context, rng *rand.Rand) (int, error)
	if *mode == "single" {
		op = w.singlePass
	} else {
		op = func(ctx context.Context, rng *rand.Rand) (int, error) { return w.batchPass(ctx, rng, *batchSize) }
	}
	fmt.Fprintf(stderr, "load: %s passes, %d clients, %s\n", *mode, *conc, *dur)
	res := drive(ctx, *conc, *dur, op)
	fmt.Fprintf(stdout, "ledger %s: %s\n", *mode, res)

	if *baseline {
		nb, stop, err := noopServer()
		if err != nil {
			return err
		}
		defer stop()
		body := []byte(`{"method":"self_scan","venue_code":"` + w.venueCodes[0] + `","direction":"in"}`)
		if *mode == "batch" {
			body = w.batchBody(rand.New(rand.NewPCG(1, 2)), *batchSize)
		}
		per := 1
		if *mode == "batch" {
			per = *batchSize
		}
		bres := drive(ctx, *conc, *dur, func(ctx context.Context, _ *rand.Rand) (int, error) {
			return per, post(ctx, client, nb+"/noop", "", body, http.StatusCreated)
		})
		fmt.Fprintf(stdout, "do-nothing server, same bodies: %s\n", bres)
		if bres.rate > 0 {
			fmt.Fprintf(stdout, "ratio ledger/do-nothing: %.2f\n", res.rate/bres.rate)
		}
	}
	if res.errors > 0 {
		return fmt.Errorf("%d requests failed (first: %v)", res.errors, res.firstErr)
	}
	return nil
}

// world is what set-up made: people with tokens and ID numbers, approved venues.
type world struct {
	base       string
	client     *http.Client
	signer     *token.Signer
	out        io.Writer
	tokens     []string // person bearer tokens
	idNumbers  []string
	venueIDs   []string
	venueCodes []string
	scanners   []string // scanner tokens, one per venue
	spacing    time.Duration
}

func (w *world) setUp(ctx context.Context, persons, venues int) error {
	seed := int(time.Now().UnixNano() % 1_000_000_000)
	w.tokens = make([]string, persons)
	w.idNumbers = make([]string, persons)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  atomic.Int64
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= persons {
					return
				}
				id := residentID(seed + i)
				var reg struct {
					Token string `json:"token"`
				}
				body, _ := json.Marshal(map[string]string{"name": "测试" + fmt.Sprint(i), "id_type": "resident_id", "id_number": id, "phone": "13800000000"})
				if err := postJSON(ctx, w.client, w.base+"/v1/persons", "", body, http.StatusCreated, &reg); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("register: %w (is the server running with --register-rate 0?)", err)
					}
					mu.Unlock()
					return
				}
				w.tokens[i], w.idNumbers[i] = reg.Token, id
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	reviewer, err := w.signer.IssueBearer(domain.Actor{Role: domain.RoleReviewer, Subject: "reviewer"}, time.Hour)
	if err != nil {
		return err
	}
	for v := range venues {
		var ap struct {
			VenueID string `json:"venue_id"`
		}
		body, _ := json.Marshal(map[string]any{"name": fmt.Sprintf("压测场所%d", v), "type": "supermarket", "district": "371302",
			"address": "临沂市兰山区", "lat": 35.05, "lng": 118.35})
		if err := postJSON(ctx, w.client, w.base+"/v1/venues", w.tokens[v%len(w.tokens)], body, http.StatusCreated, &ap); err != nil {
			return fmt.Errorf("apply venue: %w", err)
		}
		var rv struct {
			Position uint64 `json:"position"`
		}
		if err := postJSON(ctx, w.client, w.base+"/v1/venues/"+ap.VenueID+"/review", reviewer, []byte(`{"decision":"approve"}`), 0, &rv); err != nil {
			return fmt.Errorf("approve venue: %w", err)
		}
		venueID, err := uuid.Parse(ap.VenueID)
		if err != nil {
			return err
		}
		scanner, err := w.signer.IssueBearer(domain.Actor{Role: domain.RoleScanner, VenueID: venueID, Subject: "scanner:" + ap.VenueID}, time.Hour)
		if err != nil {
			return err
		}
		w.venueIDs = append(w.venueIDs, ap.VenueID)
		w.venueCodes = append(w.venueCodes, w.signer.IssueVenueCode(venueID))
		w.scanners = append(w.scanners, scanner)
		// Wait until the read models know the venue is approved.
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/venues/%s?min_position=%d", w.base, ap.VenueID, rv.Position), nil)
		req.Header.Set("Authorization", "Bearer "+reviewer)
		resp, err := w.client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
	}
	return nil
}

func (w *world) singlePass(ctx context.Context, rng *rand.Rand) (int, error) {
	p, v := rng.IntN(len(w.tokens)), rng.IntN(len(w.venueCodes))
	dir := "in"
	if rng.IntN(2) == 1 {
		dir = "out"
	}
	body := []byte(`{"method":"self_scan","venue_code":"` + w.venueCodes[v] + `","direction":"` + dir + `"}`)
	return 1, post(ctx, w.client, w.base+"/v1/passes", w.tokens[p], body, http.StatusCreated)
}

// batchBody builds a batch of n manual passes at one venue, each with its
// own event id, ending now and spaced by w.spacing. It appends instead of
// formatting: the load generator shares the machine with the server.
func (w *world) batchBody(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n*260+16)
	b = append(b, `{"passes":[`...)
	venue := w.venueIDs[rng.IntN(len(w.venueIDs))]
	now := time.Now().UTC()
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		dir := "in"
		if i%2 == 1 {
			dir = "out"
		}
		b = append(b, `{"method":"manual","venue_id":"`...)
		b = append(b, venue...)
		b = append(b, `","id_type":"resident_id","id_number":"`...)
		b = append(b, w.idNumbers[rng.IntN(len(w.idNumbers))]...)
		b = append(b, `","direction":"`...)
		b = append(b, dir...)
		b = append(b, `","event_id":"`...)
		id := uuid.Must(uuid.NewV7())
		b = append(b, id.String()...)
		b = append(b, `","occurred_at":"`...)
		b = now.Add(-time.Duration(n-i)*w.spacing).AppendFormat(b, time.RFC3339Nano)
		b = append(b, `"}`...)
	}
	return append(b, `]}`...)
}

func (w *world) batchPass(ctx context.Context, rng *rand.Rand, n int) (int, error) {
	body := w.batchBody(rng, n)
	// The scanner of the venue the batch names.
	var venue string
	if i := bytes.Index(body, []byte(`"venue_id":"`)); i >= 0 {
		venue = string(body[i+12 : i+48])
	}
	scanner := w.scanners[slices.Index(w.venueIDs, venue)]
	var res struct {
		Results []struct {
			Status string `json:"status"`
			Error  any    `json:"error"`
		} `json:"results"`
	}
	if err := postJSON(ctx, w.client, w.base+"/v1/passes/batch", scanner, body, http.StatusOK, &res); err != nil {
		return 0, err
	}
	for _, r := range res.Results {
		if r.Status != "accepted" {
			return 0, fmt.Errorf("batch item %s: %v", r.Status, r.Error)
		}
	}
	return len(res.Results), nil
}

// result sums a load run.
type result struct {
	ops, errors int
	firstErr    error
	rate        float64 // items (passes) per second
	lat         []time.Duration
}

func (r result) String() string {
	if len(r.lat) == 0 {
		return "no requests completed"
	}
	slices.Sort(r.lat)
	pct := func(p float64) time.Duration { return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))] }
	return fmt.Sprintf("%.0f passes/s over %d requests, latency p50 %s p99 %s p99.9 %s max %s, %d errors",
		r.rate, len(r.lat), pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond),
		pct(0.999).Round(10*time.Microsecond), r.lat[len(r.lat)-1].Round(10*time.Microsecond), r.errors)
}

// drive runs op from conc goroutines for d and sums the items it reports.
func drive(ctx context.Context, conc int, d time.Duration, op func(context.Context, *rand.Rand) (int, error)) result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
	)
	start := time.Now()
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), uint64(start.UnixNano())))
			var lat []time.Duration
			items, errs := 0, 0
			var firstErr error
			for ctx.Err() == nil {
				t0 := time.Now()
				n, err := op(ctx, rng)
				if ctx.Err() != nil {
					break
				}
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, time.Since(t0))
				items += n
			}
			mu.Lock()
			res.ops += items
			res.errors += errs
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.rate = float64(res.ops) / time.Since(start).Seconds()
	return res
}

func post(ctx context.Context, c *http.Client, url, bearer string, body []byte, want int) error {
	return postJSON(ctx, c, url, bearer, body, want, nil)
}

func postJSON(ctx context.Context, c *http.Client, url, bearer string, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if (want != 0 && resp.StatusCode != want) || resp.StatusCode >= 300 {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// writeWrkScript writes a Lua script for wrk that posts the requests of
// mode: single passes spread over every person and venue, or batches (each
// batch body is sent many times, so with explicit event ids only the first
// time is appended; single mode has no event ids, so every request is a new
// pass). The script counts answers whose status is not the expected one.
func (w *world) writeWrkScript(path, mode string, batchSize int) error {
	var b bytes.Buffer
	b.WriteString("-- generated by `loadgen --wrk`\nlocal reqs = {}\nlocal make = {}\n")
	rng := rand.New(rand.NewPCG(7, 11))
	switch mode {
	case "single":
		for i := range 4096 {
			p, v := i%len(w.tokens), rng.IntN(len(w.venueCodes))
			dir := "in"
			if i%2 == 1 {
				dir = "out"
			}
			body := `{"method":"self_scan","venue_code":"` + w.venueCodes[v] + `","direction":"` + dir + `"}`
			fmt.Fprintf(&b, "make[#make+1] = {%q, %q}\n", w.tokens[p], body)
		}
	default:
		return fmt.Errorf("--wrk supports --mode single only (a batch body's event ids make every repeat a duplicate)")
	}
	// wrk.format fills in Host only once wrk has parsed the URL: in init.
	b.WriteString(`init = function(args)
  for _, m in ipairs(make) do
    reqs[#reqs+1] = wrk.format("POST", "/v1/passes", {["Content-Type"]="application/json", ["Authorization"]="Bearer " .. m[1]}, m[2])
  end
end
local i = 0
request = function()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
`)
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// serveNoop serves the do-nothing handler on addr until ctx ends.
func serveNoop(ctx context.Context, addr string, stderr io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: noopHandler()}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Fprintf(stderr, "do-nothing server on http://%s/ (answers 201 {})\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func noopHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte("{}"))
	})
}

// noopServer serves a handler that reads the body and answers 201 {}: the
// raw cost of HTTP on this machine, for the ratio.
func noopServer() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: noopHandler()}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// residentID returns a valid resident ID number for seq (idcard.Sample).
func residentID(seq int) string { return idcard.Sample(seq) }
