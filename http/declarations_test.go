package http

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
)

type declarationAnswer struct {
	declarationJSON
	Position uint64 `json:"position"`
}

func arrivalBody(family ...uuid.UUID) map[string]any {
	ids := []string{}
	for _, id := range family {
		ids = append(ids, id.String())
	}
	return map[string]any{
		"arrival_date": time.Now().Format(time.DateOnly), "origin": "上海市浦东新区", "destination_district": "371302",
		"nat_result": "negative", "nat_at": time.Now().Add(-8 * time.Hour).Format(time.RFC3339), "family_member_ids": ids,
	}
}

func truckBody(district string) map[string]any {
	return map[string]any{
		"plate_number": "鲁Q·12345", "nat_proof_at": time.Now().Add(-3 * time.Hour).Format(time.RFC3339),
		"itinerary_ok": true, "health_code_colour": "green", "logistics_park": "临沂商城国际物流园",
		"district": district, "contact_name": "赵调度", "contact_phone": "13900001111",
	}
}

func with(body map[string]any, key string, value any) map[string]any {
	out := make(map[string]any, len(body))
	for k, v := range body {
		out[k] = v
	}
	if value == nil {
		delete(out, key)
	} else {
		out[key] = value
	}
	return out
}

// submit posts a declaration and returns its answer.
func (e *testEnv) submit(path, tok string, body any) declarationWriteResponse {
	e.t.Helper()
	rec := e.do("POST", path, tok, body)
	wantStatus(e.t, rec, http.StatusCreated)
	d := decodeJSON[declarationWriteResponse](e.t, rec)
	if d.DeclarationID == uuid.Nil || d.Status != "pending" || d.EventID == uuid.Nil || d.Position == 0 {
		e.t.Fatalf("submission answer = %+v", d)
	}
	return d
}

func TestArrivalDeclaration(t *testing.T) {
	e := newTestServer(t)
	mother := e.register("孙母", 301)
	stranger := e.register("周某", 302)
	kid := e.addChild(mother, "孙小", 303)
	strangersKid := e.addChild(stranger, "周小", 304)
	reviewer := e.bearer(domain.Actor{Role: domain.RoleReviewer})

	t.Run("refused", func(t *testing.T) {
		e.wantRefused(t, "/v1/declarations/arrival", []refusal{
			{"bad date", mother.Token, with(arrivalBody(), "arrival_date", "03/05/2022"), 400, "arrival_date"},
			{"date long ago", mother.Token, with(arrivalBody(), "arrival_date", "2020-01-01"), 400, "arrival_date"},
			{"no origin", mother.Token, with(arrivalBody(), "origin", nil), 400, "origin"},
			{"bad destination", mother.Token, with(arrivalBody(), "destination_district", "37130"), 400, "destination_district"},
			{"bad result", mother.Token, with(arrivalBody(), "nat_result", "unclear"), 400, "nat_result"},
			{"bad test time", mother.Token, with(arrivalBody(), "nat_at", "this morning"), 400, "nat_at"},
			{"result without time", mother.Token, with(arrivalBody(), "nat_at", nil), 400, "nat_at"},
			{"bad member id", mother.Token, with(arrivalBody(), "family_member_ids", []string{"kid"}), 400, "family_member_ids[0]"},
			{"member twice", mother.Token, arrivalBody(kid.ID, kid.ID), 400, "family_member_ids"},
			{"unknown field", mother.Token, with(arrivalBody(), "passport", "E1"), 400, "passport"},
			{"someone else's child", mother.Token, arrivalBody(strangersKid.ID), 403, ""},
			{"unknown member", mother.Token, arrivalBody(uuid.New()), 404, ""},
			{"not a person", reviewer, arrivalBody(), 403, ""},
			{"no token", "", arrivalBody(), 401, ""},
		}, "a refused declaration was appended")
	})

	eventID := uuid.New()
	// One body for the declaration and its retry: arrivalBody's times are
	// taken to the second when it is called.
	declared := with(arrivalBody(kid.ID), "event_id", eventID.String())
	d := e.submit("/v1/declarations/arrival", mother.Token, declared)
	if d.EventID != eventID {
		t.Fatalf("event id %s, want the client's %s", d.EventID, eventID)
	}
	t.Run("retry with the same event id", func(t *testing.T) {
		rec := e.do("POST", "/v1/declarations/arrival", mother.Token, declared)
		wantStatus(t, rec, http.StatusOK)
		again := decodeJSON[declarationWriteResponse](t, rec)
		if !again.Duplicate || again.DeclarationID != d.DeclarationID || again.Position != d.Position {
			t.Fatalf("retry = %+v, want the original %+v", again, d)
		}
	})

	t.Run("read", func(t *testing.T) {
		path := fmt.Sprintf("/v1/declarations/%s?min_position=%d", d.DeclarationID, d.Position)
		rec := e.do("GET", path, mother.Token, nil)
		wantStatus(t, rec, 200)
		v := decodeJSON[declarationAnswer](t, rec)
		if v.ID != d.DeclarationID || v.Kind != "arrival" || v.PersonID != mother.ID || len(v.FamilyMemberIDs) != 1 ||
			v.FamilyMemberIDs[0] != kid.ID || v.Status != "pending" || v.Arrival == nil || v.Arrival.Origin != "上海市浦东新区" ||
			len(v.History) != 1 || v.History[0].EventID != eventID || v.Position < d.Position {
			t.Fatalf("declaration = %+v", v)
		}
		wantStatus(t, e.do("GET", path, reviewer, nil), 200)
		wantStatus(t, e.do("GET", path, e.bearer(domain.Actor{Role: domain.RoleAdmin}), nil), 200)
		wantProblem(t, e.do("GET", path, stranger.Token, nil), 403, ProblemForbidden)
		wantProblem(t, e.do("GET", path, e.bearer(domain.Actor{Role: domain.RoleDashboard}), nil), 403, ProblemForbidden)
		wantProblem(t, e.do("GET", "/v1/declarations/"+uuid.NewString(), reviewer, nil), 404, ProblemNotFound)
		wantProblem(t, e.do("GET", "/v1/declarations/nope", reviewer, nil), 400, ProblemValidation)
	})
}

func TestTruckPassDeclaration(t *testing.T) {
	e := newTestServer(t)
	driver := e.register("钱司机", 311)
	hour := func(h float64) string {
		return time.Now().Add(time.Duration(h * float64(time.Hour))).Format(time.RFC3339)
	}

	t.Run("refused", func(t *testing.T) {
		before := e.lastPosition()
		for _, tt := range []struct {
			name  string
			body  any
			field string
		}{
			{"test older than 24 hours", with(truckBody("371311"), "nat_proof_at", hour(-25)), "nat_proof_at"},
			{"test in the future", with(truckBody("371311"), "nat_proof_at", hour(1)), "nat_proof_at"},
			{"no test", with(truckBody("371311"), "nat_proof_at", nil), "nat_proof_at"},
			{"bad test time", with(truckBody("371311"), "nat_proof_at", "yesterday"), "nat_proof_at"},
			{"bad plate", with(truckBody("371311"), "plate_number", "AB-1234"), "plate_number"},
			{"no itinerary card", with(truckBody("371311"), "itinerary_ok", nil), "itinerary_ok"},
			{"bad colour", with(truckBody("371311"), "health_code_colour", "blue"), "health_code_colour"},
			{"no park", with(truckBody("371311"), "logistics_park", ""), "logistics_park"},
			{"no district", with(truckBody("371311"), "district", nil), "district"},
			{"no contact", with(truckBody("371311"), "contact_name", " "), "contact_name"},
			{"bad phone", with(truckBody("371311"), "contact_phone", "110"), "contact_phone"},
			{"itinerary as text", with(truckBody("371311"), "itinerary_ok", "yes"), "itinerary_ok"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				p := wantProblem(t, e.do("POST", "/v1/declarations/truck", driver.Token, tt.body), 400, ProblemValidation)
				if !hasField(p, tt.field) {
					t.Fatalf("problem %+v does not name %s", p, tt.field)
				}
			})
		}
		wantProblem(t, e.do("POST", "/v1/declarations/truck", e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: uuid.New()}),
			truckBody("371311")), 403, ProblemForbidden)
		if e.lastPosition() != before {
			t.Fatal("a refused truck pass was appended")
		}
	})

	// A test taken 23 hours ago is still good.
	d := e.submit("/v1/declarations/truck", driver.Token, with(truckBody("371311"), "nat_proof_at", hour(-23)))
	rec := e.do("GET", fmt.Sprintf("/v1/declarations/%s?min_position=%d", d.DeclarationID, d.Position), driver.Token, nil)
	wantStatus(t, rec, 200)
	if strings.Contains(rec.Body.String(), "13900001111") || strings.Contains(rec.Body.String(), "赵调度") {
		t.Fatalf("the contact is shown whole: %s", rec.Body.String())
	}
	v := decodeJSON[declarationAnswer](t, rec)
	if v.Kind != "truck" || v.District != "371311" || v.Truck == nil || v.Truck.PlateNumber != "鲁Q12345" ||
		v.Truck.ContactName != "赵*" || v.Truck.ContactPhone != "139****1111" || !v.Truck.ItineraryOK {
		t.Fatalf("truck pass = %+v, truck %+v", v, v.Truck)
	}
}

func TestDeclarationReviewQueue(t *testing.T) {
	e := newTestServer(t)
	e.startReactions() // the queue reaction puts submissions in their district's queue
	person := e.register("李某", 321)
	driver := e.register("钱司机", 322)
	reviewer := e.bearer(domain.Actor{Role: domain.RoleReviewer})

	lanshan := e.submit("/v1/declarations/arrival", person.Token, arrivalBody())
	truck := e.submit("/v1/declarations/truck", driver.Token, truckBody("371311"))
	luozhuang := e.submit("/v1/declarations/arrival", driver.Token, with(arrivalBody(), "destination_district", "371311"))

	list := func(t *testing.T, query string) []declarationJSON {
		t.Helper()
		rec := e.do("GET", "/v1/declarations"+query, reviewer, nil)
		wantStatus(t, rec, 200)
		return decodeJSON[struct {
			Declarations []declarationJSON `json:"declarations"`
		}](t, rec).Declarations
	}
	ids := func(vs []declarationJSON) []uuid.UUID {
		out := []uuid.UUID{}
		for _, v := range vs {
			out = append(out, v.ID)
		}
		return out
	}
	if !ledgertest.Poll(10*time.Second, func() bool { return len(list(t, "")) >= 3 }) {
		t.Fatalf("the queue reaction did not queue the declarations: %+v", list(t, ""))
	}

	t.Run("filters", func(t *testing.T) {
		for _, tt := range []struct {
			query string
			want  []uuid.UUID
		}{
			{"?district=371302", []uuid.UUID{lanshan.DeclarationID}},
			{"?district=371311", []uuid.UUID{truck.DeclarationID, luozhuang.DeclarationID}},
			{"?district=371311&kind=arrival", []uuid.UUID{luozhuang.DeclarationID}},
			{"?kind=truck&status=pending", []uuid.UUID{truck.DeclarationID}},
			{"?status=approved", []uuid.UUID{}},
			{"?district=371399", []uuid.UUID{}},
			{"?limit=1", []uuid.UUID{lanshan.DeclarationID}},
		} {
			if got := ids(list(t, tt.query)); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("%s: %v, want %v", tt.query, got, tt.want)
			}
		}
		for _, q := range []string{"?district=3713", "?status=done", "?kind=boat", "?limit=0"} {
			wantProblem(t, e.do("GET", "/v1/declarations"+q, reviewer, nil), 400, ProblemValidation)
		}
		wantProblem(t, e.do("GET", "/v1/declarations", person.Token, nil), 403, ProblemForbidden)
		wantProblem(t, e.do("GET", "/v1/declarations", e.bearer(domain.Actor{Role: domain.RoleDashboard}), nil), 403, ProblemForbidden)
	})

	t.Run("review", func(t *testing.T) {
		path := "/v1/declarations/" + lanshan.DeclarationID.String() + "/review"
		p := wantProblem(t, e.do("POST", path, reviewer, map[string]any{"decision": "reject"}), 400, ProblemValidation)
		if !hasField(p, "reason") {
			t.Fatalf("rejection without a reason: %+v", p)
		}
		wantProblem(t, e.do("POST", path, reviewer, map[string]any{"decision": "maybe"}), 400, ProblemValidation)
		wantProblem(t, e.do("POST", path, person.Token, map[string]any{"decision": "approve"}), 403, ProblemForbidden)
		wantProblem(t, e.do("POST", "/v1/declarations/"+uuid.NewString()+"/review", reviewer, map[string]any{"decision": "approve"}), 404, ProblemNotFound)

		rec := e.do("POST", path, reviewer, map[string]any{"decision": "approve"})
		wantStatus(t, rec, 200)
		r := decodeJSON[declarationWriteResponse](t, rec)
		if r.Status != "approved" || r.DeclarationID != lanshan.DeclarationID || r.Position == 0 {
			t.Fatalf("review answer = %+v", r)
		}
		wantProblem(t, e.do("POST", path, reviewer, map[string]any{"decision": "reject", "reason": "second thoughts"}), 409, ProblemConflict)

		rec = e.do("GET", fmt.Sprintf("/v1/declarations/%s?min_position=%d", lanshan.DeclarationID, r.Position), person.Token, nil)
		wantStatus(t, rec, 200)
		v := decodeJSON[declarationAnswer](t, rec)
		var steps []string
		for _, s := range v.History {
			steps = append(steps, s.Type)
		}
		if v.Status != "approved" || !v.Queued || fmt.Sprint(steps) != "[ArrivalDeclared DeclarationQueued DeclarationReviewed]" ||
			v.History[2].Decision != "approve" || v.History[2].Actor == "" {
			t.Fatalf("after review: %+v", v)
		}
		if got := ids(list(t, fmt.Sprintf("?status=pending&min_position=%d", r.Position))); len(got) != 2 {
			t.Fatalf("pending after one approval: %v", got)
		}
	})

	t.Run("concurrent reviews: one wins", func(t *testing.T) {
		path := "/v1/declarations/" + truck.DeclarationID.String() + "/review"
		const n = 4
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := map[string]any{"decision": "reject", "reason": fmt.Sprintf("reviewer %d", i)}
				codes[i] = e.do("POST", path, reviewer, body).Code
			}()
		}
		wg.Wait()
		won := 0
		for _, c := range codes {
			switch c {
			case 200:
				won++
			case 409:
			default:
				t.Fatalf("review answered %d", c)
			}
		}
		if won != 1 {
			t.Fatalf("%d concurrent reviews won (%v), want exactly 1", won, codes)
		}
	})
}

func TestPoisonRoutes(t *testing.T) {
	e := newTestServer(t)
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin})
	wantProblem(t, e.do("GET", "/v1/admin/poison", admin, nil), 503, ProblemUnavailable)
	e.startReactions()
	wantProblem(t, e.do("GET", "/v1/admin/poison", e.bearer(domain.Actor{Role: domain.RoleReviewer}), nil), 403, ProblemForbidden)
	wantProblem(t, e.do("GET", "/v1/admin/poison", "", nil), 401, ProblemUnauthorized)

	// A denied pass at a venue the log does not know: its alert cannot be
	// raised.
	venue, person := uuid.New(), uuid.New()
	pass, err := domain.NewEnvelope(domain.PassAggregate(venue, person), domain.PassRecorded{VenueID: venue, PersonID: person,
		Direction: "in", Method: "staff_scan", Decision: "deny", Reason: "red health code",
		Screen: domain.Screen{CodeColour: "red", VenueID: venue, Decision: "deny"}}, domain.Meta{Actor: "scanner"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.es.Record(context.Background(), pass); err != nil {
		t.Fatal(err)
	}
	type entries = poisonListResponse
	var got entries
	if !ledgertest.Poll(10*time.Second, func() bool {
		rec := e.do("GET", "/v1/admin/poison", admin, nil)
		wantStatus(t, rec, 200)
		got = decodeJSON[entries](t, rec)
		return len(got.Entries) > 0
	}) {
		t.Fatal("nothing reached the poison queue")
	}
	p := got.Entries[0]
	if len(got.Entries) != 1 || p.Reaction != "alerts" || !strings.Contains(p.Reason, venue.String()) ||
		len(p.Events) != 1 || p.Events[0].EventID != pass.ID {
		t.Fatalf("poison queue = %+v", got)
	}
	retry := fmt.Sprintf("/v1/admin/poison/%d/retry", p.ID)
	wantProblem(t, e.do("POST", "/v1/admin/poison/first/retry", admin, nil), 400, ProblemValidation)
	wantProblem(t, e.do("POST", retry, e.bearer(domain.Actor{Role: domain.RoleReviewer}), nil), 403, ProblemForbidden)
	wantProblem(t, e.do("POST", retry, admin, nil), 409, ProblemConflict)

	// The venue's record reaches the log; the retry now succeeds.
	applied, err := domain.NewEnvelope(domain.VenueAggregate(venue), domain.VenueApplied{VenueID: venue, Name: "物流园",
		Type: "logistics", District: "371311", Address: "罗庄区", ManagerID: uuid.New()}, domain.Meta{Actor: "import"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.es.Append(context.Background(), domain.VenueAggregate(venue), 0, applied); err != nil {
		t.Fatal(err)
	}
	rec := e.do("POST", retry, admin, nil)
	wantStatus(t, rec, 200)
	rec = e.do("GET", fmt.Sprintf("/v1/alerts?district=371311&min_position=%d", e.lastPosition()),
		e.bearer(domain.Actor{Role: domain.RoleDashboard}), nil)
	wantStatus(t, rec, 200)
	if !strings.Contains(rec.Body.String(), pass.ID.String()) {
		t.Fatalf("the retried alert is not listed: %s", rec.Body.String())
	}
	if got := decodeJSON[entries](t, e.do("GET", "/v1/admin/poison", admin, nil)); len(got.Entries) != 0 {
		t.Fatalf("poison queue after the retry: %+v", got)
	}
	wantProblem(t, e.do("POST", retry, admin, nil), 404, ProblemNotFound)
}

// TestDistrictReviewer: a reviewer whose token names a district sees that
// district's queue and declarations only, and reviews only those.
func TestDistrictReviewer(t *testing.T) {
	e := newTestServer(t)
	e.startReactions()
	person := e.register("李某", 331)
	driver := e.register("钱司机", 332)
	lanshan := e.submit("/v1/declarations/arrival", person.Token, arrivalBody())
	luozhuang := e.submit("/v1/declarations/truck", driver.Token, truckBody("371311"))
	cityWide := e.bearer(domain.Actor{Role: domain.RoleReviewer})
	ofLanshan := e.bearer(domain.Actor{Role: domain.RoleReviewer, District: "371302"})

	if !ledgertest.Poll(10*time.Second, func() bool {
		rec := e.do("GET", "/v1/declarations", cityWide, nil)
		wantStatus(t, rec, 200)
		return len(decodeJSON[struct {
			Declarations []declarationJSON `json:"declarations"`
		}](t, rec).Declarations) == 2
	}) {
		t.Fatal("the declarations were not queued")
	}
	rec := e.do("GET", "/v1/declarations", ofLanshan, nil)
	wantStatus(t, rec, 200)
	got := decodeJSON[struct {
		Declarations []declarationJSON `json:"declarations"`
	}](t, rec).Declarations
	if len(got) != 1 || got[0].ID != lanshan.DeclarationID {
		t.Fatalf("district reviewer's queue = %+v", got)
	}
	wantProblem(t, e.do("GET", "/v1/declarations?district=371311", ofLanshan, nil), 403, ProblemForbidden)
	wantStatus(t, e.do("GET", "/v1/declarations/"+lanshan.DeclarationID.String(), ofLanshan, nil), 200)
	wantProblem(t, e.do("GET", "/v1/declarations/"+luozhuang.DeclarationID.String(), ofLanshan, nil), 403, ProblemForbidden)
	wantProblem(t, e.do("POST", "/v1/declarations/"+luozhuang.DeclarationID.String()+"/review", ofLanshan,
		map[string]any{"decision": "approve"}), 403, ProblemForbidden)
	rec = e.do("POST", "/v1/declarations/"+lanshan.DeclarationID.String()+"/review", ofLanshan, map[string]any{"decision": "approve"})
	wantStatus(t, rec, 200)
	v := decodeJSON[declarationAnswer](t, e.do("GET", fmt.Sprintf("/v1/declarations/%s?min_position=%d",
		lanshan.DeclarationID, decodeJSON[declarationWriteResponse](t, rec).Position), ofLanshan, nil))
	if last := v.History[len(v.History)-1]; last.Type != domain.TypeDeclarationReviewed || last.Actor != "reviewer:371302" {
		t.Fatalf("review step = %+v", last)
	}
}
