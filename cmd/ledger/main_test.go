package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/google/uuid"
)

// service is a `ledger serve` started in this process, as cmd wires it:
// the app, from the command's own flags.
type service struct {
	base   string
	cancel context.CancelFunc
	done   chan error
	data   string
	app    *app
}

// startService opens the app as `ledger serve --data dir --http
// 127.0.0.1:0 [flags]` would, runs it and returns once it is ready.
func startService(t *testing.T, dir string, env map[string]string, flags ...string) *service {
	t.Helper()
	return startServiceWith(t, dir, env, nil, flags, nil)
}

// startServiceWith is startService writing the service's log lines to logs
// (nil: nowhere), and tweak (when not nil) adjusting the parsed config.
func startServiceWith(t *testing.T, dir string, env map[string]string, logs io.Writer, flags []string, tweak func(*config)) *service {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := parseServe(append([]string{"--data", dir, "--http", "127.0.0.1:0"}, flags...), logs, getenv)
	if err != nil {
		t.Fatalf("serve flags: %v", err)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := open(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("open the app: %v", err)
	}
	s := &service{base: "http://" + a.Addr().String(), cancel: cancel, done: make(chan error, 1), data: dir, app: a}
	go func() {
		err := a.Run(ctx)
		s.done <- errors.Join(err, a.Close())
	}()
	t.Cleanup(func() { s.stop(t) })
	waitReady(t, s.base)
	return s
}

func (s *service) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil && err != context.Canceled {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("serve did not stop within 30s")
	}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	waitReadyWithin(t, base, 30*time.Second)
}

// waitReadyWithin polls base's /readyz until it answers 200.
func waitReadyWithin(t *testing.T, base string, within time.Duration) {
	t.Helper()
	ready := ledgertest.Poll(within, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ready {
		t.Fatalf("%s/readyz not OK within %s", base, within)
	}
}

// call sends a JSON request and decodes the JSON answer into out (if not nil).
func call(t *testing.T, method, url, bearer string, body any, out any) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode, resp.Header, raw
}

// issue runs `ledger token issue` against dir and returns the token.
func issue(t *testing.T, dir string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"token", "issue", "--data", dir}, args...), &out, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatalf("token issue %v: %v", args, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[len(lines)-1]
}

// TestEndToEnd walks a citizen and a venue manager through the service as
// cmd wires it: register → apply → approve → code PNG → pass → entry list.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	s := startService(t, dir, nil)
	reviewer := issue(t, dir, "--role", "reviewer", "--subject", "wang")

	var reg struct {
		PersonID string `json:"person_id"`
		Token    string `json:"token"`
		EventID  string `json:"event_id"`
		Position uint64 `json:"position"`
	}
	code, _, raw := call(t, "POST", s.base+"/v1/persons", "", map[string]any{
		"name": "王小明", "id_type": "resident_id", "id_number": residentID(1), "phone": "13800000001",
	}, &reg)
	if code != http.StatusCreated || reg.PersonID == "" || reg.Token == "" || reg.EventID == "" || reg.Position == 0 {
		t.Fatalf("register: %d %s", code, raw)
	}
	if strings.Contains(string(raw), residentID(1)) {
		t.Fatalf("register answer shows the whole ID number: %s", raw)
	}

	var venue struct {
		VenueID string `json:"venue_id"`
		Status  string `json:"status"`
	}
	code, _, raw = call(t, "POST", s.base+"/v1/venues", reg.Token, map[string]any{
		"name": "沂河超市", "type": "supermarket", "district": "371302", "address": "临沂市兰山区沂河路1号",
		"lat": 35.05, "lng": 118.35,
	}, &venue)
	if code != http.StatusCreated || venue.Status != "pending" {
		t.Fatalf("apply: %d %s", code, raw)
	}

	var review struct {
		Position uint64 `json:"position"`
	}
	code, _, raw = call(t, "POST", s.base+"/v1/venues/"+venue.VenueID+"/review", reviewer,
		map[string]any{"decision": "approve"}, &review)
	if code/100 != 2 || review.Position == 0 {
		t.Fatalf("review: %d %s", code, raw)
	}

	// Read your write: the venue as the read models know it once they have
	// applied the review.
	var got struct {
		Status string `json:"status"`
		Code   string `json:"code"`
	}
	call(t, "GET", fmt.Sprintf("%s/v1/venues/%s?min_position=%d", s.base, venue.VenueID, review.Position), reg.Token, nil, &got)
	if got.Status != "approved" || got.Code == "" {
		t.Fatalf("venue after approval: %+v", got)
	}

	code, hdr, png := call(t, "GET", s.base+"/v1/venues/"+venue.VenueID+"/code.png", reg.Token, nil, nil)
	if code != http.StatusOK || hdr.Get("Content-Type") != "image/png" || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("code.png: %d %s, %d bytes", code, hdr.Get("Content-Type"), len(png))
	}

	var pass struct {
		EventID  string `json:"event_id"`
		Position uint64 `json:"position"`
		Decision string `json:"decision"`
	}
	code, _, raw = call(t, "POST", s.base+"/v1/passes", reg.Token, map[string]any{
		"method": "self_scan", "venue_code": got.Code, "direction": "in",
	}, &pass)
	if code != http.StatusCreated || pass.Decision != "pass" {
		t.Fatalf("self scan: %d %s", code, raw)
	}

	var entries struct {
		Entries []struct {
			EventID  string `json:"event_id"`
			Name     string `json:"name"`
			IDNumber string `json:"id_number"`
		} `json:"entries"`
	}
	code, _, raw = call(t, "GET", fmt.Sprintf("%s/v1/venues/%s/entries?min_position=%d", s.base, venue.VenueID, pass.Position), reg.Token, nil, &entries)
	if code != http.StatusOK || len(entries.Entries) != 1 || entries.Entries[0].EventID != pass.EventID {
		t.Fatalf("entries: %d %s", code, raw)
	}
	if e := entries.Entries[0]; e.Name != "王*" || e.IDNumber == residentID(1) || !strings.HasSuffix(e.IDNumber, residentID(1)[14:]) {
		t.Fatalf("entry not masked as expected: %+v", e)
	}
}

// TestRestartKeepsEverything stops the service and starts it again on the
// same data dir: what was acknowledged is still there.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := startService(t, dir, nil)
	var ids []string
	for i := range 20 {
		var reg struct {
			PersonID string `json:"person_id"`
		}
		code, _, raw := call(t, "POST", s.base+"/v1/persons", "", map[string]any{
			"name": "李四", "id_type": "resident_id", "id_number": residentID(100 + i), "phone": "13900000000",
		}, &reg)
		if code != http.StatusCreated {
			t.Fatalf("register %d: %d %s", i, code, raw)
		}
		ids = append(ids, reg.PersonID)
	}
	s.stop(t)

	s2 := startService(t, dir, nil)
	admin := issue(t, dir, "--role", "admin", "--subject", "ops")
	for _, id := range ids {
		code, _, raw := call(t, "GET", s2.base+"/v1/persons/"+id, admin, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("after restart, person %s: %d %s", id, code, raw)
		}
	}
	// The same document again is still a conflict after the restart.
	code, _, raw := call(t, "POST", s2.base+"/v1/persons", "", map[string]any{
		"name": "李四", "id_type": "resident_id", "id_number": residentID(100), "phone": "13900000000",
	}, nil)
	if code != http.StatusConflict {
		t.Fatalf("re-register after restart: %d %s", code, raw)
	}
}

func decodeJSON(resp *http.Response, out any) {
	_ = json.NewDecoder(resp.Body).Decode(out)
}

// residentID returns a valid resident ID number for seq (idcard.Sample).
func residentID(seq int) string { return idcard.Sample(seq) }

// person is a person registered through the API.
type person struct{ id, token string }

// register registers name through the API with resident ID seq.
func register(t *testing.T, base, name string, seq int) person {
	t.Helper()
	var reg struct {
		PersonID string `json:"person_id"`
		Token    string `json:"token"`
	}
	if code, _, raw := call(t, "POST", base+"/v1/persons", "", map[string]any{
		"name": name, "id_type": "resident_id", "id_number": residentID(seq), "phone": fmt.Sprintf("138000000%02d", seq),
	}, &reg); code != http.StatusCreated {
		t.Fatalf("register %s: %d %s", name, code, raw)
	}
	return person{reg.PersonID, reg.Token}
}

// approvedVenue has manager apply for a supermarket named name in district
// 371302 and reviewer approve it; it returns the venue's id and its code,
// read as of the approval.
func approvedVenue(t *testing.T, base string, manager person, reviewer, name string) (id, code string) {
	t.Helper()
	var venue struct {
		VenueID string `json:"venue_id"`
		Code    string `json:"code"`
	}
	if code, _, raw := call(t, "POST", base+"/v1/venues", manager.token, map[string]any{
		"name": name, "type": "supermarket", "district": "371302", "address": "临沂市兰山区沂河路1号", "lat": 35.05, "lng": 118.35,
	}, &venue); code != http.StatusCreated {
		t.Fatalf("apply: %d %s", code, raw)
	}
	var review struct {
		Position uint64 `json:"position"`
	}
	if code, _, raw := call(t, "POST", base+"/v1/venues/"+venue.VenueID+"/review", reviewer, map[string]any{"decision": "approve"}, &review); code != http.StatusOK {
		t.Fatalf("review: %d %s", code, raw)
	}
	call(t, "GET", fmt.Sprintf("%s/v1/venues/%s?min_position=%d", base, venue.VenueID, review.Position), manager.token, nil, &venue)
	if venue.Code == "" {
		t.Fatal("venue has no code after approval")
	}
	return venue.VenueID, venue.Code
}

// TestOpenFailsCleanly: when open fails after the event store is up (here:
// the API address cannot be bound) it returns the error, having closed what
// it opened, and the data dir opens again; an app that never ran closes
// without error.
func TestOpenFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	cfg, err := parseServe([]string{"--data", dir, "--http", "127.0.0.1:-1"}, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := open(context.Background(), cfg)
	if err == nil {
		a.Close()
		t.Fatal("open with an address that cannot be bound succeeded")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:-1") {
		t.Fatalf("open: %v, want the address in the error", err)
	}
	cfg.httpAddr = "127.0.0.1:0"
	a, err = open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open after a failed open: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("close an app that never ran: %v", err)
	}
}

// TestTokenIssueNamesItsHolder: every token but a person's names its
// holder, and the subject carries the name into the audit trail.
func TestTokenIssueNamesItsHolder(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		if k == "LEDGER_TOKEN_KEY" {
			return "a-test-root-key-of-more-than-32-characters"
		}
		return ""
	}
	issueWith := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"token", "issue", "--data", dir}, args...), &out, io.Discard, env)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return lines[len(lines)-1], err
	}
	subject := func(tok string) string {
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q is not a JWT", tok)
		}
		body, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Sub string `json:"sub"`
		}
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatal(err)
		}
		return c.Sub
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--role", "analyst", "--subject", "li.wei"}, "analyst:li.wei"},
		{[]string{"--role", "reviewer", "--district", "371302", "--subject", "王审核"}, "reviewer:371302:王审核"},
		{[]string{"--role", "admin", "--subject", "ops"}, "admin:ops"},
	} {
		tok, err := issueWith(tc.args...)
		if err != nil {
			t.Fatalf("token issue %v: %v", tc.args, err)
		}
		if got := subject(tok); got != tc.want {
			t.Errorf("token issue %v: subject %q, want %q", tc.args, got, tc.want)
		}
	}
	for _, args := range [][]string{
		{"--role", "analyst"},
		{"--role", "analyst", "--subject", "li wei"},
		{"--role", "analyst", "--subject", "a:b"},
		{"--role", "analyst", "--subject", "x\x00"},
		{"--role", "person", "--person", uuid.NewString(), "--subject", "me"},
	} {
		if tok, err := issueWith(args...); err == nil {
			t.Errorf("token issue %q: no error, printed %q", args, tok)
		}
	}
}
