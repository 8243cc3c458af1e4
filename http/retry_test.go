package http

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
)

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
