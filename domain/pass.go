package domain

import (
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain/pii"
)

// Limits on passes.
const (
	// MaxBatchPasses is the most passes one RecordPasses call takes.
	MaxBatchPasses = 1000
	// MaxFamilyPerPass is the most dependants a guardian passes with at once.
	MaxFamilyPerPass = 20
)

// Statuses of a BatchItem.
const (
	BatchAccepted  = "accepted"
	BatchDuplicate = "duplicate"
	BatchRejected  = "rejected"
)

// ValidatePassShape checks what a pass says about itself, before any lookup.
func ValidatePassShape(cmd RecordPass) error {
	switch cmd.Method {
	case MethodSelfScan, MethodStaffScan, MethodManual:
	default:
		return Invalid("method", "must be self_scan, staff_scan or manual")
	}
	switch cmd.Direction {
	case DirectionIn, DirectionOut:
	default:
		return Invalid("direction", "must be in or out")
	}
	if cmd.VenueID == uuid.Nil {
		return Invalid("venue_id", "is required")
	}
	if len(cmd.FamilyMemberIDs) > 0 {
		if cmd.Method != MethodSelfScan {
			return Invalid("family_member_ids", "are allowed only with a self scan")
		}
		if len(cmd.FamilyMemberIDs) > MaxFamilyPerPass {
			return Invalid("family_member_ids", "has %d members, at most %d allowed", len(cmd.FamilyMemberIDs), MaxFamilyPerPass)
		}
		seen := make(map[uuid.UUID]bool, len(cmd.FamilyMemberIDs))
		for _, id := range cmd.FamilyMemberIDs {
			if id == uuid.Nil || seen[id] {
				return Invalid("family_member_ids", "must be distinct person ids")
			}
			seen[id] = true
		}
	}
	return nil
}

// DefaultRetention is how long passes (and the alerts they raised) are
// kept when the service is not told otherwise: 28 days, the longest the
// systems this one replaces kept them.
const DefaultRetention = 28 * 24 * time.Hour

// Retention: the one rule of how long a pass lives.
//
// A pass expires at its occurred_at (the device's clock) plus the
// retention, however late it was uploaded; an alert raised for a pass
// carries the pass's occurred_at (see ledger.RaiseAlerts) and so expires
// with it. Registrations, venues, declarations, health records and the
// audit trail do not expire. The log (the per-message TTL of the messages
// holding passes and alerts), the command side (ValidateOccurredAt) and
// every read model (RetirePasses with RetireBefore) follow this rule.

// PassExpiresAt is when a pass (or an alert of it) that occurred at
// occurredAt expires under retention.
func PassExpiresAt(occurredAt time.Time, retention time.Duration) time.Time {
	return occurredAt.Add(retention)
}

// RetireBefore is the cut-off at now: every pass (and alert of a pass)
// whose occurred_at is before it has expired; the read models drop them.
func RetireBefore(now time.Time, retention time.Duration) time.Time {
	return now.Add(-retention)
}

// PassExpired reports whether a pass that occurred at occurredAt has
// expired at now (false when retention is 0: nothing expires).
func PassExpired(occurredAt, now time.Time, retention time.Duration) bool {
	return retention > 0 && PassExpiresAt(occurredAt, retention).Before(now)
}

// ValidateOccurredAt checks a device's time against the ledger's clock:
// not beyond the clock skew in the future, not already expired (older than
// the retention).
func ValidateOccurredAt(at, now time.Time, skew, retention time.Duration) error {
	if at.After(now.Add(skew)) {
		return Invalid("occurred_at", "is more than %s in the future", skew)
	}
	if PassExpired(at, now, retention) {
		return Invalid("occurred_at", "is older than the retention period (%s)", retention)
	}
	return nil
}

// PassFacts is what the read models knew, in one read, of everything the
// passes of one call are about: deciding them reads nothing else.
type PassFacts struct {
	Venues map[uuid.UUID]VenueView
	// Persons holds the persons named by id (self and staff scans, family
	// members) and those found by their document's keyed hash (manual
	// entries), by id.
	Persons map[uuid.UUID]PersonView
	// ByIDHash maps a document's keyed hash to its person's id.
	ByIDHash map[string]uuid.UUID
	// Health holds the health records of every person above, by ID hash
	// (absent: none known), for HealthAsOf each pass's time.
	Health map[string][]HealthRecordFact
	// Stored holds the passes already stored among the call's client event
	// ids (and their family members' passes), by event id.
	Stored map[uuid.UUID]PassView
}

// PassClock is the ledger's clock and the bounds a pass's time must keep.
type PassClock struct {
	Now       time.Time
	ClockSkew time.Duration
	Retention time.Duration
}

// PassDocument checks a manual entry's ID document and returns its
// canonical number, for the application layer to hash before it gathers
// the facts.
func PassDocument(cmd RecordPass, now time.Time) (string, error) {
	return ValidateDocument("id_type", "id_number", cmd.IDType, cmd.IDNumber, now)
}

// AdmitPass checks a pass's shape, finds its venue and authorises actor
// there. Nothing here depends on whether the pass was seen before.
func AdmitPass(actor Actor, cmd RecordPass, f *PassFacts) (VenueView, error) {
	if err := ValidatePassShape(cmd); err != nil {
		return VenueView{}, err
	}
	v, ok := f.Venues[cmd.VenueID]
	if !ok {
		return VenueView{}, Errorf(ErrNotFound, "venue %s not found", cmd.VenueID)
	}
	return v, AuthorisePass(actor, cmd.Method, v)
}

// CheckPassRetry decides whether cmd, whose client event id is already
// stored as stored, is a retry of that pass. An event id names one fact: a
// retry is the same request again (same venue, method, direction, person,
// family members and, when given, time); anything else is a conflict, never
// the stored pass's answer. idHash is a manual entry's document hash.
func CheckPassRetry(actor Actor, cmd RecordPass, idHash string, stored PassView, f *PassFacts, c PassClock) error {
	if !cmd.OccurredAt.IsZero() {
		if err := ValidateOccurredAt(Micros(cmd.OccurredAt), c.Now, c.ClockSkew, c.Retention); err != nil {
			return err
		}
	}
	p := stored.Pass
	conflict := func(what string) error {
		return Errorf(ErrConflict, "event id %s was already used for %s", stored.EventID, what)
	}
	var person uuid.UUID
	switch cmd.Method {
	case MethodSelfScan:
		person = actor.PersonID
	case MethodStaffScan:
		person = cmd.PersonID
	case MethodManual:
		// The person the document names: by its lookup key, or, once they
		// are erased (their document is no lookup key any more), by the id
		// it derives, so that a retry of their pass is not taken for
		// another person's.
		if person = f.ByIDHash[idHash]; person == uuid.Nil && idHash != "" {
			person = pii.PersonID(idHash)
		}
	}
	switch {
	case p.VenueID != cmd.VenueID:
		return conflict("a pass at another venue")
	case p.PersonID != person:
		return conflict("another person's pass")
	case p.Method != cmd.Method || p.Direction != cmd.Direction:
		return conflict("a pass with another method or direction")
	case cmd.CodeID == "" && !cmd.OccurredAt.IsZero() && !p.Screen.At.IsZero() && !sameMicrosecond(cmd.OccurredAt, p.Screen.At):
		// (A personal code's pass is the code's at that venue that way,
		// whenever it is scanned again.)
		return conflict("a pass at another time")
	}
	for _, m := range cmd.FamilyMemberIDs {
		if _, ok := f.Stored[FamilyPassEventID(stored.EventID, m)]; !ok {
			return conflict("a pass with other family members")
		}
	}
	// And the other way: a member who passed with it and is not named
	// again (the caller looked up the passes of the person's family).
	for _, m := range f.Persons[p.PersonID].FamilyMembers {
		if _, ok := f.Stored[FamilyPassEventID(stored.EventID, m)]; ok && !slices.Contains(cmd.FamilyMemberIDs, m) {
			return conflict("a pass with other family members")
		}
	}
	return nil
}

// SameRecordPass reports whether two pass commands ask the same.
func SameRecordPass(a, b RecordPass) bool {
	return a.EventID == b.EventID && a.CodeID == b.CodeID && sameMicrosecond(a.OccurredAt, b.OccurredAt) && a.Method == b.Method && a.VenueID == b.VenueID &&
		a.PersonID == b.PersonID && a.IDType == b.IDType && a.IDNumber == b.IDNumber && a.Direction == b.Direction &&
		slices.Equal(a.FamilyMemberIDs, b.FamilyMemberIDs)
}

// SamePass reports whether decided, a pass decided just now under an event
// id the log turned out to hold already (a retry racing its original), is
// the stored pass again: same venue, person, method and direction, and the
// same time when the request gave one.
func SamePass(stored, decided PassRecorded, timeGiven bool) bool {
	return stored.VenueID == decided.VenueID && stored.PersonID == decided.PersonID && stored.GuardianID == decided.GuardianID &&
		stored.Method == decided.Method && stored.Direction == decided.Direction &&
		(!timeGiven || stored.Screen.At.IsZero() || sameMicrosecond(stored.Screen.At, decided.Screen.At))
}

// sameMicrosecond compares two instants at the read models' precision
// (PostgreSQL keeps microseconds).
func sameMicrosecond(a, b time.Time) bool { return Micros(a).Equal(Micros(b)) }

// Micros is t in UTC at the read models' precision, the microsecond
// (PostgreSQL's): the times the ledger writes are cut to it, so that every
// read model gives back the instant the log holds.
func Micros(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

// DecideNewPass decides a pass that is not stored yet at venue (admitted by
// AdmitPass) and builds its events: the person's pass with id eventID, then
// each family member's (FamilyPassEventID). idHash is the keyed hash of a
// manual entry's document ("" when PassDocument refused it).
func DecideNewPass(actor Actor, cmd RecordPass, venue VenueView, eventID uuid.UUID, idHash string, f *PassFacts, c PassClock) ([]Envelope, []PassRecorded, error) {
	at := cmd.OccurredAt
	if at.IsZero() {
		at = c.Now
	}
	// Kept to the microsecond, as every read model keeps it: a stay, and
	// so a contact, is then the same in each (with nanoseconds, two
	// passes 400 ns apart overlapped in memory and not in PostgreSQL).
	// Checked as kept.
	at = Micros(at)
	if err := ValidateOccurredAt(at, c.Now, c.ClockSkew, c.Retention); err != nil {
		return nil, nil, err
	}
	if venue.Status != VenueStatusApproved {
		return nil, nil, Errorf(ErrConflict, "venue %s is %s: only approved venues take passes", venue.ID, venue.Status)
	}
	person, err := passPerson(actor, cmd, idHash, f, c.Now)
	if err != nil {
		return nil, nil, err
	}
	members := make([]PersonView, 0, len(cmd.FamilyMemberIDs))
	for _, id := range cmd.FamilyMemberIDs {
		m, ok := f.Persons[id]
		if !ok {
			return nil, nil, Errorf(ErrNotFound, "family member %s: person not found", id)
		}
		if m.Erased {
			return nil, nil, WasErased(id)
		}
		if m.GuardianID != person.ID {
			return nil, nil, Errorf(ErrForbidden, "person %s is not a family member of the scanning person", id)
		}
		members = append(members, m)
	}
	operator := ""
	if cmd.Method != MethodSelfScan {
		operator = actor.Subject
	}
	envs := make([]Envelope, 0, 1+len(members))
	recs := make([]PassRecorded, 0, 1+len(members))
	add := func(id uuid.UUID, p PersonView, guardian uuid.UUID) error {
		// The status the ledger knew at the pass's time: what an online
		// scanner would have shown, also for a pass uploaded later.
		var health *HealthView
		if h, ok := HealthAsOf(f.Health[p.IDHash], at); ok && p.IDHash != "" {
			health = &h
		}
		decision, reason := DecidePass(venue, p, health, cmd.Direction, at)
		rec := PassRecorded{
			VenueID: venue.ID, PersonID: p.ID, Direction: cmd.Direction, Method: cmd.Method,
			Decision: decision, Reason: reason, Operator: operator, GuardianID: guardian,
			Screen: BuildScreen(venue, health, at, cmd.Direction, decision, reason),
		}
		meta := Meta{ID: id, OccurredAt: at, Actor: actor.Subject, CorrelationID: eventID.String()}
		env, err := NewEnvelope(PassAggregate(venue.ID, p.ID), rec, meta, c.Now)
		if err != nil {
			return err
		}
		envs, recs = append(envs, env), append(recs, rec)
		return nil
	}
	if err := add(eventID, person, uuid.Nil); err != nil {
		return nil, nil, err
	}
	for _, m := range members {
		if err := add(FamilyPassEventID(eventID, m.ID), m, person.ID); err != nil {
			return nil, nil, err
		}
	}
	// An abnormal pass is reported to the district by the reactions, which
	// follow the log: the pass is acknowledged without waiting for its alert.
	return envs, recs, nil
}

// passPerson finds the person a pass is about among the facts.
func passPerson(actor Actor, cmd RecordPass, idHash string, f *PassFacts, now time.Time) (PersonView, error) {
	switch cmd.Method {
	case MethodSelfScan:
		if cmd.PersonID != uuid.Nil && cmd.PersonID != actor.PersonID {
			return PersonView{}, Errorf(ErrForbidden, "a self scan records the scanning person only")
		}
		return knownPerson(f, actor.PersonID)
	case MethodStaffScan:
		if cmd.PersonID == uuid.Nil {
			return PersonView{}, Invalid("personal_code", "is required for a staff scan")
		}
		return knownPerson(f, cmd.PersonID)
	default: // MethodManual
		if idHash == "" {
			_, err := PassDocument(cmd, now)
			return PersonView{}, err
		}
		id, ok := f.ByIDHash[idHash]
		if !ok {
			return PersonView{}, Errorf(ErrNotFound, "no registered person holds this %s document", cmd.IDType)
		}
		return knownPerson(f, id)
	}
}

// ErasedName stands for the masked name of an erased person in the answer
// to a retried pass (a masked name always ends in "*", so it is never one).
const ErasedName = "(erased)"

// AnswerScreen returns the screen of a pass of personID as answered at
// this moment: s (from the event, with no name since PassRecorded v2) with
// the person's masked name as the facts hold it now, ErasedName once they
// were erased.
func (f *PassFacts) AnswerScreen(s Screen, personID uuid.UUID) Screen {
	p := f.Persons[personID]
	s.NameMasked = p.NameMasked
	if p.Erased {
		s.NameMasked = ErasedName
	}
	return s
}

func knownPerson(f *PassFacts, id uuid.UUID) (PersonView, error) {
	p, ok := f.Persons[id]
	if !ok {
		return PersonView{}, Errorf(ErrNotFound, "person %s not found", id)
	}
	if p.Erased {
		return PersonView{}, WasErased(id)
	}
	return p, nil
}
