package domain

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain/idcard"
)

// The helpers the package's tests share: histories and replays of the
// aggregates, the apply table, the error checks.

var testNow = time.Date(2022, 5, 1, 8, 0, 0, 0, time.UTC)

// history wraps events as the log would hold them, positions from 1.
func history(t *testing.T, aggregate string, events ...Event) []Envelope {
	t.Helper()
	out := make([]Envelope, 0, len(events))
	for i, ev := range events {
		env, err := NewEnvelope(aggregate, ev, Meta{}, testNow)
		if err != nil {
			t.Fatalf("NewEnvelope: %v", err)
		}
		env.Position = uint64(i + 1)
		out = append(out, env)
	}
	return out
}

// replayAt rebuilds an aggregate with its Replay function (ReplayPerson,
// ReplayVenue, ReplayDeclaration) from events on the aggregate's subject.
func replayAt[A any](t *testing.T, rebuild func([]Envelope) (A, error), aggregate string, events ...Event) A {
	t.Helper()
	a, err := rebuild(history(t, aggregate, events...))
	if err != nil {
		t.Fatalf("replay %s: %v", aggregate, err)
	}
	return a
}

func replayPerson(t *testing.T, events ...Event) Person {
	t.Helper()
	return replayAt(t, ReplayPerson, "person.x", events...)
}

func replayVenue(t *testing.T, events ...Event) Venue {
	t.Helper()
	return replayAt(t, ReplayVenue, "venue.x", events...)
}

func replayDeclaration(t *testing.T, events ...Event) Declaration {
	t.Helper()
	return replayAt(t, ReplayDeclaration, "declaration.x", events...)
}

// applyCase is a row of an aggregate's apply table: the events replayed,
// and check, which looks at the aggregate they rebuild.
type applyCase[A any] struct {
	name   string
	events []Event
	check  func(t *testing.T, a A)
}

// testApply runs an apply table: each row's events rebuilt by replay, and
// the row's check on the result.
func testApply[A any](t *testing.T, replay func(*testing.T, ...Event) A, tests []applyCase[A]) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, replay(t, tt.events...))
		})
	}
}

// residentID returns a valid resident ID with the given 17 first digits.
func residentID(t *testing.T, first17 string) string {
	t.Helper()
	c, ok := idcard.CheckChar(first17)
	if !ok {
		t.Fatalf("bad first17 %q", first17)
	}
	return first17 + string(c)
}

func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want kind %v", err, kind)
	}
}

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v, want a FieldError on %s", err, field)
	}
	if fe.Field != field {
		t.Fatalf("error on field %q, want %q (%v)", fe.Field, field, err)
	}
}

// wantError checks err's kind (nil: no error) and, when field is set, that
// it is a FieldError on field: the two columns of a decide table.
func wantError(t *testing.T, err, kind error, field string) {
	t.Helper()
	wantKind(t, err, kind)
	if field != "" {
		wantField(t, err, field)
	}
}

// normalised is a case of a validator that normalises what it accepts: an
// input and its normal form ("": the input is refused).
type normalised struct{ in, want string }

// testNormalised gives each case's input to validate (named name in
// failures): an accepted one comes back in its normal form, a refused one is
// an ErrInvalid FieldError on field.
func testNormalised(t *testing.T, name string, validate func(string) (string, error), field string, tests []normalised) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := validate(tt.in)
			if tt.want == "" {
				wantInvalid(t, err, field)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("%s(%q) = %q, %v; want %q", name, tt.in, got, err, tt.want)
			}
		})
	}
}

// wantEvent checks a decision against a decide table's kind column: err is
// of kind (nil: no error), and when there is none the first event decided is
// an E that ok accepts.
func wantEvent[E Event](t *testing.T, evs []Event, err, kind error, ok func(E) bool) {
	t.Helper()
	wantKind(t, err, kind)
	if kind != nil {
		return
	}
	if len(evs) == 0 {
		t.Fatal("no event decided")
	}
	if got, isE := evs[0].(E); !isE || !ok(got) {
		t.Fatalf("event = %+v", evs[0])
	}
}

// wantInvalid checks that err is an ErrInvalid FieldError on field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	wantKind(t, err, ErrInvalid)
	wantField(t, err, field)
}

func TestPersonApply(t *testing.T) {
	id, guardian := uuid.New(), uuid.New()
	verification := func(status string, version uint64) func(*testing.T, Person) {
		return func(t *testing.T, p Person) {
			if p.Verification() != status || p.Version() != version {
				t.Fatalf("person = %+v; want verification %q at version %d", p, status, version)
			}
		}
	}
	testApply(t, replayPerson, []applyCase[Person]{
		{"no events", nil, func(t *testing.T, p Person) {
			if p.Registered() || p.Version() != 0 || p.Verification() != "" {
				t.Fatalf("empty person = %+v", p)
			}
		}},
		{"registered", []Event{PersonRegistered{PersonID: id, IDType: "resident_id", IDHash: "h"}}, func(t *testing.T, p Person) {
			if !p.Registered() || p.ID() != id || p.IDHash() != "h" || p.IDType() != "resident_id" ||
				p.Verification() != VerificationPending || p.Version() != 1 || p.Dependant() {
				t.Fatalf("person = %+v", p)
			}
		}},
		{"verified", []Event{
			PersonRegistered{PersonID: id},
			PersonVerified{PersonID: id, Method: VerifyFace, Result: VerifyApproved},
		}, verification(VerificationApproved, 2)},
		{"rejected then approved", []Event{
			PersonRegistered{PersonID: id},
			PersonVerified{PersonID: id, Method: VerifyFace, Result: VerifyRejected},
			PersonVerified{PersonID: id, Method: VerifyManual, Result: VerifyApproved},
		}, verification(VerificationApproved, 3)},
		{"rejected", []Event{
			PersonRegistered{PersonID: id},
			PersonVerified{PersonID: id, Method: VerifyFace, Result: VerifyRejected},
		}, verification(VerificationRejected, 2)},
		{"family member", []Event{PersonRegistered{PersonID: id, GuardianID: guardian, Relation: RelationChild}}, func(t *testing.T, p Person) {
			if !p.Dependant() || p.GuardianID() != guardian || p.Relation() != RelationChild {
				t.Fatalf("person = %+v", p)
			}
		}},
	})
}

func TestPersonApplyRefusesForeignEvents(t *testing.T) {
	_, err := ReplayPerson(history(t, "person.x", VenueReviewed{Decision: ReviewApprove}))
	wantKind(t, err, ErrUnknownEvent)

	env := history(t, "person.x", PersonRegistered{})[0]
	env.SchemaVersion = 99
	_, err = ReplayPerson([]Envelope{env})
	wantKind(t, err, ErrUnknownEvent)
}

// plainSealer "seals" by tagging, so a test can see what was sealed; calls
// counts its uses.
func plainSealer(calls *int) Sealer {
	return func(s string) (Sealed, error) {
		*calls++
		return Sealed("sealed:" + s), nil
	}
}

// plainOpener opens what plainSealer sealed.
func plainOpener(s Sealed) (string, error) { return strings.TrimPrefix(string(s), "sealed:"), nil }

func TestDecideRegisterPerson(t *testing.T) {
	id, eventID := uuid.New(), uuid.New()
	r := Registration{EventID: eventID, PersonID: id, IDHash: "h", Name: "王小明", IDType: "resident_id", IDNumber: "11010519491231002X", Phone: "13800000001"}
	t.Run("new", func(t *testing.T) {
		var calls int
		evs, err := DecideRegisterPerson(Person{}, r, plainSealer(&calls), plainOpener)
		wantKind(t, err, nil)
		reg := evs[0].(PersonRegistered)
		if len(evs) != 1 || reg.PersonID != id || reg.IDHash != "h" || reg.Name != "sealed:王小明" || reg.Phone != "sealed:13800000001" || calls != 3 {
			t.Fatalf("events = %+v, %d seals", evs, calls)
		}
	})
	registered := replayPerson(t, PersonRegistered{PersonID: id, IDType: "resident_id", IDHash: "h"})
	t.Run("twice", func(t *testing.T) {
		var calls int
		_, err := DecideRegisterPerson(registered, r, plainSealer(&calls), plainOpener)
		wantKind(t, err, ErrConflict)
		if !strings.Contains(err.Error(), "already registered") {
			t.Fatalf("error %q does not say already registered", err)
		}
		if calls != 0 {
			t.Fatalf("a refused registration sealed %d fields: it must make no data key", calls)
		}
	})
	// The same event id: a retry when it asks the same again, a conflict
	// (never the stored registration's answer) when anything differs.
	var calls int
	first, err := DecideRegisterPerson(Person{}, r, plainSealer(&calls), plainOpener)
	wantKind(t, err, nil)
	stored := replayPersonEnvs(t, eventID, first[0])
	for _, tt := range []struct {
		name string
		edit func(*Registration)
		kind error
	}{
		{"same again", func(*Registration) {}, nil},
		{"other name", func(r *Registration) { r.Name = "李四" }, ErrConflict},
		{"other phone", func(r *Registration) { r.Phone = "13900000002" }, ErrConflict},
		{"as a family member", func(r *Registration) { r.GuardianID = uuid.New() }, ErrConflict},
		{"other event id", func(r *Registration) { r.EventID = uuid.New() }, ErrConflict},
	} {
		t.Run("retry "+tt.name, func(t *testing.T) {
			again := r
			tt.edit(&again)
			evs, err := DecideRegisterPerson(stored, again, plainSealer(&calls), plainOpener)
			wantKind(t, err, tt.kind)
			if len(evs) != 0 {
				t.Fatalf("a retry decided %+v", evs)
			}
		})
	}
}

// replayPersonEnvs replays ev as the aggregate's first event, with event id id.
func replayPersonEnvs(t *testing.T, id uuid.UUID, ev Event) Person {
	t.Helper()
	env, err := NewEnvelope("person.x", ev, Meta{ID: id}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	env.Position = 1
	p, err := ReplayPerson([]Envelope{env})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecideVerifyPerson(t *testing.T) {
	id := uuid.New()
	reg := PersonRegistered{PersonID: id}
	approved := PersonVerified{PersonID: id, Method: VerifyFace, Result: VerifyApproved}
	rejected := PersonVerified{PersonID: id, Method: VerifyManual, Result: VerifyRejected}
	ok := VerifyPerson{Method: VerifyFace, Result: VerifyApproved}
	tests := []struct {
		name  string
		past  []Event
		cmd   VerifyPerson
		kind  error
		field string
	}{
		{"pending approved", []Event{reg}, ok, nil, ""},
		{"pending rejected", []Event{reg}, VerifyPerson{Method: VerifyManual, Result: VerifyRejected}, nil, ""},
		{"after rejected", []Event{reg, rejected}, ok, nil, ""},
		{"after approved", []Event{reg, approved}, ok, ErrConflict, ""},
		{"reject after approved", []Event{reg, approved}, VerifyPerson{Method: VerifyManual, Result: VerifyRejected}, ErrConflict, ""},
		{"not registered", nil, ok, ErrNotFound, ""},
		{"bad method", []Event{reg}, VerifyPerson{Method: "fingerprint", Result: VerifyApproved}, ErrInvalid, "method"},
		{"bad result", []Event{reg}, VerifyPerson{Method: VerifyFace, Result: "maybe"}, ErrInvalid, "result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := DecideVerifyPerson(replayPerson(t, tt.past...), Actor{Role: RoleReviewer}, tt.cmd)
			wantError(t, err, tt.kind, tt.field)
			if tt.kind == nil {
				v := evs[0].(PersonVerified)
				if v.PersonID != id || v.Method != tt.cmd.Method || v.Result != tt.cmd.Result {
					t.Fatalf("event = %+v", v)
				}
			}
		})
	}
}

func TestDecideAddFamilyMember(t *testing.T) {
	gid, mid := uuid.New(), uuid.New()
	guardian := replayPerson(t, PersonRegistered{PersonID: gid})
	dependant := replayPerson(t, PersonRegistered{PersonID: gid, GuardianID: uuid.New()})
	r := Registration{PersonID: mid, Name: "王小红", IDType: "resident_id", IDNumber: "11010519491231002X", GuardianID: gid, Relation: RelationChild}
	elsewhere := r
	elsewhere.GuardianID = uuid.New()
	tests := []struct {
		name     string
		guardian Person
		member   Person
		family   int
		r        Registration
		kind     error
	}{
		{"new member", guardian, Person{}, 0, r, nil},
		{"the last one allowed", guardian, Person{}, MaxFamilyMembers - 1, r, nil},
		{"one too many", guardian, Person{}, MaxFamilyMembers, r, ErrConflict},
		{"guardian not registered", Person{}, Person{}, 0, r, ErrNotFound},
		{"guardian is a dependant", dependant, Person{}, 0, r, ErrConflict},
		{"member already registered", guardian, replayPerson(t, PersonRegistered{PersonID: mid}), 0, r, ErrConflict},
		{"registered under someone else", guardian, Person{}, 0, elsewhere, ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls int
			evs, err := DecideAddFamilyMember(tt.guardian, tt.member, tt.family, tt.r, plainSealer(&calls), plainOpener)
			wantEvent(t, evs, err, tt.kind, func(r PersonRegistered) bool { return r.GuardianID == gid && r.Phone == "" })
			if tt.kind != nil && calls != 0 {
				t.Fatalf("a refused member sealed %d fields", calls)
			}
		})
	}
}

func TestValidatePhone(t *testing.T) {
	testNormalised(t, "ValidatePhone", ValidatePhone, "phone", []normalised{
		{"13800138000", "13800138000"},
		{"199 0000 1111", "19900001111"},
		{"+85291234567", "+85291234567"},
		{"+1-415-555-2671", "+14155552671"},
		{"12800138000", ""},  // 12x is not a mobile prefix
		{"1380013800", ""},   // 10 digits
		{"138001380001", ""}, // 12 digits
		{"0531-1234567", ""}, // landline
		{"+0123456789", ""},
		{"+12345", ""},
		{"+1234567890123456", ""},
		{"1380013800a", ""},
		{"", ""},
	})
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"chinese", " 张三 ", true},
		{"latin", "Anna Müller", true},
		{"empty", "  ", false},
		{"too long", strings.Repeat("名", MaxNameLength+1), false},
		{"longest", strings.Repeat("名", MaxNameLength), true},
		{"control", "张\x00三", false},
		{"bad utf8", "\xff\xfe", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ValidateName("name", tt.in)
			if tt.ok {
				wantKind(t, err, nil)
				if got != strings.TrimSpace(tt.in) {
					t.Fatalf("ValidateName = %q", got)
				}
				return
			}
			wantInvalid(t, err, "name")
		})
	}
}

func TestValidateDocument(t *testing.T) {
	good := residentID(t, "37130219900307123")
	bad := good[:17] + map[bool]string{true: "1", false: "0"}[good[17] == '0']
	tests := []struct {
		name, idType, number, field string
	}{
		{"good", idcard.ResidentID, good, ""},
		{"bad check", idcard.ResidentID, bad, "id_number"},
		{"bad date", idcard.ResidentID, residentID(t, "37130219990230123"), "id_number"},
		{"unknown type", "library_card", "12345", "id_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ValidateDocument("id_type", "id_number", tt.idType, tt.number, testNow)
			if tt.field == "" {
				wantKind(t, err, nil)
				if n != good {
					t.Fatalf("number = %q", n)
				}
				return
			}
			wantInvalid(t, err, tt.field)
			if strings.Contains(err.Error(), tt.number) {
				t.Fatalf("error %q holds the whole number", err)
			}
		})
	}
}

// TestValidateRegistrationListsEveryField: every bad field is reported at
// once, each as a FieldError under ErrInvalid.
func TestValidateRegistrationListsEveryField(t *testing.T) {
	_, err := ValidateRegistration(RegisterPerson{Name: "a\x00", IDType: "resident_id", IDNumber: "123", Phone: "x"}, time.Now())
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if got := fieldsOf(err); !slices.Equal(got, []string{"name", "id_number", "phone"}) {
		t.Fatalf("fields %v, want name, id_number and phone (%v)", got, err)
	}
	_, err = ValidateFamilyMember(uuid.New(), AddFamilyMember{Name: "", IDType: "passport", IDNumber: "", Relation: "cousin"}, time.Now())
	if got := fieldsOf(err); !slices.Equal(got, []string{"name", "id_number", "relation"}) {
		t.Fatalf("fields %v, want name, id_number and relation (%v)", got, err)
	}
}

// fieldsOf lists the fields of every FieldError in err's tree, in order.
func fieldsOf(err error) []string {
	var out []string
	for _, fe := range FieldErrors(err) {
		out = append(out, fe.Field)
	}
	return out
}

func TestDecideReleasePerson(t *testing.T) {
	gid, kid := uuid.New(), uuid.New()
	dependant := replayPerson(t, PersonRegistered{PersonID: kid, GuardianID: gid, Relation: RelationChild})
	citizen := replayPerson(t, PersonRegistered{PersonID: kid})
	reviewer := Actor{Role: RoleReviewer}
	ok := ReleasePerson{Reason: "owner checked in person"}
	tests := []struct {
		name  string
		p     Person
		actor Actor
		cmd   ReleasePerson
		kind  error
	}{
		{"a family registration", dependant, reviewer, ok, nil},
		{"an admin may", dependant, Actor{Role: RoleAdmin}, ok, nil},
		{"the guardian may not", dependant, Actor{Role: RolePerson, PersonID: gid}, ok, ErrForbidden},
		{"no reason", dependant, reviewer, ReleasePerson{}, ErrInvalid},
		{"a NUL in the reason", dependant, reviewer, ReleasePerson{Reason: "a\x00"}, ErrInvalid},
		{"a person who registered themself", citizen, reviewer, ok, ErrConflict},
		{"nobody", Person{}, reviewer, ok, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := DecideReleasePerson(tt.p, tt.actor, tt.cmd)
			wantEvent(t, evs, err, tt.kind, func(r PersonReleased) bool { return r.PersonID == kid && r.GuardianID == gid })
		})
	}
	// Replayed, a release leaves the document free for its owner.
	envs := history(t, "person.x", PersonRegistered{PersonID: kid, GuardianID: gid}, PersonReleased{PersonID: kid, GuardianID: gid, Reason: "x"})
	p, err := ReplayPerson(envs)
	if err != nil || p.Registered() || p.Dependant() {
		t.Fatalf("after a release: registered %v, dependant %v, %v", p.Registered(), p.Dependant(), err)
	}
	if evs, err := DecideRegisterPerson(p, Registration{PersonID: kid, Name: "郑乙", IDType: "resident_id", IDNumber: "x", Phone: "13800000001"}, func(s string) (Sealed, error) { return Sealed(s), nil }, plainOpener); err != nil || len(evs) != 1 {
		t.Fatalf("the owner's registration after a release: %v %v", evs, err)
	}
}
