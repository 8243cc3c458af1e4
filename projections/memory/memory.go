// Package memory is the in-memory read-model store: the embedded default,
// rebuilt from the log at every start.
//
// Passes dominate its size, so each is one compact struct: venue and person
// ids are interned to int32 indexes, strings to uint32 indexes into one
// table, times kept as Unix nanoseconds. Every venue and every person keeps a
// passList of its passes sorted by (at, position), in chunks: passes mostly
// arrive in time order and are appended, and an offline scanner's old passes
// are merged into the chunks they land in. A store is rebuilt by making a
// new one.
package memory

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// Options configure a Store.
type Options struct {
	// FactsOnly keeps only what ledger.ReadModel.PassFacts, Person, Venue,
	// Health and Pass(es) answer: the passes are held by event id but not
	// listed per venue and per person, so Entries, Trace, Occupancy and the
	// window reads see no passes. For a command-side copy of the facts
	// beside read models kept elsewhere (projections/facts).
	FactsOnly bool
}

// Store holds the read models in memory. It is safe for concurrent use: one
// writer (the projector) and any number of readers.
type Store struct {
	mu  sync.RWMutex
	cp  projections.Checkpoint
	str interner

	venues   []venueRow
	venueIdx map[uuid.UUID]int32
	people   []personRow
	personIx map[uuid.UUID]int32
	byHash   map[string]int32

	passes   passTable
	passByID map[uuid.UUID]int32

	// seen holds the ids of the non-pass events applied, so a redelivered
	// registration, review or sub-admin change is a no-op.
	seen   map[uuid.UUID]struct{}
	health map[string]*healthRow
	alerts map[string][]alertRow // by district, sorted by (at, position)

	// pendV and pendP gather one Apply's new passes per venue and person,
	// merged into their lists once at the end of the batch, as one sorted
	// run each (made in run).
	pendV, pendP map[int32][]int32
	run          []entry
	// retiredBefore is the latest cut-off RetirePasses was given (Unix
	// nanoseconds; noTime: none): passes and alerts older than it are not
	// applied again (a replay of the log brings some until their message
	// expires).
	retiredBefore int64
	audit         []auditRow               // sorted by (at, position)
	chain         []domain.AuditChainEntry // the audit chain, sorted by seq
	chainSources  map[uuid.UUID]uint64     // each chain entry's seq by its source event
	decls         map[uuid.UUID]*domain.DeclarationView
	declsOf       map[uuid.UUID][]*domain.DeclarationView // by declarant, for an erasure
	factsOnly     bool

	// dash holds the dashboard's anonymous counts (dashboard.go), kept
	// apart from the passes: retention deleting passes leaves them.
	dash dashboard
}

var _ projections.Store = (*Store)(nil)

// New returns an empty store at position 0.
func New(o Options) *Store {
	s := &Store{
		factsOnly: o.FactsOnly,
		venueIdx:  make(map[uuid.UUID]int32),
		personIx:  make(map[uuid.UUID]int32),
		byHash:    make(map[string]int32),
		passByID:  make(map[uuid.UUID]int32),
		seen:      make(map[uuid.UUID]struct{}),
		health:    make(map[string]*healthRow),
		alerts:    make(map[string][]alertRow),
		decls:     make(map[uuid.UUID]*domain.DeclarationView),
		declsOf:   make(map[uuid.UUID][]*domain.DeclarationView),
		pendV:     make(map[int32][]int32),
		pendP:     make(map[int32][]int32),
		// Nothing is before noTime: nothing is skipped until a retirement.
		retiredBefore: noTime,
		dash:          newDashboard(),
	}
	s.str.init()
	return s
}

// noTime stands for the zero time.Time in the compact int64 form.
const noTime = math.MinInt64

func nanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return noTime
	case t.Before(minNanos):
		return noTime + 1 // the earliest a filter can say: before every pass
	case t.After(maxNanos):
		return math.MaxInt64 // after every pass
	}
	return t.UnixNano()
}

// The instants int64 nanoseconds hold (years 1677 to 2262); a filter beyond
// them means "before" or "after" every pass, never wraps around.
var (
	minNanos = time.Unix(0, math.MinInt64+1)
	maxNanos = time.Unix(0, math.MaxInt64)
)

func fromNanos(n int64) time.Time {
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// interner maps strings to uint32 indexes; index 0 is "".
type interner struct {
	idx  map[string]uint32
	strs []string
	// last remembers, per field of a pass, the string seen last and its
	// index: consecutive passes mostly repeat them, and comparing two short
	// strings is cheaper than hashing one.
	last [12]struct {
		s  string
		id uint32
	}
}

// field interns s for the pass field numbered f.
func (in *interner) field(f int, s string) uint32 {
	c := &in.last[f]
	if c.s == s {
		return c.id
	}
	id := in.id(s)
	c.s, c.id = s, id
	return id
}

func (in *interner) init() {
	in.idx = map[string]uint32{"": 0}
	in.strs = []string{""}
}

func (in *interner) id(s string) uint32 {
	if i, ok := in.idx[s]; ok {
		return i
	}
	i := uint32(len(in.strs))
	in.strs = append(in.strs, s)
	in.idx[s] = i
	return i
}

// lookup returns s's index, or false when s was never interned (so nothing
// can match it).
func (in *interner) lookup(s string) (uint32, bool) {
	i, ok := in.idx[s]
	return i, ok
}

// pass is one PassRecorded, about 128 bytes.
type pass struct {
	id       uuid.UUID
	pos      uint64
	at       int64
	rec      int64 // RecordedAt, for contact tracing's as_of
	sNATAt   int64
	sAt      int64
	venue    int32
	person   int32
	guardian int32 // -1: none
	sVenue   int32 // -1: none
	sDoses   int32

	dir, method, decision, reason, operator           uint32
	sName, sColour, sNAT, sVenueName, sDir, sDecision uint32
	sReason                                           uint32
}

// passTable holds the passes in fixed chunks: adding never copies the
// passes already held (one growing slice of a million 120-byte passes is
// copied, and its new pages faulted in, every time it grows).
//
// Retired passes (RetirePasses) are marked dead (pos 0: no event is ever
// applied at position 0) and counted out of their chunk's live passes; a
// chunk whose passes are all dead is released, its indexes never reused.
type passTable struct {
	chunks [][]pass
	live   []int32 // per chunk, the passes not retired
	minAt  []int64 // per chunk, the earliest at of those (math.MaxInt64: none)
	n      int32
}

const (
	passChunkBits = 13
	passChunk     = 1 << passChunkBits
)

// add appends p and returns its index.
func (t *passTable) add(p pass) int32 {
	if int(t.n)>>passChunkBits == len(t.chunks) {
		t.chunks = append(t.chunks, make([]pass, 0, passChunk))
		t.live = append(t.live, 0)
		t.minAt = append(t.minAt, math.MaxInt64)
	}
	last := len(t.chunks) - 1
	c := &t.chunks[last]
	*c = append(*c, p)
	t.live[last]++
	t.minAt[last] = min(t.minAt[last], p.at)
	t.n++
	return t.n - 1
}

// at returns the pass at index i.
func (t *passTable) at(i int32) *pass {
	return &t.chunks[i>>passChunkBits][i&(passChunk-1)]
}

type personRow struct {
	id           uuid.UUID
	registered   bool
	nameMasked   string
	idMasked     string
	idType       string
	idHash       string
	verification string
	erased       bool
	guardian     uuid.UUID
	relation     string
	family       []int32
	registeredAt time.Time
	position     uint64
	passes       passList
}

type venueRow struct {
	view   domain.VenueView
	known  bool // a VenueApplied was applied
	order  uint64
	passes passList
}

type healthRow struct {
	// records are the document's health records; view folds them
	// (domain.HealthAsOf), refreshed at each record.
	records []domain.HealthRecordFact
	view    domain.HealthView
}

type alertRow struct {
	alert domain.Alert
	at    int64
	pos   uint64
}

func (s *Store) venueIndex(id uuid.UUID) int32 {
	if i, ok := s.venueIdx[id]; ok {
		return i
	}
	i := int32(len(s.venues))
	s.venues = append(s.venues, venueRow{view: domain.VenueView{ID: id}})
	s.venueIdx[id] = i
	return i
}

func (s *Store) personIndex(id uuid.UUID) int32 {
	if i, ok := s.personIx[id]; ok {
		return i
	}
	i := int32(len(s.people))
	s.people = append(s.people, personRow{id: id})
	s.personIx[id] = i
	return i
}

// registered returns the row of person id when they are registered: any
// event that names a person (a pass, a verification, a family link) makes
// their row, and the read models show it only while they are registered.
func (s *Store) registered(id uuid.UUID) (int32, bool) {
	i, ok := s.personIx[id]
	return i, ok && s.people[i].registered
}

// knownVenue returns the row of venue id once its application is applied:
// any event that names a venue (a pass, a review) makes its row.
func (s *Store) knownVenue(id uuid.UUID) (*venueRow, bool) {
	if i, ok := s.venueIdx[id]; ok && s.venues[i].known {
		return &s.venues[i], true
	}
	return nil, false
}

// Checkpoint implements projections.Writer.
func (s *Store) Checkpoint(context.Context) (projections.Checkpoint, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cp, nil
}

// Position implements ledger.ReadModel.
func (s *Store) Position(context.Context) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cp.Position, nil
}

// Apply implements projections.Writer: the whole batch and the new position
// are applied under one lock, so readers see all of it or none.
func (s *Store) Apply(_ context.Context, b projections.Batch) (projections.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.After > s.cp.Position {
		return s.cp, fmt.Errorf("memory store at %d, batch after %d: %w", s.cp.Position, b.After, projections.ErrGap)
	}
	for i := range b.Changes {
		c := &b.Changes[i]
		if c.Position <= s.cp.Position {
			continue
		}
		s.apply(c)
	}
	s.mergePending()
	if b.Last > s.cp.Position {
		s.cp = projections.Checkpoint{Position: b.Last, RecordedAt: b.LastRecordedAt}
	}
	return s.cp, nil
}

func (s *Store) apply(c *projections.Change) {
	if ev, ok := c.Event.(*domain.PassRecorded); ok {
		s.applyPass(c, ev)
		return
	}
	if _, dup := s.seen[c.EventID]; dup {
		return
	}
	switch ev := c.Event.(type) {
	case *domain.PersonRegistered:
		s.applyPerson(c, ev)
	case *domain.PersonReleased:
		// The family registration is void: the person is unregistered (their
		// guardian's family list leaves them out) until the document's owner
		// registers it.
		i := s.personIndex(ev.PersonID)
		p := &s.people[i]
		if p.guardian != uuid.Nil {
			g := &s.people[s.personIndex(p.guardian)]
			g.family = slices.DeleteFunc(g.family, func(f int32) bool { return f == i })
		}
		p.registered, p.guardian, p.relation, p.verification = false, uuid.Nil, "", ""
		if j, ok := s.byHash[p.idHash]; ok && j == i {
			delete(s.byHash, p.idHash)
		}
		p.position = max(p.position, c.Position)
	case *domain.PersonErased:
		s.applyErasure(c, ev)
	case *domain.PersonVerified:
		i := s.personIndex(ev.PersonID)
		p := &s.people[i]
		p.verification = ev.Result
		p.position = max(p.position, c.Position)
	case *domain.VenueApplied:
		v := &s.venues[s.venueIndex(ev.VenueID)]
		adm, passes := v.view.Admins, v.passes
		v.view = domain.VenueView{
			ID: ev.VenueID, Name: ev.Name, Type: ev.Type, District: ev.District, Address: ev.Address,
			Lat: ev.Lat, Lng: ev.Lng, Status: "pending", ManagerID: ev.ManagerID, Admins: adm,
			RequireGreen: ev.RequireGreen, NATWithinHours: ev.NATWithinHours, AppliedAt: c.OccurredAt,
		}
		v.passes, v.known, v.order = passes, true, c.Position
	case *domain.VenueReviewed:
		v := &s.venues[s.venueIndex(ev.VenueID)]
		v.view.Status = domain.ReviewedStatus(ev.Decision, domain.VenueStatusApproved, domain.VenueStatusRejected)
		v.view.Reason = ev.Reason
		v.view.ReviewedAt = c.OccurredAt
	case *domain.SubAdminAdded:
		v := &s.venues[s.venueIndex(ev.VenueID)]
		if !slices.Contains(v.view.Admins, ev.PersonID) {
			v.view.Admins = append(v.view.Admins, ev.PersonID)
		}
	case *domain.SubAdminRemoved:
		v := &s.venues[s.venueIndex(ev.VenueID)]
		v.view.Admins = slices.DeleteFunc(v.view.Admins, func(id uuid.UUID) bool { return id == ev.PersonID })
	case *domain.HealthStatusRecorded:
		s.applyHealth(c, ev)
	case *domain.AlertRaised:
		s.applyAlert(c, ev)
	case *domain.TraceRequested:
		s.applyAudit(c, ev)
	case *domain.AuditRecorded:
		s.applyAuditChain(c, ev)
	case *domain.ArrivalDeclared, *domain.TruckPassDeclared, *domain.DeclarationQueued, *domain.DeclarationReviewed:
		s.applyDeclaration(c)
	default:
		// Other events (declarations, audit, venue codes) do not shape these
		// read models; their position still counts.
		return
	}
	s.seen[c.EventID] = struct{}{}
}

func (s *Store) applyPerson(c *projections.Change, ev *domain.PersonRegistered) {
	i := s.personIndex(ev.PersonID)
	p := &s.people[i]
	p.registered = true
	p.nameMasked, p.idMasked = c.Masks.Name, c.Masks.IDNumber
	p.idType, p.idHash = ev.IDType, ev.IDHash
	if p.verification == "" {
		p.verification = "pending"
	}
	p.guardian, p.relation = ev.GuardianID, ev.Relation
	p.registeredAt = c.OccurredAt
	p.position = max(p.position, c.Position)
	if ev.IDHash != "" {
		s.byHash[ev.IDHash] = i
	}
	if ev.GuardianID != uuid.Nil {
		g := &s.people[s.personIndex(ev.GuardianID)]
		if !slices.Contains(g.family, i) {
			g.family = append(g.family, i)
		}
	}
}

// applyErasure forgets an erased person's personal data at once: the
// masks become the erased ones, the document is no lookup key any more, and
// their declarations lose origin, plate and contact. Their passes stay, as
// anonymous facts under their id (history, traces and entry lists show no
// name for them).
func (s *Store) applyErasure(c *projections.Change, ev *domain.PersonErased) {
	i := s.personIndex(ev.PersonID)
	p := &s.people[i]
	p.erased = true
	p.nameMasked, p.idMasked = projections.ErasedMasks.Name, projections.ErasedMasks.IDNumber
	if j, ok := s.byHash[p.idHash]; ok && j == i {
		delete(s.byHash, p.idHash)
	}
	p.idHash = ""
	p.position = max(p.position, c.Position)
	for _, d := range s.declsOf[ev.PersonID] {
		projections.EraseDeclaration(d)
	}
}

func (s *Store) applyHealth(c *projections.Change, ev *domain.HealthStatusRecorded) {
	h := s.health[ev.IDHash]
	if h == nil {
		h = &healthRow{}
		s.health[ev.IDHash] = h
	}
	h.records = append(h.records, domain.HealthRecordFact{OccurredAt: c.OccurredAt, Position: c.Position,
		CodeColour: ev.CodeColour, NATResult: ev.NATResult, NATAt: ev.NATAt, VaccineDoses: ev.VaccineDoses})
	h.view, _ = domain.HealthAsOf(h.records, time.Time{})
}

func (s *Store) applyAlert(c *projections.Change, ev *domain.AlertRaised) {
	if nanos(c.OccurredAt) < s.retiredBefore {
		return // expired with its pass
	}
	a := alertRow{
		alert: domain.Alert{
			EventID: c.EventID, District: ev.District, VenueID: ev.VenueID, PersonID: ev.PersonID,
			PassEventID: ev.PassEventID, CodeColour: ev.CodeColour, Decision: ev.Decision, Reason: ev.Reason,
			At: c.OccurredAt,
		},
		at: nanos(c.OccurredAt), pos: c.Position,
	}
	list := s.alerts[ev.District]
	n := len(list)
	if n == 0 || !alertLess(a, list[n-1]) {
		s.alerts[ev.District] = append(list, a)
		return
	}
	k := sort.Search(n, func(j int) bool { return alertLess(a, list[j]) })
	s.alerts[ev.District] = slices.Insert(list, k, a)
}

func alertLess(a, b alertRow) bool {
	return a.at < b.at || (a.at == b.at && a.pos < b.pos)
}

func (s *Store) applyPass(c *projections.Change, ev *domain.PassRecorded) {
	if _, dup := s.passByID[c.EventID]; dup {
		return
	}
	if nanos(c.OccurredAt) < s.retiredBefore {
		return // expired: retired already
	}
	in := &s.str
	p := pass{
		id:         c.EventID,
		pos:        c.Position,
		at:         nanos(c.OccurredAt),
		rec:        nanos(c.RecordedAt),
		sNATAt:     nanos(ev.Screen.NATAt),
		sAt:        nanos(ev.Screen.At),
		venue:      s.venueIndex(ev.VenueID),
		person:     s.personIndex(ev.PersonID),
		guardian:   -1,
		sVenue:     -1,
		sDoses:     int32(ev.Screen.VaccineDoses),
		dir:        in.field(0, ev.Direction),
		method:     in.field(1, ev.Method),
		decision:   in.field(2, ev.Decision),
		reason:     in.field(3, ev.Reason),
		operator:   in.field(4, ev.Operator),
		sName:      in.field(5, ev.Screen.NameMasked),
		sColour:    in.field(6, ev.Screen.CodeColour),
		sNAT:       in.field(7, ev.Screen.NATResult),
		sVenueName: in.field(8, ev.Screen.VenueName),
		sDir:       in.field(9, ev.Screen.Direction),
		sDecision:  in.field(10, ev.Screen.Decision),
		sReason:    in.field(11, ev.Screen.Reason),
	}
	if ev.GuardianID != uuid.Nil {
		p.guardian = s.personIndex(ev.GuardianID)
	}
	switch ev.Screen.VenueID {
	case uuid.Nil:
	case ev.VenueID:
		p.sVenue = p.venue
	default:
		p.sVenue = s.venueIndex(ev.Screen.VenueID)
	}
	idx := s.passes.add(p)
	s.passByID[c.EventID] = idx
	if s.factsOnly {
		return
	}
	v := &s.venues[p.venue].view
	s.dash.count(c.OccurredAt, v.District, v.Type, domain.CountPass(*ev))
	s.pendV[p.venue] = append(s.pendV[p.venue], idx)
	s.pendP[p.person] = append(s.pendP[p.person], idx)
}

// mergePending merges the batch's new passes into the venue and person lists.
func (s *Store) mergePending() {
	for vi, add := range s.pendV {
		s.venues[vi].passes.insert(s.sortedRun(add))
	}
	for pi, add := range s.pendP {
		s.people[pi].passes.insert(s.sortedRun(add))
	}
	clear(s.pendV)
	clear(s.pendP)
}

// sortedRun returns the entries of passes ks sorted by (at, position), in
// s.run (valid until the next call).
func (s *Store) sortedRun(ks []int32) []entry {
	run := s.run[:0]
	for _, k := range ks {
		run = append(run, entry{at: s.passes.at(k).at, i: k})
	}
	slices.SortFunc(run, compareEntries)
	s.run = run
	return run
}

// before reports whether pass a sorts before pass b by (at, position).
func (s *Store) before(a, b int32) bool {
	pa, pb := s.passes.at(a), s.passes.at(b)
	return pa.at < pb.at || (pa.at == pb.at && pa.pos < pb.pos)
}

// window returns the places in l that bound its passes with at in
// [from, to) (a zero time: no bound); lo is not before hi when there are
// none.
func (l *passList) window(from, to time.Time) (lo, hi place) {
	lo, hi = l.start(), l.end()
	if !from.IsZero() {
		f := nanos(from)
		lo = l.search(func(e entry) bool { return e.at >= f })
	}
	if !to.IsZero() {
		t := nanos(to)
		hi = l.search(func(e entry) bool { return e.at >= t })
	}
	return lo, hi
}

func (s *Store) personView(i int32) domain.PersonView {
	p := &s.people[i]
	v := domain.PersonView{
		ID: p.id, NameMasked: p.nameMasked, IDType: p.idType, IDMasked: p.idMasked, IDHash: p.idHash, Erased: p.erased,
		Verification: p.verification, GuardianID: p.guardian, Relation: p.relation,
		FamilyMembers: make([]uuid.UUID, 0, len(p.family)), RegisteredAt: p.registeredAt, Position: p.position,
	}
	for _, f := range p.family {
		if s.people[f].registered {
			v.FamilyMembers = append(v.FamilyMembers, s.people[f].id)
		}
	}
	return v
}

// Person implements ledger.ReadModel.
func (s *Store) Person(_ context.Context, id uuid.UUID) (domain.PersonView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.registered(id)
	if !ok {
		return domain.PersonView{}, domain.Errorf(domain.ErrNotFound, "person %s", id)
	}
	return s.personView(i), nil
}

// PersonByIDHash implements ledger.ReadModel.
func (s *Store) PersonByIDHash(_ context.Context, idHash string) (domain.PersonView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.byHash[idHash]
	if !ok {
		return domain.PersonView{}, domain.Errorf(domain.ErrNotFound, "person with that ID document")
	}
	return s.personView(i), nil
}

// Health implements ledger.ReadModel.
func (s *Store) Health(_ context.Context, idHash string) (domain.HealthView, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.health[idHash]
	if !ok {
		return domain.HealthView{}, false, nil
	}
	return h.view, true, nil
}

func (s *Store) venueView(v *venueRow) domain.VenueView {
	out := v.view
	out.Admins = append(make([]uuid.UUID, 0, len(v.view.Admins)), v.view.Admins...)
	return out
}

// Venue implements ledger.ReadModel.
func (s *Store) Venue(_ context.Context, id uuid.UUID) (domain.VenueView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.knownVenue(id)
	if !ok {
		return domain.VenueView{}, domain.Errorf(domain.ErrNotFound, "venue %s", id)
	}
	return s.venueView(v), nil
}

// Venues implements ledger.ReadModel: in application order.
func (s *Store) Venues(_ context.Context, f domain.VenueFilter) ([]domain.VenueView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var rows []*venueRow
	for i := range s.venues {
		v := &s.venues[i]
		if !v.known || (f.District != "" && v.view.District != f.District) || (f.Status != "" && v.view.Status != f.Status) {
			continue
		}
		rows = append(rows, v)
	}
	slices.SortFunc(rows, func(a, b *venueRow) int {
		return cmp.Compare(a.order, b.order)
	})
	if f.Limit > 0 && len(rows) > f.Limit {
		rows = rows[:f.Limit]
	}
	out := make([]domain.VenueView, 0, len(rows))
	for _, v := range rows {
		out = append(out, s.venueView(v))
	}
	return out, nil
}

// Entries implements ledger.ReadModel: newest first by (at, position).
func (s *Store) Entries(_ context.Context, q domain.EntryQuery) ([]domain.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vi, ok := s.venueIdx[q.VenueID]
	if !ok {
		return []domain.Entry{}, nil
	}
	var dir, dec uint32
	if q.Direction != "" {
		if dir, ok = s.str.lookup(q.Direction); !ok {
			return []domain.Entry{}, nil
		}
	}
	if q.Decision != "" {
		if dec, ok = s.str.lookup(q.Decision); !ok {
			return []domain.Entry{}, nil
		}
	}
	list := &s.venues[vi].passes
	lo, hi := list.window(q.From, q.To)
	if !q.AfterAt.IsZero() {
		after := nanos(q.AfterAt)
		// First entry not strictly older than (after, AfterPosition).
		if a := list.search(func(e entry) bool {
			return e.at > after || (e.at == after && s.passes.at(e.i).pos >= q.AfterPosition)
		}); a.before(hi) {
			hi = a
		}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	out := make([]domain.Entry, 0, min(limit, list.count()))
	for e := range list.descend(lo, hi) {
		if len(out) == limit {
			break
		}
		p := s.passes.at(e.i)
		if (dir != 0 && p.dir != dir) || (dec != 0 && p.decision != dec) {
			continue
		}
		person := &s.people[p.person]
		var name, id string
		if person.registered { // a released registration shows no masks (as PostgreSQL's join)
			name, id = person.nameMasked, person.idMasked
		}
		out = append(out, domain.Entry{
			EventID: p.id, PersonID: person.id, NameMasked: name, IDMasked: id,
			At: fromNanos(p.at), Direction: s.str.strs[p.dir], Decision: s.str.strs[p.decision],
			Method: s.str.strs[p.method], Operator: s.str.strs[p.operator], Reason: s.str.strs[p.reason],
			Position: p.pos,
		})
	}
	return out, nil
}

// Trace implements ledger.ReadModel: oldest first.
func (s *Store) Trace(_ context.Context, personID uuid.UUID, from, to time.Time) ([]domain.Visit, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	pi, ok := s.personIx[personID]
	if !ok {
		return []domain.Visit{}, nil
	}
	list := &s.people[pi].passes
	out := []domain.Visit{}
	for e := range list.ascend(list.window(from, to)) {
		p := s.passes.at(e.i)
		v := &s.venues[p.venue].view
		out = append(out, domain.Visit{
			EventID: p.id, VenueID: v.ID, VenueName: v.Name, VenueType: v.Type, District: v.District,
			Address: v.Address, At: fromNanos(p.at), Direction: s.str.strs[p.dir], Decision: s.str.strs[p.decision],
		})
	}
	return out, nil
}

// Occupancy implements ledger.ReadModel: the people whose last pass at the
// venue in (now−dwell, now] is a passed entry. A person whose last pass is
// older than dwell has left (an entry with no exit ends after dwell).
func (s *Store) Occupancy(_ context.Context, venueID uuid.UUID, now time.Time, dwell time.Duration) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vi, ok := s.venueIdx[venueID]
	if !ok {
		return 0, nil
	}
	return s.occupancy(vi, now, dwell), nil
}

// occupancy counts venue vi's people inside at now (Occupancy's rule). It
// reads only the passes in (now−dwell, now]. The read lock is held.
func (s *Store) occupancy(vi int32, now time.Time, dwell time.Duration) int {
	in, _ := s.str.lookup("in")
	pass, _ := s.str.lookup("pass")
	list := &s.venues[vi].passes
	nowN := nanos(now)
	start := nowN - int64(dwell)
	if n := len(list.last); n == 0 || list.last[n-1].at <= start {
		return 0 // no pass since the dwell began
	}
	hi := list.search(func(e entry) bool { return e.at > nowN })
	var seen map[int32]struct{}
	n := 0
	for e := range list.descend(list.start(), hi) {
		if e.at <= start {
			break
		}
		p := s.passes.at(e.i)
		if p.dir == in && p.decision != pass {
			continue // a refused entry: the person did not go in, and it changes no stay
		}
		if seen == nil {
			seen = make(map[int32]struct{})
		}
		if _, done := seen[p.person]; done {
			continue
		}
		seen[p.person] = struct{}{}
		if p.dir == in && in != 0 {
			n++
		}
	}
	return n
}

// Alerts implements ledger.ReadModel: newest first.
func (s *Store) Alerts(_ context.Context, district string, limit int) ([]domain.Alert, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	list := s.alerts[district]
	if limit <= 0 {
		limit = 50
	}
	out := make([]domain.Alert, 0, min(limit, len(list)))
	for k := len(list) - 1; k >= 0 && len(out) < limit; k-- {
		out = append(out, list[k].alert)
	}
	return out, nil
}

// Pass implements ledger.ReadModel.
func (s *Store) Pass(_ context.Context, eventID uuid.UUID) (domain.PassView, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.passByID[eventID]
	if !ok {
		return domain.PassView{}, false, nil
	}
	return s.passView(i), true, nil
}

// Passes returns the stored passes among eventIDs.
func (s *Store) Passes(_ context.Context, eventIDs []uuid.UUID) (map[uuid.UUID]domain.PassView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	found := make(map[uuid.UUID]domain.PassView)
	for _, id := range eventIDs {
		if i, ok := s.passByID[id]; ok {
			found[id] = s.passView(i)
		}
	}
	return found, nil
}

// passView rebuilds stored pass i. The read lock is held.
func (s *Store) passView(i int32) domain.PassView {
	p := s.passes.at(i)
	str := s.str.strs
	ev := domain.PassRecorded{
		VenueID: s.venues[p.venue].view.ID, PersonID: s.people[p.person].id,
		Direction: str[p.dir], Method: str[p.method], Decision: str[p.decision], Reason: str[p.reason],
		Operator: str[p.operator],
		Screen: domain.Screen{
			NameMasked: str[p.sName], CodeColour: str[p.sColour], NATResult: str[p.sNAT],
			NATAt: fromNanos(p.sNATAt), VaccineDoses: int(p.sDoses), VenueName: str[p.sVenueName],
			At: fromNanos(p.sAt), Direction: str[p.sDir], Decision: str[p.sDecision], Reason: str[p.sReason],
		},
	}
	if p.guardian >= 0 {
		ev.GuardianID = s.people[p.guardian].id
	}
	if p.sVenue >= 0 {
		ev.Screen.VenueID = s.venues[p.sVenue].view.ID
	}
	return domain.PassView{EventID: p.id, Position: p.pos, Pass: ev}
}

// PassFacts implements ledger.ReadModel: every fact under one read lock.
func (s *Store) PassFacts(_ context.Context, q ledger.PassFactsQuery) (domain.PassFacts, error) {
	f := projections.NewPassFacts(q)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range q.Venues {
		if v, ok := s.knownVenue(id); ok {
			f.Venues[id] = s.venueView(v)
		}
	}
	person := func(i int32) {
		v := s.personView(i)
		f.Persons[v.ID] = v
		if h, ok := s.health[v.IDHash]; ok && v.IDHash != "" {
			// Records are only appended, never changed: the slice up to
			// its length now is the facts' own, without a copy.
			f.Health[v.IDHash] = h.records[:len(h.records):len(h.records)]
		}
	}
	for _, id := range q.Persons {
		if i, ok := s.registered(id); ok {
			person(i)
		}
	}
	for _, h := range q.IDHashes {
		if i, ok := s.byHash[h]; ok {
			person(i)
			f.ByIDHash[h] = s.people[i].id
		}
	}
	for _, id := range q.EventIDs {
		if i, ok := s.passByID[id]; ok {
			f.Stored[id] = s.passView(i)
		}
	}
	return f, nil
}
