package http

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"

	"github.com/checkin-ledger/ledger/domain"
)

func TestMinPosition(t *testing.T) {
	e := newTestServer(t, func(c *Options) { c.WaitTimeout = 200 * time.Millisecond })
	p := e.register("冯九", 41)
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin})

	rec := e.do("GET", "/v1/persons/"+p.ID.String()+"?min_position="+itoa(p.Position), p.Token, nil)
	wantStatus(t, rec, 200)
	if got := decodeJSON[struct {
		Position uint64 `json:"position"`
	}](t, rec); got.Position < p.Position {
		t.Fatalf("read reflects %d, asked for at least %d", got.Position, p.Position)
	}

	start := time.Now()
	wantProblem(t, e.do("GET", "/v1/persons/"+p.ID.String()+"?min_position="+itoa(p.Position+1000), admin, nil),
		http.StatusGatewayTimeout, ProblemTimeout)
	if waited := time.Since(start); waited < 200*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("waited %v for an unreachable position, want about the 200ms timeout", waited)
	}
	wantProblem(t, e.do("GET", "/v1/persons/"+p.ID.String()+"?min_position=x", admin, nil), 400, ProblemValidation)
}

func TestRoutingProblems(t *testing.T) {
	e := newTestServer(t)
	wantProblem(t, e.do("GET", "/v1/nothing", "", nil), 404, ProblemNotFound)
	wantProblem(t, e.do("PUT", "/v1/persons", "", nil), 405, ProblemMethodNotAllowed)

	rec := e.do("GET", "/healthz", "", nil)
	wantStatus(t, rec, 200)
	rec = e.do("GET", "/readyz", "", nil)
	wantStatus(t, rec, 200)

	notReady := newTestServer(t, func(c *Options) {
		c.Ready = func(context.Context) error { return io.ErrUnexpectedEOF }
	})
	wantProblem(t, notReady.do("GET", "/readyz", "", nil), 503, ProblemUnavailable)
}

// TestOpenAPIDescribesEveryRoute checks that openapi.yaml names every
// route and method the router serves, and nothing it does not.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	e := newTestServer(t)
	rec := e.do("GET", "/openapi.yaml", "", nil)
	wantStatus(t, rec, 200)
	spec := specOperations(t, rec.Body.String())

	served := map[string]bool{}
	err := chi.Walk(e.srv.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.TrimSuffix(route, "/")
		served[strings.ToLower(method)+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for op := range served {
		if !spec[op] {
			t.Errorf("route %s is not in openapi.yaml", op)
		}
	}
	for op := range spec {
		if !served[op] {
			t.Errorf("openapi.yaml describes %s, which no route serves", op)
		}
	}
	if !strings.HasPrefix(rec.Body.String(), "openapi: 3.1") {
		t.Error("openapi.yaml is not OpenAPI 3.1")
	}
}

// specOperations lists "method path" for each operation under paths: in a
// YAML document indented by two spaces.
func specOperations(t *testing.T, doc string) map[string]bool {
	t.Helper()
	ops := map[string]bool{}
	inPaths, path := false, ""
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && !strings.HasPrefix(line, " "):
			inPaths = false
		case inPaths && strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && path != "" && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     "):
			key := strings.TrimSuffix(strings.TrimSpace(line), ":")
			switch key {
			case "get", "head", "post", "put", "patch", "delete":
				ops[key+" "+path] = true
			}
		}
	}
	if len(ops) == 0 {
		t.Fatal("no operations found in openapi.yaml")
	}
	return ops
}

func TestOpenAPIFileIsEmbedded(t *testing.T) {
	onDisk, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := specFS.ReadFile("openapi.yaml")
	if err != nil || string(embedded) != string(onDisk) {
		t.Fatalf("embedded spec differs from openapi.yaml (%v)", err)
	}
}

// TestServeGracefulShutdown starts Serve on :0, cancels its context while a
// request is in flight, and checks that the request still gets its whole
// answer and that Serve returns nil once it has.
func TestServeGracefulShutdown(t *testing.T) {
	entered := make(chan struct{}, 1)
	e := newTestServer(t, func(c *Options) {
		c.WaitTimeout = 500 * time.Millisecond
		c.Waiter = signalWaiter{c.Waiter, entered}
	})
	base, shutdown := e.serveOnPort()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// A read that waits for a position that never comes: in flight for the
	// whole wait timeout.
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin})
	type answer struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/v1/venues?min_position=999999", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- answer{status: resp.StatusCode, body: string(b), err: err}
	}()
	select {
	case <-entered: // the request is now waiting (for 500ms)
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached its wait")
	}
	shutdown()

	a := <-inflight
	if a.err != nil || a.status != http.StatusGatewayTimeout || !strings.Contains(a.body, ProblemTimeout) {
		t.Fatalf("in-flight request got %d %q, %v; want its full 504 answer", a.status, a.body, a.err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still accepts connections after shutdown")
	}
}

// signalWaiter passes WaitFor on to the projector and says when a request
// has started waiting.
type signalWaiter struct {
	Waiter
	entered chan<- struct{}
}

func (w signalWaiter) WaitFor(ctx context.Context, position uint64) error {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	return w.Waiter.WaitFor(ctx, position)
}

// TestHeadOnEveryGetRoute walks the router and sends HEAD beside GET to each
// GET route, as an admin, a dashboard and a person: the same status and
// headers, and no body; each route but two answers one of them 200. The
// server's and the signer's clocks stand still, so that the answers that
// hold the time (a personal code's image and its Expires) are the same
// each time.
func TestHeadOnEveryGetRoute(t *testing.T) {
	now := time.Now()
	e := newTestServer(t, func(c *Options) {
		c.Now = func() time.Time { return now }
		c.MetricsHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up 1\n") })
	})
	e.clock.Stop(now)
	person := e.register("何十", 43)
	venue := e.approvedVenue(person, "何记")
	tokens := []string{e.bearer(domain.Actor{Role: domain.RoleAdmin}),
		e.bearer(domain.Actor{Role: domain.RoleDashboard, Subject: "dashboard:wall"}), person.Token}
	params := strings.NewReplacer("/persons/{id}", "/persons/"+person.ID.String(),
		"/venues/{id}", "/venues/"+venue.String(), "{id}", uuid.NewString(), "{name}", "app.js")
	notOK := map[string]bool{
		"/v1/admin/poison":      true, // 503: no poison queue
		"/v1/declarations/{id}": true, // 404: no such declaration
	}
	ts := httptest.NewServer(e.srv.Handler())
	t.Cleanup(ts.Close)

	send := func(method, path, tok string) (*http.Response, []byte) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel() // ends the dashboard stream's GET
		req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set(requestIDHeader, "head-test")
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var body []byte
		if resp.Header.Get("Content-Type") != "text/event-stream" {
			body, _ = io.ReadAll(resp.Body)
		}
		resp.Header.Del("Date")
		return resp, body
	}
	// A GET that audits its look has a HEAD of its own: a refusal.
	refused := map[string]bool{}
	if err := chi.Walk(e.srv.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		refused[strings.TrimSuffix(route, "/")] = refused[strings.TrimSuffix(route, "/")] || method == http.MethodHead
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !refused["/v1/persons/{id}/trace"] {
		t.Fatal("HEAD of a trace history (an audited look) is not refused")
	}
	gets := 0
	err := chi.Walk(e.srv.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method != http.MethodGet {
			return nil
		}
		gets++
		route = strings.TrimSuffix(route, "/")
		path := params.Replace(route)
		if route == "/v1/alerts" {
			path += "?district=371302"
		}
		if refused[route] {
			for _, tok := range tokens {
				if head, _ := send(http.MethodHead, path, tok); head.StatusCode != http.StatusMethodNotAllowed || head.Header.Get("Allow") != "GET" {
					t.Errorf("HEAD %s: %d, Allow %q; want 405, Allow GET", path, head.StatusCode, head.Header.Get("Allow"))
				}
			}
			return nil
		}
		ok := false
		for _, tok := range tokens {
			get, _ := send(http.MethodGet, path, tok)
			head, body := send(http.MethodHead, path, tok)
			if head.StatusCode != get.StatusCode {
				t.Errorf("HEAD %s: status %d, GET's %d", path, head.StatusCode, get.StatusCode)
			}
			if !reflect.DeepEqual(head.Header, get.Header) {
				t.Errorf("HEAD %s: headers %v, GET's %v", path, head.Header, get.Header)
			}
			if len(body) != 0 {
				t.Errorf("HEAD %s: a body of %d bytes", path, len(body))
			}
			ok = ok || head.StatusCode == http.StatusOK
		}
		if !ok && !notOK[route] {
			t.Errorf("HEAD %s: no token got 200", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if gets < 20 {
		t.Fatalf("the walk found %d GET routes", gets)
	}
}

// TestMethodNotAllowedSaysAllow: a known path asked with another method
// answers 405 with the methods it takes (RFC 9110, 15.5.6).
func TestMethodNotAllowedSaysAllow(t *testing.T) {
	e := newTestServer(t)
	ts := httptest.NewServer(e.srv.Handler())
	t.Cleanup(ts.Close)
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodPut, "/v1/passes", "POST"},
		{http.MethodDelete, "/v1/venues", "GET, HEAD, POST"},
		{http.MethodPost, "/v1/persons/" + uuid.NewString() + "/trace", "GET"},
		{http.MethodPatch, "/healthz", "GET, HEAD"},
	} {
		req, err := http.NewRequest(c.method, ts.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d, Allow %q; want 405, Allow %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.allow)
		}
	}
}

// TestQueryGivenOnce: every route, whatever its method, refuses a query
// string that does not decode or gives a parameter twice, naming it, before
// it reads or appends anything.
func TestQueryGivenOnce(t *testing.T) {
	e := newTestServer(t)
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin})
	params := strings.NewReplacer("{id}", uuid.NewString(), "{name}", "app.js")
	before := e.lastPosition()
	routes := 0
	err := chi.Walk(e.srv.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method == http.MethodHead {
			return nil
		}
		routes++
		path := params.Replace(strings.TrimSuffix(route, "/"))
		for query, field := range map[string]string{
			"district=371302&district=371311": "district",
			"limit=5&cursor=a&limit=6":        "limit",
			"cursor=%zz":                      "query",
			"%00x=1&%00x=2":                   "query", // not echoed
			strings.Repeat("a", 41) + "=1&" + strings.Repeat("a", 41) + "=2": "query",
		} {
			p := wantProblem(t, e.do(method, path+"?"+query, admin, nil), http.StatusBadRequest, ProblemValidation)
			if !hasField(p, field) {
				t.Errorf("%s %s?%s: the problem does not name %s: %+v", method, path, query, field, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if routes < 40 {
		t.Fatalf("the walk found %d routes", routes)
	}
	if e.lastPosition() != before {
		t.Fatal("a refused query appended to the log")
	}
}

// TestRoutesTakeTheirParameters holds each /v1 route's query parameters to
// its operation's in openapi.yaml, through the answers: a parameter the
// operation does not list is refused with 400 naming it (before any gate,
// so no token is needed), one it lists gets past that check.
func TestRoutesTakeTheirParameters(t *testing.T) {
	e := newTestServer(t)
	var spec struct {
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			Parameters map[string]specParam `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(specBytes(t), &spec); err != nil {
		t.Fatal(err)
	}
	// The query parameters among a path's or an operation's.
	queryOf := func(n yaml.Node, ofOperation bool) []string {
		var ps []specParam
		if ofOperation {
			var op struct {
				Parameters []specParam `yaml:"parameters"`
			}
			if err := n.Decode(&op); err != nil {
				t.Fatal(err)
			}
			ps = op.Parameters
		} else if err := n.Decode(&ps); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range ps {
			if p.Ref != "" {
				p = spec.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
			}
			if p.In == "query" {
				names = append(names, p.Name)
			}
		}
		return names
	}
	const notOurs = "is not a parameter of this route"
	checked := 0
	for path, item := range spec.Paths {
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		var shared []string
		if n, ok := item["parameters"]; ok {
			shared = queryOf(n, false)
		}
		url := strings.NewReplacer("{id}", uuid.NewString(), "{person_id}", uuid.NewString()).Replace(path)
		for method, op := range item {
			if method == "parameters" || method == "head" { // a HEAD described is a refusal (405)
				continue
			}
			m := strings.ToUpper(method)
			takes := append(queryOf(op, true), shared...)
			rec := e.do(m, url+"?zz_not_ours=1", "", nil)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "zz_not_ours") || !strings.Contains(rec.Body.String(), notOurs) {
				t.Errorf("%s %s?zz_not_ours=1: %d %s, want 400 naming the parameter", m, path, rec.Code, rec.Body)
			}
			// The refusal lists what the route takes: exactly openapi.yaml's.
			_, listed, _ := strings.Cut(rec.Body.String(), "(it takes ")
			listed, _, _ = strings.Cut(listed, ")")
			got := []string{}
			if listed != "none" {
				got = strings.Split(listed, ", ")
			}
			want := slices.Clone(takes)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s %s takes %v; openapi.yaml lists %v", m, path, got, want)
			}
			for _, p := range takes {
				if rec := e.do(m, url+"?"+p+"=1", "", nil); strings.Contains(rec.Body.String(), notOurs) {
					t.Errorf("%s %s?%s=1 (openapi.yaml lists it): %d %s", m, path, p, rec.Code, rec.Body)
				}
			}
			checked++
		}
	}
	if checked < 30 {
		t.Fatalf("checked %d operations of openapi.yaml", checked)
	}
}

// specParam is an operation's parameter in openapi.yaml, or a reference to
// one of components.parameters.
type specParam struct {
	Ref  string `yaml:"$ref"`
	Name string `yaml:"name"`
	In   string `yaml:"in"`
}

func specBytes(t *testing.T) []byte {
	t.Helper()
	b, err := specFS.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
