package http

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

func TestProblemFor(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		status   int
		typ      string
		internal bool
		detail   string
		fields   []string
	}{
		{"field error", domain.Invalid("id_number", "has a wrong check character"), 400, ProblemValidation, false,
			"id_number: has a wrong check character", []string{"id_number"}},
		{"wrapped field error", fmt.Errorf("register: %w", domain.Invalid("phone", "is required")), 400, ProblemValidation, false,
			"phone: is required", []string{"phone"}},
		{"joined field errors", errors.Join(domain.Invalid("name", "is required"), domain.Invalid("phone", "is required")),
			400, ProblemValidation, false, "", []string{"name", "phone"}},
		{"plain invalid", domain.Errorf(domain.ErrInvalid, "window too long"), 400, ProblemValidation, false, "window too long", nil},
		{"not found", domain.Errorf(domain.ErrNotFound, "venue 1 not found"), 404, ProblemNotFound, false, "venue 1 not found", nil},
		{"read models unavailable", fmt.Errorf("venues: %w", fmt.Errorf("%w: read position: closed pool", ledger.ErrUnavailable)), 503, ProblemUnavailable, false,
			"the read models cannot be reached; retry later", nil},
		{"store deadline", fmt.Errorf("%w: venues: %w", ledger.ErrUnavailable, context.DeadlineExceeded), 503, ProblemUnavailable, false,
			"the read models cannot be reached; retry later", nil},
		{"unsupported media type", domain.Errorf(errUnsupportedMediaType, "Content-Type must be application/json"), 415, ProblemUnsupportedType, false,
			"Content-Type must be application/json", nil},
		{"conflict", fmt.Errorf("append: %w", domain.Errorf(domain.ErrConflict, "already registered")), 409, ProblemConflict, false,
			"append: already registered", nil},
		{"forbidden", domain.ErrForbidden, 403, ProblemForbidden, false, "", nil},
		{"unauthorized", domain.Errorf(domain.ErrUnauthorized, "token expired"), 401, ProblemUnauthorized, false, "token expired", nil},
		{"too large", fmt.Errorf("decode: %w", &http.MaxBytesError{Limit: 10}), 413, ProblemTooLarge, false,
			"the body exceeds the limit for this route", nil},
		{"wait timeout", fmt.Errorf("position 9: %w", errWaitTimeout), 504, ProblemTimeout, false, "position 9", nil},
		{"deadline", fmt.Errorf("append: %w", context.DeadlineExceeded), 504, ProblemTimeout, false, "", nil},
		{"canceled", context.Canceled, 503, ProblemUnavailable, false, "", nil},
		{"store unavailable", fmt.Errorf("record: %w: %w", unavailableErr{}, context.DeadlineExceeded), 503, ProblemUnavailable, false, "", nil},
		{"rate limited", errRateLimited, 429, ProblemRateLimited, false, "slow down and retry later", nil},
		{"no route", errRouteNotFound, 404, ProblemNotFound, false, "no such route", nil},
		{"method", errMethodNotAllowed, 405, ProblemMethodNotAllowed, false, "", nil},
		{"unknown event is internal", fmt.Errorf("load: %w", domain.ErrUnknownEvent), 500, ProblemInternal, true,
			"the error was logged", nil},
		{"plain error is internal", errors.New("nats: connection closed"), 500, ProblemInternal, true, "the error was logged", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, internal := problemFor(tt.err)
			if p.Status != tt.status || p.Type != tt.typ || internal != tt.internal {
				t.Fatalf("problemFor = %+v internal=%v; want status %d type %s internal=%v", p, internal, tt.status, tt.typ, tt.internal)
			}
			if tt.detail != "" && p.Detail != tt.detail {
				t.Errorf("detail = %q, want %q", p.Detail, tt.detail)
			}
			if strings.Contains(p.Detail, "domain:") {
				t.Errorf("detail leaks the kind's text: %q", p.Detail)
			}
			var got []string
			for _, f := range p.Errors {
				got = append(got, f.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("fields = %v, want %v", got, tt.fields)
			}
		})
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := cursor{at: mustTime(t, "2022-05-01T08:00:00.123456789Z"), position: 42, scope: 7}
	got, err := parseCursor(c.String())
	if err != nil {
		t.Fatal(err)
	}
	if !got.at.Equal(c.at) || got.position != c.position || got.scope != c.scope {
		t.Fatalf("cursor = %+v, want %+v", got, c)
	}
	for _, bad := range []string{"", "!!", "AAAA", c.String() + "AA"} {
		if _, err := parseCursor(bad); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("parseCursor(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := parseTime("t", s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// unavailableErr stands for eventstore.ErrUnavailable, recognised by its
// Unavailable method.
type unavailableErr struct{}

func (unavailableErr) Error() string     { return "eventstore: unavailable" }
func (unavailableErr) Unavailable() bool { return true }

type notYet struct{}

func (notYet) Error() string             { return "read models are replaying the log" }
func (notYet) RetryAfter() time.Duration { return 2 * time.Second }

// A part that will be ready soon (the read models replaying at start) is a
// 503 with Retry-After, even when it is wrapped like a not-found.
func TestRetryLaterIs503WithRetryAfter(t *testing.T) {
	err := fmt.Errorf("venue: %w", fmt.Errorf("%w: %w", notYet{}, domain.ErrNotFound))
	p, internal := problemFor(err)
	if internal || p.Status != http.StatusServiceUnavailable || p.Type != ProblemUnavailable {
		t.Fatalf("problem %+v internal %v", p, internal)
	}
	rec := httptest.NewRecorder()
	writeProblem(rec, p)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("status %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

// TestCursorOfAnotherList: a cursor is taken only by the list and filters
// that gave it (an outside tester's entries cursor on /v1/audit answered an
// empty page, taken for the end); the page size and min_position may change.
func TestCursorOfAnotherList(t *testing.T) {
	req := func(target string) *http.Request { return httptest.NewRequest("GET", target, nil) }
	c := cursor{position: 9, scope: scopeOf(req("/v1/audit?kind=contacts&limit=5"))}.String()
	for _, ok := range []string{"/v1/audit?kind=contacts&cursor=" + c, "/v1/audit?limit=50&cursor=" + c + "&kind=contacts&min_position=3"} {
		if got, err := queryCursor(req(ok)); err != nil || got.position != 9 {
			t.Errorf("%s: %+v, %v", ok, got, err)
		}
	}
	for _, bad := range []string{"/v1/audit/looks?kind=contacts&cursor=" + c, "/v1/audit?kind=history&cursor=" + c, "/v1/audit?cursor=" + c} {
		if _, err := queryCursor(req(bad)); !errors.Is(err, domain.ErrInvalid) || !strings.Contains(err.Error(), "another list") {
			t.Errorf("%s: %v, want the cursor refused", bad, err)
		}
	}
}
