package domain

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
)

// keptStays answers StayReads from stays held in memory, by venue and
// start: the pairing's input without a database, so that
// BenchmarkFindContactsDense measures the Go side of a trace alone (the
// PostgreSQL read is BenchmarkDenseTrace's stay-reads-ms).
type keptStays struct {
	byVenue  []Presence // by venue, start
	byPerson map[uuid.UUID][]Presence
	longest  map[uuid.UUID]time.Duration
}

func (k *keptStays) PassesOfPersons([]uuid.UUID, time.Time, time.Time, time.Time) ([]PassPoint, error) {
	panic("the stays answer")
}

func (k *keptStays) PassesAtVenues([]VenueWindow, time.Time) ([]PassPoint, error) {
	panic("the stays answer")
}

func (k *keptStays) StaysOfPersons(ids []uuid.UUID, from, to, _ time.Time) ([]Presence, bool, error) {
	var out []Presence
	for _, id := range ids {
		for _, st := range k.byPerson[id] {
			if !st.Start.After(to) && !st.End.Before(from) {
				out = append(out, st)
			}
		}
	}
	return out, true, nil
}

// StaysMeeting answers each stay once (a stay meeting two windows of its
// venue comes with the first), by venue and start, as PostgreSQL's does.
func (k *keptStays) StaysMeeting(windows []VenueWindow, _ time.Time, each func([]Presence)) (bool, error) {
	seen := make(map[int]bool)
	var at []int
	for _, w := range windows {
		from, to := w.From, w.To
		if to.Before(from) {
			from, to = to, from
		}
		lo := from.Add(-k.longest[w.VenueID])
		i := sort.Search(len(k.byVenue), func(i int) bool {
			st := &k.byVenue[i]
			if c := compareUUID(st.VenueID, w.VenueID); c != 0 {
				return c > 0
			}
			return !st.Start.Before(lo)
		})
		for ; i < len(k.byVenue) && k.byVenue[i].VenueID == w.VenueID && !k.byVenue[i].Start.After(to); i++ {
			if !k.byVenue[i].End.Before(from) && !seen[i] {
				seen[i] = true
				at = append(at, i)
			}
		}
	}
	slices.Sort(at)
	out := make([]Presence, len(at))
	for j, i := range at {
		out[j] = k.byVenue[i]
	}
	VenueRuns(out, each)
	return true, nil
}

// denseStays is a city as dense as the PostgreSQL benchmark's: each person
// 25 stays of 10-180 minutes among six usual venues over 14 days, 50
// people a venue.
func denseStays(people int, base time.Time) (*keptStays, []uuid.UUID) {
	r := rand.New(rand.NewPCG(1, 2))
	venues := make([]uuid.UUID, max(6, people/50))
	for i := range venues {
		venues[i] = uuid.New()
	}
	k := &keptStays{byPerson: make(map[uuid.UUID][]Presence, people), longest: make(map[uuid.UUID]time.Duration)}
	ids := make([]uuid.UUID, people)
	for p := range ids {
		ids[p] = uuid.New()
		usual := r.Perm(len(venues))[:6]
		for s := range 25 {
			// Mornings start 07:00-10:00, afternoons 13:00-19:00.
			day := s % 14
			start := base.Add(time.Duration(day)*24*time.Hour + 7*time.Hour + time.Duration(r.IntN(180))*time.Minute)
			if s >= 14 {
				start = base.Add(time.Duration(day)*24*time.Hour + 13*time.Hour + time.Duration(r.IntN(360))*time.Minute)
			}
			length := time.Duration(10+r.IntN(171)) * time.Minute
			st := Presence{PersonID: ids[p], VenueID: venues[usual[r.IntN(6)]], Start: start, End: start.Add(length), Entry: true, Exit: true}
			k.byPerson[ids[p]] = append(k.byPerson[ids[p]], st)
			k.byVenue = append(k.byVenue, st)
			k.longest[st.VenueID] = max(k.longest[st.VenueID], length)
		}
	}
	slices.SortFunc(k.byVenue, byVenueStart)
	return k, ids
}

// BenchmarkFindContactsDense is the Go side of a depth-2 trace on a dense
// city of 20,000 people (the PostgreSQL benchmark's 1 M passes): window
// building, pairing, numbering and ordering the co-presences. It reports
// the answer's size beside the time.
func BenchmarkFindContactsDense(b *testing.B) {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	k, ids := denseStays(20_000, base)
	var contacts, people int
	b.ResetTimer()
	for i := range b.N {
		found, err := FindContacts(k, ContactSearch{PersonID: ids[i%len(ids)], Depth: 2,
			Window: TraceWindow{From: base.Add(-2 * time.Hour), To: base.Add(14 * 24 * time.Hour), MinOverlap: 15 * time.Minute, Buffer: 5 * time.Minute}},
			StayRules{Dwell: DefaultDwell})
		if err != nil {
			b.Fatal(err)
		}
		contacts += found.Len()
		people += found.Persons[1] + found.Persons[2]
	}
	b.ReportMetric(float64(contacts)/float64(b.N), "contacts/trace")
	b.ReportMetric(float64(people)/float64(b.N), "people/trace")
}
