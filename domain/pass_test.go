package domain

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestValidatePassShape(t *testing.T) {
	venue := uuid.New()
	good := RecordPass{Method: MethodSelfScan, VenueID: venue, Direction: DirectionIn}
	with := func(f func(*RecordPass)) RecordPass { c := good; f(&c); return c }
	many := make([]uuid.UUID, MaxFamilyPerPass+1)
	for i := range many {
		many[i] = uuid.New()
	}
	dup := uuid.New()
	tests := []struct {
		name  string
		cmd   RecordPass
		field string
	}{
		{"self scan", good, ""},
		{"staff scan out", with(func(c *RecordPass) { c.Method = MethodStaffScan; c.Direction = DirectionOut }), ""},
		{"manual", with(func(c *RecordPass) { c.Method = MethodManual }), ""},
		{"family", with(func(c *RecordPass) { c.FamilyMemberIDs = many[:MaxFamilyPerPass] }), ""},
		{"bad method", with(func(c *RecordPass) { c.Method = "nfc" }), "method"},
		{"no method", with(func(c *RecordPass) { c.Method = "" }), "method"},
		{"bad direction", with(func(c *RecordPass) { c.Direction = "up" }), "direction"},
		{"no venue", with(func(c *RecordPass) { c.VenueID = uuid.Nil }), "venue_id"},
		{"family on a staff scan", with(func(c *RecordPass) { c.Method = MethodStaffScan; c.FamilyMemberIDs = many[:1] }), "family_member_ids"},
		{"too many family", with(func(c *RecordPass) { c.FamilyMemberIDs = many }), "family_member_ids"},
		{"family twice", with(func(c *RecordPass) { c.FamilyMemberIDs = []uuid.UUID{dup, dup} }), "family_member_ids"},
		{"nil family", with(func(c *RecordPass) { c.FamilyMemberIDs = []uuid.UUID{uuid.Nil} }), "family_member_ids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePassShape(tt.cmd)
			if tt.field == "" {
				wantKind(t, err, nil)
				return
			}
			wantInvalid(t, err, tt.field)
		})
	}
}

func TestAuthorisePass(t *testing.T) {
	vid, manager, helper, stranger := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	venue := VenueView{ID: vid, ManagerID: manager, Admins: []uuid.UUID{helper}}
	tests := []struct {
		name   string
		actor  Actor
		method string
		kind   error
	}{
		{"person self scan", Actor{Role: RolePerson, PersonID: stranger}, MethodSelfScan, nil},
		{"scanner self scan", Actor{Role: RoleScanner, VenueID: vid}, MethodSelfScan, ErrForbidden},
		{"person without id self scan", Actor{Role: RolePerson}, MethodSelfScan, ErrForbidden},
		{"scanner of the venue", Actor{Role: RoleScanner, VenueID: vid}, MethodStaffScan, nil},
		{"scanner of the venue, manual", Actor{Role: RoleScanner, VenueID: vid}, MethodManual, nil},
		{"scanner of another venue", Actor{Role: RoleScanner, VenueID: uuid.New()}, MethodStaffScan, ErrForbidden},
		{"unbound scanner", Actor{Role: RoleScanner}, MethodStaffScan, ErrForbidden},
		{"manager", Actor{Role: RolePerson, PersonID: manager}, MethodStaffScan, nil},
		{"sub-admin", Actor{Role: RolePerson, PersonID: helper}, MethodManual, nil},
		{"stranger", Actor{Role: RolePerson, PersonID: stranger}, MethodStaffScan, ErrForbidden},
		{"admin", Actor{Role: RoleAdmin}, MethodManual, ErrForbidden},
		{"reviewer", Actor{Role: RoleReviewer}, MethodStaffScan, ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantKind(t, AuthorisePass(tt.actor, tt.method, venue), tt.kind)
		})
	}
}

func TestValidateOccurredAt(t *testing.T) {
	now := testNow
	skew, retention := 2*time.Minute, 30*24*time.Hour
	tests := []struct {
		name      string
		at        time.Time
		retention time.Duration
		ok        bool
	}{
		{"now", now, retention, true},
		{"within skew", now.Add(time.Minute), retention, true},
		{"beyond skew", now.Add(3 * time.Minute), retention, false},
		{"days old (offline scanner)", now.Add(-5 * 24 * time.Hour), retention, true},
		{"older than retention", now.Add(-31 * 24 * time.Hour), retention, false},
		{"no retention", now.Add(-365 * 24 * time.Hour), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateOccurredAt(tt.at, now, skew, tt.retention)
			if tt.ok {
				wantKind(t, err, nil)
				return
			}
			wantInvalid(t, err, "occurred_at")
		})
	}
}

func TestValidateHealthRecord(t *testing.T) {
	id := residentID(t, "37132419850612001")
	good := HealthRecord{IDType: "resident_id", IDNumber: id, CodeColour: ColourGreen,
		NATResult: NATNegative, NATAt: testNow.Add(-time.Hour), VaccineDoses: 3}
	with := func(f func(*HealthRecord)) HealthRecord { r := good; f(&r); return r }
	tests := []struct {
		name  string
		rec   HealthRecord
		field string // "" valid
	}{
		{"good", good, ""},
		{"no test", with(func(r *HealthRecord) { r.NATResult = NATNone; r.NATAt = time.Time{} }), ""},
		{"no test with a time", with(func(r *HealthRecord) { r.NATResult = NATNone }), ""},
		{"positive", with(func(r *HealthRecord) { r.NATResult = NATPositive; r.CodeColour = ColourRed }), ""},
		{"ten doses", with(func(r *HealthRecord) { r.VaccineDoses = 10 }), ""},
		{"bad colour", with(func(r *HealthRecord) { r.CodeColour = "blue" }), "records[7].code_colour"},
		{"no colour", with(func(r *HealthRecord) { r.CodeColour = "" }), "records[7].code_colour"},
		{"bad nat", with(func(r *HealthRecord) { r.NATResult = "unknown" }), "records[7].nat_result"},
		{"nat without time", with(func(r *HealthRecord) { r.NATAt = time.Time{} }), "records[7].nat_at"},
		{"nat in the future", with(func(r *HealthRecord) { r.NATAt = testNow.Add(time.Hour) }), "records[7].nat_at"},
		{"negative doses", with(func(r *HealthRecord) { r.VaccineDoses = -1 }), "records[7].vaccine_doses"},
		{"eleven doses", with(func(r *HealthRecord) { r.VaccineDoses = 11 }), "records[7].vaccine_doses"},
		{"bad id", with(func(r *HealthRecord) { r.IDNumber = id[:17] }), "records[7].id_number"},
		{"bad id type", with(func(r *HealthRecord) { r.IDType = "x" }), "records[7].id_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, number, err := ValidateHealthRecord(fmt.Sprintf("records[%d]", 7), tt.rec, testNow, time.Minute)
			if tt.field == "" {
				wantKind(t, err, nil)
				if number != id || ev.CodeColour != tt.rec.CodeColour || ev.VaccineDoses != tt.rec.VaccineDoses {
					t.Fatalf("event = %+v, number ok = %v", ev, number == id)
				}
				if tt.rec.NATResult == NATNone && !ev.NATAt.IsZero() {
					t.Fatalf("nat_at kept with no test: %v", ev.NATAt)
				}
				return
			}
			wantInvalid(t, err, tt.field)
		})
	}
}

func TestPassExpiry(t *testing.T) {
	now := testNow
	retention := 28 * 24 * time.Hour
	tests := []struct {
		name    string
		at      time.Time
		expired bool
	}{
		{"just now", now, false},
		{"27 days ago", now.Add(-27 * 24 * time.Hour), false},
		{"exactly the retention ago", now.Add(-retention), false},
		{"a second past the retention", now.Add(-retention - time.Second), true},
		{"a year ago", now.Add(-365 * 24 * time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PassExpired(tt.at, now, retention); got != tt.expired {
				t.Fatalf("PassExpired(%s) = %v, want %v", tt.at, got, tt.expired)
			}
			// The read models' cut-off agrees with the rule.
			if got := tt.at.Before(RetireBefore(now, retention)); got != tt.expired {
				t.Fatalf("before RetireBefore = %v, want %v", got, tt.expired)
			}
			if got := PassExpiresAt(tt.at, retention); !got.Equal(tt.at.Add(retention)) {
				t.Fatalf("PassExpiresAt = %s", got)
			}
		})
	}
	if PassExpired(now.Add(-10*365*24*time.Hour), now, 0) {
		t.Fatal("no retention: nothing expires")
	}
}
