package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/google/uuid"
)

// idNumber is a valid resident ID of region and birth date with sequence seq.
func idNumber(t *testing.T, region, birth, seq string) string {
	t.Helper()
	c, ok := idcard.CheckChar(region + birth + seq)
	if !ok {
		t.Fatalf("no check character for %s%s%s", region, birth, seq)
	}
	return region + birth + seq + string(c)
}

// needles are every form in which a person's data could be left behind.
type needles map[string]string // the bytes → what they are

func (n needles) add(what string, forms ...string) {
	for _, f := range forms {
		n[f] = what
		if q := strconv.QuoteToASCII(f); q[1:len(q)-1] != f {
			n[q[1:len(q)-1]] = what + " (JSON-escaped)"
		}
	}
}

// find returns the needles in b.
func (n needles) find(b []byte) []string {
	var found []string
	for f, what := range n {
		if bytes.Contains(b, []byte(f)) {
			found = append(found, fmt.Sprintf("%s %q", what, f))
		}
	}
	return found
}

// scanDir returns, per file under dir, the needles found in it.
func scanDir(t *testing.T, dir string, n needles) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if f := n.find(b); len(f) > 0 {
			out[path] = f
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func pgDump(t *testing.T, url string) []byte {
	t.Helper()
	out, err := exec.Command("pg_dump", "--no-owner", "--dbname", url).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	return out
}

// TestErasureLeavesNothing registers a person with a distinctive name, ID
// number and phone (and a family member under them), drives them through
// passes (self scan with the family member, staff scan, manual entry, an
// abnormal one that raises an alert), a contact trace and a history look,
// an arrival declaration and a truck pass (whose contact is personal data
// too), erases them, and then scans every file of the data dir (the
// embedded JetStream's store: the log, the key bucket), a pg_dump of the
// read models' database (when DATABASE_URL answers), the service's log
// lines and every API answer about them: no form of their name, masked
// name, ID number or phone is left. Then it rebuilds the PostgreSQL tables
// and restarts the service (a replay of the memory facts) and looks again.
func TestErasureLeavesNothing(t *testing.T) {
	dbURL, which := clusterReadModels(t)
	t.Logf("read models: %s", which)
	dir := t.TempDir()
	env := map[string]string{"DATABASE_URL": dbURL}
	logs := &ledgertest.Logs{}
	s := startServiceWith(t, dir, env, logs, nil, nil)
	a := s.app
	admin := issue(t, dir, "--role", "admin", "--subject", "ops")
	reviewer := issue(t, dir, "--role", "reviewer", "--subject", "wang")
	analyst := issue(t, dir, "--role", "analyst", "--subject", "li")
	feed := issue(t, dir, "--role", "health-feed", "--subject", "feed-1")

	const (
		name         = "鞠婉清"
		kidName      = "鞠小宝"
		phone        = "13987654321"
		contactName  = "龚调度员"
		contactPhone = "13711112222"
		origin       = "蓬莱仙岛市瀛洲区"
		plate        = "鲁Y98765"
		venueName    = "沂蒙山酒楼"
	)
	number := idNumber(t, "371328", "19770707", "428")
	kidNumber := idNumber(t, "371328", "20150909", "617")
	n := needles{}
	n.add("name", name, kidName, contactName, pii.MaskName(name), pii.MaskName(contactName))
	for _, num := range []string{number, kidNumber} {
		n.add("ID number", num, strings.ToLower(num), pii.MaskID(num), num[:6]+" "+num[6:14]+" "+num[14:])
	}
	for _, p := range []string{phone, contactPhone} {
		n.add("phone", p, pii.MaskPhone(p), p[:3]+" "+p[3:7]+" "+p[7:], p[:3]+"-"+p[3:7]+"-"+p[7:], "+86"+p)
	}
	n.add("origin", origin)
	n.add("plate", plate)

	post := func(path, tok string, body any, want int) []byte {
		t.Helper()
		code, _, raw := call(t, "POST", s.base+path, tok, body, nil)
		if code != want {
			t.Fatalf("POST %s: %d %s", path, code, raw)
		}
		return raw
	}
	var reg struct {
		PersonID uuid.UUID `json:"person_id"`
		Token    string    `json:"token"`
	}
	decode := func(raw []byte, out any) {
		t.Helper()
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
	}
	// The person, with the phone typed with spaces (stored normalised).
	decode(post("/v1/persons", "", map[string]any{"name": name, "id_type": "resident_id", "id_number": number,
		"phone": "139 8765 4321"}, http.StatusCreated), &reg)
	pid, ptok := reg.PersonID, reg.Token
	var kid struct {
		PersonID uuid.UUID `json:"person_id"`
	}
	decode(post("/v1/persons/"+pid.String()+"/family-members", ptok, map[string]any{"name": kidName, "id_type": "resident_id",
		"id_number": kidNumber, "relation": "child"}, http.StatusCreated), &kid)
	decode(post("/v1/persons", "", map[string]any{"name": "王经理", "id_type": "resident_id", "id_number": residentID(501),
		"phone": "13800000501"}, http.StatusCreated), &reg)
	manager := reg.Token
	decode(post("/v1/persons", "", map[string]any{"name": "赵邻居", "id_type": "resident_id", "id_number": residentID(502),
		"phone": "13800000502"}, http.StatusCreated), &reg)
	neighbour, ntok := reg.PersonID, reg.Token

	venue := func(name string) (uuid.UUID, string) {
		t.Helper()
		var v struct {
			VenueID uuid.UUID `json:"venue_id"`
		}
		decode(post("/v1/venues", manager, map[string]any{"name": name, "type": "restaurant", "district": "371302",
			"address": "兰山区沂蒙路1号", "lat": 35.05, "lng": 118.35}, http.StatusCreated), &v)
		var rev struct {
			Position uint64 `json:"position"`
		}
		decode(post("/v1/venues/"+v.VenueID.String()+"/review", reviewer, map[string]any{"decision": "approve"}, http.StatusOK), &rev)
		var got struct {
			Code string `json:"code"`
		}
		if !ledgertest.Poll(10*time.Second, func() bool {
			call(t, "GET", fmt.Sprintf("%s/v1/venues/%s?min_position=%d", s.base, v.VenueID, rev.Position), manager, nil, &got)
			return got.Code != ""
		}) {
			t.Fatal("venue code not issued")
		}
		return v.VenueID, got.Code
	}
	v1, code1 := venue(venueName)
	v2, _ := venue("沂蒙山茶馆")
	post("/v1/health-status", feed, map[string]any{"records": []map[string]any{
		{"id_type": "resident_id", "id_number": number, "code_colour": "yellow", "nat_result": "negative", "nat_at": time.Now().Add(-5 * time.Hour).Format(time.RFC3339)},
	}}, http.StatusOK)

	// Passes: a self scan with the family member (an abnormal one: a
	// yellow code raises an alert), the neighbour beside them, a manual
	// entry and a staff scan at the other venue.
	passID := uuid.NewString()
	selfScan := map[string]any{"event_id": passID, "method": "self_scan", "venue_code": code1, "direction": "in",
		"family_member_ids": []string{kid.PersonID.String()}}
	firstPass := post("/v1/passes", ptok, selfScan, http.StatusCreated)
	if !bytes.Contains(firstPass, []byte(`"name":"鞠*"`)) {
		t.Fatalf("the pass answer shows no masked name: %s", firstPass)
	}
	post("/v1/passes", ntok, map[string]any{"method": "self_scan", "venue_code": code1, "direction": "in"}, http.StatusCreated)
	post("/v1/passes", manager, map[string]any{"method": "manual", "venue_id": v2.String(), "id_type": "resident_id",
		"id_number": number, "direction": "in"}, http.StatusCreated)
	var pc struct {
		Code string `json:"code"`
	}
	code, _, raw := call(t, "GET", s.base+"/v1/persons/"+pid.String()+"/code", ptok, nil, &pc)
	if code != http.StatusOK || pc.Code == "" {
		t.Fatalf("personal code: %d %s", code, raw)
	}
	staffScan := map[string]any{"method": "staff_scan", "venue_id": v2.String(), "personal_code": pc.Code, "direction": "out"}
	post("/v1/passes", manager, staffScan, http.StatusCreated)

	// Declarations.
	var arrival, truck struct {
		DeclarationID uuid.UUID `json:"declaration_id"`
	}
	decode(post("/v1/declarations/arrival", ptok, map[string]any{"arrival_date": time.Now().Format(time.DateOnly), "origin": origin,
		"destination_district": "371302", "nat_result": "none", "family_member_ids": []string{kid.PersonID.String()}}, http.StatusCreated), &arrival)
	decode(post("/v1/declarations/truck", ptok, map[string]any{"plate_number": plate, "nat_proof_at": time.Now().Add(-2 * time.Hour).Format(time.RFC3339),
		"itinerary_ok": true, "health_code_colour": "green", "logistics_park": "临沂商城国际物流园", "district": "371311",
		"contact_name": contactName, "contact_phone": contactPhone}, http.StatusCreated), &truck)

	// Everything an API caller may read about them.
	now := time.Now().UTC()
	from, to := now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)
	answers := func() map[string][]byte {
		t.Helper()
		out := map[string][]byte{}
		get := func(what, path, tok string) {
			var code int
			var raw []byte
			// The read models follow the log a moment behind.
			ledgertest.Poll(5*time.Second, func() bool {
				code, _, raw = call(t, "GET", s.base+path, tok, nil, nil)
				return code == http.StatusOK
			})
			if code != http.StatusOK {
				t.Fatalf("%s: GET %s: %d %s", what, path, code, raw)
			}
			out[what] = raw
		}
		get("person", "/v1/persons/"+pid.String(), admin)
		get("family member", "/v1/persons/"+kid.PersonID.String(), admin)
		get("history", "/v1/persons/"+pid.String()+"/trace?from="+from+"&to="+to, admin)
		get("history from the log", "/v1/persons/"+pid.String()+"/trace?source=log&from="+from+"&to="+to, admin)
		get("entries", "/v1/venues/"+v1.String()+"/entries", manager)
		get("entries at the other venue", "/v1/venues/"+v2.String()+"/entries", manager)
		get("declarations", "/v1/declarations", reviewer)
		get("arrival", "/v1/declarations/"+arrival.DeclarationID.String(), reviewer)
		get("truck pass", "/v1/declarations/"+truck.DeclarationID.String(), reviewer)
		get("alerts", "/v1/alerts?district=371302", admin)
		get("audit", "/v1/audit", admin)
		code, _, raw := call(t, "POST", s.base+"/v1/traces", analyst, map[string]any{"person_id": neighbour.String(),
			"from": from, "to": to, "depth": 2, "reason": "cluster 7"}, nil)
		if code != http.StatusOK && code != http.StatusCreated {
			t.Fatalf("trace: %d %s", code, raw)
		}
		out["contact trace"] = raw
		return out
	}
	// The alert is raised by a reaction, a moment after the pass.
	if !ledgertest.Poll(10*time.Second, func() bool {
		_, _, raw := call(t, "GET", s.base+"/v1/alerts?district=371302", admin, nil, nil)
		return bytes.Contains(raw, []byte(pid.String()))
	}) {
		t.Fatal("no alert for the yellow code")
	}
	before := answers()
	// The family member stayed beside the neighbour (the person went on to
	// the other venue at once).
	if !bytes.Contains(before["contact trace"], []byte(kid.PersonID.String())) || !bytes.Contains(before["contact trace"], []byte(`"鞠*"`)) {
		t.Fatalf("the trace does not find the person: %s", before["contact trace"])
	}
	if !bytes.Contains(before["alerts"], []byte(pid.String())) {
		t.Fatalf("no alert for the yellow code: %s", before["alerts"])
	}
	for what, raw := range before {
		t.Logf("before the erasure, %s: %v", what, n.find(raw))
	}
	if f := n.find(before["truck pass"]); len(f) == 0 {
		t.Fatalf("the scan finds nothing in the truck pass before the erasure (%s): it proves nothing", before["truck pass"])
	}
	if dbURL != "" {
		if f := n.find(pgDump(t, dbURL)); len(f) < 4 {
			t.Fatalf("the pg_dump before the erasure holds only %v: the scan proves nothing", f)
		}
	}
	if len(scanDir(t, dir, needles{venueName: "venue"})) == 0 {
		t.Fatal("the scan of the data dir does not find a venue's name: it proves nothing")
	}
	if f := scanDir(t, dir, n); len(f) > 0 {
		t.Fatalf("personal data in clear in the data dir before any erasure: %v", f)
	}

	// The erasure.
	var er struct {
		EventID    uuid.UUID   `json:"event_id"`
		Position   uint64      `json:"position"`
		Dependants []uuid.UUID `json:"dependants"`
	}
	began := time.Now()
	decode(post("/v1/persons/"+pid.String()+"/erasure", admin, map[string]any{"reason": "the person asked at the service hall"}, http.StatusOK), &er)
	t.Logf("the erasure of a person and a family member answered in %s", time.Since(began))
	if len(er.Dependants) != 1 || er.Dependants[0] != kid.PersonID {
		t.Fatalf("erasure: %+v", er)
	}
	for _, id := range []uuid.UUID{pid, kid.PersonID} {
		if _, err := a.es.Key(context.Background(), id, false); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("data key of %s after the erasure: %v", id, err)
		}
	}
	if a.facts != nil {
		f, err := a.facts.PassFacts(context.Background(), ledger.PassFactsQuery{Persons: []uuid.UUID{pid}, IDHashes: []string{a.ledger.Hasher.IDHash("resident_id", number)}})
		if p := f.Persons[pid]; err != nil || !p.Erased || p.NameMasked != "" || len(f.ByIDHash) != 0 {
			t.Fatalf("the command side's facts after the erasure: %+v %v", f, err)
		}
	}
	// The venue's retry of a pass made before the erasure answers its
	// original screen without the name; the erased person's own token acts
	// for nobody any more, a retry included.
	retried := post("/v1/passes", manager, staffScan, http.StatusOK)
	if !bytes.Contains(retried, []byte(`"name":"`+domain.ErasedName+`"`)) {
		t.Fatalf("a retried pass of the erased person: %s", retried)
	}
	if own := post("/v1/passes", ptok, selfScan, http.StatusConflict); !bytes.Contains(own, []byte("erased")) {
		t.Fatalf("the erased person's own retry: %s", own)
	}

	look := func(when string) {
		t.Helper()
		got := answers()
		got["retried pass"] = retried
		for what, raw := range got {
			if f := n.find(raw); len(f) > 0 {
				t.Errorf("%s, %s still holds %v: %s", when, what, f, raw)
			}
		}
		if !bytes.Contains(got["person"], []byte(`"erased":true`)) || !bytes.Contains(got["family member"], []byte(`"erased":true`)) {
			t.Errorf("%s, the person reads %s", when, got["person"])
		}
		// Their passes stay, anonymous: the trace still finds them.
		if !bytes.Contains(got["contact trace"], []byte(kid.PersonID.String())) {
			t.Errorf("%s, the trace lost the erased person's passes: %s", when, got["contact trace"])
		}
		if f := scanDir(t, dir, n); len(f) > 0 {
			t.Errorf("%s, in the data dir: %v", when, f)
		}
		if dbURL != "" {
			if f := n.find(pgDump(t, dbURL)); len(f) > 0 {
				t.Errorf("%s, in the pg_dump: %v", when, f)
			}
		}
		if f := n.find(logs.Bytes()); len(f) > 0 {
			t.Errorf("%s, in the log lines: %v", when, f)
		}
	}
	look("after the erasure")

	// A rebuild of the PostgreSQL tables from the log, and a restart (the
	// memory facts and, without PostgreSQL, the read models are replayed).
	s.stop(t)
	if dbURL != "" {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"projections", "rebuild", "--data", dir}, &out, &out,
			func(k string) string { return env[k] }); err != nil {
			t.Fatalf("projections rebuild: %v\n%s", err, out.String())
		}
	}
	s = startServiceWith(t, dir, env, logs, nil, nil)
	look("after a rebuild and a restart")
}
