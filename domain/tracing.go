package domain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits of a contact trace.
const (
	// MaxTraceSpan is the longest window one trace may look at.
	MaxTraceSpan = 30 * 24 * time.Hour
	// MaxTraceBuffer bounds buffer_minutes.
	MaxTraceBuffer = 24 * time.Hour
	// MaxTraceMinOverlap bounds min_overlap_minutes.
	MaxTraceMinOverlap = 24 * time.Hour
)

// What an audited look was, and where its answer came from
// (TraceRequested.Kind and Source).
const (
	LookContacts    = "contacts"
	LookHistory     = "history"
	SourceReadModel = "read_model"
	SourceLog       = "log"
)

// TraceQuery asks for the contacts of one person (the index person) in a
// window. The person is named by PersonID, or by IDType and IDNumber.
type TraceQuery struct {
	PersonID uuid.UUID
	IDType   string
	IDNumber string
	From, To time.Time
	// Depth is 1 (contacts) or 2 (also the contacts' contacts, 次密接).
	Depth      int
	MinOverlap time.Duration
	Buffer     time.Duration
	// Reason is why the analyst looks; required, it is recorded.
	Reason string
	// AsOf, when set, gives the answer the ledger would have given at that
	// moment: passes recorded after it are ignored. Zero: now.
	AsOf time.Time
}

// ContactSearch is a validated contact search: what FindContacts computes.
type ContactSearch struct {
	PersonID uuid.UUID
	Window   TraceWindow
	Depth    int
	// AsOf ignores the passes recorded after it (zero: none ignored).
	AsOf time.Time
}

// FoundContacts is FindContacts' answer.
type FoundContacts struct {
	// Stays are the index person's stays the search looked at (those that
	// come within the buffer of the window), by start.
	Stays []Presence
	// Contacts holds every co-presence found, ordered by depth, person,
	// overlap start, via, venue.
	Contacts []Contact
	// Persons counts the distinct people found at depth 1 and 2
	// (Persons[0] is unused).
	Persons [3]int
}

// FindContacts runs a contact search on the read models' window reads.
//
// The index person's passes are read over the window widened by the buffer
// and the longest dwell, which gives every stay that comes within the buffer
// of the window exactly (see Presences: a stay depends only on passes less
// than a dwell apart). For each such stay the venue's passes are read over
// the stretch where a co-present stay could lie, widened by that venue's
// dwell, all venues in one read; the stays built from them are paired with
// the index person's. Depth 2 repeats this from every depth-1 contact at
// once, skipping the index person and the depth-1 contacts, so a depth-2
// search is four window reads however many contacts there are.
func FindContacts(ctx context.Context, reads TraceReads, s ContactSearch, dwell func(venueType string) time.Duration) (FoundContacts, error) {
	if dwell == nil {
		dwell = DefaultDwell
	}
	w := s.Window
	b := w.Buffer
	lo, hi := w.From.Add(-b), w.To.Add(b)
	margin := b + MaxDwell(dwell)
	types := make(map[uuid.UUID]string)
	counted := func(ps []PassPoint) []PassPoint {
		out := ps[:0]
		for _, p := range ps {
			if !s.AsOf.IsZero() && p.RecordedAt.After(s.AsOf) {
				continue
			}
			types[p.VenueID] = p.VenueType
			out = append(out, p)
		}
		return out
	}
	// staysOf reads the persons' passes and keeps the stays that come
	// within the buffer of the window, by person.
	staysOf := func(persons []uuid.UUID) (map[uuid.UUID][]Presence, error) {
		passes, err := reads.PassesOfPersons(ctx, persons, w.From.Add(-margin), w.To.Add(margin), s.AsOf)
		if err != nil {
			return nil, fmt.Errorf("trace: passes of %d persons: %w", len(persons), err)
		}
		out := make(map[uuid.UUID][]Presence, len(persons))
		for _, st := range Presences(counted(passes), dwell) {
			if st.Start.Before(hi) && st.End.After(lo) {
				out[st.PersonID] = append(out[st.PersonID], st)
			}
		}
		return out, nil
	}

	var found FoundContacts
	skip := map[uuid.UUID]bool{s.PersonID: true}
	frontier := []uuid.UUID{s.PersonID}
	stays, err := staysOf(frontier)
	if err != nil {
		return FoundContacts{}, err
	}
	found.Stays = stays[s.PersonID]
	sort.Slice(found.Stays, func(i, j int) bool { return presenceLess(found.Stays[i], found.Stays[j]) })

	for depth := 1; depth <= s.Depth && len(frontier) > 0; depth++ {
		if depth > 1 {
			if stays, err = staysOf(frontier); err != nil {
				return FoundContacts{}, err
			}
		}
		// Where a stay co-present with one of the frontier's can lie: to
		// overlap it by the minimum once both are widened by the buffer,
		// and within the window, it must end no earlier than
		// max(start−2·buffer, window start−buffer) + minimum and start no
		// later than min(end+2·buffer, window end+buffer) − minimum; its
		// passes are within the venue's dwell of that stretch (Presences),
		// which is widened by a nanosecond on each side so that a stay
		// ending or starting right on its edge is built whole too. (When
		// the minimum makes "to" fall before "from", a stay spanning the
		// gap may still qualify; the read window is empty, and dropped,
		// only once the gap is longer than any stay.)
		var windows []VenueWindow
		for _, via := range frontier {
			for _, st := range stays[via] {
				d := dwell(types[st.VenueID]) + time.Nanosecond
				from := maxTime(st.Start.Add(-2*b), lo).Add(w.MinOverlap)
				to := minTime(st.End.Add(2*b), hi).Add(-w.MinOverlap)
				windows = append(windows, VenueWindow{VenueID: st.VenueID, From: from.Add(-d), To: to.Add(d)})
			}
		}
		if len(windows) == 0 {
			break
		}
		passes, err := reads.PassesAtVenues(ctx, MergeWindows(windows), s.AsOf)
		if err != nil {
			return FoundContacts{}, fmt.Errorf("trace: passes at venues, depth %d: %w", depth, err)
		}
		byVenue := staysByVenue(Presences(counted(passes), dwell))
		var next []uuid.UUID
		isNext := make(map[uuid.UUID]bool)
		for _, via := range frontier {
			cs := contactsVia(via, stays[via], byVenue, depth, w, skip)
			found.Contacts = append(found.Contacts, cs...)
			for _, c := range cs {
				if !isNext[c.PersonID] {
					isNext[c.PersonID] = true
					next = append(next, c.PersonID)
				}
			}
		}
		// People found at this depth are not found again deeper.
		for _, p := range next {
			skip[p] = true
		}
		slices.SortFunc(next, compareUUID)
		found.Persons[depth] = len(next)
		frontier = next
	}
	SortContacts(found.Contacts)
	return found, nil
}

// SortContacts orders contacts by depth, person, overlap start, via, venue
// and overlap end: the order of a trace's answer.
func SortContacts(cs []Contact) {
	slices.SortFunc(cs, func(a, b Contact) int {
		switch {
		case a.Depth != b.Depth:
			return a.Depth - b.Depth
		case a.PersonID != b.PersonID:
			return compareUUID(a.PersonID, b.PersonID)
		case !a.OverlapStart.Equal(b.OverlapStart):
			return a.OverlapStart.Compare(b.OverlapStart)
		case a.ViaPersonID != b.ViaPersonID:
			return compareUUID(a.ViaPersonID, b.ViaPersonID)
		case a.VenueID != b.VenueID:
			return compareUUID(a.VenueID, b.VenueID)
		}
		return a.OverlapEnd.Compare(b.OverlapEnd)
	})
}

func compareUUID(a, b uuid.UUID) int {
	switch {
	case lessUUID(a, b):
		return -1
	case a == b:
		return 0
	}
	return 1
}

func presenceLess(a, b Presence) bool {
	if !a.Start.Equal(b.Start) {
		return a.Start.Before(b.Start)
	}
	if a.VenueID != b.VenueID {
		return lessUUID(a.VenueID, b.VenueID)
	}
	return a.End.Before(b.End)
}

// TraceIndex sums up the index person of a trace.
type TraceIndex struct {
	PersonID   uuid.UUID `json:"person_id"`
	NameMasked string    `json:"name"`
	// Visits is how many stays of theirs the trace looked at.
	Visits int `json:"visits"`
	// Contacts and SecondContacts count the distinct people found at
	// depth 1 and depth 2.
	Contacts       int `json:"contacts"`
	SecondContacts int `json:"second_contacts"`
}

// TraceVisit is one stay of the index person.
type TraceVisit struct {
	VenueID   uuid.UUID `json:"venue_id"`
	VenueName string    `json:"venue_name"`
	VenueType string    `json:"venue_type"`
	District  string    `json:"district"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
}

// TraceContact is a contact with the names to show: the person's masked
// name and the venue's name.
type TraceContact struct {
	Contact
	NameMasked string `json:"name"`
	VenueName  string `json:"venue_name"`
}

// TraceResult is the answer to a trace, given once its audit event is in
// the log.
type TraceResult struct {
	TraceID uuid.UUID
	// EventID and Position name the TraceRequested event recorded for it.
	EventID  uuid.UUID
	Position uint64
	// ReadPosition is the read models' position the answer reflects.
	ReadPosition uint64
	// AsOf is the moment the answer was given as of.
	AsOf       time.Time
	From, To   time.Time
	Depth      int
	MinOverlap time.Duration
	Buffer     time.Duration
	Index      TraceIndex
	Visits     []TraceVisit
	Contacts   []TraceContact
}

func (l *Ledger) dwell() func(string) time.Duration {
	if l.Dwell != nil {
		return l.Dwell
	}
	return DefaultDwell
}

// auditSubject is the name an audit event records for actor.
func auditSubject(actor Actor) string {
	if actor.Subject != "" {
		return actor.Subject
	}
	return actor.Role
}

// validReason checks an audit reason: required, at most MaxReasonLength runes.
func validReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return "", Invalid("reason", "is required: say why you look at this person's history")
	case utf8.RuneCountInString(reason) > MaxReasonLength:
		return "", Invalid("reason", "is longer than %d characters", MaxReasonLength)
	case !utf8.ValidString(reason):
		return "", Invalid("reason", "is not valid UTF-8")
	}
	return reason, nil
}

// validateTrace checks a trace query and returns its search; every bad
// field is reported at once. number is the canonical ID number when the
// person is named by document.
func validateTrace(q TraceQuery, now, latest time.Time) (s ContactSearch, reason, number string, err error) {
	var errs []error
	byDocument := q.IDType != "" || q.IDNumber != ""
	switch {
	case q.PersonID != uuid.Nil && byDocument:
		errs = append(errs, Invalid("person_id", "give person_id, or id_type and id_number, not both"))
	case q.PersonID == uuid.Nil && !byDocument:
		errs = append(errs, Invalid("person_id", "is required (or id_type and id_number)"))
	case byDocument:
		if number, err = validateDocument("id_type", "id_number", q.IDType, q.IDNumber, now); err != nil {
			errs = append(errs, err)
		}
	}
	if q.From.IsZero() {
		errs = append(errs, Invalid("from", "is required"))
	}
	if q.To.IsZero() {
		errs = append(errs, Invalid("to", "is required"))
	}
	if !q.From.IsZero() && !q.To.IsZero() {
		if !q.To.After(q.From) {
			errs = append(errs, Invalid("to", "must be after from"))
		} else if q.To.Sub(q.From) > MaxTraceSpan {
			errs = append(errs, Invalid("to", "the window may span at most %d days", int(MaxTraceSpan/(24*time.Hour))))
		}
	}
	if q.Depth != 1 && q.Depth != 2 {
		errs = append(errs, Invalid("depth", "must be 1 or 2"))
	}
	if q.MinOverlap < 0 || q.MinOverlap > MaxTraceMinOverlap {
		errs = append(errs, Invalid("min_overlap_minutes", "must be from 0 to %d", int(MaxTraceMinOverlap/time.Minute)))
	}
	if q.Buffer < 0 || q.Buffer > MaxTraceBuffer {
		errs = append(errs, Invalid("buffer_minutes", "must be from 0 to %d", int(MaxTraceBuffer/time.Minute)))
	}
	if reason, err = validReason(q.Reason); err != nil {
		errs = append(errs, err)
	}
	asOf := q.AsOf
	if asOf.IsZero() {
		asOf = now
	} else if asOf.After(latest) {
		errs = append(errs, Invalid("as_of", "must not be in the future"))
	}
	if len(errs) > 0 {
		return ContactSearch{}, "", "", errors.Join(errs...)
	}
	return ContactSearch{
		PersonID: q.PersonID,
		Window:   TraceWindow{From: q.From.UTC(), To: q.To.UTC(), MinOverlap: q.MinOverlap, Buffer: q.Buffer},
		Depth:    q.Depth,
		AsOf:     asOf.UTC(),
	}, reason, number, nil
}

// Trace finds the contacts of a person in a window (analysts and admins).
// Every trace is recorded as a TraceRequested event in the analyst's audit
// trail before the answer is returned: when the event cannot be appended
// there is no answer. Bad input is ErrInvalid and appends nothing; an index
// person the read models do not know is ErrNotFound.
//
// See FindContacts for how contacts are found and Presences for what a
// stay is. Only passes with decision "pass" count: a person who was refused
// at the door did not go in.
func (l *Ledger) Trace(ctx context.Context, actor Actor, q TraceQuery) (TraceResult, error) {
	if actor.Role != RoleAnalyst && actor.Role != RoleAdmin {
		return TraceResult{}, Errorf(ErrForbidden, "only analysts and admins may trace contacts")
	}
	now := l.now()
	search, reason, number, err := validateTrace(q, now, now.Add(l.clockSkew()))
	if err != nil {
		return TraceResult{}, err
	}
	readPos, err := l.Reads.Position(ctx)
	if err != nil {
		return TraceResult{}, fmt.Errorf("trace: read models position: %w", err)
	}
	var index PersonView
	if search.PersonID != uuid.Nil {
		index, err = l.Reads.Person(ctx, search.PersonID)
	} else {
		index, err = l.Reads.PersonByIDHash(ctx, l.Hasher.IDHash(q.IDType, number))
	}
	if err != nil {
		return TraceResult{}, fmt.Errorf("trace: index person: %w", err)
	}
	search.PersonID = index.ID
	found, err := FindContacts(ctx, l.Reads, search, l.dwell())
	if err != nil {
		return TraceResult{}, err
	}

	var personIDs, venueIDs []uuid.UUID
	seenP, seenV := map[uuid.UUID]bool{}, map[uuid.UUID]bool{}
	for _, c := range found.Contacts {
		if !seenP[c.PersonID] {
			seenP[c.PersonID] = true
			personIDs = append(personIDs, c.PersonID)
		}
		if !seenV[c.VenueID] {
			seenV[c.VenueID] = true
			venueIDs = append(venueIDs, c.VenueID)
		}
	}
	for _, st := range found.Stays {
		if !seenV[st.VenueID] {
			seenV[st.VenueID] = true
			venueIDs = append(venueIDs, st.VenueID)
		}
	}
	names, err := l.Reads.PersonNames(ctx, personIDs)
	if err != nil {
		return TraceResult{}, fmt.Errorf("trace: names of %d contacts: %w", len(personIDs), err)
	}
	venues, err := l.Reads.VenuesByID(ctx, venueIDs)
	if err != nil {
		return TraceResult{}, fmt.Errorf("trace: %d venues: %w", len(venueIDs), err)
	}

	res := TraceResult{
		ReadPosition: readPos, AsOf: search.AsOf, From: search.Window.From, To: search.Window.To,
		Depth: search.Depth, MinOverlap: search.Window.MinOverlap, Buffer: search.Window.Buffer,
		Index: TraceIndex{
			PersonID: index.ID, NameMasked: index.NameMasked, Visits: len(found.Stays),
			Contacts: found.Persons[1], SecondContacts: found.Persons[2],
		},
		Visits:   make([]TraceVisit, 0, len(found.Stays)),
		Contacts: make([]TraceContact, 0, len(found.Contacts)),
	}
	for _, st := range found.Stays {
		v := venues[st.VenueID]
		res.Visits = append(res.Visits, TraceVisit{VenueID: st.VenueID, VenueName: v.Name, VenueType: v.Type,
			District: v.District, Start: st.Start.UTC(), End: st.End.UTC()})
	}
	for _, c := range found.Contacts {
		c.OverlapStart, c.OverlapEnd = c.OverlapStart.UTC(), c.OverlapEnd.UTC()
		res.Contacts = append(res.Contacts, TraceContact{Contact: c, NameMasked: names[c.PersonID], VenueName: venues[c.VenueID].Name})
	}

	if res.TraceID, err = uuid.NewV7(); err != nil {
		return TraceResult{}, fmt.Errorf("trace: new trace id: %w", err)
	}
	ev := TraceRequested{
		TraceID: res.TraceID, Analyst: auditSubject(actor), PersonID: index.ID,
		From: res.From, To: res.To, Depth: res.Depth, Reason: reason,
		Kind: LookContacts, Source: SourceReadModel, AsOf: res.AsOf,
		MinOverlapMinutes: int(res.MinOverlap / time.Minute), BufferMinutes: int(res.Buffer / time.Minute),
		Contacts: found.Persons[1] + found.Persons[2], ReadPosition: readPos,
	}
	if res.EventID, res.Position, err = l.recordAudit(ctx, actor, ev, now); err != nil {
		return TraceResult{}, err
	}
	return res, nil
}

// recordAudit appends a TraceRequested event to the actor's audit trail.
func (l *Ledger) recordAudit(ctx context.Context, actor Actor, ev TraceRequested, now time.Time) (uuid.UUID, uint64, error) {
	subject := auditSubject(actor)
	agg := AuditAggregate(subject)
	env, err := NewEnvelope(agg, ev, Meta{Actor: subject, CorrelationID: ev.TraceID.String()}, now)
	if err != nil {
		return uuid.Nil, 0, err
	}
	appended, err := l.Events.Record(ctx, env)
	if err != nil {
		return uuid.Nil, 0, fmt.Errorf("record %s: %w", agg, err)
	}
	if len(appended) != 1 {
		return uuid.Nil, 0, fmt.Errorf("record %s: store answered %d results for 1 event", agg, len(appended))
	}
	return env.ID, appended[0].Position, nil
}

// Look is an analyst's read of a person's passes (GET
// /v1/persons/{id}/trace), recorded by RecordLook.
type Look struct {
	PersonID uuid.UUID
	From, To time.Time
	Reason   string
	// Source is SourceReadModel or SourceLog.
	Source string
	// ReadPosition is the position the answer reflects.
	ReadPosition uint64
}

// RecordLook records an analyst's look at a person's passes in their audit
// trail, as a TraceRequested event of kind "history". The caller gives the
// answer only once this returned without error. The reason is required.
func (l *Ledger) RecordLook(ctx context.Context, actor Actor, look Look) (Result, error) {
	reason, err := validReason(look.Reason)
	if err != nil {
		return Result{}, err
	}
	if look.PersonID == uuid.Nil {
		return Result{}, Invalid("person_id", "is required")
	}
	now := l.now()
	traceID, err := uuid.NewV7()
	if err != nil {
		return Result{}, fmt.Errorf("record look: new trace id: %w", err)
	}
	ev := TraceRequested{
		TraceID: traceID, Analyst: auditSubject(actor), PersonID: look.PersonID,
		From: look.From.UTC(), To: look.To.UTC(), Reason: reason, Kind: LookHistory, Source: look.Source,
		AsOf: now.UTC(), ReadPosition: look.ReadPosition,
	}
	id, pos, err := l.recordAudit(ctx, actor, ev, now)
	if err != nil {
		return Result{}, err
	}
	return Result{ID: traceID, EventID: id, Position: pos}, nil
}

// ReplayHistory returns a person's passes with at (the device's time) in
// [from, to), oldest first by (at, position), replayed straight from the log
// rather than from a read model: the person's pass streams are read with
// the filter "pass.*.<person>" and each venue's name, type, district and
// address come from replaying the venue's aggregate. A pass appended twice
// (a retry after the duplicate window) counts once, at its first position,
// as in the read models. position is the log position the answer reflects.
func (l *Ledger) ReplayHistory(ctx context.Context, personID uuid.UUID, from, to time.Time) (visits []Visit, position uint64, err error) {
	last, err := l.Log.LastPosition(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("replay passes of %s: %w", personID, err)
	}
	type row struct {
		v   Visit
		pos uint64
	}
	var rows []row
	seen := make(map[uuid.UUID]bool)
	filter := KindPass + ".*." + personID.String()
	err = l.Log.Read(ctx, filter, 0, func(envs []Envelope) error {
		for _, e := range envs {
			if e.Position > last || e.Type != TypePassRecorded || seen[e.ID] {
				continue
			}
			seen[e.ID] = true
			ev, err := Decode(e)
			if err != nil {
				return err
			}
			p := ev.(*PassRecorded)
			if p.PersonID != personID {
				continue
			}
			at := e.OccurredAt.UTC()
			if (!from.IsZero() && at.Before(from)) || (!to.IsZero() && !at.Before(to)) {
				continue
			}
			rows = append(rows, row{v: Visit{EventID: e.ID, VenueID: p.VenueID, At: at, Direction: p.Direction, Decision: p.Decision}, pos: e.Position})
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("replay passes of %s: %w", personID, err)
	}
	slices.SortFunc(rows, func(a, b row) int {
		if c := a.v.At.Compare(b.v.At); c != 0 {
			return c
		}
		switch {
		case a.pos < b.pos:
			return -1
		case a.pos > b.pos:
			return 1
		}
		return 0
	})
	venues := make(map[uuid.UUID]Venue)
	visits = make([]Visit, 0, len(rows))
	for _, r := range rows {
		v, ok := venues[r.v.VenueID]
		if !ok {
			if v, _, err = l.loadVenue(ctx, r.v.VenueID); err != nil {
				return nil, 0, err
			}
			venues[r.v.VenueID] = v
		}
		r.v.VenueName, r.v.VenueType, r.v.District, r.v.Address = v.Name(), v.Type(), v.District(), v.Address()
		visits = append(visits, r.v)
	}
	return visits, last, nil
}
