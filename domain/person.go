package domain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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
)

// Person is the person aggregate, rebuilt only by replaying its events
// through apply (ReplayPerson). A family member is a person of their own
// whose guardian is set.
type Person struct {
	id           uuid.UUID
	version      uint64
	registered   bool
	registeredBy uuid.UUID // id of the PersonRegistered event
	registeredAt uint64    // its position
	idType       string
	idHash       string
	guardianID   uuid.UUID
	relation     string
	verification string
}

// ReplayPerson rebuilds a person from their events, in log order.
func ReplayPerson(events []Envelope) (Person, error) {
	var p Person
	for _, e := range events {
		if err := p.apply(e); err != nil {
			return Person{}, err
		}
	}
	return p, nil
}

// apply folds one event into the person. It is the only way a Person changes.
func (p *Person) apply(e Envelope) error {
	ev, err := Decode(e)
	if err != nil {
		return fmt.Errorf("replay %s: %w", e.Aggregate, err)
	}
	switch ev := ev.(type) {
	case *PersonRegistered:
		p.id = ev.PersonID
		p.registered = true
		p.registeredBy = e.ID
		p.registeredAt = e.Position
		p.idType = ev.IDType
		p.idHash = ev.IDHash
		p.guardianID = ev.GuardianID
		p.relation = ev.Relation
		p.verification = VerificationPending
	case *PersonVerified:
		if ev.Result == VerifyApproved {
			p.verification = VerificationApproved
		} else {
			p.verification = VerificationRejected
		}
	default:
		return fmt.Errorf("replay %s: event %s of type %s does not belong to a person: %w",
			e.Aggregate, e.ID, e.Type, ErrUnknownEvent)
	}
	p.version = e.Position
	return nil
}

// ID returns the person's id (zero before registration).
func (p Person) ID() uuid.UUID { return p.id }

// Version returns the position of the person's last event (0: none).
func (p Person) Version() uint64 { return p.version }

// Registered reports whether the person has registered.
func (p Person) Registered() bool { return p.registered }

// IDType returns the type of the person's ID document.
func (p Person) IDType() string { return p.idType }

// IDHash returns the keyed hash of the person's ID document.
func (p Person) IDHash() string { return p.idHash }

// GuardianID returns the guardian of a family member (zero for a citizen
// who registered themself).
func (p Person) GuardianID() uuid.UUID { return p.guardianID }

// Relation returns a family member's relation to their guardian.
func (p Person) Relation() string { return p.relation }

// Dependant reports whether the person is a family member under a guardian.
func (p Person) Dependant() bool { return p.guardianID != uuid.Nil }

// Verification returns pending, approved or rejected ("" before registration).
func (p Person) Verification() string { return p.verification }

// decideRegisterPerson decides a registration (or a family member's, when
// reg.GuardianID is set) on the aggregate of the document's person id. The
// personal fields in reg are already sealed.
func decideRegisterPerson(p Person, reg PersonRegistered) ([]Event, error) {
	if p.registered {
		return nil, Errorf(ErrConflict, "this %s document is already registered", reg.IDType)
	}
	return []Event{reg}, nil
}

// decideVerifyPerson decides the outcome of a face check or manual review.
func decideVerifyPerson(p Person, cmd VerifyPerson) ([]Event, error) {
	if err := validateVerify(cmd); err != nil {
		return nil, err
	}
	if !p.registered {
		return nil, Errorf(ErrNotFound, "person not registered")
	}
	if p.verification == VerificationApproved {
		return nil, Errorf(ErrConflict, "person %s is already verified", p.id)
	}
	return []Event{PersonVerified{PersonID: p.id, Method: cmd.Method, Result: cmd.Result}}, nil
}

// decideAddFamilyMember decides whether guardian may register member (the
// aggregate of the member's document); reg is the member's sealed registration.
func decideAddFamilyMember(guardian, member Person, reg PersonRegistered) ([]Event, error) {
	if !guardian.registered {
		return nil, Errorf(ErrNotFound, "guardian not registered")
	}
	if guardian.Dependant() {
		return nil, Errorf(ErrConflict, "person %s is a family member and cannot register family members", guardian.id)
	}
	if reg.GuardianID != guardian.id {
		return nil, Errorf(ErrForbidden, "family member must be registered under the guardian")
	}
	return decideRegisterPerson(member, reg)
}

func validateVerify(cmd VerifyPerson) error {
	switch cmd.Method {
	case VerifyFace, VerifyManual:
	default:
		return Invalid("method", "must be face or manual")
	}
	switch cmd.Result {
	case VerifyApproved, VerifyRejected:
	default:
		return Invalid("result", "must be approved or rejected")
	}
	return nil
}

// validateName checks a person's real name and returns it trimmed.
func validateName(field, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", Invalid(field, "is required")
	}
	if !utf8.ValidString(name) {
		return "", Invalid(field, "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n > MaxNameLength {
		return "", Invalid(field, "has %d characters, at most %d allowed", n, MaxNameLength)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", Invalid(field, "contains a control character")
		}
	}
	return name, nil
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

// validateDocument checks an ID document and returns its canonical number.
// The error is a FieldError on idType's or number's field and never holds
// the number.
func validateDocument(typeField, numberField, idType, number string, now time.Time) (string, error) {
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

// RegisterPerson registers a citizen with a real name, an ID document and a
// phone. Anyone may call it. The person id is derived from the document's
// keyed hash, so the same document registering twice meets the same
// aggregate and is a conflict. A retry with the same EventID returns the
// original result with Duplicate set.
func (l *Ledger) RegisterPerson(ctx context.Context, actor Actor, cmd RegisterPerson) (Result, error) {
	now := l.now()
	name, err := validateName("name", cmd.Name)
	if err != nil {
		return Result{}, err
	}
	number, err := validateDocument("id_type", "id_number", cmd.IDType, cmd.IDNumber, now)
	if err != nil {
		return Result{}, err
	}
	phone, err := ValidatePhone(cmd.Phone)
	if err != nil {
		return Result{}, err
	}
	hash := l.Hasher.IDHash(cmd.IDType, number)
	id := pii.PersonID(hash)
	agg := PersonAggregate(id)
	p, version, err := l.loadPerson(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if cmd.EventID != uuid.Nil && p.registered && p.registeredBy == cmd.EventID {
		return Result{ID: id, EventID: cmd.EventID, Position: p.registeredAt, Duplicate: true}, nil
	}
	if p.registered {
		return Result{}, errAlreadyRegistered(cmd.IDType)
	}
	key, err := l.Keys.Key(ctx, id, true)
	if err != nil {
		return Result{}, fmt.Errorf("register person: data key: %w", err)
	}
	reg := PersonRegistered{PersonID: id, IDType: cmd.IDType, IDHash: hash}
	if reg.Name, err = seal(key, name); err != nil {
		return Result{}, err
	}
	if reg.IDNumber, err = seal(key, number); err != nil {
		return Result{}, err
	}
	if reg.Phone, err = seal(key, phone); err != nil {
		return Result{}, err
	}
	events, err := decideRegisterPerson(p, reg)
	if err != nil {
		return Result{}, err
	}
	// Registration is public: an anonymous caller is recorded as the new person.
	subject := actor.Subject
	if subject == "" {
		subject = "person:" + id.String()
	}
	res, err := l.append(ctx, agg, version, Meta{ID: cmd.EventID, Actor: subject}, now, events)
	if errors.Is(err, ErrConflict) {
		return Result{}, errAlreadyRegistered(cmd.IDType)
	}
	if err != nil {
		return Result{}, err
	}
	res.ID = id
	return res, nil
}

func errAlreadyRegistered(idType string) error {
	return Errorf(ErrConflict, "this %s document is already registered", idType)
}

// VerifyPerson records the outcome of a face check or a manual review of a
// person's identity. Reviewers and admins only; a person already approved
// cannot be verified again (conflict), a rejected one can.
func (l *Ledger) VerifyPerson(ctx context.Context, actor Actor, personID uuid.UUID, cmd VerifyPerson) (Result, error) {
	if actor.Role != RoleReviewer && actor.Role != RoleAdmin {
		return Result{}, Errorf(ErrForbidden, "only a reviewer or an admin may verify a person")
	}
	if err := validateVerify(cmd); err != nil {
		return Result{}, err
	}
	p, version, err := l.loadPerson(ctx, personID)
	if err != nil {
		return Result{}, err
	}
	if !p.registered {
		return Result{}, Errorf(ErrNotFound, "person %s not registered", personID)
	}
	events, err := decideVerifyPerson(p, cmd)
	if err != nil {
		return Result{}, err
	}
	res, err := l.append(ctx, PersonAggregate(personID), version, Meta{Actor: actor.Subject}, l.now(), events)
	if err != nil {
		return Result{}, err
	}
	res.ID = personID
	return res, nil
}

// AddFamilyMember registers a dependant (no phone) under a guardian. Only
// the guardian themself may do it, and a family member cannot be a
// guardian. The member becomes a person of their own, whose id is derived
// from their document like any other person's.
func (l *Ledger) AddFamilyMember(ctx context.Context, actor Actor, guardianID uuid.UUID, cmd AddFamilyMember) (Result, error) {
	if actor.Role != RolePerson || actor.PersonID != guardianID {
		return Result{}, Errorf(ErrForbidden, "only the guardian may add their family members")
	}
	now := l.now()
	name, err := validateName("name", cmd.Name)
	if err != nil {
		return Result{}, err
	}
	number, err := validateDocument("id_type", "id_number", cmd.IDType, cmd.IDNumber, now)
	if err != nil {
		return Result{}, err
	}
	if !validRelation(cmd.Relation) {
		return Result{}, Invalid("relation", "must be one of %s", strings.Join(Relations(), ", "))
	}
	guardian, _, err := l.loadPerson(ctx, guardianID)
	if err != nil {
		return Result{}, err
	}
	hash := l.Hasher.IDHash(cmd.IDType, number)
	id := pii.PersonID(hash)
	member, version, err := l.loadPerson(ctx, id)
	if err != nil {
		return Result{}, err
	}
	// Decide once before sealing, so no data key is made for a refused member.
	probe := PersonRegistered{PersonID: id, IDType: cmd.IDType, GuardianID: guardianID}
	if _, err := decideAddFamilyMember(guardian, member, probe); err != nil {
		return Result{}, err
	}
	key, err := l.Keys.Key(ctx, id, true)
	if err != nil {
		return Result{}, fmt.Errorf("add family member: data key: %w", err)
	}
	reg := PersonRegistered{PersonID: id, IDType: cmd.IDType, IDHash: hash, GuardianID: guardianID, Relation: cmd.Relation}
	if reg.Name, err = seal(key, name); err != nil {
		return Result{}, err
	}
	if reg.IDNumber, err = seal(key, number); err != nil {
		return Result{}, err
	}
	events, err := decideAddFamilyMember(guardian, member, reg)
	if err != nil {
		return Result{}, err
	}
	res, err := l.append(ctx, PersonAggregate(id), version, Meta{Actor: actor.Subject}, now, events)
	if errors.Is(err, ErrConflict) {
		return Result{}, errAlreadyRegistered(cmd.IDType)
	}
	if err != nil {
		return Result{}, err
	}
	res.ID = id
	return res, nil
}

func validRelation(r string) bool {
	for _, v := range Relations() {
		if r == v {
			return true
		}
	}
	return false
}

func seal(key []byte, plaintext string) (Sealed, error) {
	s, err := pii.Seal(key, plaintext)
	if err != nil {
		return "", fmt.Errorf("seal personal data: %w", err)
	}
	return Sealed(s), nil
}
