package http

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// TestDistrictScope: a reviewer bound to a district reads and acts only in
// it, on every route that lists or reads by district; scanners never get
// their venue's code. The venues are in 371302 (approvedVenue).
func TestDistrictScope(t *testing.T) {
	e := newTestServer(t)
	manager := e.register("吴一", 961)
	venue := e.approvedVenue(manager, "兰山超市")
	rec := e.do("POST", "/v1/venues", manager.Token, map[string]any{"name": "罗庄饭店", "type": "restaurant",
		"district": "371311", "address": "1 Luozhuang Road", "lat": 35.0, "lng": 118.3})
	wantStatus(t, rec, http.StatusCreated)
	other := decodeJSON[venueWriteResponse](t, rec)
	e.waitApplied(other.Position)

	var (
		admin      = e.bearer(domain.Actor{Role: domain.RoleAdmin})
		reviewer   = e.bearer(domain.Actor{Role: domain.RoleReviewer}) // bound to no district
		own        = e.bearer(domain.Actor{Role: domain.RoleReviewer, District: "371302"})
		foreign    = e.bearer(domain.Actor{Role: domain.RoleReviewer, District: "371311"})
		dashboard  = e.bearer(domain.Actor{Role: domain.RoleDashboard})
		analyst    = e.bearer(domain.Actor{Role: domain.RoleAnalyst})
		scanner    = e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: venue})
		stranger   = e.register("陌生", 962).Token
		venuePath  = "/v1/venues/" + venue.String()
		pendingRev = "/v1/venues/" + other.VenueID.String() + "/review"
	)

	t.Run("GET /v1/venues", func(t *testing.T) {
		tests := []struct {
			name, tok, query string
			status           int
			want             []uuid.UUID // listed, in any order
			notWant          []uuid.UUID
		}{
			{"admin, all", admin, "", 200, []uuid.UUID{venue, other.VenueID}, nil},
			{"unbound reviewer, all", reviewer, "", 200, []uuid.UUID{venue, other.VenueID}, nil},
			{"dashboard, all", dashboard, "", 200, []uuid.UUID{venue, other.VenueID}, nil},
			{"analyst, one district", analyst, "?district=371302", 200, []uuid.UUID{venue}, []uuid.UUID{other.VenueID}},
			{"bound reviewer, no filter: own district", own, "", 200, []uuid.UUID{venue}, []uuid.UUID{other.VenueID}},
			{"bound reviewer, own district", own, "?district=371302", 200, []uuid.UUID{venue}, nil},
			{"other district's reviewer, no filter", foreign, "", 200, []uuid.UUID{other.VenueID}, []uuid.UUID{venue}},
			{"other district's reviewer, pending queue", foreign, "?status=pending", 200, []uuid.UUID{other.VenueID}, []uuid.UUID{venue}},
			{"other district's reviewer, 371302", foreign, "?district=371302", 403, nil, nil},
			{"scanner", scanner, "", 403, nil, nil},
			{"person", stranger, "", 403, nil, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rec := e.do("GET", "/v1/venues"+tt.query, tt.tok, nil)
				if tt.status != 200 {
					wantProblem(t, rec, tt.status, ProblemForbidden)
					return
				}
				wantStatus(t, rec, 200)
				listed := map[uuid.UUID]bool{}
				for _, v := range decodeJSON[venueListResponse](t, rec).Venues {
					listed[v.ID] = true
				}
				for _, id := range tt.want {
					if !listed[id] {
						t.Errorf("venue %s not listed: %s", id, rec.Body.String())
					}
				}
				for _, id := range tt.notWant {
					if listed[id] {
						t.Errorf("venue %s listed: %s", id, rec.Body.String())
					}
				}
			})
		}
	})

	t.Run("GET /v1/alerts", func(t *testing.T) {
		tests := []struct {
			name, tok, query string
			status           int
			district         string
		}{
			{"admin", admin, "?district=371302", 200, "371302"},
			{"dashboard", dashboard, "?district=371302", 200, "371302"},
			{"analyst", analyst, "?district=371311", 200, "371311"},
			{"unbound reviewer", reviewer, "?district=371302", 200, "371302"},
			{"bound reviewer, own district", own, "?district=371302", 200, "371302"},
			{"bound reviewer, no district: own", own, "", 200, "371302"},
			{"other district's reviewer, 371302", foreign, "?district=371302", 403, ""},
			{"other district's reviewer, no district: own", foreign, "", 200, "371311"},
			{"dashboard, no district", dashboard, "", 400, ""},
			{"scanner", scanner, "?district=371302", 403, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rec := e.do("GET", "/v1/alerts"+tt.query, tt.tok, nil)
				switch tt.status {
				case 200:
					wantStatus(t, rec, 200)
					if got := decodeJSON[alertsResponse](t, rec).District; got != tt.district {
						t.Fatalf("district = %q, want %q", got, tt.district)
					}
				case 400:
					wantProblem(t, rec, 400, ProblemValidation)
				default:
					wantProblem(t, rec, tt.status, ProblemForbidden)
				}
			})
		}
	})

	t.Run("GET /v1/venues/{id}/occupancy", func(t *testing.T) {
		lanshan := e.bearer(domain.Actor{Role: domain.RoleDashboard, District: "371302"})
		luozhuang := e.bearer(domain.Actor{Role: domain.RoleDashboard, District: "371311"})
		wantStatus(t, e.do("GET", venuePath+"/occupancy", dashboard, nil), 200)
		wantStatus(t, e.do("GET", venuePath+"/occupancy", lanshan, nil), 200)
		wantProblem(t, e.do("GET", venuePath+"/occupancy", luozhuang, nil), 403, ProblemForbidden)
	})

	t.Run("GET /v1/declarations", func(t *testing.T) {
		wantProblem(t, e.do("GET", "/v1/declarations?district=371302", foreign, nil), 403, ProblemForbidden)
		wantStatus(t, e.do("GET", "/v1/declarations?district=371311", foreign, nil), 200)
		wantStatus(t, e.do("GET", "/v1/declarations", foreign, nil), 200)
	})

	t.Run("GET /v1/venues/{id} and code.png", func(t *testing.T) {
		tests := []struct {
			name, tok string
			record    bool // the full record (manager_id), not the public face
			code      bool // the code field, and code.png 200 (else 403)
		}{
			{"manager", manager.Token, true, true},
			{"admin", admin, true, true},
			{"unbound reviewer", reviewer, true, true},
			{"bound reviewer of its district", own, true, true},
			{"reviewer of another district", foreign, false, false},
			{"dashboard", dashboard, true, false},
			{"analyst", analyst, true, false},
			{"its scanner", scanner, true, false},
			{"another venue's scanner", e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: other.VenueID}), false, false},
			{"another person", stranger, false, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rec := e.do("GET", venuePath, tt.tok, nil)
				wantStatus(t, rec, 200)
				body := rec.Body.String()
				if got := strings.Contains(body, `"manager_id"`); got != tt.record {
					t.Errorf("full record %v, want %v: %s", got, tt.record, body)
				}
				if got := strings.Contains(body, `"code"`); got != tt.code {
					t.Errorf("code shown %v, want %v: %s", got, tt.code, body)
				}
				rec = e.do("GET", venuePath+"/code.png", tt.tok, nil)
				if tt.code {
					wantStatus(t, rec, 200)
				} else {
					wantProblem(t, rec, 403, ProblemForbidden)
				}
			})
		}
	})

	t.Run("POST /v1/venues/{id}/review", func(t *testing.T) {
		wantProblem(t, e.do("POST", pendingRev, own, map[string]any{"decision": "approve"}), 403, ProblemForbidden)
		wantStatus(t, e.do("POST", pendingRev, foreign, map[string]any{"decision": "approve"}), 200)
	})
}
