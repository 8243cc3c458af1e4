package domain

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestPresences(t *testing.T) {
	person, venue := uuid.New(), uuid.New()
	t0 := time.Date(2022, 5, 1, 8, 0, 0, 0, time.UTC)
	// Dwell an hour, maximum stay three hours.
	rules := StayRules{Dwell: func(string) time.Duration { return time.Hour }, MaxStay: func(string) time.Duration { return 3 * time.Hour }}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	type p struct {
		dir, decision string
		m             int
	}
	// both: an entry and an exit; in: an entry, out: an exit only.
	stay := func(from, to int, entry, exit bool) Presence {
		return Presence{PersonID: person, VenueID: venue, Start: at(from), End: at(to), Entry: entry, Exit: exit}
	}
	both := func(from, to int) Presence { return stay(from, to, true, true) }
	in := func(from, to int) Presence { return stay(from, to, true, false) }
	out := func(from, to int) Presence { return stay(from, to, false, true) }
	tests := []struct {
		name   string
		passes []p
		want   []Presence
	}{
		{"entry and exit", []p{{"in", "pass", 0}, {"out", "pass", 40}}, []Presence{both(0, 40)}},
		{"exit listed first", []p{{"out", "pass", 40}, {"in", "pass", 0}}, []Presence{both(0, 40)}},
		{"no exit: the dwell", []p{{"in", "pass", 0}}, []Presence{in(0, 60)}},
		{"no entry: the dwell before", []p{{"out", "pass", 90}}, []Presence{out(30, 90)}},
		{"exit right at the dwell closes", []p{{"in", "pass", 0}, {"out", "pass", 60}}, []Presence{both(0, 60)}},
		{"exit after the dwell closes the stay whole", []p{{"in", "pass", 0}, {"out", "pass", 100}}, []Presence{both(0, 100)}},
		{"exit right at the maximum stay closes", []p{{"in", "pass", 0}, {"out", "pass", 180}}, []Presence{both(0, 180)}},
		{"exit after the maximum stay: two stays", []p{{"in", "pass", 0}, {"out", "pass", 200}}, []Presence{in(0, 60), out(140, 200)}},
		{"second entry ends the first", []p{{"in", "pass", 0}, {"in", "pass", 20}, {"out", "pass", 50}}, []Presence{in(0, 20), both(20, 50)}},
		{"second entry after the dwell", []p{{"in", "pass", 0}, {"in", "pass", 80}}, []Presence{in(0, 60), in(80, 140)}},
		{"entry and exit at one instant", []p{{"out", "pass", 5}, {"in", "pass", 5}}, []Presence{both(5, 5)}},
		{"two exits: the second has no entry", []p{{"in", "pass", 0}, {"out", "pass", 10}, {"out", "pass", 30}}, []Presence{both(0, 10), out(-30, 30)}},
		{"a refused entry is no stay", []p{{"in", "deny", 0}}, nil},
		{"a refused entry changes no stay", []p{{"in", "pass", 0}, {"in", "deny", 20}, {"out", "pass", 90}}, []Presence{both(0, 90)}},
		{"an exit counts whatever its decision", []p{{"in", "pass", 0}, {"out", "deny", 30}}, []Presence{both(0, 30)}},
		{"a refused entry, then an exit", []p{{"in", "deny", 0}, {"out", "deny", 30}}, []Presence{out(-30, 30)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []PassPoint
			for _, x := range tt.passes {
				ps = append(ps, PassPoint{PersonID: person, VenueID: venue, At: at(x.m), Direction: x.dir, Decision: x.decision})
			}
			got := Presences(ps, rules)
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("stays:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestMergeWindows(t *testing.T) {
	a, b := uuid.MustParse("00000000-0000-0000-0000-00000000000a"), uuid.MustParse("00000000-0000-0000-0000-00000000000b")
	t0 := time.Date(2022, 5, 1, 8, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	got := MergeWindows([]VenueWindow{
		{VenueID: b, From: h(5), To: h(6)},
		{VenueID: a, From: h(2), To: h(4)},
		{VenueID: a, From: h(0), To: h(1)},
		{VenueID: a, From: h(1), To: h(2)}, // touches both neighbours
		{VenueID: b, From: h(3), To: h(3)}, // empty
		{VenueID: a, From: h(8), To: h(9)},
	})
	want := []VenueWindow{{VenueID: a, From: h(0), To: h(4)}, {VenueID: a, From: h(8), To: h(9)}, {VenueID: b, From: h(5), To: h(6)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merged:\n got %+v\nwant %+v", got, want)
	}
}

// A trace window's bounds beyond int64 nanoseconds (a valid window may lie
// in year 1 or 9999) are clamped, not wrapped.
func TestBoundNanos(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		t         time.Time
		unbounded int64
		want      int64
	}{
		{time.Time{}, math.MinInt64, math.MinInt64},
		{time.Time{}, math.MaxInt64, math.MaxInt64},
		{at, math.MinInt64, at.UnixNano()},
		{time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), math.MaxInt64, math.MinInt64},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), math.MinInt64, math.MaxInt64},
	} {
		if got := boundNanos(c.t, c.unbounded); got != c.want {
			t.Errorf("boundNanos(%s) = %d, want %d", c.t, got, c.want)
		}
	}
}

// shuffledRuns gives keptStays' venue runs in another order, each run's
// stays shuffled, through one buffer that is overwritten once each returns
// (a search that kept a run would see it changed), and, when twice is
// set, one venue's run in two parts.
type shuffledRuns struct {
	*keptStays
	r     *rand.Rand
	twice bool
}

func (s *shuffledRuns) StaysMeeting(windows []VenueWindow, asOf time.Time, each func([]Presence)) (bool, error) {
	var runs [][]Presence
	ok, err := s.keptStays.StaysMeeting(windows, asOf, func(run []Presence) { runs = append(runs, slices.Clone(run)) })
	s.r.Shuffle(len(runs), func(i, j int) { runs[i], runs[j] = runs[j], runs[i] })
	var buf []Presence
	give := func(run []Presence) {
		buf = append(buf[:0], run...)
		each(buf)
		for i := range buf {
			buf[i] = Presence{PersonID: uuid.New(), VenueID: buf[i].VenueID}
		}
	}
	for _, run := range runs {
		s.r.Shuffle(len(run), func(i, j int) { run[i], run[j] = run[j], run[i] })
		if s.twice && len(run) > 1 {
			give(run[:1])
			run, s.twice = run[1:], false
		}
		give(run)
	}
	return ok, err
}

// bruteContacts is a search by brute force over k: every stay of the
// frontier against every stay at its venue, the overlap widened by the
// buffer on both sides, cut to the window and kept from the minimum up;
// people found at one depth are not found again deeper.
func bruteContacts(k *keptStays, index uuid.UUID, w TraceWindow, depth int) []Contact {
	atVenue := make(map[uuid.UUID][]Presence)
	for _, st := range k.byVenue {
		atVenue[st.VenueID] = append(atVenue[st.VenueID], st)
	}
	skip := map[uuid.UUID]bool{index: true}
	level := []uuid.UUID{index}
	var out []Contact
	for d := 1; d <= depth; d++ {
		found := make(map[uuid.UUID]bool)
		for _, via := range level {
			for _, mine := range k.byPerson[via] {
				for _, theirs := range atVenue[mine.VenueID] {
					if skip[theirs.PersonID] {
						continue
					}
					start := maxTime(maxTime(mine.Start, theirs.Start).Add(-w.Buffer), w.From)
					end := minTime(minTime(mine.End, theirs.End).Add(w.Buffer), w.To)
					if !end.After(start) || end.Sub(start) < w.MinOverlap {
						continue
					}
					out = append(out, Contact{PersonID: theirs.PersonID, Depth: d, ViaPersonID: via, VenueID: mine.VenueID,
						OverlapStart: start, OverlapEnd: end, OverlapMinutes: int(end.Sub(start) / time.Minute)})
					found[theirs.PersonID] = true
				}
			}
		}
		level = level[:0]
		for p := range found {
			skip[p] = true
			level = append(level, p)
		}
	}
	SortContacts(out)
	return out
}

func sameContacts(a, b []Contact) bool {
	return slices.EqualFunc(a, b, func(x, y Contact) bool {
		return x.PersonID == y.PersonID && x.Depth == y.Depth && x.ViaPersonID == y.ViaPersonID && x.VenueID == y.VenueID &&
			x.OverlapStart.Equal(y.OverlapStart) && x.OverlapEnd.Equal(y.OverlapEnd) && x.OverlapMinutes == y.OverlapMinutes
	})
}

// TestFindContactsVenueRuns: the search pairs each venue's stays as they
// come, so its answer must be the brute force's whatever the order of the
// venues and of a run's stays, whatever the reader does with a run's
// buffer once it is paired, and a venue given in two parts (which would
// lose the pairs across them) is ErrVenueTwice, not a smaller answer.
func TestFindContactsVenueRuns(t *testing.T) {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	k, ids := denseStays(2_000, base)
	w := TraceWindow{From: base.Add(-2 * time.Hour), To: base.Add(14 * 24 * time.Hour), MinOverlap: 15 * time.Minute, Buffer: 5 * time.Minute}
	search := func(reads ContactReads, person uuid.UUID) (FoundContacts, error) {
		return FindContacts(reads, ContactSearch{PersonID: person, Depth: 2, Window: w}, StayRules{Dwell: DefaultDwell})
	}
	for i, person := range ids[:5] {
		want := bruteContacts(k, person, w, 2)
		inOrder, err := search(k, person)
		if err != nil {
			t.Fatal(err)
		}
		if inOrder.Persons[2] == 0 {
			t.Fatalf("person %d: no contact at depth 2: the city is not dense enough to test anything", i)
		}
		// FindContacts answers in SortContacts' order.
		if !sameContacts(inOrder.Contacts(), want) {
			t.Fatalf("person %d: %d contacts, the brute force %d", i, len(inOrder.Contacts()), len(want))
		}
		shuffled, err := search(&shuffledRuns{keptStays: k, r: rand.New(rand.NewPCG(uint64(i), 7))}, person)
		if err != nil {
			t.Fatal(err)
		}
		if !sameContacts(shuffled.Contacts(), inOrder.Contacts()) || shuffled.Persons != inOrder.Persons {
			t.Fatalf("person %d: venues and stays in another order gave %d contacts (%v people), in order %d (%v)",
				i, len(shuffled.Contacts()), shuffled.Persons, len(inOrder.Contacts()), inOrder.Persons)
		}
		_, err = search(&shuffledRuns{keptStays: k, r: rand.New(rand.NewPCG(uint64(i), 7)), twice: true}, person)
		if !errors.Is(err, ErrVenueTwice) {
			t.Fatalf("person %d: a venue's stays in two parts: %v, want ErrVenueTwice", i, err)
		}
	}
}

// TestTraceWindowToTheMicrosecond: a window asked in nanoseconds is traced,
// audited and listed to the microsecond, the read models' precision.
func TestTraceWindowToTheMicrosecond(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	from, to := now.Add(-48*time.Hour+123456789), now.Add(-time.Hour+987654321)
	s, _, _, err := ValidateTrace(TraceQuery{PersonID: uuid.New(), From: from, To: to, Depth: 1, Reason: "cluster follow-up"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Window.From.Equal(from.Truncate(time.Microsecond)) || !s.Window.To.Equal(to.Truncate(time.Microsecond)) {
		t.Fatalf("window %v to %v, want %v to %v at the microsecond", s.Window.From, s.Window.To, from, to)
	}
}

// TestTraceAsOfNotAhead: an as_of ahead of now is refused, by however
// little (the same as_of must give the same answer, now and in a replay).
func TestTraceAsOfNotAhead(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	q := TraceQuery{PersonID: uuid.New(), From: now.Add(-48 * time.Hour), To: now, Depth: 1, Reason: "cluster follow-up"}
	for _, tc := range []struct {
		asOf, want time.Time
		ok         bool
	}{
		{time.Time{}, now, true},
		{now.Add(-time.Hour), now.Add(-time.Hour), true},
		{now, now, true},
		{now.Add(time.Microsecond), time.Time{}, false},
		{now.Add(2 * time.Minute), time.Time{}, false},
	} {
		q.AsOf = tc.asOf
		s, _, _, err := ValidateTrace(q, now)
		if (err == nil) != tc.ok || (tc.ok && !s.AsOf.Equal(tc.want)) {
			t.Errorf("as_of %v: %v, %v; want %v (ok %v)", tc.asOf, s.AsOf, err, tc.want, tc.ok)
		}
	}
}
