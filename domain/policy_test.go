package domain

import (
	"errors"
	"testing"

	"github.com/google/uuid"
)

func TestDistrictScope(t *testing.T) {
	bound := Actor{Role: RoleReviewer, District: "371302"}
	tests := []struct {
		name   string
		a      Actor
		asked  string
		want   string
		forbid bool
	}{
		{"bound reviewer, nothing asked", bound, "", "371302", false},
		{"bound reviewer, own district", bound, "371302", "371302", false},
		{"bound reviewer, another district", bound, "371311", "", true},
		{"unbound reviewer", Actor{Role: RoleReviewer}, "371311", "371311", false},
		{"unbound reviewer, all", Actor{Role: RoleReviewer}, "", "", false},
		{"admin", Actor{Role: RoleAdmin, District: "371302"}, "371311", "371311", false},
		{"dashboard", Actor{Role: RoleDashboard}, "", "", false},
		{"bound dashboard, nothing asked", Actor{Role: RoleDashboard, District: "371302"}, "", "371302", false},
		{"bound dashboard, another district", Actor{Role: RoleDashboard, District: "371302"}, "371311", "", true},
		{"analyst naming a district is not bound", Actor{Role: RoleAnalyst, District: "371302"}, "371311", "371311", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DistrictScope(tt.a, tt.asked)
			if tt.forbid != errors.Is(err, ErrForbidden) || (err != nil && !tt.forbid) {
				t.Fatalf("err = %v, want forbidden %v", err, tt.forbid)
			}
			if got != tt.want {
				t.Fatalf("district = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVenueCodeAndRecord(t *testing.T) {
	manager, sub := uuid.New(), uuid.New()
	v := VenueView{ID: uuid.New(), District: "371302", ManagerID: manager, Admins: []uuid.UUID{sub}}
	tests := []struct {
		name         string
		a            Actor
		code, record bool
	}{
		{"manager", Actor{Role: RolePerson, PersonID: manager}, true, true},
		{"sub-admin", Actor{Role: RolePerson, PersonID: sub}, true, true},
		{"its scanner", Actor{Role: RoleScanner, VenueID: v.ID}, false, true},
		{"another scanner", Actor{Role: RoleScanner, VenueID: uuid.New()}, false, false},
		{"admin", Actor{Role: RoleAdmin}, true, true},
		{"unbound reviewer", Actor{Role: RoleReviewer}, true, true},
		{"reviewer of its district", Actor{Role: RoleReviewer, District: "371302"}, true, true},
		{"reviewer of another district", Actor{Role: RoleReviewer, District: "371311"}, false, false},
		{"dashboard", Actor{Role: RoleDashboard}, false, true},
		{"analyst", Actor{Role: RoleAnalyst}, false, true},
		{"another person", Actor{Role: RolePerson, PersonID: uuid.New()}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MayPrintVenueCode(tt.a, v); got != tt.code {
				t.Errorf("MayPrintVenueCode = %v, want %v", got, tt.code)
			}
			if got := MayReadVenueRecord(tt.a, v); got != tt.record {
				t.Errorf("MayReadVenueRecord = %v, want %v", got, tt.record)
			}
		})
	}
}

// TestVenueStaffView: the staff-only views (entries; occupancy, which
// dashboards also read) of a venue; a dashboard bound to a district reads
// its own district's venues only.
func TestVenueStaffView(t *testing.T) {
	manager := uuid.New()
	v := VenueView{ID: uuid.New(), District: "371302", ManagerID: manager}
	tests := []struct {
		name    string
		a       Actor
		also    Roles
		mayRead bool
	}{
		{"manager", Actor{Role: RolePerson, PersonID: manager}, nil, true},
		{"its scanner", Actor{Role: RoleScanner, VenueID: v.ID}, nil, true},
		{"admin", Actor{Role: RoleAdmin}, nil, true},
		{"dashboard, entries", Actor{Role: RoleDashboard}, nil, false},
		{"dashboard, occupancy", Actor{Role: RoleDashboard}, Dashboards, true},
		{"dashboard of its district", Actor{Role: RoleDashboard, District: "371302"}, Dashboards, true},
		{"dashboard of another district", Actor{Role: RoleDashboard, District: "371311"}, Dashboards, false},
		{"another person", Actor{Role: RolePerson, PersonID: uuid.New()}, Dashboards, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MayReadVenueStaffView(tt.a, v, tt.also); got != tt.mayRead {
				t.Errorf("MayReadVenueStaffView = %v, want %v", got, tt.mayRead)
			}
		})
	}
}
