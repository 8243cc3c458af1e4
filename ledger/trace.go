package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// TraceIndex sums up the index person of a trace.
type TraceIndex struct {
	PersonID   uuid.UUID
	NameMasked string
	// Visits is how many stays of theirs the trace looked at.
	Visits int
	// Contacts and SecondContacts count the distinct people found at
	// depth 1 and depth 2.
	Contacts       int
	SecondContacts int
}

// TraceVisit is one stay of the index person.
type TraceVisit struct {
	VenueID   uuid.UUID
	VenueName string
	VenueType string
	District  string
	Start     time.Time
	End       time.Time
}

// TraceContact is a contact with the names to show: the person's masked
// name and the venue's name.
type TraceContact struct {
	domain.Contact
	NameMasked string
	VenueName  string
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

// stays returns the ledger's stay rules.
func (l *Ledger) stays() domain.StayRules {
	return domain.StayRules{Dwell: l.Dwell, MaxStay: l.MaxStay}
}

// Trace finds the contacts of a person in a window (analysts and admins).
// Every trace is recorded as a TraceRequested event in the analyst's audit
// trail before the answer is returned: when the event cannot be appended
// there is no answer. Bad input is ErrInvalid and appends nothing; an index
// person the read models do not know is ErrNotFound.
//
// See domain.FindContacts for how contacts are found and domain.Presences
// for what a stay is: a refused entry is no stay (the person did not go
// in); an exit always closes one.
func (l *Ledger) Trace(ctx context.Context, actor domain.Actor, q domain.TraceQuery) (TraceResult, error) {
	if err := domain.Tracers.Require(actor, "only analysts and admins may trace contacts"); err != nil {
		return TraceResult{}, err
	}
	now := l.now()
	search, reason, number, err := domain.ValidateTrace(q, now)
	if err != nil {
		return TraceResult{}, err
	}
	readPos, err := l.Reads.Position(ctx)
	if err != nil {
		return TraceResult{}, fmt.Errorf("trace: read models position: %w", err)
	}
	var index domain.PersonView
	if search.PersonID != uuid.Nil {
		index, err = l.Reads.Person(ctx, search.PersonID)
	} else {
		index, err = l.Reads.PersonByIDHash(ctx, l.Hasher.IDHash(q.IDType, number))
	}
	if err != nil {
		return TraceResult{}, fmt.Errorf("trace: index person: %w", err)
	}
	search.PersonID = index.ID
	var reads TraceReads = l.Reads
	if l.Stays != nil {
		reads = withStays{l.Reads, l.Stays}
	}
	found, err := domain.FindContacts(BindTraceReads(ctx, reads, l.stays()), search, l.stays())
	if err != nil {
		return TraceResult{}, err
	}

	// The contacts come by depth and person, and nobody is at two depths:
	// each person's co-presences are one run (a depth-2 trace of a dense
	// city has 270,000 of them, 130,000 people).
	personIDs, venueIDs := found.People(), found.Venues()
	seenV := make(map[uuid.UUID]bool, len(venueIDs))
	for _, v := range venueIDs {
		seenV[v] = true
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
		Contacts: make([]TraceContact, 0, found.Len()),
	}
	for _, st := range found.Stays {
		v := venues[st.VenueID]
		res.Visits = append(res.Visits, TraceVisit{VenueID: st.VenueID, VenueName: v.Name, VenueType: v.Type,
			District: v.District, Start: st.Start.UTC(), End: st.End.UTC()})
	}
	venueNames := make(map[uuid.UUID]string, len(venues))
	for id, v := range venues {
		venueNames[id] = v.Name
	}
	// Each contact is made once, here, from the search's numbers (in UTC).
	var name string
	for c := range found.All() {
		if n := len(res.Contacts); n == 0 || res.Contacts[n-1].PersonID != c.PersonID {
			name = names[c.PersonID]
		}
		res.Contacts = append(res.Contacts, TraceContact{Contact: c, NameMasked: name, VenueName: venueNames[c.VenueID]})
	}

	if res.TraceID, err = uuid.NewV7(); err != nil {
		return TraceResult{}, fmt.Errorf("trace: new trace id: %w", err)
	}
	ev := domain.TraceRequested{
		TraceID: res.TraceID, Analyst: domain.AuditSubject(actor), PersonID: index.ID,
		From: res.From, To: res.To, Depth: res.Depth, Reason: reason,
		Kind: domain.LookContacts, Source: domain.SourceReadModel, AsOf: res.AsOf,
		MinOverlapMinutes: int(res.MinOverlap / time.Minute), BufferMinutes: int(res.Buffer / time.Minute),
		Contacts: found.Persons[1] + found.Persons[2], ReadPosition: readPos,
	}
	if res.EventID, res.Position, err = l.recordAudit(ctx, actor, ev, now); err != nil {
		return TraceResult{}, err
	}
	return res, nil
}

// recordAudit appends a TraceRequested event to the actor's audit trail.
func (l *Ledger) recordAudit(ctx context.Context, actor domain.Actor, ev domain.TraceRequested, now time.Time) (uuid.UUID, uint64, error) {
	subject := domain.AuditSubject(actor)
	agg := domain.AuditAggregate(subject)
	env, err := domain.NewEnvelope(agg, ev, domain.Meta{Actor: subject, CorrelationID: ev.TraceID.String()}, now)
	if err != nil {
		return uuid.Nil, 0, err
	}
	appended, err := l.record(ctx, agg, env)
	if err != nil {
		return uuid.Nil, 0, err
	}
	return env.ID, appended[0].Position, nil
}

// replayHistory returns a person's passes with at (the device's time) in
// [from, to), oldest first by (at, position), replayed straight from the log
// rather than from a read model: the person's pass streams are read with
// Log.ReadPassesOf and each venue's name, type, district and
// address come from replaying the venue's aggregate. A pass appended twice
// (a retry after the duplicate window) counts once, at its first position,
// as in the read models. position is the log position the answer reflects.
func (l *Ledger) replayHistory(ctx context.Context, personID uuid.UUID, from, to time.Time) (visits []domain.Visit, position uint64, err error) {
	last, err := l.Log.LastPosition(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("replay passes of %s: %w", personID, err)
	}
	type row struct {
		v   domain.Visit
		pos uint64
	}
	var rows []row
	seen := make(map[uuid.UUID]bool)
	err = l.Log.ReadPassesOf(ctx, personID, 0, func(envs []domain.Envelope) error {
		for _, e := range envs {
			if e.Position > last || e.Type != domain.TypePassRecorded || seen[e.ID] {
				continue
			}
			seen[e.ID] = true
			ev, err := domain.Decode(e)
			if err != nil {
				return err
			}
			p := ev.(*domain.PassRecorded)
			if p.PersonID != personID {
				continue
			}
			at := e.OccurredAt.UTC()
			if (!from.IsZero() && at.Before(from)) || (!to.IsZero() && !at.Before(to)) {
				continue
			}
			rows = append(rows, row{v: domain.Visit{EventID: e.ID, VenueID: p.VenueID, At: at, Direction: p.Direction, Decision: p.Decision}, pos: e.Position})
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("replay passes of %s: %w", personID, err)
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(a.v.At.Compare(b.v.At), cmp.Compare(a.pos, b.pos))
	})
	known := make(map[uuid.UUID]domain.Venue)
	visits = make([]domain.Visit, 0, len(rows))
	for _, r := range rows {
		v, ok := known[r.v.VenueID]
		if !ok {
			if v, _, err = load(ctx, l, venues, r.v.VenueID); err != nil {
				return nil, 0, err
			}
			known[r.v.VenueID] = v
		}
		r.v.VenueName, r.v.VenueType, r.v.District, r.v.Address = v.Name(), v.Type(), v.District(), v.Address()
		visits = append(visits, r.v)
	}
	return visits, last, nil
}

// BindTraceReads gives domain.FindContacts the read models' window reads,
// bound to one request's context; and their stays (domain.StayReads) when
// r keeps them under rules.
func BindTraceReads(ctx context.Context, r TraceReads, rules domain.StayRules) domain.ContactReads {
	c := contactReads{ctx, r}
	if sr, ok := r.(StayReads); ok && sr.StayRules().String() == rules.String() {
		return contactStayReads{c, sr}
	}
	return c
}

// withStays is a ledger's reads with its stays.
type withStays struct {
	TraceReads
	StayReads
}

// contactReads is BindTraceReads' answer.
type contactReads struct {
	ctx   context.Context
	reads TraceReads
}

func (c contactReads) PassesOfPersons(personIDs []uuid.UUID, from, to, asOf time.Time) ([]domain.PassPoint, error) {
	return c.reads.PassesOfPersons(c.ctx, personIDs, from, to, asOf)
}

func (c contactReads) PassesAtVenues(windows []domain.VenueWindow, asOf time.Time) ([]domain.PassPoint, error) {
	return c.reads.PassesAtVenues(c.ctx, windows, asOf)
}

// contactStayReads is BindTraceReads' answer for a store that keeps stays.
type contactStayReads struct {
	contactReads
	stays StayReads
}

func (c contactStayReads) StaysOfPersons(personIDs []uuid.UUID, from, to, asOf time.Time) ([]domain.Presence, bool, error) {
	return c.stays.StaysOfPersons(c.ctx, personIDs, from, to, asOf)
}

func (c contactStayReads) StaysMeeting(windows []domain.VenueWindow, asOf time.Time, each func([]domain.Presence)) (bool, error) {
	return c.stays.StaysMeeting(c.ctx, windows, asOf, each)
}
