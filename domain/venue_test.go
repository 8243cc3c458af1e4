package domain

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func goodApplication() ApplyVenue {
	return ApplyVenue{Name: "兰山区人民医院", Type: VenueHospital, District: "371302",
		Address: "临沂市兰山区解放路1号", Lat: 35.06, Lng: 118.35}
}

func TestVenueApply(t *testing.T) {
	vid, manager, a, b := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	applied := VenueApplied{VenueID: vid, Name: "n", Type: VenueMall, District: "371302", ManagerID: manager,
		RequireGreen: true, NATWithinHours: 48}
	testApply(t, replayVenue, []applyCase[Venue]{
		{"none", nil, func(t *testing.T, v Venue) {
			if v.Exists() || v.Status() != "" || v.Version() != 0 {
				t.Fatalf("venue = %+v", v)
			}
		}},
		{"applied", []Event{applied}, func(t *testing.T, v Venue) {
			green, hours := v.Requirements()
			if !v.Exists() || v.ID() != vid || v.Status() != VenueStatusPending || v.ManagerID() != manager ||
				v.Type() != VenueMall || v.District() != "371302" || v.Name() != "n" || !green || hours != 48 {
				t.Fatalf("venue = %+v", v)
			}
		}},
		{"approved", []Event{applied, VenueReviewed{VenueID: vid, Decision: ReviewApprove}}, func(t *testing.T, v Venue) {
			if v.Status() != VenueStatusApproved || v.Version() != 2 {
				t.Fatalf("venue = %+v", v)
			}
		}},
		{"rejected", []Event{applied, VenueReviewed{VenueID: vid, Decision: ReviewReject, Reason: "no licence"}}, func(t *testing.T, v Venue) {
			if v.Status() != VenueStatusRejected || v.Reason() != "no licence" {
				t.Fatalf("venue = %+v", v)
			}
		}},
		{"code issued", []Event{applied, VenueReviewed{VenueID: vid, Decision: ReviewApprove}, VenueCodeIssued{VenueID: vid, Code: "c"}}, func(t *testing.T, v Venue) {
			if v.Code() != "c" {
				t.Fatalf("venue = %+v", v)
			}
		}},
		{"sub-admins", []Event{applied,
			SubAdminAdded{VenueID: vid, PersonID: a},
			SubAdminAdded{VenueID: vid, PersonID: b},
			SubAdminRemoved{VenueID: vid, PersonID: a},
		}, func(t *testing.T, v Venue) {
			if !slices.Equal(v.Admins(), []uuid.UUID{b}) || v.IsAdmin(a) || !v.IsAdmin(b) || v.Version() != 4 {
				t.Fatalf("admins = %v", v.Admins())
			}
		}},
	})
	if _, err := ReplayVenue(history(t, "venue.x", PersonVerified{})); err == nil {
		t.Fatal("a person's event replayed into a venue")
	}
}

func TestDecideApplyVenue(t *testing.T) {
	pid, vid := uuid.New(), uuid.New()
	applicant := replayPerson(t, PersonRegistered{PersonID: pid})
	with := func(f func(*ApplyVenue)) ApplyVenue { a := goodApplication(); f(&a); return a }
	tests := []struct {
		name      string
		venue     Venue
		applicant Person
		cmd       ApplyVenue
		kind      error
		field     string
	}{
		{"good", Venue{}, applicant, goodApplication(), nil, ""},
		{"every type", Venue{}, applicant, with(func(a *ApplyVenue) { a.Type = VenueOther }), nil, ""},
		{"requirements", Venue{}, applicant, with(func(a *ApplyVenue) { a.RequireGreen = true; a.NATWithinHours = 72 }), nil, ""},
		{"edges of the map", Venue{}, applicant, with(func(a *ApplyVenue) { a.Lat = -90; a.Lng = 180 }), nil, ""},
		{"applicant unknown", Venue{}, Person{}, goodApplication(), ErrNotFound, ""},
		{"venue exists", replayVenue(t, VenueApplied{VenueID: vid}), applicant, goodApplication(), ErrConflict, ""},
		{"no name", Venue{}, applicant, with(func(a *ApplyVenue) { a.Name = " " }), ErrInvalid, "name"},
		{"long name", Venue{}, applicant, with(func(a *ApplyVenue) { a.Name = strings.Repeat("x", MaxVenueNameLength+1) }), ErrInvalid, "name"},
		{"bad type", Venue{}, applicant, with(func(a *ApplyVenue) { a.Type = "casino" }), ErrInvalid, "type"},
		{"short district", Venue{}, applicant, with(func(a *ApplyVenue) { a.District = "37130" }), ErrInvalid, "district"},
		{"letter district", Venue{}, applicant, with(func(a *ApplyVenue) { a.District = "3713O2" }), ErrInvalid, "district"},
		{"no address", Venue{}, applicant, with(func(a *ApplyVenue) { a.Address = "" }), ErrInvalid, "address"},
		{"long address", Venue{}, applicant, with(func(a *ApplyVenue) { a.Address = strings.Repeat("路", MaxAddressLength+1) }), ErrInvalid, "address"},
		{"lat 91", Venue{}, applicant, with(func(a *ApplyVenue) { a.Lat = 91 }), ErrInvalid, "lat"},
		{"lat NaN", Venue{}, applicant, with(func(a *ApplyVenue) { a.Lat = math.NaN() }), ErrInvalid, "lat"},
		{"lng -181", Venue{}, applicant, with(func(a *ApplyVenue) { a.Lng = -181 }), ErrInvalid, "lng"},
		{"negative NAT hours", Venue{}, applicant, with(func(a *ApplyVenue) { a.NATWithinHours = -1 }), ErrInvalid, "nat_within_hours"},
		{"NAT hours over a week", Venue{}, applicant, with(func(a *ApplyVenue) { a.NATWithinHours = MaxNATWithinHours + 1 }), ErrInvalid, "nat_within_hours"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := DecideApplyVenue(tt.venue, vid, tt.applicant, tt.cmd)
			wantError(t, err, tt.kind, tt.field)
			if tt.kind != nil {
				return
			}
			got := evs[0].(VenueApplied)
			if got.VenueID != vid || got.ManagerID != pid || got.Type != tt.cmd.Type ||
				got.RequireGreen != tt.cmd.RequireGreen || got.NATWithinHours != tt.cmd.NATWithinHours {
				t.Fatalf("event = %+v", got)
			}
		})
	}
}

func TestVenueTypes(t *testing.T) {
	types := VenueTypes()
	if len(types) != 26 {
		t.Fatalf("%d venue types, want PRODUCT.md's 26", len(types))
	}
	for _, ty := range types {
		if !IsVenueType(ty) {
			t.Fatalf("IsVenueType(%q) = false", ty)
		}
	}
	if IsVenueType("") || IsVenueType("Hospital") {
		t.Fatal("IsVenueType accepted a non-type")
	}
}

func TestDecideReviewVenue(t *testing.T) {
	vid := uuid.New()
	applied := VenueApplied{VenueID: vid}
	pending := replayVenue(t, applied)
	approved := replayVenue(t, applied, VenueReviewed{VenueID: vid, Decision: ReviewApprove})
	rejected := replayVenue(t, applied, VenueReviewed{VenueID: vid, Decision: ReviewReject, Reason: "r"})
	tests := []struct {
		name  string
		venue Venue
		cmd   ReviewVenue
		kind  error
		field string
	}{
		{"approve", pending, ReviewVenue{Decision: ReviewApprove}, nil, ""},
		{"approve with note", pending, ReviewVenue{Decision: ReviewApprove, Reason: "ok"}, nil, ""},
		{"reject", pending, ReviewVenue{Decision: ReviewReject, Reason: "address does not exist"}, nil, ""},
		{"reject without reason", pending, ReviewVenue{Decision: ReviewReject, Reason: "  "}, ErrInvalid, "reason"},
		{"reason too long", pending, ReviewVenue{Decision: ReviewReject, Reason: strings.Repeat("x", MaxReasonLength+1)}, ErrInvalid, "reason"},
		{"bad decision", pending, ReviewVenue{Decision: "approved"}, ErrInvalid, "decision"},
		{"unknown venue", Venue{}, ReviewVenue{Decision: ReviewApprove}, ErrNotFound, ""},
		{"approved twice", approved, ReviewVenue{Decision: ReviewApprove}, ErrConflict, ""},
		{"reject after approve", approved, ReviewVenue{Decision: ReviewReject, Reason: "r"}, ErrConflict, ""},
		{"approve after reject", rejected, ReviewVenue{Decision: ReviewApprove}, ErrConflict, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := DecideReviewVenue(tt.venue, Actor{Role: RoleReviewer}, tt.cmd, Person{})
			wantError(t, err, tt.kind, tt.field)
			if tt.kind == nil {
				got := evs[0].(VenueReviewed)
				if got.VenueID != vid || got.Decision != tt.cmd.Decision || got.Reason != strings.TrimSpace(tt.cmd.Reason) {
					t.Fatalf("event = %+v", got)
				}
			}
		})
	}
}

func TestDecideSubAdmins(t *testing.T) {
	vid, manager, helper, other := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	applied := VenueApplied{VenueID: vid, ManagerID: manager}
	approve := VenueReviewed{VenueID: vid, Decision: ReviewApprove}
	venue := replayVenue(t, applied, approve)
	withHelper := replayVenue(t, applied, approve, SubAdminAdded{VenueID: vid, PersonID: helper})
	rejected := replayVenue(t, applied, VenueReviewed{VenueID: vid, Decision: ReviewReject, Reason: "r"})
	registered := func(id uuid.UUID) Person { return replayPerson(t, PersonRegistered{PersonID: id}) }
	asManager := Actor{Role: RolePerson, PersonID: manager}
	asAdmin := Actor{Role: RoleAdmin}
	asHelper := Actor{Role: RolePerson, PersonID: helper}
	asReviewer := Actor{Role: RoleReviewer}
	asScanner := Actor{Role: RoleScanner, VenueID: vid}

	t.Run("add", func(t *testing.T) {
		tests := []struct {
			name   string
			venue  Venue
			actor  Actor
			person Person
			kind   error
		}{
			{"manager adds", venue, asManager, registered(helper), nil},
			{"admin adds", venue, asAdmin, registered(helper), nil},
			{"pending venue", replayVenue(t, applied), asManager, registered(helper), nil},
			{"sub-admin cannot add", withHelper, asHelper, registered(other), ErrForbidden},
			{"reviewer cannot add", venue, asReviewer, registered(helper), ErrForbidden},
			{"scanner cannot add", venue, asScanner, registered(helper), ErrForbidden},
			{"stranger cannot add", venue, Actor{Role: RolePerson, PersonID: other}, registered(helper), ErrForbidden},
			{"unknown venue", Venue{}, asManager, registered(helper), ErrNotFound},
			{"unregistered person", venue, asManager, Person{}, ErrNotFound},
			{"already sub-admin", withHelper, asManager, registered(helper), ErrConflict},
			{"the manager", venue, asManager, registered(manager), ErrConflict},
			{"rejected venue", rejected, asManager, registered(helper), ErrConflict},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				evs, err := DecideAddSubAdmin(tt.venue, tt.actor, tt.person)
				wantEvent(t, evs, err, tt.kind, func(got SubAdminAdded) bool { return got.VenueID == vid && got.PersonID == tt.person.ID() })
			})
		}
	})
	t.Run("remove", func(t *testing.T) {
		tests := []struct {
			name   string
			venue  Venue
			actor  Actor
			person uuid.UUID
			kind   error
		}{
			{"manager removes", withHelper, asManager, helper, nil},
			{"admin removes", withHelper, asAdmin, helper, nil},
			{"not a sub-admin", withHelper, asManager, other, ErrNotFound},
			{"the manager is not a sub-admin", withHelper, asManager, manager, ErrNotFound},
			{"sub-admin cannot remove", withHelper, asHelper, helper, ErrForbidden},
			{"unknown venue", Venue{}, asManager, helper, ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				evs, err := DecideRemoveSubAdmin(tt.venue, tt.actor, tt.person)
				wantEvent(t, evs, err, tt.kind, func(got SubAdminRemoved) bool { return got.VenueID == vid && got.PersonID == tt.person })
			})
		}
	})
}

func TestValidDistrict(t *testing.T) {
	for d, want := range map[string]bool{"371302": true, "110101": true, "000000": true,
		"37130": false, "3713020": false, "37130a": false, "": false, "３７１３０２": false} {
		if got := ValidDistrict(d); got != want {
			t.Errorf("ValidDistrict(%q) = %v, want %v", d, got, want)
		}
	}
}

// TestValidationListsEveryField: a venue application, an arrival and a truck
// pass each report every bad field at once.
func TestValidationListsEveryField(t *testing.T) {
	now := time.Now()
	_, err := ValidateApplyVenue(ApplyVenue{Name: "", Type: "castle", District: "12", Address: "x", Lat: 91, Lng: 0})
	if got := fieldsOf(err); !slices.Equal(got, []string{"name", "type", "district", "lat"}) {
		t.Fatalf("venue application: fields %v (%v)", got, err)
	}
	_, err = ValidateArrival(DeclareArrival{ArrivalDate: "soon", Origin: "\x00", DestinationDistrict: "1", NATResult: "maybe"}, now, time.Minute)
	if got := fieldsOf(err); !slices.Equal(got, []string{"arrival_date", "origin", "destination_district", "nat_result"}) {
		t.Fatalf("arrival: fields %v (%v)", got, err)
	}
	_, err = ValidateTruckPass(DeclareTruckPass{PlateNumber: "x", HealthCodeColour: "blue", LogisticsPark: "园", District: "371302", ContactName: "赵", ContactPhone: "1"}, now, time.Minute)
	if got := fieldsOf(err); !slices.Equal(got, []string{"plate_number", "nat_proof_at", "health_code_colour", "contact_phone"}) {
		t.Fatalf("truck pass: fields %v (%v)", got, err)
	}
}
