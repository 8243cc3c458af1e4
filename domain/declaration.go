package domain

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Declaration kinds, as used on the wire.
const (
	// DeclarationArrival is an arrival declaration (入临申报).
	DeclarationArrival = "arrival"
	// DeclarationTruck is a truck pass (货车畅行).
	DeclarationTruck = "truck"
)

// Declaration statuses.
const (
	DeclarationPending  = "pending"
	DeclarationApproved = "approved"
	DeclarationRejected = "rejected"
)

// Limits on declarations.
const (
	// MaxOriginLength bounds an arrival's origin (runes).
	MaxOriginLength = 100
	// MaxParkLength bounds a truck pass's logistics park (runes).
	MaxParkLength = 100
	// MaxArrivalDays is how far before or after today an arrival date may be.
	MaxArrivalDays = 30
	// TruckNATValidity is how old a truck driver's nucleic-acid proof may be.
	TruckNATValidity = 24 * time.Hour
	// MaxFamilyPerDeclaration is the most family members one arrival declares.
	MaxFamilyPerDeclaration = 20
)

// declarationNamespace is the UUIDv5 namespace of declaration ids derived
// from a client's event id, so that a retried submission meets the same
// aggregate.
var declarationNamespace = uuid.MustParse("3c0f4d52-7a1e-4b8e-9f26-2d5c8e1a7b43")

// DeclarationIDFor returns the declaration id a submission with client event
// id eventID creates.
func DeclarationIDFor(eventID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(declarationNamespace, eventID[:])
}

// DeclareArrival declares an arrival (入临申报) for the caller and the family
// members (dependants) whose guardian the caller is.
type DeclareArrival struct {
	// EventID, when set, makes a retry idempotent: the declaration id is
	// derived from it.
	EventID             uuid.UUID
	ArrivalDate         string // YYYY-MM-DD
	Origin              string
	DestinationDistrict string
	NATResult           string // negative | positive | none
	NATAt               time.Time
	FamilyMemberIDs     []uuid.UUID
}

// DeclareTruckPass files a truck pass (货车畅行) for the calling driver.
type DeclareTruckPass struct {
	// EventID, when set, makes a retry idempotent.
	EventID          uuid.UUID
	PlateNumber      string
	NATProofAt       time.Time
	ItineraryOK      bool
	HealthCodeColour string
	LogisticsPark    string
	// District is the logistics park's 6-digit district: the reviewer's.
	District     string
	ContactName  string
	ContactPhone string
}

// ReviewDeclaration approves or rejects a pending declaration.
type ReviewDeclaration struct {
	Decision string // approve | reject
	Reason   string // required to reject
}

// Declaration is the declaration aggregate (arrival or truck pass), rebuilt
// only by replaying its events through apply (ReplayDeclaration).
type Declaration struct {
	root
	declared   bool
	declaredBy uuid.UUID // id of the declaring event
	declaredAt uint64    // its position
	kind       string
	declarant  uuid.UUID
	family     []uuid.UUID
	district   string
	status     string
	queued     bool
	reason     string
	// declaration is the ArrivalDeclared or TruckPassDeclared event as
	// stored, to tell a retry from another declaration reusing its id.
	declaration Event
}

// ReplayDeclaration rebuilds a declaration from its events, in log order.
func ReplayDeclaration(events []Envelope) (Declaration, error) {
	return replay(events, (*Declaration).apply)
}

// apply folds one event (e, decoded as ev) into the declaration. It is the
// only way a Declaration changes.
func (d *Declaration) apply(e Envelope, ev Event) error {
	switch ev := ev.(type) {
	case *ArrivalDeclared:
		d.declare(e, ev.DeclarationID, DeclarationArrival, ev.PersonID, ev.DestinationDistrict)
		d.family = slices.Clone(ev.FamilyMemberIDs)
		d.declaration = *ev
	case *TruckPassDeclared:
		d.declare(e, ev.DeclarationID, DeclarationTruck, ev.PersonID, ev.District)
		d.declaration = *ev
	case *DeclarationQueued:
		d.queued = true
	case *DeclarationReviewed:
		d.status = ReviewedStatus(ev.Decision, DeclarationApproved, DeclarationRejected)
		d.reason = ev.Reason
	default:
		return notPartOf(e, "a declaration")
	}
	d.version = e.Position
	return nil
}

func (d *Declaration) declare(e Envelope, id uuid.UUID, kind string, declarant uuid.UUID, district string) {
	d.id, d.kind, d.declarant, d.district = id, kind, declarant, district
	d.declared, d.declaredBy, d.declaredAt = true, e.ID, e.Position
	d.status = DeclarationPending
}

// Exists reports whether the declaration was submitted.
func (d Declaration) Exists() bool { return d.declared }

// Kind returns arrival or truck.
func (d Declaration) Kind() string { return d.kind }

// DeclarantID returns the person who submitted it.
func (d Declaration) DeclarantID() uuid.UUID { return d.declarant }

// FamilyMemberIDs returns the family members an arrival declaration covers.
func (d Declaration) FamilyMemberIDs() []uuid.UUID { return slices.Clone(d.family) }

// PersonIDs returns the persons the declaration is about: the declarant,
// then the family members it covers (none before it was submitted).
func (d Declaration) PersonIDs() []uuid.UUID {
	if !d.declared {
		return nil
	}
	return append([]uuid.UUID{d.declarant}, d.family...)
}

// District returns the district whose reviewers review it.
func (d Declaration) District() string { return d.district }

// Status returns pending, approved or rejected ("" before submission).
func (d Declaration) Status() string { return d.status }

// Queued reports whether it joined its district's review queue.
func (d Declaration) Queued() bool { return d.queued }

// Reason returns the reviewer's reason, if any.
func (d Declaration) Reason() string { return d.reason }

// provinces are the one-character province abbreviations that start a
// mainland licence plate.
const provinces = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

// plateLetter reports whether r may stand in a plate's letter positions:
// A-Z without I and O, which plates never use (they read as 1 and 0).
func plateLetter(r rune) bool { return r >= 'A' && r <= 'Z' && r != 'I' && r != 'O' }

func plateDigit(r rune) bool { return r >= '0' && r <= '9' }

func plateAlnum(r rune) bool { return plateLetter(r) || plateDigit(r) }

// ValidatePlate checks a mainland licence plate and returns its canonical
// form (upper case, without spaces, dots or dashes): a province
// abbreviation, the issuing authority's letter, then either five letters or
// digits (the last may be 挂 for a trailer, 学, 警, 港 or 澳), or a new-energy
// number of six: D or F and five more ending in four digits (small
// vehicles), or five digits then D or F (large vehicles, such as trucks).
func ValidatePlate(plate string) (string, error) {
	p := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '·', '•', '.', '-':
			return -1
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, plate)
	if p == "" {
		return "", Invalid("plate_number", "is required")
	}
	rs := []rune(p)
	bad := Invalid("plate_number", "is not a mainland licence plate (e.g. 鲁Q12345, 鲁Q1234挂 or 鲁Q12345D)")
	if len(rs) < 7 || len(rs) > 8 || !strings.ContainsRune(provinces, rs[0]) || !plateLetter(rs[1]) {
		return "", bad
	}
	body := rs[2:]
	switch len(body) {
	case 5:
		for _, r := range body[:4] {
			if !plateAlnum(r) {
				return "", bad
			}
		}
		if last := body[4]; !plateAlnum(last) && !strings.ContainsRune("挂学警港澳", last) {
			return "", bad
		}
	case 6:
		small := (body[0] == 'D' || body[0] == 'F') && plateAlnum(body[1]) &&
			plateDigit(body[2]) && plateDigit(body[3]) && plateDigit(body[4]) && plateDigit(body[5])
		large := plateDigit(body[0]) && plateDigit(body[1]) && plateDigit(body[2]) && plateDigit(body[3]) &&
			plateDigit(body[4]) && (body[5] == 'D' || body[5] == 'F')
		if !small && !large {
			return "", bad
		}
	}
	return p, nil
}

// ValidateArrival checks an arrival declaration and returns it normalised.
func ValidateArrival(cmd DeclareArrival, now time.Time, skew time.Duration) (DeclareArrival, error) {
	var errs fieldErrs
	if date, err := time.Parse(time.DateOnly, strings.TrimSpace(cmd.ArrivalDate)); err != nil {
		errs.add(Invalid("arrival_date", "must be a date as YYYY-MM-DD"))
	} else {
		cmd.ArrivalDate = date.Format(time.DateOnly)
		today, _ := time.Parse(time.DateOnly, now.Format(time.DateOnly))
		if d := date.Sub(today); d > MaxArrivalDays*24*time.Hour || d < -MaxArrivalDays*24*time.Hour {
			errs.add(Invalid("arrival_date", "must be within %d days of today", MaxArrivalDays))
		}
	}
	cmd.Origin = errs.text(validText("origin", cmd.Origin, MaxOriginLength))
	if cmd.DestinationDistrict = strings.TrimSpace(cmd.DestinationDistrict); !ValidDistrict(cmd.DestinationDistrict) {
		errs.add(Invalid("destination_district", "must be a 6-digit administrative division code"))
	}
	switch cmd.NATResult {
	case NATNegative, NATPositive:
		switch {
		case cmd.NATAt.IsZero():
			errs.add(Invalid("nat_at", "is required with a %s result", cmd.NATResult))
		case cmd.NATAt.After(now.Add(skew)):
			errs.add(Invalid("nat_at", "is in the future"))
		}
		cmd.NATAt = cmd.NATAt.UTC()
	case NATNone:
		cmd.NATAt = time.Time{}
	default:
		errs.add(Invalid("nat_result", "must be negative, positive or none"))
	}
	if len(cmd.FamilyMemberIDs) > MaxFamilyPerDeclaration {
		errs.add(Invalid("family_member_ids", "has %d members, at most %d allowed", len(cmd.FamilyMemberIDs), MaxFamilyPerDeclaration))
	} else {
		seen := make(map[uuid.UUID]bool, len(cmd.FamilyMemberIDs))
		for _, id := range cmd.FamilyMemberIDs {
			if id == uuid.Nil || seen[id] {
				errs.add(Invalid("family_member_ids", "must be distinct person ids"))
				break
			}
			seen[id] = true
		}
	}
	return cmd, errs.err()
}

// ValidateTruckPass checks a truck pass and returns it normalised. The
// nucleic-acid proof must be at most TruckNATValidity old and not in the
// future beyond skew.
func ValidateTruckPass(cmd DeclareTruckPass, now time.Time, skew time.Duration) (DeclareTruckPass, error) {
	var errs fieldErrs
	cmd.PlateNumber = errs.text(ValidatePlate(cmd.PlateNumber))
	switch {
	case cmd.NATProofAt.IsZero():
		errs.add(Invalid("nat_proof_at", "is required"))
	case cmd.NATProofAt.After(now.Add(skew)):
		errs.add(Invalid("nat_proof_at", "is in the future"))
	case now.Sub(cmd.NATProofAt) > TruckNATValidity:
		errs.add(Invalid("nat_proof_at", "is older than %d hours: a truck pass needs a nucleic-acid test from the last %d hours",
			int(TruckNATValidity/time.Hour), int(TruckNATValidity/time.Hour)))
	}
	cmd.NATProofAt = cmd.NATProofAt.UTC()
	errs.add(oneOf("health_code_colour", cmd.HealthCodeColour, ColourGreen, ColourYellow, ColourRed))
	cmd.LogisticsPark = errs.text(validText("logistics_park", cmd.LogisticsPark, MaxParkLength))
	if cmd.District = strings.TrimSpace(cmd.District); !ValidDistrict(cmd.District) {
		errs.add(Invalid("district", "must be the logistics park's 6-digit administrative division code"))
	}
	cmd.ContactName = errs.text(ValidateName("contact_name", cmd.ContactName))
	phone, err := ValidatePhone(cmd.ContactPhone)
	var fe *FieldError
	if errors.As(err, &fe) {
		err = Invalid("contact_phone", "%s", fe.Reason)
	}
	cmd.ContactPhone = errs.text(phone, err)
	return cmd, errs.err()
}

// DecideDeclareArrival decides an arrival declaration by declarant (with
// the family members they are guardian of) as declaration id; cmd is
// validated (ValidateArrival). The origin is sealed with seal (the
// declarant's data key). The same declaration again (cmd.EventID already
// declared d) decides nothing: it is a retry.
func DecideDeclareArrival(d Declaration, id uuid.UUID, declarant Person, members []Person, cmd DeclareArrival, seal Sealer, open Opener) ([]Event, error) {
	if !declarant.registered {
		return nil, Errorf(ErrNotFound, "declarant is not a registered person")
	}
	if err := MayActAsSelf(declarant, "declare"); err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, 0, len(members))
	for _, m := range members {
		if !m.registered {
			return nil, Errorf(ErrNotFound, "family member is not a registered person")
		}
		// Membership first: that another person's dependant was erased is
		// not the declarant's to learn.
		if m.GuardianID() != declarant.id {
			return nil, Errorf(ErrForbidden, "person %s is not a family member of the declarant", m.id)
		}
		if m.erased {
			return nil, WasErased(m.id)
		}
		ids = append(ids, m.id)
	}
	ev := ArrivalDeclared{
		DeclarationID: id, PersonID: declarant.id, FamilyMemberIDs: ids, ArrivalDate: cmd.ArrivalDate,
		DestinationDistrict: cmd.DestinationDistrict, NATResult: cmd.NATResult, NATAt: cmd.NATAt,
	}
	if d.declared {
		stored, ok := d.declaration.(ArrivalDeclared)
		same := ok && sameArrival(stored, ev)
		if same {
			origin, err := openOr(open, stored.Origin, stored.ClearOrigin)
			if err != nil {
				return nil, err
			}
			same = origin == cmd.Origin
		}
		return nil, d.retried(id, cmd.EventID, same)
	}
	var err error
	if ev.Origin, err = seal(cmd.Origin); err != nil {
		return nil, err
	}
	return []Event{ev}, nil
}

// openOr opens sealed with open, or answers clear when nothing is sealed
// (a v1 event's clear value, see upcasters).
func openOr(open Opener, sealed Sealed, clear string) (string, error) {
	if sealed == "" {
		return clear, nil
	}
	return open(sealed)
}

// DecideDeclareTruck decides a truck pass by driver as declaration id; cmd
// is validated (ValidateTruckPass). The contact's name and phone are sealed
// with seal (the driver's data key). The same declaration again decides
// nothing: it is a retry.
func DecideDeclareTruck(d Declaration, id uuid.UUID, driver Person, cmd DeclareTruckPass, seal Sealer, open Opener) ([]Event, error) {
	if !driver.registered {
		return nil, Errorf(ErrNotFound, "driver is not a registered person")
	}
	if err := MayActAsSelf(driver, "declare"); err != nil {
		return nil, err
	}
	ev := TruckPassDeclared{
		DeclarationID: id, PersonID: driver.id, NATProofAt: cmd.NATProofAt,
		ItineraryOK: cmd.ItineraryOK, HealthCodeColour: cmd.HealthCodeColour, LogisticsPark: cmd.LogisticsPark,
		District: cmd.District,
	}
	if d.declared {
		same, err := sameTruckPass(d.declaration, ev, cmd, open)
		if err != nil {
			return nil, err
		}
		return nil, d.retried(id, cmd.EventID, same)
	}
	var err error
	if ev.PlateNumber, err = seal(cmd.PlateNumber); err != nil {
		return nil, err
	}
	if ev.ContactName, err = seal(cmd.ContactName); err != nil {
		return nil, err
	}
	if ev.ContactPhone, err = seal(cmd.ContactPhone); err != nil {
		return nil, err
	}
	return []Event{ev}, nil
}

// retried answers a declaration that already exists: nothing to decide
// when eventID is the one that declared it with the same content (a retry),
// a conflict otherwise. An event id names one fact.
func (d Declaration) retried(id, eventID uuid.UUID, same bool) error {
	if eventID != uuid.Nil && eventID == d.declaredBy {
		if same {
			return nil
		}
		return Errorf(ErrConflict, "event id %s was already used for another declaration", eventID)
	}
	return Errorf(ErrConflict, "declaration %s already exists", id)
}

// sameArrival reports whether two arrival declarations say the same,
// their sealed origins aside (the caller opens and compares them).
func sameArrival(a, b ArrivalDeclared) bool {
	return a.DeclarationID == b.DeclarationID && a.PersonID == b.PersonID && slices.Equal(a.FamilyMemberIDs, b.FamilyMemberIDs) &&
		a.ArrivalDate == b.ArrivalDate && a.DestinationDistrict == b.DestinationDistrict &&
		a.NATResult == b.NATResult && a.NATAt.Equal(b.NATAt)
}

// sameTruckPass reports whether stored is the truck pass ev (not sealed
// yet) with cmd's contact; the stored contact is opened to compare.
func sameTruckPass(stored Event, ev TruckPassDeclared, cmd DeclareTruckPass, open Opener) (bool, error) {
	t, ok := stored.(TruckPassDeclared)
	if !ok || t.DeclarationID != ev.DeclarationID || t.PersonID != ev.PersonID ||
		!t.NATProofAt.Equal(ev.NATProofAt) || t.ItineraryOK != ev.ItineraryOK || t.HealthCodeColour != ev.HealthCodeColour ||
		t.LogisticsPark != ev.LogisticsPark || t.District != ev.District {
		return false, nil
	}
	for _, f := range []struct {
		sealed Sealed
		clear  string
		want   string
	}{{t.PlateNumber, t.ClearPlateNumber, cmd.PlateNumber}, {t.ContactName, "", cmd.ContactName}, {t.ContactPhone, "", cmd.ContactPhone}} {
		got, err := openOr(open, f.sealed, f.clear)
		if err != nil {
			return false, err
		}
		if got != f.want {
			return false, nil
		}
	}
	return true, nil
}

// DecideReviewDeclaration decides a review of a pending declaration by
// actor (a reviewer or an admin). A reviewer of one district reviews only
// that district's declarations. A declaration reviewed twice is a conflict.
// covered are the persons it is about (d.PersonIDs) as they stand now: once
// one of them was erased it is not reviewed (WasErased), since nothing more
// is decided in an erased person's name.
func DecideReviewDeclaration(d Declaration, covered []Person, actor Actor, cmd ReviewDeclaration) ([]Event, error) {
	reason, err := checkReview(actor, "declaration", d.district, cmd.Decision, cmd.Reason)
	if err != nil {
		return nil, err
	}
	if !d.declared {
		return nil, Errorf(ErrNotFound, "declaration not found")
	}
	// An erased person's arrival is approved no more (their declarant's
	// or family member's); a rejection closes it, so that it does not
	// stay in the queue for good.
	for _, p := range covered {
		if p.erased && cmd.Decision == ReviewApprove {
			return nil, WasErased(p.id)
		}
	}
	if d.status != DeclarationPending {
		return nil, Errorf(ErrConflict, "declaration %s was already reviewed (%s)", d.id, d.status)
	}
	return []Event{DeclarationReviewed{DeclarationID: d.id, Decision: cmd.Decision, Reason: reason}}, nil
}

// DecideQueueDeclaration decides whether a submitted declaration joins its
// district's review queue: once, and only while it is pending (one reviewed
// before the reaction ran has nothing left to queue for). No events and no
// error means there is nothing to do.
func DecideQueueDeclaration(d Declaration) ([]Event, error) {
	if !d.declared {
		return nil, Errorf(ErrNotFound, "declaration not found")
	}
	if d.queued || d.status != DeclarationPending {
		return nil, nil
	}
	return []Event{DeclarationQueued{DeclarationID: d.id, Kind: d.kind, District: d.district}}, nil
}

// DeclaredBy returns the event id and position of the declaration's
// submission (zero before it).
func (d Declaration) DeclaredBy() (eventID uuid.UUID, position uint64) {
	return d.declaredBy, d.declaredAt
}
