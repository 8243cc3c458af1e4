package http

import (
	"net/http"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
)

// TestPersonalCodeOnePassPerVenueAndDirection: a personal code records at
// most one pass per venue and direction in its life; scanning it again
// answers the original pass.
func TestPersonalCodeOnePassPerVenueAndDirection(t *testing.T) {
	w := newPassWorld(t)
	e := w.e
	code := w.personalCode(t)
	scan := func(dir, scanner, venue string) passResponse {
		t.Helper()
		rec := e.do("POST", "/v1/passes", scanner, map[string]any{"method": "staff_scan", "venue_id": venue,
			"personal_code": code, "direction": dir})
		if rec.Code != http.StatusCreated && rec.Code != http.StatusOK {
			t.Fatalf("scan %s: %d %s", dir, rec.Code, rec.Body)
		}
		return decodeJSON[passResponse](t, rec)
	}
	first := scan("in", w.scannerA, w.venueA.String())
	if first.HealthAsOf.IsZero() || !first.HealthAsOf.Equal(first.Screen.At) {
		t.Fatalf("health_as_of %v, want the pass's time %v", first.HealthAsOf, first.Screen.At)
	}
	again := scan("in", w.scannerA, w.venueA.String())
	if !again.Duplicate || again.EventID != first.EventID || again.Position != first.Position {
		t.Fatalf("the same code scanned in again: %+v, want the original %+v", again, first)
	}
	out := scan("out", w.scannerA, w.venueA.String())
	elsewhere := scan("in", w.scannerB, w.venueB.String())
	if out.Duplicate || elsewhere.Duplicate || out.EventID == first.EventID || elsewhere.EventID == first.EventID {
		t.Fatalf("another direction or venue is another pass: out %+v, elsewhere %+v", out, elsewhere)
	}
}

// TestOfflineScanChecksTheCodeAtItsTime: a staff scan uploaded later in a
// batch is checked against the personal code's validity at its
// occurred_at, not at upload time.
func TestOfflineScanChecksTheCodeAtItsTime(t *testing.T) {
	w := newPassWorld(t)
	e := w.e
	seen := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	then := e.personalCodeAt(w.visitor.ID, seen.Add(-time.Minute)) // valid for 5 minutes from then
	now := w.personalCode(t)
	item := func(code string, at time.Time, dir string) map[string]any {
		return map[string]any{"method": "staff_scan", "venue_id": w.venueA.String(), "personal_code": code,
			"direction": dir, "occurred_at": at.Format(time.RFC3339)}
	}
	rec := e.do("POST", "/v1/passes/batch", w.scannerA, map[string]any{"passes": []map[string]any{
		item(then, seen, "in"),                   // read while valid: accepted, though long expired now
		item(then, seen.Add(2*time.Hour), "out"), // read two hours after it expired
		item(now, seen, "out"),                   // issued after the pass it claims
	}})
	wantStatus(t, rec, http.StatusOK)
	res := decodeJSON[batchResponse](t, rec).Results
	want := []string{domain.BatchAccepted, domain.BatchRejected, domain.BatchRejected}
	for i, r := range res {
		if r.Status != want[i] {
			t.Fatalf("item %d: %s %+v, want %s", i, r.Status, r.Error, want[i])
		}
		if r.Status == domain.BatchRejected && (r.Error == nil || !hasField(*r.Error, "personal_code")) {
			t.Fatalf("item %d: %+v names no personal_code", i, r.Error)
		}
	}
	// Online, an expired code is refused as before.
	rec = e.do("POST", "/v1/passes", w.scannerA, map[string]any{"method": "staff_scan", "venue_id": w.venueA.String(),
		"personal_code": then, "direction": "in"})
	wantProblem(t, rec, http.StatusBadRequest, ProblemValidation)
}
