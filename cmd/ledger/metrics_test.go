package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMetrics walks a registration, a venue and a self scan through the
// service as cmd wires it, then reads GET /metrics: every family the README
// lists is there with what the walk did, and `promtool check metrics` (when
// installed; .ci/run installs it, so CI=true requires it) finds nothing to
// say about names, units or help.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	s := startService(t, dir, nil)
	reviewer := issue(t, dir, "--role", "reviewer", "--subject", "wang")
	manager := register(t, s.base, "王小明", 3)
	_, venueCode := approvedVenue(t, s.base, manager, reviewer, "沂河超市")
	if code, _, raw := call(t, "POST", s.base+"/v1/passes", manager.token, map[string]any{
		"method": "self_scan", "venue_code": venueCode, "direction": "in"}, nil); code != 201 {
		t.Fatalf("pass: %d %s", code, raw)
	}
	call(t, "GET", s.base+"/v1/audit", "", nil, nil) // a 401 problem
	// A dashboard token bound to a district reads that district only.
	lanshan := issue(t, dir, "--role", "dashboard", "--district", "371302", "--subject", "wall-screen-1")
	var dash struct {
		District    string `json:"district"`
		PassesToday int    `json:"passes_today"`
	}
	if code, _, raw := call(t, "GET", s.base+"/v1/dashboard/summary", lanshan, nil, &dash); code != 200 || dash.District != "371302" {
		t.Fatalf("district dashboard: %d %s", code, raw)
	}
	if code, _, _ := call(t, "GET", s.base+"/v1/dashboard/summary?district=371311", lanshan, nil, nil); code != 403 {
		t.Fatalf("another district: %d", code)
	}

	code, hdr, body := call(t, "GET", s.base+"/metrics", "", nil, nil)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	text := string(body)
	for _, want := range []string{
		`ledger_appends_total{kind="append",result="ok"}`,
		`ledger_appends_total{kind="record",result="ok"}`,
		`ledger_appended_events_total{kind="record"}`,
		`ledger_append_duration_seconds_bucket{kind="append",le=`,
		`ledger_group_commit_pack_events_count`,
		`ledger_passes_recorded_total{decision="pass",method="self_scan"} 1`,
		`ledger_http_requests_total{code="201",method="POST",route="/v1/persons"} 1`,
		`ledger_http_request_duration_seconds_bucket{method="POST",route="/v1/passes",le=`,
		`ledger_http_problems_total{type="urn:checkin-ledger:problem:unauthorized"} 1`,
		`ledger_projection_position{projection="read_models"}`,
		`ledger_projection_lag_events{projection="read_models"}`,
		`ledger_projection_lag_seconds{projection="read_models"}`,
		`ledger_reaction_failures_total{reaction="alerts"} 0`,
		`ledger_reaction_failures_total{reaction="erasures"} 0`,
		`ledger_reaction_failures_total{reaction="audit"} 0`,
		`ledger_reaction_poisoned_total{reaction="venue-codes"} 0`,
		`ledger_reaction_poisoned_total{reaction="declarations"} 0`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, secret := range []string{"王小明", residentID(3), "13800000003"} {
		if strings.Contains(text, secret) {
			t.Fatalf("/metrics shows %q", secret)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is missing (apt-get install prometheus); CI needs it")
		}
		t.Skip("promtool is missing (apt-get install prometheus): the lint is skipped")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestServeFlagsForOperations checks --log-format and --time-zone.
func TestServeFlagsForOperations(t *testing.T) {
	get := func(string) string { return "" }
	var logs bytes.Buffer
	cfg, err := parseServe([]string{"--log-format", "json", "--time-zone", "Asia/Shanghai"}, &logs, get)
	if err != nil || cfg.location.String() != "Asia/Shanghai" {
		t.Fatalf("json, Asia/Shanghai: %v %v", cfg.location, err)
	}
	cfg.logger.Info("hello", "k", 1)
	if !strings.HasPrefix(logs.String(), `{"time":`) {
		t.Fatalf("--log-format json wrote %q", logs.String())
	}
	if cfg, err := parseServe([]string{"--time-zone", "Europe/Berlin"}, &logs, get); err != nil || cfg.location.String() != "Europe/Berlin" {
		t.Fatalf("Europe/Berlin (whole hours, daylight saving): %v", err)
	}
	// The dashboard counts by whole UTC hours: a zone whose offset is not
	// whole hours would get days that start and end mid-bucket.
	for _, args := range [][]string{{"--log-format", "xml"}, {"--time-zone", "Mars/Olympus"},
		{"--time-zone", "Asia/Kolkata"}, {"--time-zone", "Asia/Kathmandu"}, {"--time-zone", "Australia/Adelaide"}} {
		if _, err := parseServe(args, &logs, get); err == nil {
			t.Fatalf("%v accepted", args)
		}
	}
}
