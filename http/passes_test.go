package http

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/checkin-ledger/ledger/token"
)

// passWorld is two approved venues, their managers, a scanner of venue A
// and a visitor with a dependant.
type passWorld struct {
	e                  *testEnv
	managerA, managerB registered
	visitor, child     registered
	venueA, venueB     uuid.UUID
	scannerA, scannerB string
	visitorID          string // the visitor's resident ID
}

func newPassWorld(t *testing.T) *passWorld {
	t.Helper()
	e := newTestServer(t)
	w := &passWorld{e: e}
	w.managerA = e.register("吴一", 31)
	w.managerB = e.register("郑二", 32)
	w.visitor = e.register("钱三", 33)
	w.visitorID = residentID(t, 33)
	w.child = e.addChild(w.visitor, "钱小三", 34)
	w.venueA = e.approvedVenue(w.managerA, "兰山超市")
	w.venueB = e.approvedVenue(w.managerB, "罗庄药店")
	w.scannerA = e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: w.venueA})
	w.scannerB = e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: w.venueB})
	e.waitApplied(e.lastPosition())
	return w
}

func (w *passWorld) personalCode(t *testing.T) string {
	t.Helper()
	code, _ := w.e.signer.IssuePersonalCode(w.visitor.ID)
	return code
}

func TestPasses(t *testing.T) {
	w := newPassWorld(t)
	e := w.e
	venueCodeA := e.signer.IssueVenueCode(w.venueA)

	self := map[string]any{"method": "self_scan", "venue_code": venueCodeA, "direction": "in",
		"event_id": "0190c2a4-2222-7000-8000-000000000001", "family_member_ids": []string{w.child.ID.String()}}
	rec := e.do("POST", "/v1/passes", w.visitor.Token, self)
	wantStatus(t, rec, http.StatusCreated)
	first := decodeJSON[passResponse](t, rec)
	if first.EventID.String() != self["event_id"] || first.Position == 0 || first.Decision != "pass" ||
		first.Screen.NameMasked != "钱*" || first.Screen.CodeColour != "unknown" || first.Screen.VenueID != w.venueA {
		t.Fatalf("self scan answer = %+v", first)
	}
	if len(first.Family) != 1 || first.Family[0].Screen.NameMasked != "钱*" {
		t.Fatalf("the dependant did not pass with the guardian: %+v", first.Family)
	}

	t.Run("same event id answers the original", func(t *testing.T) {
		before := e.lastPosition()
		rec := e.do("POST", "/v1/passes", w.visitor.Token, self)
		wantStatus(t, rec, http.StatusOK)
		again := decodeJSON[passResponse](t, rec)
		if !again.Duplicate || again.Position != first.Position || again.Decision != first.Decision {
			t.Fatalf("retry = %+v, want the original %+v", again, first)
		}
		if e.lastPosition() != before {
			t.Fatal("a retry appended")
		}
	})

	t.Run("staff scan and manual entry", func(t *testing.T) {
		rec := e.do("POST", "/v1/passes", w.scannerA, map[string]any{"method": "staff_scan", "venue_id": w.venueA,
			"personal_code": w.personalCode(t), "direction": "out"})
		wantStatus(t, rec, http.StatusCreated)
		rec = e.do("POST", "/v1/passes", w.managerA.Token, map[string]any{"method": "manual", "venue_id": w.venueA,
			"id_type": "resident_id", "id_number": w.visitorID, "direction": "in",
			"occurred_at": time.Now().Add(-48 * time.Hour).Format(time.RFC3339)})
		wantStatus(t, rec, http.StatusCreated)
		if strings.Contains(rec.Body.String(), w.visitorID[3:14]) {
			t.Fatalf("the screen shows the ID number: %s", rec.Body.String())
		}
	})

	t.Run("refused passes append nothing", func(t *testing.T) {
		expired := w.personalCode(t)
		e.clock.Advance(token.PersonalCodeTTL + time.Second)
		defer e.clock.Advance(-(token.PersonalCodeTTL + time.Second))
		forgedVenue := forge(t, venueCodeA, w.venueA.String(), w.venueB.String())
		otherKey, _ := token.NewSigner([]byte("another key, 32 bytes or more....."), nil)
		foreignCode := otherKey.IssueVenueCode(w.venueA)
		foreignPersonal, _ := otherKey.IssuePersonalCode(w.visitor.ID)
		tests := []struct {
			name   string
			tok    string
			body   any
			status int
			typ    string
			field  string
		}{
			{"forged venue code", w.visitor.Token, map[string]any{"method": "self_scan", "venue_code": forgedVenue, "direction": "in"},
				400, ProblemValidation, "venue_code"},
			{"venue code of another key", w.visitor.Token, map[string]any{"method": "self_scan", "venue_code": foreignCode, "direction": "in"},
				400, ProblemValidation, "venue_code"},
			{"personal code as venue code", w.visitor.Token, map[string]any{"method": "self_scan", "venue_code": w.personalCode(t), "direction": "in"},
				400, ProblemValidation, "venue_code"},
			{"expired personal code", w.scannerA, map[string]any{"method": "staff_scan", "venue_id": w.venueA, "personal_code": expired, "direction": "in"},
				400, ProblemValidation, "personal_code"},
			{"forged personal code", w.scannerA, map[string]any{"method": "staff_scan", "venue_id": w.venueA, "personal_code": foreignPersonal, "direction": "in"},
				400, ProblemValidation, "personal_code"},
			{"venue code as personal code", w.scannerA, map[string]any{"method": "staff_scan", "venue_id": w.venueA, "personal_code": venueCodeA, "direction": "in"},
				400, ProblemValidation, "personal_code"},
			{"bad direction", w.visitor.Token, map[string]any{"method": "self_scan", "venue_code": venueCodeA, "direction": "sideways"},
				400, ProblemValidation, "direction"},
			{"bad method", w.visitor.Token, map[string]any{"method": "teleport", "venue_code": venueCodeA, "direction": "in"},
				400, ProblemValidation, "method"},
			{"mixed methods", w.visitor.Token, map[string]any{"method": "self_scan", "venue_code": venueCodeA, "id_number": w.visitorID, "direction": "in"},
				400, ProblemValidation, "id_number"},
			{"bad event id", w.visitor.Token, map[string]any{"method": "self_scan", "venue_code": venueCodeA, "direction": "in", "event_id": "42"},
				400, ProblemValidation, "event_id"},
			{"occurred_at without zone", w.visitor.Token, map[string]any{"method": "self_scan", "venue_code": venueCodeA, "direction": "in", "occurred_at": "2022-05-01T08:00:00"},
				400, ProblemValidation, "occurred_at"},
			{"occurred_at in the future", w.visitor.Token, map[string]any{"method": "self_scan", "venue_code": venueCodeA, "direction": "in",
				"occurred_at": time.Now().Add(time.Hour).Format(time.RFC3339)}, 400, ProblemValidation, "occurred_at"},
			{"occurred_at beyond retention", w.visitor.Token, map[string]any{"method": "self_scan", "venue_code": venueCodeA, "direction": "in",
				"occurred_at": time.Now().Add(-40 * 24 * time.Hour).Format(time.RFC3339)}, 400, ProblemValidation, "occurred_at"},
			{"unknown field", w.visitor.Token, map[string]any{"method": "self_scan", "venue_code": venueCodeA, "direction": "in", "decision": "pass"},
				400, ProblemValidation, "decision"},
			{"manual entry of an unknown person", w.scannerA, map[string]any{"method": "manual", "venue_id": w.venueA,
				"id_type": "resident_id", "id_number": residentID(t, 999), "direction": "in"}, 404, ProblemNotFound, ""},
			{"staff of another venue", w.managerB.Token, map[string]any{"method": "manual", "venue_id": w.venueA,
				"id_type": "resident_id", "id_number": w.visitorID, "direction": "in"}, 403, ProblemForbidden, ""},
			{"scanner of another venue", w.scannerB, map[string]any{"method": "staff_scan", "venue_id": w.venueA,
				"personal_code": w.personalCode(t), "direction": "in"}, 403, ProblemForbidden, ""},
			{"a visitor is not staff", w.visitor.Token, map[string]any{"method": "staff_scan", "venue_id": w.venueA,
				"personal_code": w.personalCode(t), "direction": "in"}, 403, ProblemForbidden, ""},
			{"not their dependant", w.managerA.Token, map[string]any{"method": "self_scan", "venue_code": venueCodeA, "direction": "in",
				"family_member_ids": []string{w.child.ID.String()}}, 403, ProblemForbidden, ""},
			{"no token", "", map[string]any{"method": "self_scan", "venue_code": venueCodeA, "direction": "in"}, 401, ProblemUnauthorized, ""},
		}
		before := e.lastPosition()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := wantProblem(t, e.do("POST", "/v1/passes", tt.tok, tt.body), tt.status, tt.typ)
				if tt.field != "" && !hasField(p, tt.field) {
					t.Fatalf("problem %+v does not name %s", p, tt.field)
				}
			})
		}
		if after := e.lastPosition(); after != before {
			t.Fatalf("refused passes appended: %d → %d", before, after)
		}
	})

	t.Run("entries list for its own staff", func(t *testing.T) {
		last := e.lastPosition()
		path := "/v1/venues/" + w.venueA.String() + "/entries?min_position=" + itoa(last)
		rec := e.do("GET", path, w.managerA.Token, nil)
		wantStatus(t, rec, 200)
		list := decodeJSON[struct {
			Entries    []entryJSON `json:"entries"`
			NextCursor string      `json:"next_cursor"`
			Position   uint64      `json:"position"`
		}](t, rec)
		if len(list.Entries) != 4 || list.Position < last || list.NextCursor != "" {
			t.Fatalf("entries = %+v", list)
		}
		for i, en := range list.Entries {
			if en.NameMasked != "钱*" || !strings.HasPrefix(en.IDMasked, w.visitorID[:3]) || !strings.Contains(en.IDMasked, "*") {
				t.Fatalf("entry %d not masked: %+v", i, en)
			}
			if i > 0 && en.At.After(list.Entries[i-1].At) {
				t.Fatalf("entries not newest first: %v after %v", en.At, list.Entries[i-1].At)
			}
		}
		if strings.Contains(rec.Body.String(), w.visitorID[3:14]) {
			t.Fatal("the entry list holds a whole ID number")
		}

		// Pages of one, following next_cursor, give the same entries in order.
		var paged []uuid.UUID
		cursor := ""
		for range 10 {
			rec := e.do("GET", "/v1/venues/"+w.venueA.String()+"/entries?limit=1&cursor="+cursor, w.scannerA, nil)
			wantStatus(t, rec, 200)
			page := decodeJSON[struct {
				Entries    []entryJSON `json:"entries"`
				NextCursor string      `json:"next_cursor"`
			}](t, rec)
			for _, en := range page.Entries {
				paged = append(paged, en.EventID)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if len(paged) != len(list.Entries) {
			t.Fatalf("paged %d entries, listed %d", len(paged), len(list.Entries))
		}
		for i := range paged {
			if paged[i] != list.Entries[i].EventID {
				t.Fatalf("page order differs at %d", i)
			}
		}

		rec = e.do("GET", "/v1/venues/"+w.venueA.String()+"/entries?direction=out", w.managerA.Token, nil)
		wantStatus(t, rec, 200)
		if n := strings.Count(rec.Body.String(), `"direction":"out"`); n != 1 || strings.Contains(rec.Body.String(), `"direction":"in"`) {
			t.Fatalf("direction=out gave %s", rec.Body.String())
		}

		for _, tt := range []struct {
			name, query string
			tok         string
			status      int
		}{
			{"manager of another venue", "", w.managerB.Token, 403},
			{"scanner of another venue", "", w.scannerB, 403},
			{"a visitor", "", w.visitor.Token, 403},
			{"admin", "", e.bearer(domain.Actor{Role: domain.RoleAdmin}), 200},
			{"bad from", "?from=yesterday", w.managerA.Token, 400},
			{"to before from", "?from=2022-05-02T00:00:00Z&to=2022-05-01T00:00:00Z", w.managerA.Token, 400},
			{"bad direction", "?direction=up", w.managerA.Token, 400},
			{"bad decision", "?decision=maybe", w.managerA.Token, 400},
			{"bad limit", "?limit=0", w.managerA.Token, 400},
			{"limit too high", "?limit=100000", w.managerA.Token, 400},
			{"bad cursor", "?cursor=xyz", w.managerA.Token, 400},
			{"bad min_position", "?min_position=-1", w.managerA.Token, 400},
		} {
			t.Run(tt.name, func(t *testing.T) {
				wantStatus(t, e.do("GET", "/v1/venues/"+w.venueA.String()+"/entries"+tt.query, tt.tok, nil), tt.status)
			})
		}
	})

	t.Run("occupancy", func(t *testing.T) {
		rec := e.do("GET", "/v1/venues/"+w.venueA.String()+"/occupancy", w.managerA.Token, nil)
		wantStatus(t, rec, 200)
		occ := decodeJSON[struct {
			Occupancy    int   `json:"occupancy"`
			DwellSeconds int64 `json:"dwell_seconds"`
		}](t, rec)
		// In: visitor and child (self scan); out: visitor. The manual entry
		// 48 h ago has long passed its dwell.
		if occ.Occupancy != 1 || occ.DwellSeconds <= 0 {
			t.Fatalf("occupancy = %+v, want 1", occ)
		}
		wantStatus(t, e.do("GET", "/v1/venues/"+w.venueA.String()+"/occupancy", e.bearer(domain.Actor{Role: domain.RoleDashboard}), nil), 200)
		wantStatus(t, e.do("GET", "/v1/venues/"+w.venueA.String()+"/occupancy", w.scannerB, nil), 403)
	})

	t.Run("trace", func(t *testing.T) {
		rec := e.do("GET", "/v1/persons/"+w.visitor.ID.String()+"/trace", w.visitor.Token, nil)
		wantStatus(t, rec, 200)
		tr := decodeJSON[struct {
			Passes []visitJSON `json:"passes"`
		}](t, rec)
		if len(tr.Passes) != 3 || tr.Passes[0].VenueID != w.venueA || tr.Passes[0].VenueName != "兰山超市" {
			t.Fatalf("trace = %+v", tr)
		}
		wantStatus(t, e.do("GET", "/v1/persons/"+w.child.ID.String()+"/trace", w.visitor.Token, nil), 200)
		wantStatus(t, e.do("GET", "/v1/persons/"+w.visitor.ID.String()+"/trace", w.managerA.Token, nil), 403)
		wantStatus(t, e.do("GET", "/v1/persons/"+w.visitor.ID.String()+"/trace", e.bearer(domain.Actor{Role: domain.RoleReviewer}), nil), 403)
		wantStatus(t, e.do("GET", "/v1/persons/"+w.visitor.ID.String()+"/trace?from=2022-01-01T00:00:00Z&to=2022-12-31T00:00:00Z", w.visitor.Token, nil), 400)
	})
}

// forge replaces old with new in a token's payload, keeping its signature.
func forge(t *testing.T, tok, old, new string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || !strings.Contains(string(payload), old) {
		t.Fatalf("cannot forge %q: %v", payload, err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), old, new, 1)))
	return strings.Join(parts, ".")
}

func TestHealthFeedAndAlerts(t *testing.T) {
	w := newPassWorld(t)
	e := w.e
	feed := e.bearer(domain.Actor{Role: domain.RoleHealthFeed})
	now := time.Now().UTC().Format(time.RFC3339)

	t.Run("bad records refuse the request", func(t *testing.T) {
		e.wantRefused(t, "/v1/health-status", []refusal{
			{"colour", feed, map[string]any{"records": []map[string]any{
				{"id_type": "resident_id", "id_number": w.visitorID, "code_colour": "green", "nat_result": "none"},
				{"id_type": "resident_id", "id_number": w.visitorID, "code_colour": "purple", "nat_result": "none"}}}, 400, "records[1].code_colour"},
			{"nat_at", feed, map[string]any{"records": []map[string]any{
				{"id_type": "resident_id", "id_number": w.visitorID, "code_colour": "green", "nat_result": "negative", "nat_at": "today"}}}, 400, "records[0].nat_at"},
			{"empty", feed, map[string]any{"records": []map[string]any{}}, 400, "records"},
			{"not the feed", w.managerA.Token, map[string]any{"records": []map[string]any{
				{"id_type": "resident_id", "id_number": w.visitorID, "code_colour": "green", "nat_result": "none"}}}, 403, ""},
		}, "refused health records were appended")
	})

	t.Run("too many records", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(`{"records":[`)
		for i := range domain.MaxHealthRecords + 1 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"id_type":"passport","id_number":"E1234567","code_colour":"green","nat_result":"none"}`)
		}
		b.WriteString(`]}`)
		p := wantProblem(t, e.do("POST", "/v1/health-status", feed, b.String()), 400, ProblemValidation)
		if !hasField(p, "records") {
			t.Fatalf("problem %+v does not name records", p)
		}
	})

	// Alerts are raised by a reaction (started here: the venue-code reaction
	// appends too, which the subtests above would see).
	e.startReactions()
	rec := e.do("POST", "/v1/health-status", feed, map[string]any{"records": []map[string]any{
		{"id_type": "resident_id", "id_number": w.visitorID, "code_colour": "red", "nat_result": "positive", "nat_at": now, "vaccine_doses": 2},
		{"id_type": "passport", "id_number": "E7654321", "code_colour": "green", "nat_result": "none"}, // not registered yet
	}})
	wantStatus(t, rec, http.StatusOK)
	h := decodeJSON[struct {
		Accepted     int    `json:"accepted"`
		LastPosition uint64 `json:"last_position"`
		Position     uint64 `json:"position"`
	}](t, rec)
	if h.Accepted != 2 || h.Position == 0 || h.Position != h.LastPosition {
		t.Fatalf("health answer = %+v", h)
	}
	e.waitApplied(h.Position)

	rec = e.do("GET", "/v1/persons/"+w.visitor.ID.String(), w.visitor.Token, nil)
	wantStatus(t, rec, 200)
	if !strings.Contains(rec.Body.String(), `"code_colour":"red"`) {
		t.Fatalf("person does not show the red code: %s", rec.Body.String())
	}

	rec = e.do("POST", "/v1/passes", w.visitor.Token, map[string]any{"method": "self_scan",
		"venue_code": e.signer.IssueVenueCode(w.venueA), "direction": "in"})
	wantStatus(t, rec, http.StatusCreated)
	denied := decodeJSON[passResponse](t, rec)
	if denied.Decision != "deny" || denied.Screen.CodeColour != "red" || denied.Screen.Reason == "" {
		t.Fatalf("a red code passed: %+v", denied)
	}

	t.Run("alerts", func(t *testing.T) {
		dash := e.bearer(domain.Actor{Role: domain.RoleDashboard})
		var al struct {
			Alerts []alertJSON `json:"alerts"`
		}
		ledgertest.Poll(10*time.Second, func() bool {
			rec := e.do("GET", fmt.Sprintf("/v1/alerts?district=371302&min_position=%d", e.lastPosition()), dash, nil)
			wantStatus(t, rec, 200)
			al = decodeJSON[struct {
				Alerts []alertJSON `json:"alerts"`
			}](t, rec)
			return len(al.Alerts) > 0
		}) // the assertion below says what is missing
		if len(al.Alerts) != 1 || al.Alerts[0].PassEventID != denied.EventID || al.Alerts[0].VenueID != w.venueA {
			t.Fatalf("alerts = %+v", al)
		}
		// A dashboard sees where and what, never who; a reviewer sees whom.
		raw := e.do("GET", "/v1/alerts?district=371302", dash, nil).Body.String()
		if al.Alerts[0].PersonID != uuid.Nil || strings.Contains(raw, "person_id") {
			t.Fatalf("a dashboard's alerts name the person: %s", raw)
		}
		rev := e.bearer(domain.Actor{Role: domain.RoleReviewer, Subject: "reviewer:li"})
		rec := e.do("GET", "/v1/alerts?district=371302", rev, nil)
		wantStatus(t, rec, 200)
		if got := decodeJSON[alertsResponse](t, rec); len(got.Alerts) != 1 || got.Alerts[0].PersonID == uuid.Nil {
			t.Fatalf("a reviewer's alerts: %+v, want the person named", got)
		}
		wantStatus(t, e.do("GET", "/v1/alerts", dash, nil), 400)
		wantStatus(t, e.do("GET", "/v1/alerts?district=371302", w.visitor.Token, nil), 403)
	})
}

func TestPassBatch(t *testing.T) {
	w := newPassWorld(t)
	e := w.e
	earlier := e.do("POST", "/v1/passes", w.scannerA, map[string]any{"method": "staff_scan", "venue_id": w.venueA,
		"personal_code": w.personalCode(t), "direction": "in", "event_id": "0190c2a4-3333-7000-8000-000000000001"})
	wantStatus(t, earlier, http.StatusCreated)
	orig := decodeJSON[passResponse](t, earlier)

	offline := time.Now().Add(-26 * time.Hour).UTC().Format(time.RFC3339)
	items := []any{
		map[string]any{"method": "manual", "venue_id": w.venueA, "id_type": "resident_id", "id_number": w.visitorID,
			"direction": "in", "occurred_at": offline, "event_id": "0190c2a4-3333-7000-8000-000000000002"},
		map[string]any{"method": "manual", "venue_id": w.venueA, "id_type": "resident_id", "id_number": w.visitorID,
			"direction": "out", "surprise": 1, "event_id": "0190c2a4-3333-7000-8000-000000000003"},
		map[string]any{"method": "staff_scan", "venue_id": w.venueA, "personal_code": w.personalCode(t), "direction": "in",
			"event_id": "0190c2a4-3333-7000-8000-000000000001"},
		map[string]any{"method": "manual", "venue_id": w.venueB, "id_type": "resident_id", "id_number": w.visitorID, "direction": "in"},
		"not an object",
		map[string]any{"method": "manual", "venue_id": w.venueA, "id_type": "resident_id", "id_number": w.visitorID,
			"direction": "out", "occurred_at": offline},
	}
	rec := e.do("POST", "/v1/passes/batch", w.scannerA, map[string]any{"passes": items})
	wantStatus(t, rec, http.StatusOK)
	got := decodeJSON[struct {
		Results []struct {
			EventID  uuid.UUID `json:"event_id"`
			Status   string    `json:"status"`
			Position uint64    `json:"position"`
			Error    *Problem  `json:"error"`
		} `json:"results"`
		Position uint64 `json:"position"`
	}](t, rec)
	want := []struct {
		status  string
		errType string
	}{
		{"accepted", ""}, {"rejected", ProblemValidation}, {"duplicate", ""}, {"rejected", ProblemForbidden},
		{"rejected", ProblemValidation}, {"accepted", ""},
	}
	if len(got.Results) != len(want) {
		t.Fatalf("%d results for %d items: %s", len(got.Results), len(want), rec.Body.String())
	}
	for i, wt := range want {
		r := got.Results[i]
		if r.Status != wt.status || (wt.errType == "") != (r.Error == nil) || (r.Error != nil && r.Error.Type != wt.errType) {
			t.Errorf("result %d = %+v, want %s %s", i, r, wt.status, wt.errType)
		}
	}
	if got.Results[2].Position != orig.Position {
		t.Errorf("duplicate answered position %d, original %d", got.Results[2].Position, orig.Position)
	}
	if got.Results[1].EventID.String() != "0190c2a4-3333-7000-8000-000000000003" {
		t.Errorf("a rejected item lost its event id: %+v", got.Results[1])
	}
	if got.Results[5].EventID == uuid.Nil || got.Position < got.Results[5].Position {
		t.Errorf("accepted item without event id, or position %d below it: %+v", got.Position, got.Results[5])
	}

	t.Run("the same batch again is all duplicates or the same rejections", func(t *testing.T) {
		before := e.lastPosition()
		items[5] = map[string]any{"method": "manual", "venue_id": w.venueA, "id_type": "resident_id", "id_number": w.visitorID,
			"direction": "out", "occurred_at": offline, "event_id": got.Results[5].EventID}
		rec := e.do("POST", "/v1/passes/batch", w.scannerA, map[string]any{"passes": items})
		wantStatus(t, rec, http.StatusOK)
		if n := strings.Count(rec.Body.String(), `"status":"duplicate"`); n != 3 {
			t.Fatalf("%d duplicates, want 3: %s", n, rec.Body.String())
		}
		if e.lastPosition() != before {
			t.Fatal("a retried batch appended")
		}
	})

	t.Run("limits", func(t *testing.T) {
		wantProblem(t, e.do("POST", "/v1/passes/batch", w.scannerA, map[string]any{"passes": []any{}}), 400, ProblemValidation)
		wantProblem(t, e.do("POST", "/v1/passes/batch", w.scannerA, `{"passes":{}}`), 400, ProblemValidation)
		many := make([]map[string]any, domain.MaxBatchPasses+1)
		for i := range many {
			many[i] = map[string]any{"method": "manual"}
		}
		p := wantProblem(t, e.do("POST", "/v1/passes/batch", w.scannerA, map[string]any{"passes": many}), 400, ProblemValidation)
		if !hasField(p, "passes") {
			t.Fatalf("problem %+v does not name passes", p)
		}
		wantProblem(t, e.do("POST", "/v1/passes/batch", "", map[string]any{"passes": items}), 401, ProblemUnauthorized)
	})
}

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

// TestBatchItemWithRepeatedName: a name repeated inside one item of a batch
// is that item's problem; the others are decoded, and a name repeated in
// the batch's own object still refuses it (an outside tester lost a whole
// batch to one such item).
func TestBatchItemWithRepeatedName(t *testing.T) {
	ok := `{"method":"manual","venue_id":"v","id_type":"resident_id","id_number":"n","direction":"out"}`
	items, itemErr, err := decodeBatch([]byte(`{"passes":[` + ok + `,{"method":"manual","method":"manual"},` + ok + `]}`))
	if err != nil || len(items) != 3 || len(itemErr) != 3 {
		t.Fatalf("items %d, errors %v, err %v", len(items), itemErr, err)
	}
	if itemErr[0] != nil || itemErr[2] != nil || itemErr[1] == nil || !strings.Contains(itemErr[1].Error(), "appears more than once") {
		t.Fatalf("item errors %v", itemErr)
	}
	if items[0].Method != "manual" || items[2].Direction != "out" {
		t.Fatalf("items %+v", items)
	}
	for _, body := range []string{`{"passes":[` + ok + `],"passes":[` + ok + `]}`, `{"passes":[` + ok + `],"extra":1}`, `[` + ok + `]`} {
		if _, _, err := decodeBatch([]byte(body)); err == nil {
			t.Errorf("%s: decoded, want the batch refused", body)
		}
	}
}
