package http

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

func TestRegister(t *testing.T) {
	e := newTestServer(t)
	id := residentID(t, 1)
	body := map[string]any{"name": "张三", "id_type": "resident_id", "id_number": id, "phone": "13800138000",
		"event_id": "0190c2a4-1111-7000-8000-000000000001"}

	rec := e.do("POST", "/v1/persons", "", body)
	wantStatus(t, rec, http.StatusCreated)
	p := decodeJSON[registered](t, rec)
	if p.ID == uuid.Nil || p.Token == "" || p.Position == 0 || p.EventID.String() != body["event_id"] {
		t.Fatalf("register answer = %+v", p)
	}
	a, err := e.signer.ParseBearer(p.Token)
	if err != nil || a.Role != domain.RolePerson || a.PersonID != p.ID {
		t.Fatalf("returned token is %+v, %v; want a person token for %s", a, err, p.ID)
	}

	t.Run("retry with the same event id answers the original", func(t *testing.T) {
		rec := e.do("POST", "/v1/persons", "", body)
		wantStatus(t, rec, http.StatusOK)
		again := decodeJSON[registered](t, rec)
		if again.ID != p.ID || again.Position != p.Position || again.EventID != p.EventID {
			t.Fatalf("retry = %+v, want %+v", again, p)
		}
	})

	t.Run("the same document again is a conflict", func(t *testing.T) {
		before := e.lastPosition()
		rec := e.do("POST", "/v1/persons", "", map[string]any{"name": "李四", "id_type": "resident_id",
			"id_number": strings.ToLower(id), "phone": "13900139000"})
		wantProblem(t, rec, http.StatusConflict, ProblemConflict)
		if after := e.lastPosition(); after != before {
			t.Fatalf("conflict appended: position %d → %d", before, after)
		}
	})

	t.Run("read yourself with min_position", func(t *testing.T) {
		rec := e.do("GET", "/v1/persons/"+p.ID.String()+"?min_position="+itoa(p.Position), p.Token, nil)
		wantStatus(t, rec, http.StatusOK)
		got := decodeJSON[struct {
			ID            uuid.UUID   `json:"person_id"`
			Name          string      `json:"name"`
			IDNumber      string      `json:"id_number"`
			Verified      bool        `json:"verified"`
			FamilyMembers []uuid.UUID `json:"family_members"`
			Position      uint64      `json:"position"`
		}](t, rec)
		if got.ID != p.ID || got.Name != "张*" || got.Verified || got.FamilyMembers == nil || got.Position < p.Position {
			t.Fatalf("person = %+v", got)
		}
		if strings.Contains(rec.Body.String(), id[3:14]) {
			t.Fatalf("person answer holds the ID number: %s", rec.Body.String())
		}
	})
}

func TestRegisterBadInputAppendsNothing(t *testing.T) {
	e := newTestServer(t, func(c *Options) { c.MaxBodyBytes = 1024 })
	good := residentID(t, 7)
	wrongCheck := good[:17] + map[bool]string{true: "1", false: "0"}[good[17] == '0']
	tests := []struct {
		name   string
		body   any
		status int
		typ    string
		field  string
	}{
		{"wrong check character", map[string]any{"name": "张三", "id_type": "resident_id", "id_number": wrongCheck, "phone": "13800138000"},
			400, ProblemValidation, "id_number"},
		{"short resident id", map[string]any{"name": "张三", "id_type": "resident_id", "id_number": "37130219880115", "phone": "13800138000"},
			400, ProblemValidation, "id_number"},
		{"unknown id type", map[string]any{"name": "张三", "id_type": "library_card", "id_number": good, "phone": "13800138000"},
			400, ProblemValidation, "id_type"},
		{"no name", map[string]any{"id_type": "resident_id", "id_number": good, "phone": "13800138000"},
			400, ProblemValidation, "name"},
		{"bad phone", map[string]any{"name": "张三", "id_type": "resident_id", "id_number": good, "phone": "12"},
			400, ProblemValidation, "phone"},
		{"bad event id", map[string]any{"name": "张三", "id_type": "resident_id", "id_number": good, "phone": "13800138000", "event_id": "nope"},
			400, ProblemValidation, "event_id"},
		{"unknown field", map[string]any{"name": "张三", "id_type": "resident_id", "id_number": good, "phone": "13800138000", "role": "admin"},
			400, ProblemValidation, "role"},
		{"malformed json", `{"name": "张三",`, 400, ProblemValidation, "body"},
		{"empty body", ``, 400, ProblemValidation, "body"},
		{"too large", `{"name":"` + strings.Repeat("张", 1000) + `"}`, 413, ProblemTooLarge, ""},
	}
	before := e.lastPosition()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := wantProblem(t, e.do("POST", "/v1/persons", "", tt.body), tt.status, tt.typ)
			if tt.field != "" && !hasField(p, tt.field) {
				t.Fatalf("problem %+v does not name field %q", p, tt.field)
			}
			if strings.Contains(p.Detail, good[3:14]) || strings.Contains(p.Detail, wrongCheck[3:14]) {
				t.Fatalf("problem holds the ID number: %+v", p)
			}
		})
	}
	if after := e.lastPosition(); after != before {
		t.Fatalf("bad input appended: position %d → %d", before, after)
	}
}

func TestRegisterRateLimit(t *testing.T) {
	e := newTestServer(t, func(c *Options) { c.RegisterRate = 2 })
	for range 2 { // counted even though refused
		wantProblem(t, e.do("POST", "/v1/persons", "", `{}`), 400, ProblemValidation)
	}
	wantProblem(t, e.do("POST", "/v1/persons", "", `{}`), http.StatusTooManyRequests, ProblemRateLimited)
}

func TestPersonAccess(t *testing.T) {
	e := newTestServer(t)
	a := e.register("王五", 11)
	b := e.register("赵六", 12)
	e.waitApplied(b.Position)

	// a's family member
	child := e.addChild(a, "王小五", 13)
	e.waitApplied(child.Position)

	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin})
	scanner := e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: uuid.New()})
	tests := []struct {
		name   string
		path   string
		tok    string
		status int
	}{
		{"self", "/v1/persons/" + a.ID.String(), a.Token, 200},
		{"admin", "/v1/persons/" + a.ID.String(), admin, 200},
		{"guardian reads dependant", "/v1/persons/" + child.ID.String(), a.Token, 200},
		{"another person", "/v1/persons/" + a.ID.String(), b.Token, 403},
		{"unknown id for a person", "/v1/persons/" + uuid.NewString(), b.Token, 403},
		{"unknown id for an admin", "/v1/persons/" + uuid.NewString(), admin, 404},
		{"scanner", "/v1/persons/" + a.ID.String(), scanner, 403},
		{"no token", "/v1/persons/" + a.ID.String(), "", 401},
		{"forged token", "/v1/persons/" + a.ID.String(), a.Token[:len(a.Token)-4] + "AAAA", 401},
		{"bad id", "/v1/persons/12345", admin, 400},
		{"own code", "/v1/persons/" + a.ID.String() + "/code", a.Token, 200},
		{"dependant's code (亲属码)", "/v1/persons/" + child.ID.String() + "/code", a.Token, 200},
		{"another's code", "/v1/persons/" + a.ID.String() + "/code", b.Token, 403},
		{"admin may not mint codes", "/v1/persons/" + a.ID.String() + "/code", admin, 403},
		{"code png", "/v1/persons/" + a.ID.String() + "/code.png", a.Token, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do("GET", tt.path, tt.tok, nil)
			wantStatus(t, rec, tt.status)
			if tt.status == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			if strings.HasSuffix(tt.path, ".png") && !bytes.HasPrefix(rec.Body.Bytes(), []byte("\x89PNG")) {
				t.Fatalf("code.png is not a PNG: %q", rec.Body.Bytes()[:8])
			}
		})
	}

	t.Run("only the guardian adds family members", func(t *testing.T) {
		before := e.lastPosition()
		rec := e.do("POST", "/v1/persons/"+a.ID.String()+"/family-members", b.Token, map[string]any{
			"name": "王小六", "id_type": "resident_id", "id_number": residentID(t, 14), "relation": "child"})
		wantProblem(t, rec, http.StatusForbidden, ProblemForbidden)
		if e.lastPosition() != before {
			t.Fatal("a refused family member was appended")
		}
	})

	t.Run("verification by a reviewer only", func(t *testing.T) {
		wantProblem(t, e.do("POST", "/v1/persons/"+b.ID.String()+"/verification", b.Token,
			map[string]any{"method": "face", "result": "approved"}), 403, ProblemForbidden)
		p := wantProblem(t, e.do("POST", "/v1/persons/"+b.ID.String()+"/verification", admin,
			map[string]any{"method": "fingerprint", "result": "approved"}), 400, ProblemValidation)
		if !hasField(p, "method") {
			t.Fatalf("problem %+v does not name method", p)
		}
		rec := e.do("POST", "/v1/persons/"+b.ID.String()+"/verification", e.bearer(domain.Actor{Role: domain.RoleReviewer}),
			map[string]any{"method": "face", "result": "approved"})
		wantStatus(t, rec, http.StatusOK)
		w := decodeJSON[writeResult](t, rec)
		rec = e.do("GET", "/v1/persons/"+b.ID.String()+"?min_position="+itoa(w.Position), b.Token, nil)
		wantStatus(t, rec, 200)
		if !strings.Contains(rec.Body.String(), `"verified":true`) {
			t.Fatalf("not verified after approval: %s", rec.Body.String())
		}
	})
}

// TestFamilyRegistrationsAreLimited: one guardian registers a few family
// members an hour, then 429; another guardian is not held back by them.
func TestFamilyRegistrationsAreLimited(t *testing.T) {
	e := newTestServer(t, func(o *Options) { o.FamilyRate = 2 })
	g := e.register("钱一", 61)
	other := e.register("钱二", 62)
	add := func(who registered, n int) *httptest.ResponseRecorder {
		return e.do("POST", "/v1/persons/"+who.ID.String()+"/family-members", who.Token, map[string]any{
			"name": "钱小", "id_type": "resident_id", "id_number": residentID(t, n), "relation": "child"})
	}
	wantStatus(t, add(g, 63), http.StatusCreated)
	wantStatus(t, add(g, 64), http.StatusCreated)
	wantProblem(t, add(g, 65), http.StatusTooManyRequests, ProblemRateLimited)
	wantStatus(t, add(other, 66), http.StatusCreated)
}

// TestReclaimASquattedDocument: a stranger registers someone's document as
// their "family"; its owner meets a conflict on their own registration; a
// reviewer who checked the owner in person releases the family
// registration; the owner registers and gets their own token, and the
// squatter's family list no longer holds the document. Only reviewers and
// admins may release, and only a family member's registration.
func TestReclaimASquattedDocument(t *testing.T) {
	e := newTestServer(t)
	squatter := e.register("吴甲", 71)
	squatted := e.addChild(squatter, "冒名", 72)
	owner := map[string]any{"name": "郑乙", "id_type": "resident_id", "id_number": residentID(t, 72), "phone": "13800000072"}
	wantProblem(t, e.do("POST", "/v1/persons", "", owner), http.StatusConflict, ProblemConflict)

	release := func(token string, id uuid.UUID) *httptest.ResponseRecorder {
		return e.do("POST", "/v1/persons/"+id.String()+"/release", token, map[string]any{"reason": "owner checked at the service hall"})
	}
	reviewer := e.bearer(domain.Actor{Role: domain.RoleReviewer, Subject: "reviewer:li"})
	for _, who := range []string{squatter.Token, e.bearer(domain.Actor{Role: domain.RoleAnalyst})} {
		wantProblem(t, release(who, squatted.ID), http.StatusForbidden, ProblemForbidden)
	}
	wantProblem(t, release(reviewer, squatter.ID), http.StatusConflict, ProblemConflict) // registered themself
	wantStatus(t, release(reviewer, squatted.ID), http.StatusOK)

	rec := e.do("POST", "/v1/persons", "", owner)
	wantStatus(t, rec, http.StatusCreated)
	mine := decodeJSON[registered](t, rec)
	if mine.ID != squatted.ID || mine.Token == "" {
		t.Fatalf("the owner's registration: %+v (the document's person is %s)", mine, squatted.ID)
	}
	e.waitApplied(e.lastPosition())
	rec = e.do("GET", "/v1/persons/"+squatter.ID.String(), squatter.Token, nil)
	wantStatus(t, rec, http.StatusOK)
	if strings.Contains(rec.Body.String(), squatted.ID.String()) {
		t.Fatalf("the squatter still lists the document's person: %s", rec.Body)
	}
	rec = e.do("GET", "/v1/persons/"+mine.ID.String(), mine.Token, nil)
	wantStatus(t, rec, http.StatusOK)
	if !strings.Contains(rec.Body.String(), `"name":"郑*"`) {
		t.Fatalf("the owner reads themself: %s", rec.Body)
	}
}
