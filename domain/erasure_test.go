package domain

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestDecideErasePerson(t *testing.T) {
	pid, kid := uuid.New(), uuid.New()
	registered := replayPerson(t, PersonRegistered{PersonID: pid})
	erased := replayPerson(t, PersonRegistered{PersonID: pid}, PersonErased{PersonID: pid, By: "admin:a", Reason: "asked"})
	admin := Actor{Role: RoleAdmin, Subject: "admin:root"}
	tests := []struct {
		name   string
		p      Person
		actor  Actor
		reason string
		kind   error
		none   bool
	}{
		{"admin", registered, admin, "the person asked (case 7)", nil, false},
		{"reviewer", registered, Actor{Role: RoleReviewer}, "x", ErrForbidden, false},
		{"analyst", registered, Actor{Role: RoleAnalyst}, "x", ErrForbidden, false},
		{"the person themself", registered, Actor{Role: RolePerson, PersonID: pid}, "x", ErrForbidden, false},
		{"no reason", registered, admin, "  ", ErrInvalid, false},
		{"control character in reason", registered, admin, "a\x00b", ErrInvalid, false},
		{"reason too long", registered, admin, strings.Repeat("因", MaxReasonLength+1), ErrInvalid, false},
		{"unknown", Person{}, admin, "x", ErrNotFound, false},
		{"already erased", erased, admin, "again", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := DecideErasePerson(tt.p, tt.actor, ErasePerson{Reason: tt.reason}, []uuid.UUID{kid}, uuid.Nil)
			wantKind(t, err, tt.kind)
			if tt.kind != nil {
				return
			}
			if tt.none {
				if len(evs) != 0 {
					t.Fatalf("erased twice: %+v", evs)
				}
				return
			}
			got := evs[0].(PersonErased)
			if got.PersonID != pid || got.By != "admin:root" || got.Reason != tt.reason || !slices.Equal(got.Dependants, []uuid.UUID{kid}) {
				t.Fatalf("event = %+v", got)
			}
		})
	}
}

func TestErasedPersonRefused(t *testing.T) {
	pid, kid := uuid.New(), uuid.New()
	p := replayPerson(t, PersonRegistered{PersonID: pid, IDType: "resident_id"},
		PersonErased{PersonID: pid, By: "admin:a", Reason: "asked", Dependants: []uuid.UUID{kid}})
	if !p.Erased() || !p.Registered() || !slices.Equal(p.ErasedDependants(), []uuid.UUID{kid}) {
		t.Fatalf("person = %+v", p)
	}
	if by, at := p.ErasedBy(); by == uuid.Nil || at == 0 {
		t.Fatalf("erased by %v at %d", by, at)
	}
	var calls int
	r := Registration{PersonID: pid, IDType: "resident_id", Name: "张三", IDNumber: "x", Phone: "13800000001"}
	if _, err := DecideRegisterPerson(p, r, plainSealer(&calls), plainOpener); !errorsIsConflict(err) || calls != 0 {
		t.Fatalf("registration of an erased document: %v (sealed %d)", err, calls)
	}
	if err := MayActAsSelf(p, "declare"); !errorsIsConflict(err) {
		t.Fatalf("erased person acting: %v", err)
	}
	if _, err := DecideVerifyPerson(p, Actor{Role: RoleReviewer}, VerifyPerson{Method: VerifyManual, Result: VerifyApproved}); !errorsIsConflict(err) {
		t.Fatalf("verification of an erased person: %v", err)
	}
	vid := uuid.New()
	pending := replayVenue(t, VenueApplied{VenueID: vid, Name: "沂河餐厅", Type: "restaurant", District: "371302", ManagerID: pid})
	if _, err := DecideReviewVenue(pending, Actor{Role: RoleReviewer}, ReviewVenue{Decision: ReviewApprove}, p); !errorsIsConflict(err) {
		t.Fatalf("approval of an erased applicant's venue: %v", err)
	}
	f := PassFacts{Persons: map[uuid.UUID]PersonView{pid: {ID: pid, Erased: true}}}
	if _, err := knownPerson(&f, pid); !errorsIsConflict(err) {
		t.Fatalf("pass of an erased person: %v", err)
	}
	// A declaration made before the erasure is approved no more, whether
	// its declarant or a family member it covers was erased; a rejection
	// closes it.
	guardian := replayPerson(t, PersonRegistered{PersonID: uuid.New()})
	did := uuid.New()
	for _, tt := range []struct {
		name    string
		covered []Person
	}{{"declarant", []Person{p}}, {"family member", []Person{guardian, p}}} {
		d := replayDeclaration(t, ArrivalDeclared{DeclarationID: did, PersonID: tt.covered[0].ID(), DestinationDistrict: "371302"})
		review := ReviewDeclaration{Decision: ReviewApprove}
		if evs, err := DecideReviewDeclaration(d, tt.covered, Actor{Role: RoleReviewer}, review); !errorsIsConflict(err) || evs != nil {
			t.Fatalf("approval of an erased %s's declaration: %v %v", tt.name, evs, err)
		}
		review = ReviewDeclaration{Decision: ReviewReject, Reason: "erased"}
		if evs, err := DecideReviewDeclaration(d, tt.covered, Actor{Role: RoleReviewer}, review); err != nil || len(evs) != 1 {
			t.Fatalf("rejection of an erased %s's declaration: %v %v", tt.name, evs, err)
		}
	}
}

func errorsIsConflict(err error) bool {
	return err != nil && strings.Contains(err.Error(), "erased") && isKind(err, ErrConflict)
}

func isKind(err, kind error) bool {
	var e *Error
	for err != nil {
		if ee, ok := err.(*Error); ok {
			e = ee
			break
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			break
		}
		err = u.Unwrap()
	}
	return e != nil && e.Kind == kind
}

// v1 events, as earlier builds stored them, still decode: the upcasters
// bring them to v2 without the personal data v2 no longer holds in clear.
func TestUpcastV1(t *testing.T) {
	at := time.Date(2022, 5, 1, 8, 0, 0, 0, time.UTC)
	v1 := func(typ, payload string) Envelope {
		return Envelope{ID: uuid.New(), Type: typ, SchemaVersion: 1, Payload: json.RawMessage(payload), Position: 7}
	}
	pid, vid := uuid.New(), uuid.New()
	t.Run("pass without its masked name", func(t *testing.T) {
		old := PassRecorded{VenueID: vid, PersonID: pid, Direction: DirectionIn, Method: MethodSelfScan, Decision: DecisionPass,
			Screen: Screen{NameMasked: "张*", CodeColour: ColourGreen, VenueID: vid, VenueName: "书城", At: at, Direction: DirectionIn, Decision: DecisionPass}}
		raw, err := json.Marshal(passJSON(old)) // encoding/json, as v1 wrote it
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), `"name":"张*"`) {
			t.Fatalf("v1 fixture has no name: %s", raw)
		}
		ev, err := Decode(v1(TypePassRecorded, string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		got := *ev.(*PassRecorded)
		want := old
		want.Screen.NameMasked = ""
		if got != want {
			t.Fatalf("upcast pass = %+v\nwant %+v", got, want)
		}
		// v2 as written now: no name at all.
		b, err := got.MarshalJSON()
		if err != nil || strings.Contains(string(b), `"name"`) {
			t.Fatalf("v2 pass JSON %s (%v)", b, err)
		}
	})
	t.Run("arrival with its origin in clear", func(t *testing.T) {
		ev, err := Decode(v1(TypeArrivalDeclared, `{"declaration_id":"`+uuid.NewString()+`","person_id":"`+pid.String()+
			`","arrival_date":"2022-05-03","origin":"上海市浦东新区","destination_district":"371302","nat_result":"none"}`))
		if err != nil {
			t.Fatal(err)
		}
		a := ev.(*ArrivalDeclared)
		if a.ClearOrigin != "上海市浦东新区" || a.Origin != "" || a.PersonID != pid {
			t.Fatalf("upcast arrival = %+v", a)
		}
	})
	t.Run("truck pass with its plate in clear", func(t *testing.T) {
		ev, err := Decode(v1(TypeTruckPassDeclared, `{"declaration_id":"`+uuid.NewString()+`","person_id":"`+pid.String()+
			`","plate_number":"鲁Q12345","nat_proof_at":"2022-05-01T08:00:00Z","itinerary_ok":true,"health_code_colour":"green",`+
			`"logistics_park":"园","district":"371311","contact_name":"c2VhbGVk","contact_phone":"c2VhbGVk"}`))
		if err != nil {
			t.Fatal(err)
		}
		tp := ev.(*TruckPassDeclared)
		if tp.ClearPlateNumber != "鲁Q12345" || tp.PlateNumber != "" || tp.ContactName != "c2VhbGVk" {
			t.Fatalf("upcast truck pass = %+v", tp)
		}
	})
	t.Run("v2 seals them", func(t *testing.T) {
		for _, ev := range []Event{
			ArrivalDeclared{DeclarationID: uuid.New(), PersonID: pid, ArrivalDate: "2022-05-03", Origin: "c2VhbGVk", DestinationDistrict: "371302", NATResult: NATNone},
			TruckPassDeclared{DeclarationID: uuid.New(), PersonID: pid, PlateNumber: "c2VhbGVk", NATProofAt: at, HealthCodeColour: ColourGreen,
				LogisticsPark: "园", District: "371311", ContactName: "c2VhbGVk", ContactPhone: "c2VhbGVk"},
		} {
			env, err := NewEnvelope("declaration.x", ev, Meta{}, at)
			if err != nil {
				t.Fatal(err)
			}
			if env.SchemaVersion != 2 || strings.Contains(string(env.Payload), `"origin"`) || strings.Contains(string(env.Payload), `"plate_number"`) {
				t.Fatalf("v2 %s: version %d, %s", env.Type, env.SchemaVersion, env.Payload)
			}
		}
	})
}

func TestDecideEraseWithGuardian(t *testing.T) {
	gid, kid := uuid.New(), uuid.New()
	guardian := replayPerson(t, PersonRegistered{PersonID: gid})
	erased := replayPerson(t, PersonRegistered{PersonID: gid}, PersonErased{PersonID: gid, By: "admin:root", Reason: "asked"})
	member := replayPerson(t, PersonRegistered{PersonID: kid, GuardianID: gid, Relation: RelationChild})
	tests := []struct {
		name             string
		member, guardian Person
		erases           bool
	}{
		{"guardian erased", member, erased, true},
		{"guardian not erased", member, guardian, false},
		{"member erased already", replayPerson(t, PersonRegistered{PersonID: kid, GuardianID: gid}, PersonErased{PersonID: kid}), erased, false},
		{"member of another guardian", replayPerson(t, PersonRegistered{PersonID: kid, GuardianID: uuid.New()}), erased, false},
		{"member released", replayPerson(t, PersonRegistered{PersonID: kid, GuardianID: gid}, PersonReleased{PersonID: kid, GuardianID: gid}), erased, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := DecideEraseWithGuardian(tt.member, tt.guardian)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.erases {
				if len(evs) != 0 {
					t.Fatalf("decided %+v, want nothing", evs)
				}
				return
			}
			if got := evs[0].(PersonErased); got.PersonID != kid || got.Guardian != gid || got.By != "admin:root" || got.Reason != "asked" {
				t.Fatalf("event = %+v", got)
			}
		})
	}
}
