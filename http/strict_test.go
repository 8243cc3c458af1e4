package http

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// jsonRoute is a route that reads a JSON body, called by a role that gets
// as far as reading it.
type jsonRoute struct {
	method, pattern string
	path            string // pattern with its ids filled in
	tok             string
	field           string // a field the body takes
	value           string // a JSON value of the field's kind
}

// jsonRoutes lists every route that reads a JSON body, each with a caller
// the route lets through to its body. TestStrictJSONEveryRoute checks the
// list against the router, so a new JSON route cannot be left out.
func jsonRoutes(t *testing.T, e *testEnv) []jsonRoute {
	t.Helper()
	p := e.register("严格", 951)
	id := uuid.NewString()
	reviewer := e.bearer(domain.Actor{Role: domain.RoleReviewer})
	return []jsonRoute{
		{"POST", "/v1/persons", "/v1/persons", "", "name", `"x"`},
		{"POST", "/v1/persons/{id}/verification", "/v1/persons/" + id + "/verification", reviewer, "method", `"x"`},
		{"POST", "/v1/persons/{id}/release", "/v1/persons/" + id + "/release", reviewer, "reason", `"x"`},
		{"POST", "/v1/persons/{id}/erasure", "/v1/persons/" + id + "/erasure", e.bearer(domain.Actor{Role: domain.RoleAdmin}), "reason", `"x"`},
		{"POST", "/v1/persons/{id}/family-members", "/v1/persons/" + p.ID.String() + "/family-members", p.Token, "name", `"x"`},
		{"POST", "/v1/venues", "/v1/venues", p.Token, "name", `"x"`},
		{"POST", "/v1/venues/{id}/review", "/v1/venues/" + id + "/review", reviewer, "decision", `"x"`},
		{"POST", "/v1/venues/{id}/admins", "/v1/venues/" + id + "/admins", p.Token, "person_id", `"x"`},
		{"POST", "/v1/passes", "/v1/passes", p.Token, "method", `"x"`},
		{"POST", "/v1/passes/batch", "/v1/passes/batch", p.Token, "passes", `[]`},
		{"POST", "/v1/health-status", "/v1/health-status", e.bearer(domain.Actor{Role: domain.RoleHealthFeed}), "records", `[]`},
		{"POST", "/v1/declarations/arrival", "/v1/declarations/arrival", p.Token, "origin", `"x"`},
		{"POST", "/v1/declarations/truck", "/v1/declarations/truck", p.Token, "plate_number", `"x"`},
		{"POST", "/v1/declarations/{id}/review", "/v1/declarations/" + id + "/review", reviewer, "decision", `"x"`},
		{"POST", "/v1/traces", "/v1/traces", e.bearer(domain.Actor{Role: domain.RoleAnalyst}), "reason", `"x"`},
	}
}

// bodyless lists the write routes that take no body.
var bodyless = map[string]bool{
	"POST /v1/admin/poison/{id}/retry":          true,
	"DELETE /v1/venues/{id}/admins/{person_id}": true,
}

// TestStrictJSONEveryRoute: on every JSON route, a body that is not said to
// be JSON is 415, and unknown, case-variant and repeated member names are
// refused all at once, each named.
func TestStrictJSONEveryRoute(t *testing.T) {
	e := newTestServer(t)
	routes := jsonRoutes(t, e)
	listed := map[string]bool{}
	for _, rt := range routes {
		listed[rt.method+" "+rt.pattern] = true
	}
	chi.Walk(e.srv.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method != "GET" && method != "HEAD" && !listed[method+" "+route] && !bodyless[method+" "+route] {
			t.Errorf("%s %s reads a body but is not in jsonRoutes", method, route)
		}
		return nil
	})
	send := func(rt jsonRoute, contentType, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(body))
		if rt.tok != "" {
			req.Header.Set("Authorization", "Bearer "+rt.tok)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.pattern, func(t *testing.T) {
			good := `{"` + rt.field + `":` + rt.value + `}`
			for _, ct := range []string{"", "application/x-www-form-urlencoded", "text/plain", "application/json; charset=latin1"} {
				wantProblem(t, send(rt, ct, good), http.StatusUnsupportedMediaType, ProblemUnsupportedType)
			}
			upper := strings.ToUpper(rt.field)
			body := `{"unknown_x":1,"` + upper + `":` + rt.value + `,"` + rt.field + `":` + rt.value + `,"` + rt.field + `":` + rt.value + `}`
			p := wantProblem(t, send(rt, "application/json", body), http.StatusBadRequest, ProblemValidation)
			want := []FieldProblem{{"unknown_x", "is not a known field"}, {upper, "is not a known field"}, {rt.field, "appears more than once"}}
			if len(p.Errors) != len(want) {
				t.Fatalf("errors = %+v, want %+v", p.Errors, want)
			}
			for i := range want {
				if p.Errors[i] != want[i] {
					t.Fatalf("errors = %+v, want %+v", p.Errors, want)
				}
			}
		})
	}
}

// TestStrictTimes: every time a JSON body carries refuses an explicit zero
// time and an offset out of range, and names the field; several at once.
func TestStrictTimes(t *testing.T) {
	e := newTestServer(t)
	p := e.register("时间", 952)
	analyst := e.bearer(domain.Actor{Role: domain.RoleAnalyst})
	feed := e.bearer(domain.Actor{Role: domain.RoleHealthFeed})
	tests := []struct {
		name, path, tok string
		body            func(at string) string
		fields          []string
	}{
		{"pass occurred_at", "/v1/passes", p.Token,
			func(at string) string { return `{"method":"self_scan","direction":"in","occurred_at":"` + at + `"}` }, []string{"occurred_at"}},
		{"batch occurred_at", "/v1/passes/batch", p.Token,
			func(at string) string {
				return `{"passes":[{"method":"self_scan","direction":"in","occurred_at":"` + at + `"}]}`
			}, nil},
		{"arrival nat_at", "/v1/declarations/arrival", p.Token,
			func(at string) string { return `{"origin":"x","nat_at":"` + at + `"}` }, []string{"nat_at"}},
		{"truck nat_proof_at", "/v1/declarations/truck", p.Token,
			func(at string) string { return `{"itinerary_ok":true,"nat_proof_at":"` + at + `"}` }, []string{"nat_proof_at"}},
		{"health records nat_at", "/v1/health-status", feed,
			func(at string) string {
				return `{"records":[{"id_type":"resident_id","nat_at":"` + at + `"},{"id_type":"resident_id","nat_at":"` + at + `"}]}`
			}, []string{"records[0].nat_at", "records[1].nat_at"}},
		{"trace from, to and as_of", "/v1/traces", analyst,
			func(at string) string {
				return `{"person_id":"` + p.ID.String() + `","reason":"x","from":"` + at + `","to":"` + at + `","as_of":"` + at + `"}`
			}, []string{"from", "to", "as_of"}},
	}
	for _, tt := range tests {
		for _, at := range []string{"0001-01-01T00:00:00Z", "2022-05-01T08:00:00+24:00", "2022-05-01T08:00:00+23:60"} {
			t.Run(tt.name+" "+at, func(t *testing.T) {
				rec := e.do("POST", tt.path, tt.tok, tt.body(at))
				if tt.fields == nil { // a batch refuses the item, not the request
					wantStatus(t, rec, http.StatusOK)
					res := decodeJSON[batchResponse](t, rec)
					if len(res.Results) != 1 || res.Results[0].Error == nil || !hasField(*res.Results[0].Error, "occurred_at") {
						t.Fatalf("results = %s", rec.Body.String())
					}
					return
				}
				prob := wantProblem(t, rec, http.StatusBadRequest, ProblemValidation)
				for _, f := range tt.fields {
					if !hasField(prob, f) {
						t.Fatalf("problem %+v does not name %s", prob, f)
					}
				}
			})
		}
	}
}

// TestStrictPassRequest: the pass route refuses what the strict decoder
// refuses, on its fast path's turf too (a plain body with a repeated or a
// case-variant name), and lists every bad field of a pass at once.
func TestStrictPassRequest(t *testing.T) {
	e := newTestServer(t)
	manager := e.register("吴一", 953)
	venue := e.approvedVenue(manager, "兰山超市")
	scanner := e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: venue})
	manual := `"method":"manual","venue_id":"` + venue.String() + `","id_type":"resident_id","direction":"in"`
	tests := []struct {
		name   string
		body   string
		fields []string
	}{
		{"second id_number", `{` + manual + `,"id_number":"` + residentID(t, 953) + `","id_number":"` + residentID(t, 954) + `"}`, []string{"id_number"}},
		{"METHOD", `{` + manual + `,"id_number":"` + residentID(t, 953) + `","METHOD":"manual"}`, []string{"METHOD"}},
		{"every bad field", `{"method":"manual","venue_id":"nope","event_id":"nope","occurred_at":"yesterday","personal_code":"x","family_member_ids":["y"]}`,
			[]string{"event_id", "occurred_at", "personal_code", "venue_id", "id_type", "id_number", "family_member_ids[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := wantProblem(t, e.do("POST", "/v1/passes", scanner, tt.body), http.StatusBadRequest, ProblemValidation)
			if len(p.Errors) != len(tt.fields) {
				t.Fatalf("errors = %+v, want fields %v", p.Errors, tt.fields)
			}
			for _, f := range tt.fields {
				if !hasField(p, f) {
					t.Fatalf("errors = %+v, want fields %v", p.Errors, tt.fields)
				}
			}
		})
	}
	// Nothing was recorded for any of them.
	rec := e.do("GET", "/v1/venues/"+venue.String()+"/entries", scanner, nil)
	wantStatus(t, rec, http.StatusOK)
	if n := len(decodeJSON[entriesResponse](t, rec).Entries); n != 0 {
		t.Fatalf("%d entries recorded from refused bodies", n)
	}
}

// TestStrictNamesNotEchoed: on every JSON route, a member name not shaped
// like one of the API's (a document number, 60 kB of letters, a NUL) is
// refused without being repeated in the answer, and a body of thousands of
// unknown members is answered with a bounded list (an outside tester got
// 393 kB back for 49 kB, and an ID number sent as a name back whole).
func TestStrictNamesNotEchoed(t *testing.T) {
	e := newTestServer(t)
	long := strings.Repeat("k", 60000)
	var many strings.Builder
	many.WriteString("{")
	for i := range 5000 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"k` + strconv.Itoa(i) + `":1`)
	}
	many.WriteString("}")
	for _, rt := range jsonRoutes(t, e) {
		t.Run(rt.method+" "+rt.pattern, func(t *testing.T) {
			for name, body := range map[string]string{
				"ID number":  `{"110105194912310054":"x"}`,
				"ID with X":  `{"` + rt.field + `":` + rt.value + `,"11010519491231002X":1}`,
				"long":       `{"` + long + `":1}`,
				"NUL":        `{"a\u0000b":1}`,
				"many names": many.String(),
			} {
				req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(body))
				if rt.tok != "" {
					req.Header.Set("Authorization", "Bearer "+rt.tok)
				}
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				e.srv.Handler().ServeHTTP(rec, req)
				answer := rec.Body.String()
				p := wantProblem(t, rec, http.StatusBadRequest, ProblemValidation)
				switch {
				case strings.Contains(answer, "1101051949123100"), strings.Contains(answer, "kkkkkkkkkkkkkkkk"), strings.Contains(answer, `a\u0000b`):
					t.Errorf("%s: the name is echoed: %.300s", name, answer)
				case len(answer) > 4096:
					t.Errorf("%s: %d bytes of answer", name, len(answer))
				case len(p.Errors) == 0 || len(p.Errors) > 21:
					t.Errorf("%s: %d problems listed", name, len(p.Errors))
				}
			}
		})
	}
}

// TestStrictNullAndTwoTokens: a body of null is refused as not an object on
// every JSON route (it was read as {}), and a request with two
// Authorization headers acts for nobody (the first one counted).
func TestStrictNullAndTwoTokens(t *testing.T) {
	e := newTestServer(t)
	for _, rt := range jsonRoutes(t, e) {
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(" null "))
		if rt.tok != "" {
			req.Header.Set("Authorization", "Bearer "+rt.tok)
		}
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		p := wantProblem(t, rec, http.StatusBadRequest, ProblemValidation)
		if len(p.Errors) != 1 || p.Errors[0].Field != "body" || !strings.Contains(p.Errors[0].Reason, "not null") {
			t.Errorf("%s %s: %+v", rt.method, rt.pattern, p.Errors)
		}
	}
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin})
	req := httptest.NewRequest("GET", "/v1/audit", nil)
	req.Header.Add("Authorization", "Bearer "+admin)
	req.Header.Add("Authorization", "Bearer "+admin)
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("two Authorization headers: %d %s", rec.Code, rec.Body)
	}
}

// TestAuditListsRefuseUnknownParams: the audit trail's lists, and the
// other lists with filters, refuse a parameter they do not take (a typo
// answered the whole trail).
func TestAuditListsRefuseUnknownParams(t *testing.T) {
	e := newTestServer(t)
	auditor := e.bearer(domain.Actor{Role: domain.RoleAuditor, Subject: "auditor:x"})
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin, Subject: "admin:x"})
	analyst := e.bearer(domain.Actor{Role: domain.RoleAnalyst, Subject: "analyst:x"})
	for target, c := range map[string]struct{ tok, field string }{
		"/v1/audit?Person=" + uuid.NewString():                         {auditor, "query"},
		"/v1/audit?persons=x":                                          {auditor, "persons"},
		"/v1/audit/looks?form=2022-01-01T00:00:00Z":                    {auditor, "form"},
		"/v1/venues?stats=pending":                                     {admin, "stats"},
		"/v1/venues/" + uuid.NewString() + "/entries?directon=in":      {admin, "directon"},
		"/v1/declarations?kinds=arrival":                               {admin, "kinds"},
		"/v1/persons/" + uuid.NewString() + "/trace?reason=x&fro=2022": {analyst, "fro"},
	} {
		req := httptest.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer "+c.tok)
		field := c.field
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		p := wantProblem(t, rec, http.StatusBadRequest, ProblemValidation)
		if len(p.Errors) == 0 || p.Errors[0].Field != field {
			t.Errorf("%s: %+v, want field %s", target, p.Errors, field)
		}
	}
	for _, target := range []string{"/v1/audit?kind=contacts&limit=5&min_position=0", "/v1/audit/looks?limit=5"} {
		req := httptest.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer "+auditor)
		rec := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s", target, rec.Code, rec.Body)
		}
	}
}
