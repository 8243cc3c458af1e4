package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
)

// countingMetrics records what the server tells its Metrics.
type countingMetrics struct {
	mu       sync.Mutex
	requests []string
	problems []string
}

func (m *countingMetrics) Request(method, route string, status int, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = append(m.requests, method+" "+route+" "+http.StatusText(status))
}

func (m *countingMetrics) Problem(typ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.problems = append(m.problems, typ)
}

// observedServer is a test server that logs as JSON to logs and tells m
// of every request and problem. The tests call its handler in their own
// goroutine (ServeHTTP on a recorder), so logs needs no lock.
func observedServer(t *testing.T) (e *testEnv, logs *bytes.Buffer, m *countingMetrics) {
	t.Helper()
	logs, m = &bytes.Buffer{}, &countingMetrics{}
	e = newTestServer(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		o.Metrics = m
	})
	return e, logs, m
}

// TestRequestLog posts a registration and checks its one log line: route
// pattern, status, duration, request id (echoed), event id, and none of
// the person's name, ID number or phone; a problem's type is logged and
// counted; a client's sane request id is kept, an odd one replaced.
func TestRequestLog(t *testing.T) {
	e, logs, m := observedServer(t)
	name, idNumber, phone := "欧阳娜娜", residentID(t, 77), "13912345678"
	body, _ := json.Marshal(map[string]any{"name": name, "id_type": "resident_id", "id_number": idNumber, "phone": phone})
	req := httptest.NewRequest("POST", "/v1/persons", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "scanner-42.req-7")
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	wantStatus(t, rec, http.StatusCreated)
	reg := decodeJSON[registered](t, rec)
	if rec.Header().Get("X-Request-Id") != "scanner-42.req-7" {
		t.Fatalf("request id not echoed: %q", rec.Header().Get("X-Request-Id"))
	}

	// A refused read: its problem type is logged; an odd request id is replaced.
	req = httptest.NewRequest("GET", "/v1/persons/"+reg.ID.String(), nil)
	req.Header.Set("X-Request-Id", "bad id\twith\x01controls")
	rec = httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	wantStatus(t, rec, http.StatusUnauthorized)
	replaced := rec.Header().Get("X-Request-Id")
	if replaced == "" || strings.ContainsAny(replaced, " \t\x01") {
		t.Fatalf("odd request id kept: %q", replaced)
	}

	out := logs.String()
	for _, secret := range []string{name, idNumber, idNumber[len(idNumber)-8:], phone, "欧阳", reg.Token} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, out)
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if v["msg"] == "request" {
			lines = append(lines, v)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d request lines:\n%s", len(lines), out)
	}
	first, second := lines[0], lines[1]
	if first["method"] != "POST" || first["route"] != "/v1/persons" || first["status"] != float64(201) ||
		first["request_id"] != "scanner-42.req-7" || first["event_id"] != reg.EventID.String() || first["duration_ms"] == nil {
		t.Fatalf("registration's line: %v", first)
	}
	if second["route"] != "/v1/persons/{id}" || second["status"] != float64(401) || second["request_id"] != replaced ||
		second["problem"] != ProblemUnauthorized || strings.Contains(out, reg.ID.String()) {
		t.Fatalf("refused read's line: %v", second)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if strings.Join(m.requests, "|") != "POST /v1/persons Created|GET /v1/persons/{id} Unauthorized" ||
		strings.Join(m.problems, "|") != ProblemUnauthorized {
		t.Fatalf("metrics told %v, problems %v", m.requests, m.problems)
	}
}

// TestRequestMethodBounded sends requests with made-up methods: the
// metrics and the log name them "OTHER", so a client cannot grow the
// metrics' label sets (each method a new series) without bound; the
// methods HTTP defines are named as they are.
func TestRequestMethodBounded(t *testing.T) {
	e, logs, m := observedServer(t)
	for _, method := range []string{"M142743", "PROPFIND", strings.Repeat("X", 4000), "get", "DELETE"} { // none is routed
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, httptest.NewRequest(method, "/v1/venues", nil))
	}
	m.mu.Lock()
	got := strings.Join(m.requests, "|")
	m.mu.Unlock()
	want := "OTHER unrouted Method Not Allowed|OTHER unrouted Method Not Allowed|OTHER unrouted Method Not Allowed|" +
		"OTHER unrouted Method Not Allowed|DELETE /v1/* Method Not Allowed"
	if got != want {
		t.Fatalf("metrics told\n%s\nwant\n%s", got, want)
	}
	if out := logs.String(); strings.Contains(out, "M142743") || strings.Contains(out, "XXXX") ||
		strings.Count(out, `"method":"OTHER"`) != 4 {
		t.Fatalf("the log names the made-up methods:\n%s", out)
	}
}

// TestRequestLogClientGone: a client that goes away while its request
// waits is logged and counted as 499, not as a 503 of ours; nothing is
// answered to it.
func TestRequestLogClientGone(t *testing.T) {
	e, logs, m := observedServer(t)
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin, Subject: "admin:li"})
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/v1/venues?min_position=999999999", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+admin)
	rec := httptest.NewRecorder()
	time.AfterFunc(50*time.Millisecond, cancel) // while it waits for min_position
	e.srv.Handler().ServeHTTP(rec, req)
	if rec.Body.Len() != 0 || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("answered a client that went away: %d %q", rec.Code, rec.Body.String())
	}
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if v["msg"] == "request" {
			line = v
		}
	}
	if line["status"] != float64(StatusClientGone) || line["problem"] != nil {
		t.Fatalf("logged %v, want status 499 and no problem", line)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.requests) != 1 || m.requests[0] != "GET /v1/venues " || len(m.problems) != 0 {
		t.Fatalf("metrics told %q, problems %v", m.requests, m.problems)
	}
}

// TestLogClientLeftMidAnswer: a stream whose write to the client's
// connection failed is logged at info as the client's leaving; any other
// failure, a broken connection to a database included, and any failure of
// a request whose client has gone, is an error.
func TestLogClientLeftMidAnswer(t *testing.T) {
	e, logs, _ := observedServer(t)
	r := httptest.NewRequest("POST", "/v1/traces", nil)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	wrote := func(errno syscall.Errno) error {
		return &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", errno)}
	}
	e.srv.logAnswerBroke(r, fmt.Errorf("write trace csv: %w", wrote(syscall.EPIPE)))
	e.srv.logAnswerBroke(r, fmt.Errorf("write trace: %w", wrote(syscall.ECONNRESET)))
	e.srv.logAnswerBroke(r, fmt.Errorf("names: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}))
	e.srv.logAnswerBroke(r.WithContext(gone), errors.New("encode trace contact: no such venue"))
	e.srv.logInternal(r, fmt.Errorf("append: %w", wrote(syscall.EPIPE)))
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		got = append(got, fmt.Sprint(v["level"], " ", v["msg"]))
	}
	want := []string{"INFO client went away", "INFO client went away", "ERROR request failed", "ERROR request failed", "ERROR request failed"}
	if !slices.Equal(got, want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
}
