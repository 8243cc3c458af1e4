package domain

import (
	"cmp"
	"encoding/binary"
	"iter"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"
)

// PassPoint is the part of a pass that contact tracing needs.
type PassPoint struct {
	EventID   uuid.UUID
	PersonID  uuid.UUID
	VenueID   uuid.UUID
	VenueType string
	At        time.Time
	Direction string
	Decision  string
	// Position is the pass's position in the log.
	Position uint64
	// RecordedAt is when the ledger appended the pass (zero: unknown).
	RecordedAt time.Time
}

// Presence is one person's stay at one venue: from an entry to the exit
// that closes it. An entry with no exit ends after the venue type's dwell;
// an exit with no entry starts that long before.
type Presence struct {
	PersonID uuid.UUID
	VenueID  uuid.UUID
	Start    time.Time
	End      time.Time
	// Entry: Start is an entry pass's time; Exit: End is an exit pass's
	// time (else the dwell or the next entry ends it). Every counting pass
	// is the entry or the exit of exactly one stay, so a person's stays at
	// a venue give back their passes.
	Entry, Exit bool
}

// Presences turns passes into stays, person by person and venue by venue.
// Passes may come in any order; at the same instant an entry sorts before
// an exit.
//
//   - A denied entry is a refusal at the door: the person did not go in, so
//     it is no stay and changes no stay. An exit always counts, whatever
//     its decision (an exit is never refused; older logs may hold denied
//     exits, and those people did leave).
//   - An entry is closed by the person's next exit at that venue when it
//     comes no later than the venue type's maximum stay after it: the stay
//     is entry to exit, however long (a hotel night, a shift).
//   - An entry with no such exit ends after the dwell, or at the person's
//     next entry at that venue if that comes first.
//   - An exit that closes no entry starts the dwell before it.
//
// The dwell fills in only an end that is missing; the maximum stay guards a
// missing exit (an exit a week after a forgotten exit scan is not a
// week-long stay, but the exit of a stay whose entry was missed). So no stay
// is longer than its type's maximum stay, and a stay depends only on passes
// less than that apart: a trace builds every stay that touches a window
// from the passes within rules.Longest() of it.
func Presences(passes []PassPoint, rules StayRules) []Presence {
	// Sort small references rather than the passes: a trace turns tens of
	// thousands of passes into stays. Each (person, venue) gets a group
	// number in order of first appearance.
	type ref struct {
		group int32
		out   bool
		at    int64
		i     int32
	}
	type pair struct{ person, venue uuid.UUID }
	groups := make(map[pair]int32)
	refs := make([]ref, 0, len(passes))
	for i := range passes {
		p := &passes[i]
		counts := p.Direction == DirectionOut || (p.Direction == DirectionIn && p.Decision == DecisionPass)
		if !counts {
			continue
		}
		k := pair{p.PersonID, p.VenueID}
		g, ok := groups[k]
		if !ok {
			g = int32(len(groups))
			groups[k] = g
		}
		refs = append(refs, ref{group: g, out: p.Direction == DirectionOut, at: p.At.UnixNano(), i: int32(i)})
	}
	slices.SortFunc(refs, func(a, b ref) int {
		switch {
		case a.group != b.group:
			return int(a.group - b.group)
		case a.at != b.at:
			if a.at < b.at {
				return -1
			}
			return 1
		case a.out != b.out:
			if b.out { // at the same instant an entry comes first
				return -1
			}
			return 1
		}
		return 0
	})
	out := make([]Presence, 0, len(refs))
	var open *PassPoint
	closeOpen := func(end time.Time, exit bool) {
		out = append(out, Presence{PersonID: open.PersonID, VenueID: open.VenueID, Start: open.At, End: end, Entry: true, Exit: exit})
		open = nil
	}
	for k, r := range refs {
		p := &passes[r.i]
		if open != nil && refs[k-1].group != r.group {
			closeOpen(open.At.Add(rules.DwellOf(open.VenueType)), false)
		}
		if !r.out {
			if open != nil {
				end := open.At.Add(rules.DwellOf(open.VenueType))
				if p.At.Before(end) {
					end = p.At // a second entry within the dwell ends the first stay
				}
				closeOpen(end, false)
			}
			open = p
			continue
		}
		if open != nil {
			if !p.At.After(open.At.Add(rules.MaxStayOf(open.VenueType))) {
				closeOpen(p.At, true)
				continue
			}
			closeOpen(open.At.Add(rules.DwellOf(open.VenueType)), false)
		}
		out = append(out, Presence{PersonID: p.PersonID, VenueID: p.VenueID, Start: p.At.Add(-rules.DwellOf(p.VenueType)), End: p.At, Exit: true})
	}
	if open != nil {
		closeOpen(open.At.Add(rules.DwellOf(open.VenueType)), false)
	}
	return out
}

// overlap returns the common part of two stays [aStart, aEnd] and
// [bStart, bEnd] (Unix nanoseconds) with each widened by buffer on both
// sides; ok is false when they do not meet. It is the one rule of a
// co-presence: contactSet.find then cuts it to the window and the minimum.
func overlap(aStart, aEnd, bStart, bEnd, buffer int64) (start, end int64, ok bool) {
	start, end = max(aStart, bStart)-buffer, min(aEnd, bEnd)+buffer
	return start, end, end > start
}

// Contact is one co-presence of a contact with a traced person at a venue.
type Contact struct {
	PersonID     uuid.UUID
	Depth        int
	ViaPersonID  uuid.UUID
	VenueID      uuid.UUID
	OverlapStart time.Time
	OverlapEnd   time.Time
	// OverlapMinutes is the overlap's length in whole minutes.
	OverlapMinutes int
}

// TraceWindow is what a contact search looks at.
type TraceWindow struct {
	From, To   time.Time
	MinOverlap time.Duration
	Buffer     time.Duration
}

// venueStays are one venue's stays by start, with the longest of them: a
// stay that may overlap [from, to] starts in [from-longest, to]. n is the
// venue's number: venues are numbered in the order of their IDs.
type venueStays struct {
	stays []Presence
	// starts and ends are the stays' in Unix nanoseconds, for the pairing's
	// scan (a time.Time compare looks at its wall and monotonic parts).
	starts, ends []int64
	longest      time.Duration
	n            int32
}

// fill makes v the venue numbered n with its stays by start (kept, not
// copied), reusing v's buffers.
func (v *venueStays) fill(stays []Presence, n int32) {
	if !slices.IsSortedFunc(stays, byStart) {
		slices.SortFunc(stays, byStart)
	}
	v.stays, v.n, v.longest = stays, n, 0
	v.starts, v.ends = v.starts[:0], v.ends[:0]
	for _, st := range stays {
		v.longest = max(v.longest, st.End.Sub(st.Start))
		v.starts, v.ends = append(v.starts, st.Start.UnixNano()), append(v.ends, st.End.UnixNano())
	}
}

// viaStay is a stay of the frontier's via-th person.
type viaStay struct {
	via  uuid.UUID
	n    int32
	stay Presence
}

// frontierVenue is a venue where the frontier has stays: its number (in
// the order of the venues' IDs) and those stays; met once its stays came.
type frontierVenue struct {
	n     int32
	stays []viaStay
	met   bool
}

// frontierAt groups the frontier's stays by venue and numbers the venues
// in the order of their IDs (venues: the IDs by number).
func frontierAt(frontier []uuid.UUID, stays map[uuid.UUID][]Presence) (map[uuid.UUID]*frontierVenue, []uuid.UUID) {
	at := make(map[uuid.UUID]*frontierVenue)
	var venues []uuid.UUID
	for i, via := range frontier {
		for _, st := range stays[via] {
			v := at[st.VenueID]
			if v == nil {
				v = &frontierVenue{}
				at[st.VenueID] = v
				venues = append(venues, st.VenueID)
			}
			v.stays = append(v.stays, viaStay{via: via, n: int32(i), stay: st})
		}
	}
	slices.SortFunc(venues, compareUUID)
	for n, id := range venues {
		at[id].n = int32(n)
	}
	return at, venues
}

// coPresence is a contact found before it is named and ordered: the
// overlap in Unix nanoseconds, the contact's number in its contactSet, the
// via's place in the frontier and the venue's number (frontierAt). A
// depth-2 trace finds hundreds of thousands: 32 bytes and no pointers
// each, where a Contact is 112 bytes the garbage collector scans.
type coPresence struct {
	start, end         int64
	person, via, venue int32
}

// contactSet gathers one depth's co-presences and numbers the people found
// in the order they are found; the people to skip are numbered -1, so that
// a stay's person is looked up once.
type contactSet struct {
	persons []uuid.UUID
	number  map[uuid.UUID]int32
	found   []coPresence
}

func newContactSet(skip map[uuid.UUID]bool) *contactSet {
	s := &contactSet{number: make(map[uuid.UUID]int32, len(skip))}
	for p, yes := range skip {
		if yes {
			s.number[p] = -1
		}
	}
	return s
}

// pair adds the co-presences of mine, a stay of via (the via-th of the
// frontier), with the stays of its venue v. Only the stays that start
// within reach of it are looked at.
func (s *contactSet) pair(via uuid.UUID, viaN int32, mine Presence, v *venueStays, w TraceWindow) {
	// In Unix nanoseconds: overlap's rule, then cut to the window.
	b, minOverlap := int64(w.Buffer), int64(w.MinOverlap)
	from, to := boundNanos(w.From, math.MinInt64), boundNanos(w.To, math.MaxInt64)
	ms, me := mine.Start.UnixNano(), mine.End.UnixNano()
	// Widened by the buffer, theirs must start before mine ends and end
	// after mine starts.
	first := ms - 2*b - int64(v.longest)
	last := me + 2*b
	i, _ := slices.BinarySearch(v.starts, first)
	for ; i < len(v.starts) && v.starts[i] <= last; i++ {
		start, end, ok := overlap(ms, me, v.starts[i], v.ends[i], b)
		if !ok {
			continue
		}
		start, end = max(start, from), min(end, to)
		if end <= start || end-start < minOverlap {
			continue
		}
		theirs := &v.stays[i]
		if theirs.PersonID == via {
			continue
		}
		n, ok := s.number[theirs.PersonID]
		if n < 0 {
			continue // skipped
		}
		if !ok {
			n = int32(len(s.persons))
			s.number[theirs.PersonID] = n
			s.persons = append(s.persons, theirs.PersonID)
		}
		if len(s.found) == cap(s.found) {
			s.found = slices.Grow(s.found, len(s.found)) // doubling, not append's quarter
		}
		s.found = append(s.found, coPresence{start: start, end: end, person: n, via: viaN, venue: v.n})
	}
}

// boundNanos is a window's bound t in Unix nanoseconds: unbounded (zero)
// when t is zero, and clamped where t lies beyond what int64 nanoseconds
// hold (years before 1678 or after 2262: a valid trace window may lie
// there, and holds no stay).
func boundNanos(t time.Time, unbounded int64) int64 {
	switch {
	case t.IsZero():
		return unbounded
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// order orders the set's persons by ID and its contacts at depth by
// person, overlap start, via, venue and overlap end (SortContacts' order
// within a depth): frontier, the vias by place, must be ordered by ID, as
// venues, the venues by number.
func (s *contactSet) order(depth int, frontier, venues []uuid.UUID) foundDepth {
	// By UUID, compared as two big-endian words (byte order, as
	// compareUUID) rather than byte by byte: 130,000 people at depth 2.
	type key struct {
		hi, lo uint64
		n      int32
	}
	order := make([]key, len(s.persons))
	for i, p := range s.persons {
		order[i] = key{binary.BigEndian.Uint64(p[:8]), binary.BigEndian.Uint64(p[8:]), int32(i)}
	}
	slices.SortFunc(order, func(a, b key) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		return cmp.Compare(a.lo, b.lo)
	})
	rank := make([]int32, len(order))
	sorted := make([]uuid.UUID, len(order))
	for r, k := range order {
		rank[k.n], sorted[r] = int32(r), s.persons[k.n]
	}
	s.persons = sorted
	// Each person's co-presences go to the person's run (runs in rank
	// order, each as long as its count), then each run (a dozen) is sorted.
	end := make([]int32, len(order))
	for _, c := range s.found {
		end[rank[c.person]]++
	}
	for r := 1; r < len(end); r++ {
		end[r] += end[r-1]
	}
	byPerson := make([]coPresence, len(s.found))
	for i := len(s.found) - 1; i >= 0; i-- {
		c := s.found[i]
		c.person = rank[c.person]
		end[c.person]--
		byPerson[end[c.person]] = c
	}
	s.found = byPerson
	for r := range end { // end[r] is now where run r starts
		next := int32(len(byPerson))
		if r+1 < len(end) {
			next = end[r+1]
		}
		slices.SortFunc(byPerson[end[r]:next], func(a, b coPresence) int {
			switch {
			case a.start != b.start:
				return cmp.Compare(a.start, b.start)
			case a.via != b.via:
				return int(a.via - b.via)
			case a.venue != b.venue:
				return int(a.venue - b.venue)
			}
			return cmp.Compare(a.end, b.end)
		})
	}
	return foundDepth{depth: depth, found: s.found, persons: s.persons, frontier: frontier, venues: venues}
}

// foundDepth is one depth's co-presences in the answer's order, kept as
// numbers (32 bytes each, no pointers) until they are read, with the IDs
// the numbers stand for: persons by rank, the frontier, the venues.
type foundDepth struct {
	depth                     int
	found                     []coPresence
	persons, frontier, venues []uuid.UUID
}

// all gives the depth's contacts in order, each made as it is given (in
// UTC).
func (d *foundDepth) all() iter.Seq[Contact] {
	return func(yield func(Contact) bool) {
		for _, c := range d.found {
			if !yield(Contact{
				PersonID: d.persons[c.person], Depth: d.depth, ViaPersonID: d.frontier[c.via], VenueID: d.venues[c.venue],
				OverlapStart: time.Unix(0, c.start).UTC(), OverlapEnd: time.Unix(0, c.end).UTC(),
				OverlapMinutes: int(time.Duration(c.end-c.start) / time.Minute),
			}) {
				return
			}
		}
	}
}

// MergeWindows returns the union of ws as disjoint windows, ordered by venue
// then start. Windows of a venue that overlap or touch become one; empty
// windows are dropped.
func MergeWindows(ws []VenueWindow) []VenueWindow {
	sorted := make([]VenueWindow, 0, len(ws))
	for _, w := range ws {
		if w.To.After(w.From) {
			sorted = append(sorted, w)
		}
	}
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.VenueID != b.VenueID {
			return lessUUID(a.VenueID, b.VenueID)
		}
		return a.From.Before(b.From)
	})
	out := sorted[:0]
	for _, w := range sorted {
		if n := len(out); n > 0 && out[n-1].VenueID == w.VenueID && !w.From.After(out[n-1].To) {
			if w.To.After(out[n-1].To) {
				out[n-1].To = w.To
			}
			continue
		}
		out = append(out, w)
	}
	return out
}

func lessUUID(a, b uuid.UUID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
