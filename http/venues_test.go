package http

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

type venueAnswer struct {
	VenueID  uuid.UUID   `json:"venue_id"`
	Status   string      `json:"status"`
	Code     string      `json:"code"`
	Admins   []uuid.UUID `json:"admins"`
	Position uint64      `json:"position"`
	EventID  uuid.UUID   `json:"event_id"`
}

func TestVenueFlow(t *testing.T) {
	e := newTestServer(t)
	manager := e.register("孙七", 21)
	other := e.register("周八", 22)
	reviewer := e.bearer(domain.Actor{Role: domain.RoleReviewer})
	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin})

	apply := map[string]any{"name": "沂蒙小馆", "type": "restaurant", "district": "371302",
		"address": "8 Beijing Road", "lat": 35.06, "lng": 118.34}
	rec := e.do("POST", "/v1/venues", manager.Token, apply)
	wantStatus(t, rec, http.StatusCreated)
	v := decodeJSON[venueAnswer](t, rec)
	if v.VenueID == uuid.Nil || v.Status != "pending" || v.EventID == uuid.Nil || v.Position == 0 {
		t.Fatalf("apply answer = %+v", v)
	}
	venuePath := "/v1/venues/" + v.VenueID.String()
	at := "?min_position=" + itoa(v.Position)

	t.Run("bad applications append nothing", func(t *testing.T) {
		before := e.lastPosition()
		for _, tt := range []struct {
			name, field string
			patch       map[string]any
		}{
			{"unknown type", "type", map[string]any{"type": "casino"}},
			{"bad district", "district", map[string]any{"district": "3713"}},
			{"no lat", "lat", map[string]any{"lat": nil}},
			{"lat out of range", "lat", map[string]any{"lat": 135.0}},
			{"no name", "name", map[string]any{"name": ""}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				body := map[string]any{}
				for k, x := range apply {
					body[k] = x
				}
				for k, x := range tt.patch {
					if x == nil {
						delete(body, k)
					} else {
						body[k] = x
					}
				}
				p := wantProblem(t, e.do("POST", "/v1/venues", manager.Token, body), 400, ProblemValidation)
				if !hasField(p, tt.field) {
					t.Fatalf("problem %+v does not name %s", p, tt.field)
				}
			})
		}
		wantProblem(t, e.do("POST", "/v1/venues", reviewer, apply), 403, ProblemForbidden)
		if e.lastPosition() != before {
			t.Fatal("a refused application was appended")
		}
	})

	t.Run("pending: no code", func(t *testing.T) {
		rec := e.do("GET", venuePath+at, manager.Token, nil)
		wantStatus(t, rec, 200)
		if got := decodeJSON[venueAnswer](t, rec); got.Status != "pending" || got.Code != "" {
			t.Fatalf("pending venue = %+v", got)
		}
		wantProblem(t, e.do("GET", venuePath+"/code.png", manager.Token, nil), 409, ProblemConflict)
	})

	t.Run("review queue", func(t *testing.T) {
		rec := e.do("GET", "/v1/venues?district=371302&status=pending"+strings.Replace(at, "?", "&", 1), reviewer, nil)
		wantStatus(t, rec, 200)
		if !strings.Contains(rec.Body.String(), v.VenueID.String()) {
			t.Fatalf("review queue lacks the venue: %s", rec.Body.String())
		}
		wantProblem(t, e.do("GET", "/v1/venues?district=3713", reviewer, nil), 400, ProblemValidation)
		wantProblem(t, e.do("GET", "/v1/venues?status=open", reviewer, nil), 400, ProblemValidation)
		wantProblem(t, e.do("GET", "/v1/venues", manager.Token, nil), 403, ProblemForbidden)
	})

	t.Run("only reviewers review", func(t *testing.T) {
		wantProblem(t, e.do("POST", venuePath+"/review", manager.Token, map[string]any{"decision": "approve"}), 403, ProblemForbidden)
		p := wantProblem(t, e.do("POST", venuePath+"/review", reviewer, map[string]any{"decision": "maybe"}), 400, ProblemValidation)
		if !hasField(p, "decision") {
			t.Fatalf("problem %+v does not name decision", p)
		}
		wantProblem(t, e.do("POST", "/v1/venues/"+uuid.NewString()+"/review", reviewer, map[string]any{"decision": "approve"}),
			404, ProblemNotFound)
	})

	rec = e.do("POST", venuePath+"/review", reviewer, map[string]any{"decision": "approve"})
	wantStatus(t, rec, 200)
	reviewed := decodeJSON[venueAnswer](t, rec)
	if reviewed.Status != "approved" || reviewed.Position <= v.Position {
		t.Fatalf("review answer = %+v", reviewed)
	}
	at = "?min_position=" + itoa(reviewed.Position)

	t.Run("reviewed twice is a conflict", func(t *testing.T) {
		wantProblem(t, e.do("POST", venuePath+"/review", reviewer, map[string]any{"decision": "reject", "reason": "late"}),
			409, ProblemConflict)
	})

	t.Run("approved: code for staff only", func(t *testing.T) {
		rec := e.do("GET", venuePath+at, manager.Token, nil)
		wantStatus(t, rec, 200)
		got := decodeJSON[venueAnswer](t, rec)
		if got.Status != "approved" || got.Code == "" || got.Position < reviewed.Position {
			t.Fatalf("approved venue for its manager = %+v", got)
		}
		if id, err := e.signer.ParseVenueCode(got.Code); err != nil || id != v.VenueID {
			t.Fatalf("venue code names %v, %v", id, err)
		}
		rec = e.do("GET", venuePath+at, other.Token, nil)
		wantStatus(t, rec, 200)
		if body := rec.Body.String(); strings.Contains(body, `"code"`) || strings.Contains(body, "manager_id") {
			t.Fatalf("a stranger sees the code or the managers: %s", body)
		}
		rec = e.do("GET", venuePath+"/code.png", manager.Token, nil)
		wantStatus(t, rec, 200)
		if rec.Header().Get("Content-Type") != "image/png" || !bytes.HasPrefix(rec.Body.Bytes(), []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("code.png: %s %q", rec.Header().Get("Content-Type"), rec.Body.Bytes()[:8])
		}
		wantProblem(t, e.do("GET", venuePath+"/code.png", other.Token, nil), 403, ProblemForbidden)
		wantStatus(t, e.do("GET", venuePath+"/code.png", admin, nil), 200)
	})

	t.Run("sub-admins", func(t *testing.T) {
		entries := venuePath + "/entries"
		wantProblem(t, e.do("GET", entries, other.Token, nil), 403, ProblemForbidden)
		wantProblem(t, e.do("POST", venuePath+"/admins", other.Token, map[string]any{"person_id": other.ID}), 403, ProblemForbidden)
		wantProblem(t, e.do("POST", venuePath+"/admins", manager.Token, map[string]any{"person_id": "x"}), 400, ProblemValidation)
		wantProblem(t, e.do("POST", venuePath+"/admins", manager.Token, map[string]any{"person_id": uuid.New()}), 404, ProblemNotFound)

		rec := e.do("POST", venuePath+"/admins", manager.Token, map[string]any{"person_id": other.ID})
		wantStatus(t, rec, http.StatusCreated)
		added := decodeJSON[writeResult](t, rec)
		rec = e.do("GET", entries+"?min_position="+itoa(added.Position), other.Token, nil)
		wantStatus(t, rec, 200)

		rec = e.do("DELETE", venuePath+"/admins/"+other.ID.String(), manager.Token, nil)
		wantStatus(t, rec, 200)
		removed := decodeJSON[writeResult](t, rec)
		wantProblem(t, e.do("GET", entries+"?min_position="+itoa(removed.Position), other.Token, nil), 403, ProblemForbidden)
		wantProblem(t, e.do("DELETE", venuePath+"/admins/"+other.ID.String(), manager.Token, nil), 404, ProblemNotFound)
	})
}
