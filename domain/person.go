package domain

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/domain/pii"
)

// Verification states of a person.
const (
	VerificationPending  = "pending"
	VerificationApproved = "approved"
	VerificationRejected = "rejected"
)

// Verification methods and results (VerifyPerson).
const (
	VerifyFace     = "face"
	VerifyManual   = "manual"
	VerifyApproved = "approved"
	VerifyRejected = "rejected"
)

// Relations a family member may have to their guardian.
const (
	RelationChild       = "child"
	RelationParent      = "parent"
	RelationSpouse      = "spouse"
	RelationGrandparent = "grandparent"
	RelationGrandchild  = "grandchild"
	RelationSibling     = "sibling"
	RelationOther       = "other"
)

// Relations returns every relation AddFamilyMember accepts.
func Relations() []string {
	return []string{RelationChild, RelationParent, RelationSpouse, RelationGrandparent,
		RelationGrandchild, RelationSibling, RelationOther}
}

// Limits on person input.
const (
	// MaxNameLength is the most characters (runes) a person's name may have.
	MaxNameLength = 64
	// MaxFamilyMembers is the most family members one guardian registers.
	MaxFamilyMembers = 10
)

// Person is the person aggregate, rebuilt only by replaying its events
// through apply (ReplayPerson). A family member is a person of their own
// whose guardian is set.
type Person struct {
	root
	registered   bool
	registeredBy uuid.UUID // id of the PersonRegistered event
	registeredAt uint64    // its position
	verification string
	// erased is set by PersonErased: the person's data key is destroyed and
	// nothing may be done in their name again.
	erased   bool
	erasedBy uuid.UUID // id of the PersonErased event
	erasedAt uint64    // its position
	// erasure is the PersonErased event (who erased them and why, and the
	// family members erased with them).
	erasure PersonErased
	// registration is the PersonRegistered event as stored (its personal
	// fields sealed): the document, the guardian and relation of a family
	// member, and what tells a retry from another registration that reuses
	// its event id.
	registration PersonRegistered
}

// ReplayPerson rebuilds a person from their events, in log order.
func ReplayPerson(events []Envelope) (Person, error) {
	return replay(events, (*Person).apply)
}

// apply folds one event (e, decoded as ev) into the person. It is the only
// way a Person changes.
func (p *Person) apply(e Envelope, ev Event) error {
	switch ev := ev.(type) {
	case *PersonRegistered:
		p.id = ev.PersonID
		p.registered = true
		p.registeredBy = e.ID
		p.registeredAt = e.Position
		p.verification = VerificationPending
		p.registration = *ev
	case *PersonReleased:
		// The family registration is void; its history stays in the log.
		*p = Person{root: p.root}
	case *PersonErased:
		p.erased, p.erasedBy, p.erasedAt, p.erasure = true, e.ID, e.Position, *ev
	case *PersonVerified:
		if ev.Result == VerifyApproved {
			p.verification = VerificationApproved
		} else {
			p.verification = VerificationRejected
		}
	default:
		return notPartOf(e, "a person")
	}
	p.version = e.Position
	return nil
}

// Registered reports whether the person has registered.
func (p Person) Registered() bool { return p.registered }

// IDType returns the type of the person's ID document.
func (p Person) IDType() string { return p.registration.IDType }

// IDHash returns the keyed hash of the person's ID document.
func (p Person) IDHash() string { return p.registration.IDHash }

// GuardianID returns the guardian of a family member (zero for a citizen
// who registered themself).
func (p Person) GuardianID() uuid.UUID { return p.registration.GuardianID }

// Relation returns a family member's relation to their guardian.
func (p Person) Relation() string { return p.registration.Relation }

// Dependant reports whether the person is a family member under a guardian.
func (p Person) Dependant() bool { return p.GuardianID() != uuid.Nil }

// Erased reports whether the person was erased (PersonErased).
func (p Person) Erased() bool { return p.erased }

// ErasedBy returns the event id and position of the person's erasure (zero
// before it).
func (p Person) ErasedBy() (eventID uuid.UUID, position uint64) { return p.erasedBy, p.erasedAt }

// ErasedDependants returns the family members erased with the person.
func (p Person) ErasedDependants() []uuid.UUID { return p.erasure.Dependants }

// Verification returns pending, approved or rejected ("" before registration).
func (p Person) Verification() string { return p.verification }

// Sealer seals one personal field with its person's data key. The
// application layer fetches the key on the first call only, so a decide
// function that refuses before sealing makes no key.
type Sealer func(plaintext string) (Sealed, error)

// Opener opens a sealed field with its person's data key, so a decide
// function can compare what was stored with what is asked again.
type Opener func(Sealed) (string, error)

// Registration is a validated registration, a citizen's or a family
// member's: canonical fields, not sealed yet. ValidateRegistration and
// ValidateFamilyMember make one; PersonID and IDHash are filled in by the
// caller from the document's keyed hash.
type Registration struct {
	// EventID is the client's event id (zero: none): the same id again is
	// a retry of the same registration.
	EventID  uuid.UUID
	PersonID uuid.UUID
	IDHash   string
	Name     string
	IDType   string
	IDNumber string
	Phone    string // "" for a family member
	// GuardianID and Relation are set for a family member.
	GuardianID uuid.UUID
	Relation   string
}

// ValidateRegistration checks a citizen's registration and returns its
// canonical fields; every bad field is reported at once.
func ValidateRegistration(cmd RegisterPerson, now time.Time) (Registration, error) {
	var errs fieldErrs
	r := validateHolder(&errs, cmd.Name, cmd.IDType, cmd.IDNumber, now)
	r.EventID = cmd.EventID
	r.Phone = errs.text(ValidatePhone(cmd.Phone))
	return r, errs.err()
}

// ValidateFamilyMember checks a family member's registration under
// guardian and returns its canonical fields; every bad field is reported at
// once.
func ValidateFamilyMember(guardian uuid.UUID, cmd AddFamilyMember, now time.Time) (Registration, error) {
	var errs fieldErrs
	r := validateHolder(&errs, cmd.Name, cmd.IDType, cmd.IDNumber, now)
	if !ValidRelation(cmd.Relation) {
		errs.add(Invalid("relation", "must be one of %s", strings.Join(Relations(), ", ")))
	}
	r.GuardianID, r.Relation = guardian, cmd.Relation
	return r, errs.err()
}

// validateHolder checks the name and document of a person being
// registered, into errs.
func validateHolder(errs *fieldErrs, name, idType, idNumber string, now time.Time) Registration {
	return Registration{
		Name:     errs.text(ValidateName("name", name)),
		IDType:   idType,
		IDNumber: errs.text(ValidateDocument("id_type", "id_number", idType, idNumber, now)),
	}
}

// DecideRegisterPerson decides a registration (a citizen's, or a family
// member's when r.GuardianID is set) on the aggregate of the document's
// person id, sealing the personal fields with seal. An event id names one
// fact: the same registration again (r.EventID registered p, with the same
// name, phone and guardian, compared through open) decides nothing, it is a
// retry; anything else under that event id is a conflict.
func DecideRegisterPerson(p Person, r Registration, seal Sealer, open Opener) ([]Event, error) {
	if p.erased {
		return nil, ErasedDocument(r.IDType)
	}
	if p.registered {
		if r.EventID != uuid.Nil && r.EventID == p.registeredBy {
			return nil, sameRegistration(p.registration, r, open)
		}
		return nil, AlreadyRegistered(r.IDType)
	}
	reg := PersonRegistered{PersonID: r.PersonID, IDType: r.IDType, IDHash: r.IDHash, GuardianID: r.GuardianID, Relation: r.Relation}
	var err error
	if reg.Name, err = seal(r.Name); err != nil {
		return nil, err
	}
	if reg.IDNumber, err = seal(r.IDNumber); err != nil {
		return nil, err
	}
	if r.Phone != "" {
		if reg.Phone, err = seal(r.Phone); err != nil {
			return nil, err
		}
	}
	return []Event{reg}, nil
}

// sameRegistration reports, as a conflict, how r differs from stored, the
// registration that used r's event id; nil when r is the same registration.
// The document is the same (it names the aggregate); the sealed name and
// phone are opened to compare.
func sameRegistration(stored PersonRegistered, r Registration, open Opener) error {
	conflict := Errorf(ErrConflict, "event id %s was already used for another registration", r.EventID)
	if stored.IDType != r.IDType || stored.GuardianID != r.GuardianID || stored.Relation != r.Relation {
		return conflict
	}
	for _, f := range []struct {
		sealed Sealed
		want   string
	}{{stored.Name, r.Name}, {stored.Phone, r.Phone}} {
		if f.sealed == "" && f.want == "" {
			continue
		}
		got, err := open(f.sealed)
		if err != nil {
			return err
		}
		if got != f.want {
			return conflict
		}
	}
	return nil
}

// DecideVerifyPerson decides the outcome of a face check or manual review
// (reviewers and admins).
func DecideVerifyPerson(p Person, actor Actor, cmd VerifyPerson) ([]Event, error) {
	if !Reviewers.Allow(actor) {
		return nil, Errorf(ErrForbidden, "only a reviewer or an admin may verify a person")
	}
	if err := ValidateVerify(cmd); err != nil {
		return nil, err
	}
	if err := p.mayChange(); err != nil {
		return nil, err
	}
	if p.verification == VerificationApproved {
		return nil, Errorf(ErrConflict, "person %s is already verified", p.id)
	}
	return []Event{PersonVerified{PersonID: p.id, Method: cmd.Method, Result: cmd.Result}}, nil
}

// mayChange refuses a change of p unless p is registered and not erased.
func (p Person) mayChange() error {
	if !p.registered {
		return Errorf(ErrNotFound, "person not registered")
	}
	if p.erased {
		return WasErased(p.id)
	}
	return nil
}

// ReleasePerson asks to void a family member's registration of a document
// its owner claims (manual review at a service desk).
type ReleasePerson struct {
	Reason string
}

// DecideReleasePerson decides a reviewer's release of p, a family member's
// registration, so that the document's owner can register it: the way a
// document squatted by a stranger's "family" registration is reclaimed.
// Only a family member's registration is released (a person who registered
// themself keeps theirs), and the reviewer gives the reason.
func DecideReleasePerson(p Person, actor Actor, cmd ReleasePerson) ([]Event, error) {
	if !Reviewers.Allow(actor) {
		return nil, Errorf(ErrForbidden, "only a reviewer or an admin may release a registration")
	}
	reason, err := ValidateAuditedReason(cmd.Reason, true)
	if err != nil {
		return nil, err
	}
	if err := p.mayChange(); err != nil {
		return nil, err
	}
	if !p.Dependant() {
		return nil, Errorf(ErrConflict, "person %s registered themself: only a family member's registration is released", p.id)
	}
	return []Event{PersonReleased{PersonID: p.id, GuardianID: p.GuardianID(), Reason: reason}}, nil
}

// DecideAddFamilyMember decides whether guardian, who has family members
// already, may register member (the aggregate of the member's document)
// with r, and seals r. A guardian registers at most MaxFamilyMembers.
func DecideAddFamilyMember(guardian, member Person, family int, r Registration, seal Sealer, open Opener) ([]Event, error) {
	if !guardian.registered {
		return nil, Errorf(ErrNotFound, "guardian not registered")
	}
	if guardian.Dependant() {
		return nil, Errorf(ErrConflict, "person %s is a family member and cannot register family members", guardian.id)
	}
	if err := MayActAsSelf(guardian, "register family members"); err != nil {
		return nil, err
	}
	if r.GuardianID != guardian.id {
		return nil, Errorf(ErrForbidden, "family member must be registered under the guardian")
	}
	if family >= MaxFamilyMembers && !(member.registered && r.EventID != uuid.Nil && r.EventID == member.registeredBy) {
		return nil, Errorf(ErrConflict, "a guardian registers at most %d family members", MaxFamilyMembers)
	}
	return DecideRegisterPerson(member, r, seal, open)
}

// ValidateVerify checks a verification's method and result.
func ValidateVerify(cmd VerifyPerson) error {
	if err := oneOf("method", cmd.Method, VerifyFace, VerifyManual); err != nil {
		return err
	}
	return oneOf("result", cmd.Result, VerifyApproved, VerifyRejected)
}

// ValidateName checks a person's real name and returns it trimmed.
func ValidateName(field, name string) (string, error) {
	return Text(field, name, MaxNameLength, true)
}

// ValidatePhone checks a phone number and returns its canonical form: an
// 11-digit mainland mobile number (1[3-9] and 9 digits), or an international
// number "+<country code><number>" of 8 to 15 digits in all. Spaces and
// dashes are ignored.
func ValidatePhone(phone string) (string, error) {
	p := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(phone))
	if p == "" {
		return "", Invalid("phone", "is required")
	}
	if strings.HasPrefix(p, "+") {
		d := p[1:]
		if len(d) < 8 || len(d) > 15 || d[0] == '0' || !digits(d) {
			return "", Invalid("phone", "an international number must be + and 8 to 15 digits")
		}
		return p, nil
	}
	if len(p) != 11 || p[0] != '1' || p[1] < '3' || !digits(p) {
		return "", Invalid("phone", "must be an 11-digit mainland mobile number or +country code and number")
	}
	return p, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ValidateDocument checks an ID document and returns its canonical number.
// The error is a FieldError on idType's or number's field and never holds
// the number.
func ValidateDocument(typeField, numberField, idType, number string, now time.Time) (string, error) {
	n, err := idcard.Validate(idType, number, now)
	if err != nil {
		var e *idcard.Error
		if errors.As(err, &e) {
			if e.Field == "id_type" {
				return "", Invalid(typeField, "%s", e.Reason)
			}
			return "", Invalid(numberField, "%s", e.Reason)
		}
		return "", Invalid(numberField, "is not valid")
	}
	return n, nil
}

// ErasePerson asks to erase a person (an admin's command): their data key
// is destroyed, and with it their name, ID number, phone and every other
// sealed field; the read models forget them.
type ErasePerson struct {
	Reason string
}

// DecideErasePerson decides actor's erasure of p with the family members
// registered under p (dependants: erased with a guardian, each by an event
// of their own that guardian names). Admins only; the reason is required.
// A person already erased decides nothing: the erasure is idempotent.
func DecideErasePerson(p Person, actor Actor, cmd ErasePerson, dependants []uuid.UUID, guardian uuid.UUID) ([]Event, error) {
	if err := MayErasePerson(actor); err != nil {
		return nil, err
	}
	reason, err := ValidateAuditedReason(cmd.Reason, true)
	if err != nil {
		return nil, err
	}
	if !p.registered {
		return nil, Errorf(ErrNotFound, "person not registered")
	}
	if p.erased {
		return nil, nil
	}
	return []Event{PersonErased{PersonID: p.id, By: actor.Subject, Reason: reason,
		Dependants: dependants, Guardian: guardian}}, nil
}

// DecideEraseWithGuardian decides the erasure of member, a family member of
// guardian, once guardian was erased: a family member registered while
// their guardian's erasure ran (after the erasure had read the family list)
// is erased by the erasure reaction, on the guardian's erasure's authority
// (the same by and reason). Nothing to decide when guardian is not erased,
// or member is not (any more) a registered family member of theirs, or is
// erased already.
func DecideEraseWithGuardian(member, guardian Person) ([]Event, error) {
	if !guardian.erased || !member.registered || member.erased || member.GuardianID() != guardian.id {
		return nil, nil
	}
	g := guardian.erasure
	return []Event{PersonErased{PersonID: member.id, By: g.By, Reason: g.Reason, Guardian: guardian.id}}, nil
}

// WasErased is the refusal of anything done in an erased person's name.
func WasErased(id uuid.UUID) error {
	return Errorf(ErrConflict, "person %s was erased: nothing can be done in their name any more", id)
}

// ErasedDocument is the refusal of a registration of a document whose
// registration was erased (see README, "Erasure").
func ErasedDocument(idType string) error {
	return Errorf(ErrConflict, "the registration of this %s document was erased; it cannot be registered again", idType)
}

func AlreadyRegistered(idType string) error {
	return Errorf(ErrConflict, "this %s document is already registered", idType)
}

func ValidRelation(r string) bool {
	for _, v := range Relations() {
		if r == v {
			return true
		}
	}
	return false
}

// SealField seals plaintext with a person's data key.
func SealField(key []byte, plaintext string) (Sealed, error) {
	s, err := pii.Seal(key, plaintext)
	if err != nil {
		return "", fmt.Errorf("seal personal data: %w", err)
	}
	return Sealed(s), nil
}

// RegisteredBy returns the event id and position of the person's
// registration (zero before it).
func (p Person) RegisteredBy() (eventID uuid.UUID, position uint64) {
	return p.registeredBy, p.registeredAt
}
