package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
)

// TestRetentionWhileRunning runs the service as cmd wires it with a
// retention of 4 s and a sweep every 200 ms: passes, their alerts, the
// person's history (read models and log), the venue's entry list and a
// contact trace serve the passes, and then, with the service still running,
// none of them does, and the log no longer holds them; the registrations
// and the venue stay.
func TestRetentionWhileRunning(t *testing.T) { onBothReadModels(t, testRetention) }

func testRetention(t *testing.T, flags []string) {
	const retention = 4 * time.Second
	dir := t.TempDir()
	s := startServiceWith(t, dir, nil, nil, append([]string{"--retention", retention.String()}, flags...),
		func(c *config) { c.sweepInterval = 200 * time.Millisecond })
	reviewer := issue(t, dir, "--role", "reviewer", "--subject", "wang")
	analyst := issue(t, dir, "--role", "analyst", "--subject", "li")
	feed := issue(t, dir, "--role", "health-feed", "--subject", "feed")

	a, b, c := register(t, s.base, "王小明", 21), register(t, s.base, "赵大红", 22), register(t, s.base, "孙小青", 23)
	code, _, raw := call(t, "POST", s.base+"/v1/health-status", feed, map[string]any{"records": []map[string]any{
		{"id_type": "resident_id", "id_number": residentID(21), "code_colour": "green", "nat_result": "negative", "nat_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
		{"id_type": "resident_id", "id_number": residentID(22), "code_colour": "red", "nat_result": "none"},
		{"id_type": "resident_id", "id_number": residentID(23), "code_colour": "green", "nat_result": "negative", "nat_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
	}}, nil)
	if code != http.StatusOK {
		t.Fatalf("health feed: %d %s", code, raw)
	}
	venueID, venueCode := approvedVenue(t, s.base, a, reviewer, "沂河超市")

	type passAnswer struct {
		EventID  string `json:"event_id"`
		Position uint64 `json:"position"`
	}
	var passes []passAnswer
	for _, p := range []person{a, b, c} {
		var ans passAnswer
		code, _, raw := call(t, "POST", s.base+"/v1/passes", p.token, map[string]any{"method": "self_scan", "venue_code": venueCode, "direction": "in"}, &ans)
		if code != http.StatusCreated {
			t.Fatalf("self scan: %d %s", code, raw)
		}
		passes = append(passes, ans)
	}
	last := passes[len(passes)-1].Position

	// What a reader sees, counted.
	entries := func() int {
		var out struct {
			Entries []struct{} `json:"entries"`
		}
		if code, _, raw := call(t, "GET", fmt.Sprintf("%s/v1/venues/%s/entries?min_position=%d", s.base, venueID, last), a.token, nil, &out); code != http.StatusOK {
			t.Fatalf("entries: %d %s", code, raw)
		}
		return len(out.Entries)
	}
	history := func(source string) int {
		var out struct {
			Passes []struct{} `json:"passes"`
		}
		url := fmt.Sprintf("%s/v1/persons/%s/trace?source=%s", s.base, a.id, source)
		if code, _, raw := call(t, "GET", url, a.token, nil, &out); code != http.StatusOK {
			t.Fatalf("history (%s): %d %s", source, code, raw)
		}
		return len(out.Passes)
	}
	trace := func() (visits, contacts int) {
		var out struct {
			Index struct {
				Visits   int `json:"visits"`
				Contacts int `json:"contacts"`
			} `json:"index"`
		}
		now := time.Now().UTC()
		code, _, raw := call(t, "POST", s.base+"/v1/traces", analyst, map[string]any{"person_id": a.id, "depth": 1, "reason": "cluster 7",
			"from": now.Add(-time.Hour).Format(time.RFC3339), "to": now.Add(time.Hour).Format(time.RFC3339)}, &out)
		if code != http.StatusOK && code != http.StatusCreated {
			t.Fatalf("trace: %d %s", code, raw)
		}
		return out.Index.Visits, out.Index.Contacts
	}
	alerts := func() int {
		var out struct {
			Alerts []struct{} `json:"alerts"`
		}
		if code, _, raw := call(t, "GET", s.base+"/v1/alerts?district=371302", reviewer, nil, &out); code != http.StatusOK {
			t.Fatalf("alerts: %d %s", code, raw)
		}
		return len(out.Alerts)
	}

	// Served while within the retention (the alert is raised by a reaction).
	if n := entries(); n != 3 {
		t.Fatalf("entries within the retention: %d, want 3", n)
	}
	if n := history(domain.SourceReadModel); n != 1 {
		t.Fatalf("history within the retention: %d, want 1", n)
	}
	if n := history(domain.SourceLog); n != 1 {
		t.Fatalf("history from the log within the retention: %d, want 1", n)
	}
	if visits, contacts := trace(); visits != 1 || contacts < 1 {
		t.Fatalf("trace within the retention: %d visits, %d contacts", visits, contacts)
	}
	if !ledgertest.Poll(retention/2, func() bool { return alerts() == 1 }) {
		t.Fatalf("alerts within the retention: %d, want 1", alerts())
	}

	// Gone while the service runs: no restart.
	gone := ledgertest.Poll(retention+10*time.Second, func() bool {
		visits, contacts := trace()
		return entries() == 0 && history(domain.SourceReadModel) == 0 && history(domain.SourceLog) == 0 &&
			visits == 0 && contacts == 0 && alerts() == 0
	})
	if !gone {
		visits, contacts := trace()
		t.Fatalf("past the retention: %d entries, history %d (log %d), trace %d visits %d contacts, %d alerts",
			entries(), history(domain.SourceReadModel), history(domain.SourceLog), visits, contacts, alerts())
	}
	// And gone from the log itself (the per-message TTL).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, p := range passes {
		if !ledgertest.Poll(10*time.Second, func() bool {
			_, err := s.app.es.Get(ctx, p.Position)
			return errors.Is(err, domain.ErrNotFound)
		}) {
			t.Fatalf("pass %s still in the log past its retention", p.EventID)
		}
	}
	// Registrations and the venue stay.
	for _, p := range []person{a, b, c} {
		if code, _, raw := call(t, "GET", s.base+"/v1/persons/"+p.id, p.token, nil, nil); code != http.StatusOK {
			t.Fatalf("person after retention: %d %s", code, raw)
		}
	}
	if code, _, raw := call(t, "GET", s.base+"/v1/venues/"+venueID, a.token, nil, nil); code != http.StatusOK {
		t.Fatalf("venue after retention: %d %s", code, raw)
	}
}

// TestRetentionFlag: a retention under the log's one second is refused
// before anything opens; the default is domain.DefaultRetention.
func TestRetentionFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want time.Duration // 0: refused
	}{
		{"default", nil, domain.DefaultRetention},
		{"14 days", []string{"--retention", "336h"}, 14 * 24 * time.Hour},
		{"one second", []string{"--retention", "1s"}, time.Second},
		{"zero", []string{"--retention", "0"}, 0},
		{"negative", []string{"--retention", "-1h"}, 0},
		{"under a second", []string{"--retention", "500ms"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseServe(tt.args, io.Discard, func(string) string { return "" })
			if tt.want == 0 {
				if err == nil || !strings.Contains(err.Error(), "--retention") {
					t.Fatalf("parse %v: %v, want a --retention error", tt.args, err)
				}
				return
			}
			if err != nil || cfg.engine.retention != tt.want {
				t.Fatalf("parse %v: %s, %v; want %s", tt.args, cfg.engine.retention, err, tt.want)
			}
		})
	}
}
