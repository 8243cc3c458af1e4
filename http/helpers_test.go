package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/checkin-ledger/ledger/reactions"
	"github.com/checkin-ledger/ledger/token"
)

// clock is a settable clock for the token signer, so a test can let codes
// expire: time.Now, off ahead.
type clock struct {
	off     atomic.Int64
	stopped atomic.Int64 // when not 0, the moment it stands at (Unix nanoseconds)
}

func (c *clock) Now() time.Time {
	now := time.Now()
	if at := c.stopped.Load(); at != 0 {
		now = time.Unix(0, at)
	}
	return now.Add(time.Duration(c.off.Load()))
}

func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// Stop makes the clock stand at at (Advance still moves it).
func (c *clock) Stop(at time.Time) { c.stopped.Store(at.UnixNano()) }

// testEnv is the API wired as cmd wires it: an embedded JetStream in a temp
// dir, the memory read models and their projector, the ledger and a signer.
type testEnv struct {
	t      testing.TB
	srv    *Server
	es     *eventstore.Store
	reads  *memory.Store
	proj   *projections.Projector
	signer *token.Signer
	clock  *clock
}

// testKey is 32 bytes of key material for tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// newTestServer builds the API on a real event store. tweak, when given,
// adjusts the config before the server is made.
func newTestServer(t testing.TB, tweak ...func(*Options)) *testEnv {
	t.Helper()
	clk := &clock{}
	env := ledgertest.Start(t, ledgertest.Options{MasterKey: testKey, HashKey: testKey, SignerNow: clk.Now,
		ClockSkew: 5 * time.Minute})
	cfg := Options{
		Ledger:      env.Ledger,
		Reads:       env.Reads,
		Signer:      env.Signer,
		Waiter:      env.Projector,
		WaitTimeout: 2 * time.Second,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	return &testEnv{t: t, srv: New(cfg), es: env.Store, reads: env.Reads, proj: env.Projector, signer: env.Signer, clock: clk}
}

// do sends a request to the API. body may be nil, a string or []byte (sent
// as is), or any value (sent as JSON); header is more of the request's
// header, as name, value, name, value, ….
func (e *testEnv) do(method, path, tok string, body any, header ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, r)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// serveOnPort runs e's server (Serve) on a free local port: base is its
// URL; shutdown ends Serve's context and fails the test unless Serve
// returns nil (a graceful shutdown) within 5 s.
func (e *testEnv) serveOnPort() (base string, shutdown func()) {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	e.t.Cleanup(stop)
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ctx, ln) }()
	return "http://" + ln.Addr().String(), func() {
		e.t.Helper()
		stop()
		select {
		case err := <-served:
			if err != nil {
				e.t.Fatalf("Serve = %v, want nil after a graceful shutdown", err)
			}
		case <-time.After(5 * time.Second):
			e.t.Fatal("Serve did not return within 5 s of its shutdown")
		}
	}
}

// bearer issues a token for actor.
func (e *testEnv) bearer(a domain.Actor) string {
	e.t.Helper()
	tok, err := e.signer.IssueBearer(a, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// lastPosition is the log's newest position.
func (e *testEnv) lastPosition() uint64 {
	e.t.Helper()
	p, err := e.es.LastPosition(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// waitApplied waits until the read models have applied position.
func (e *testEnv) waitApplied(position uint64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.proj.WaitFor(ctx, position); err != nil {
		e.t.Fatalf("read models did not reach %d: %v", position, err)
	}
}

// decodeJSON decodes a response body into T.
func decodeJSON[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, rec.Body.String(), err)
	}
	return v
}

// wantStatus fails unless rec has status.
func wantStatus(t testing.TB, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body.String())
	}
}

// wantProblem checks that rec is a problem of typ with status and returns it.
func wantProblem(t testing.TB, rec *httptest.ResponseRecorder, status int, typ string) Problem {
	t.Helper()
	wantStatus(t, rec, status)
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	p := decodeJSON[Problem](t, rec)
	if p.Type != typ || p.Status != status || p.Title == "" {
		t.Fatalf("problem = %+v, want type %s status %d", p, typ, status)
	}
	return p
}

// hasField reports whether p names field among its errors.
func hasField(p Problem, field string) bool {
	for _, f := range p.Errors {
		if f.Field == field {
			return true
		}
	}
	return false
}

// refusal is a request that a handler must refuse with status; a refusal
// with a field is a 400 validation problem that names it.
type refusal struct {
	name   string
	tok    string
	body   any
	status int
	field  string
}

// wantRefused posts each refusal's body to path, checks its answer and then
// that nothing was appended (else it fails with appended).
func (e *testEnv) wantRefused(t *testing.T, path string, tests []refusal, appended string) {
	t.Helper()
	before := e.lastPosition()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do("POST", path, tt.tok, tt.body)
			wantStatus(t, rec, tt.status)
			if tt.field != "" && !hasField(wantProblem(t, rec, 400, ProblemValidation), tt.field) {
				t.Fatalf("problem does not name %s: %s", tt.field, rec.Body.String())
			}
		})
	}
	if e.lastPosition() != before {
		t.Fatal(appended)
	}
}

// residentID returns a valid 18-character resident ID for serial (0-999).
func residentID(t testing.TB, serial int) string {
	t.Helper()
	first17 := fmt.Sprintf("37130219880115%03d", serial%1000)
	c, ok := idcard.CheckChar(first17)
	if !ok {
		t.Fatalf("no check character for %s", first17)
	}
	return first17 + string(c)
}

// registered is a person registered through the API.
type registered struct {
	ID       uuid.UUID `json:"person_id"`
	Token    string    `json:"token"`
	EventID  uuid.UUID `json:"event_id"`
	Position uint64    `json:"position"`
}

// register registers a person with resident ID serial and returns them.
func (e *testEnv) register(name string, serial int) registered {
	e.t.Helper()
	rec := e.do("POST", "/v1/persons", "", map[string]any{
		"name": name, "id_type": "resident_id", "id_number": residentID(e.t, serial), "phone": "13800138000",
	})
	wantStatus(e.t, rec, http.StatusCreated)
	return decodeJSON[registered](e.t, rec)
}

// addChild has guardian register a child with resident ID serial and
// returns them.
func (e *testEnv) addChild(guardian registered, name string, serial int) registered {
	e.t.Helper()
	rec := e.do("POST", "/v1/persons/"+guardian.ID.String()+"/family-members", guardian.Token, map[string]any{
		"name": name, "id_type": "resident_id", "id_number": residentID(e.t, serial), "relation": "child"})
	wantStatus(e.t, rec, http.StatusCreated)
	return decodeJSON[registered](e.t, rec)
}

// approvedVenue has manager apply for a venue, a reviewer approve it, and
// waits until the read models know it is approved.
func (e *testEnv) approvedVenue(manager registered, name string) uuid.UUID {
	e.t.Helper()
	rec := e.do("POST", "/v1/venues", manager.Token, map[string]any{
		"name": name, "type": "restaurant", "district": "371302", "address": "1 Lanshan Road",
		"lat": 35.05, "lng": 118.35,
	})
	wantStatus(e.t, rec, http.StatusCreated)
	v := decodeJSON[struct {
		VenueID uuid.UUID `json:"venue_id"`
	}](e.t, rec)
	rec = e.do("POST", "/v1/venues/"+v.VenueID.String()+"/review", e.bearer(domain.Actor{Role: domain.RoleReviewer}),
		map[string]any{"decision": "approve"})
	wantStatus(e.t, rec, http.StatusOK)
	e.waitApplied(decodeJSON[writeResult](e.t, rec).Position)
	return v.VenueID
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// startReactions runs the reactions router on the test's event store, as
// cmd wires it, and serves its poison queue. It stops when the test ends.
func (e *testEnv) startReactions() *reactions.Router {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := reactions.Open(ctx, reactions.Options{Log: e.es.Subscriber(), Ledger: e.srv.ledger, Codes: e.signer,
		MaxRetries: 1, RetryInterval: time.Millisecond})
	if err != nil {
		cancel()
		e.t.Fatalf("reactions.Open: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("reactions: %v", err)
		}
	})
	select {
	case <-r.Running():
	case <-time.After(10 * time.Second):
		e.t.Fatal("reactions not running after 10s")
	}
	e.srv.opts.Poison = r
	return r
}

// personalCodeAt returns the personal code person's phone showed at at (a
// signer with the test key and a clock stopped at at).
func (e *testEnv) personalCodeAt(person uuid.UUID, at time.Time) string {
	e.t.Helper()
	s, err := token.NewSigner(testKey, func() time.Time { return at })
	if err != nil {
		e.t.Fatal(err)
	}
	code, _ := s.IssuePersonalCode(person)
	return code
}
