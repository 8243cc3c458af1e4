package http

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

type erasureAnswer struct {
	PersonID   uuid.UUID   `json:"person_id"`
	EventID    uuid.UUID   `json:"event_id"`
	Position   uint64      `json:"position"`
	Duplicate  bool        `json:"duplicate"`
	Dependants []uuid.UUID `json:"dependants"`
}

// TestErasure walks POST /v1/persons/{id}/erasure as an outsider would:
// every role, hostile bodies, an unknown person, the erasure with a family
// member, the same call again and concurrently, and what the person's
// routes answer after it.
func TestErasure(t *testing.T) {
	e := newTestServer(t)
	guardian := e.register("欧阳娜娜", 81)
	kid := e.addChild(guardian, "欧阳小娜", 82)
	manager := e.register("王经理", 83)
	venue := e.approvedVenue(manager, "沂河餐厅")
	e.waitApplied(e.lastPosition())
	path := "/v1/persons/" + guardian.ID.String() + "/erasure"
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin, Subject: "admin:root"})
	body := map[string]any{"reason": "the person asked at the service hall"}

	t.Run("refused, nothing appended", func(t *testing.T) {
		var tests []refusal
		for _, role := range []string{domain.RoleReviewer, domain.RoleAnalyst, domain.RoleDashboard, domain.RoleHealthFeed} {
			tests = append(tests, refusal{name: role, tok: e.bearer(domain.Actor{Role: role, Subject: role + ":x"}), body: body, status: http.StatusForbidden})
		}
		tests = append(tests,
			refusal{name: "the person themself", tok: guardian.Token, body: body, status: http.StatusForbidden},
			refusal{name: "a scanner", tok: e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: venue}), body: body, status: http.StatusForbidden},
			refusal{name: "no token", body: body, status: http.StatusUnauthorized},
			refusal{name: "forged token", tok: "x.y.z", body: body, status: http.StatusUnauthorized},
			refusal{name: "no reason", tok: admin, body: map[string]any{}, status: 400, field: "reason"},
			refusal{name: "blank reason", tok: admin, body: map[string]any{"reason": "  "}, status: 400, field: "reason"},
			refusal{name: "control character", tok: admin, body: map[string]any{"reason": "asked\u0000"}, status: 400, field: "reason"},
			refusal{name: "reason too long", tok: admin, body: map[string]any{"reason": strings.Repeat("因", 501)}, status: 400, field: "reason"},
			refusal{name: "unknown field", tok: admin, body: map[string]any{"reason": "x", "dependants": false}, status: 400},
			refusal{name: "not JSON", tok: admin, body: "reason=x", status: 400},
			refusal{name: "reason not a string", tok: admin, body: map[string]any{"reason": 7}, status: 400},
		)
		e.wantRefused(t, path, tests, "a refused erasure appended")
		wantProblem(t, e.do("POST", "/v1/persons/"+uuid.NewString()+"/erasure", admin, body), http.StatusNotFound, ProblemNotFound)
		wantProblem(t, e.do("POST", "/v1/persons/not-a-uuid/erasure", admin, body), http.StatusBadRequest, ProblemValidation)
	})

	rec := e.do("POST", path, admin, body)
	wantStatus(t, rec, http.StatusOK)
	first := decodeJSON[erasureAnswer](t, rec)
	if first.PersonID != guardian.ID || first.EventID == uuid.Nil || first.Duplicate || len(first.Dependants) != 1 || first.Dependants[0] != kid.ID {
		t.Fatalf("erasure answer: %s", rec.Body)
	}

	t.Run("again and concurrently: the same answer, nothing appended", func(t *testing.T) {
		before := e.lastPosition()
		var wg sync.WaitGroup
		answers := make([]erasureAnswer, 4)
		for i := range answers {
			wg.Go(func() {
				rec := e.do("POST", path, admin, map[string]any{"reason": "again"})
				if rec.Code != http.StatusOK {
					t.Errorf("again: %d %s", rec.Code, rec.Body)
					return
				}
				answers[i] = decodeJSON[erasureAnswer](t, rec)
			})
		}
		wg.Wait()
		for _, a := range answers {
			if !a.Duplicate || a.EventID != first.EventID || a.Position != first.Position || len(a.Dependants) != 1 {
				t.Fatalf("again: %+v, want the first %+v", a, first)
			}
		}
		if e.lastPosition() != before {
			t.Fatal("a repeated erasure appended")
		}
	})

	t.Run("after it", func(t *testing.T) {
		for _, id := range []uuid.UUID{guardian.ID, kid.ID} {
			rec := e.do("GET", "/v1/persons/"+id.String(), admin, nil)
			wantStatus(t, rec, http.StatusOK)
			b := rec.Body.String()
			if !strings.Contains(b, `"erased":true`) || !strings.Contains(b, `"name":""`) || !strings.Contains(b, `"id_number":"***"`) ||
				strings.Contains(b, "欧") {
				t.Fatalf("an erased person: %s", b)
			}
		}
		rec := e.do("POST", "/v1/passes", guardian.Token, map[string]any{"method": "self_scan", "venue_code": e.signer.IssueVenueCode(venue), "direction": "in"})
		wantProblem(t, rec, http.StatusConflict, ProblemConflict)
		if !strings.Contains(rec.Body.String(), "erased") {
			t.Fatalf("the refusal does not say why: %s", rec.Body)
		}
		rec = e.do("POST", "/v1/persons", "", map[string]any{"name": "欧阳娜娜", "id_type": "resident_id",
			"id_number": residentID(t, 81), "phone": "13800138000"})
		wantProblem(t, rec, http.StatusConflict, ProblemConflict)
		if !strings.Contains(rec.Body.String(), "erased") {
			t.Fatalf("re-registration refusal: %s", rec.Body)
		}
	})
}

// TestErasedPersonsTokenActsForNobody: once a person is erased, their
// token acts for nobody: an erased venue manager or sub-admin no longer
// records passes, reads the venue's entry list and occupancy, prints its
// code or changes its sub-admins, and an erased person reads nothing (409,
// "was erased"); staff who were not erased go on working.
func TestErasedPersonsTokenActsForNobody(t *testing.T) {
	e := newTestServer(t)
	manager := e.register("王经理", 91)
	sub := e.register("李副手", 92)
	visitor := e.register("张访客", 93)
	other := e.register("赵同事", 94)
	venue := e.approvedVenue(manager, "沂河餐厅")
	for _, p := range []registered{sub, other} {
		wantStatus(t, e.do("POST", "/v1/venues/"+venue.String()+"/admins", manager.Token, map[string]any{"person_id": p.ID}), http.StatusCreated)
	}
	e.waitApplied(e.lastPosition())
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin, Subject: "admin:root"})
	for _, p := range []registered{manager, sub} {
		wantStatus(t, e.do("POST", "/v1/persons/"+p.ID.String()+"/erasure", admin, map[string]any{"reason": "asked at the hall"}), http.StatusOK)
	}
	manual := map[string]any{"method": "manual", "venue_id": venue, "id_type": "resident_id", "id_number": residentID(t, 93), "direction": "in"}
	v := "/v1/venues/" + venue.String()
	before := e.lastPosition()
	for _, p := range []registered{manager, sub} {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/v1/passes", manual},
			{"POST", "/v1/passes/batch", map[string]any{"passes": []any{manual}}},
			{"GET", v + "/entries", nil},
			{"GET", v + "/occupancy", nil},
			{"GET", v + "/code.png", nil},
			{"POST", v + "/admins", map[string]any{"person_id": visitor.ID}},
			{"DELETE", v + "/admins/" + other.ID.String(), nil},
			{"GET", "/v1/persons/" + p.ID.String(), nil},
		} {
			rec := e.do(c.method, c.path, p.Token, c.body)
			wantProblem(t, rec, http.StatusConflict, ProblemConflict)
			if !strings.Contains(rec.Body.String(), "erased") {
				t.Fatalf("%s %s by an erased person: the refusal does not say why: %s", c.method, c.path, rec.Body)
			}
		}
	}
	if e.lastPosition() != before {
		t.Fatal("an erased person's token appended")
	}
	// Staff who were not erased, and the visitor, are not affected.
	wantStatus(t, e.do("POST", "/v1/passes", other.Token, manual), http.StatusCreated)
	wantStatus(t, e.do("GET", v+"/entries", other.Token, nil), http.StatusOK)
	wantStatus(t, e.do("GET", "/v1/persons/"+visitor.ID.String(), visitor.Token, nil), http.StatusOK)
}

// TestNoPersonalCodeForAnErasedFamilyMember: a guardian who was not erased
// gets no personal code (JSON or image) for a family member erased alone:
// the code would name a person whose passes are all refused.
func TestNoPersonalCodeForAnErasedFamilyMember(t *testing.T) {
	e := newTestServer(t)
	guardian := e.register("欧阳娜娜", 95)
	kid := e.addChild(guardian, "欧阳小娜", 96)
	e.waitApplied(e.lastPosition())
	path := "/v1/persons/" + kid.ID.String() + "/code"
	wantStatus(t, e.do("GET", path, guardian.Token, nil), http.StatusOK)
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin, Subject: "admin:root"})
	wantStatus(t, e.do("POST", "/v1/persons/"+kid.ID.String()+"/erasure", admin, map[string]any{"reason": "asked"}), http.StatusOK)
	for _, p := range []string{path, path + ".png"} {
		rec := e.do("GET", p, guardian.Token, nil)
		wantProblem(t, rec, http.StatusConflict, ProblemConflict)
		if !strings.Contains(rec.Body.String(), "erased") {
			t.Fatalf("GET %s: the refusal does not say why: %s", p, rec.Body)
		}
	}
	wantStatus(t, e.do("GET", "/v1/persons/"+guardian.ID.String()+"/code", guardian.Token, nil), http.StatusOK)
}

// TestManualEntryRetriedAfterTheErasure: a manual entry recorded before the
// person was erased and uploaded again after it (an offline scanner's
// retry: same event id, same content) answers its original pass, without
// the name, single or in a batch: it is the same pass, not "another
// person's". Another person's document under that event id is still a
// conflict.
func TestManualEntryRetriedAfterTheErasure(t *testing.T) {
	e := newTestServer(t)
	manager := e.register("王经理", 97)
	visitor := e.register("欧阳访客", 98)
	e.register("赵路人", 99) // the document of the conflict below
	venue := e.approvedVenue(manager, "沂河餐厅")
	e.waitApplied(e.lastPosition())
	scanner := e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: venue, Subject: "scanner:door"})
	eventID := uuid.NewString()
	manual := map[string]any{"event_id": eventID, "method": "manual", "venue_id": venue, "id_type": "resident_id",
		"id_number": residentID(t, 98), "direction": "in"}
	wantStatus(t, e.do("POST", "/v1/passes", scanner, manual), http.StatusCreated)
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin, Subject: "admin:root"})
	wantStatus(t, e.do("POST", "/v1/persons/"+visitor.ID.String()+"/erasure", admin, map[string]any{"reason": "asked"}), http.StatusOK)
	before := e.lastPosition()
	rec := e.do("POST", "/v1/passes", scanner, manual)
	wantStatus(t, rec, http.StatusOK)
	if b := rec.Body.String(); !strings.Contains(b, eventID) || !strings.Contains(b, `"name":"`+domain.ErasedName+`"`) || strings.Contains(b, "欧") {
		t.Fatalf("the retry: %s", b)
	}
	rec = e.do("POST", "/v1/passes/batch", scanner, map[string]any{"passes": []any{manual}})
	wantStatus(t, rec, http.StatusOK)
	if b := rec.Body.String(); !strings.Contains(b, `"status":"duplicate"`) {
		t.Fatalf("the batch retry: %s", b)
	}
	if e.lastPosition() != before {
		t.Fatal("a retry appended")
	}
	manual["id_number"] = residentID(t, 99)
	wantProblem(t, e.do("POST", "/v1/passes", scanner, manual), http.StatusConflict, ProblemConflict)
}
