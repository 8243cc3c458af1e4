package memory_test

import (
	"bytes"
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/google/uuid"
)

// offlineLog is a log shaped like `ledger loadgen --mode batch --spacing 1s`
// (the worst case for the sorted lists): people and venues, then passes in
// scanner batches of 1,000 for one random venue each, spaced 1 s apart and
// ending at the batch's "now", which moves 25 ms per batch (1M passes in 25 s
// of load). Every batch reaches 1,000 s into the past, before most of its
// venue's passes.
func offlineLog(people, venues, passes int) storetest.Log {
	const (
		batch   = 1000
		spacing = time.Second
		tick    = 25 * time.Millisecond
	)
	l := storetest.Generate(people, venues, 0, 1, 1)
	r := rand.New(rand.NewPCG(2, 3))
	pos := l.Envelopes[len(l.Envelopes)-1].Position
	now := storetest.Base.Add(time.Hour)
	for n := 0; n < passes; n += batch {
		now = now.Add(tick)
		v := l.Venues[r.IntN(len(l.Venues))]
		for i := range min(batch, passes-n) {
			p := l.People[r.IntN(len(l.People))]
			at := now.Add(-time.Duration(batch-i) * spacing)
			dir := "in"
			if i%2 == 1 {
				dir = "out"
			}
			ev := &domain.PassRecorded{
				VenueID: v, PersonID: p, Direction: dir, Method: "manual", Decision: "pass",
				Screen: domain.Screen{
					NameMasked: "王*", CodeColour: "green", NATResult: "negative", NATAt: at.Add(-20 * time.Hour).Truncate(time.Second),
					VaccineDoses: 3, VenueID: v, VenueName: "压测场所", At: at, Direction: dir, Decision: "pass",
				},
			}
			var id uuid.UUID
			for j := range id {
				id[j] = byte(r.Uint32())
			}
			e, err := domain.NewEnvelope(domain.PassAggregate(v, p), ev, domain.Meta{ID: id, OccurredAt: at, Actor: "scanner"}, now)
			if err != nil {
				panic(err)
			}
			pos++
			e.Position, e.RecordedAt = pos, now.UTC()
			l.Envelopes = append(l.Envelopes, e)
		}
	}
	return l
}

// offlineBatches is offlineLog(2,000 people, 20 venues, 1M passes) decoded
// into the projector's batches of 5,000 events, made once per test binary.
var offlineBatches = sync.OnceValues(func() ([]projections.Batch, error) {
	return batchesOf(offlineLog(2_000, 20, 1_000_000))
})

// batchesOf decodes l into batches of 5,000 events, the projector's
// largest, as it hands them to a store.
func batchesOf(l storetest.Log) ([]projections.Batch, error) {
	var out []projections.Batch
	err := storetest.Batches(context.Background(), l.Envelopes, projections.KeyringOpener(l.Keys), 0, 5000, func(b projections.Batch) error {
		out = append(out, b)
		return nil
	})
	return out, err
}

// BenchmarkMemoryApplyOffline replays 1M passes whose scanner batches reach
// 1,000 s into the past (see offlineLog) into a fresh store per iteration,
// in the projector's batches of 5,000 events.
func BenchmarkMemoryApplyOffline(b *testing.B) {
	const passes = 1_000_000
	batches, err := offlineBatches()
	if err != nil {
		b.Fatal(err)
	}
	events := 0
	for _, bt := range batches {
		events += len(bt.Changes)
	}
	benchApply(b, batches, events, passes)
}

// TestOfflineBatchesReads applies passes whose scanner batches reach back
// over one another (see offlineLog; batches 40 apart for one venue repeat
// its times exactly, so equal times are broken by position), then checks
// every pass read against a brute force over the log.
func TestOfflineBatchesReads(t *testing.T) {
	l := offlineLog(20, 3, 100_000)
	batches, err := batchesOf(l)
	if err != nil {
		t.Fatal(err)
	}
	s := memory.New(memory.Options{})
	for _, b := range batches {
		if _, err := s.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	type rec struct {
		id, venue, person uuid.UUID
		at                time.Time
		pos               uint64
		dir               string
	}
	var all []rec // newest first by (at, position)
	for _, e := range l.Envelopes {
		if e.Type != domain.TypePassRecorded {
			continue
		}
		ev, err := domain.Decode(e)
		if err != nil {
			t.Fatal(err)
		}
		p := ev.(*domain.PassRecorded)
		all = append(all, rec{id: e.ID, venue: p.VenueID, person: p.PersonID, at: e.OccurredAt, pos: e.Position, dir: p.Direction})
	}
	slices.SortFunc(all, func(a, b rec) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return cmp.Compare(b.pos, a.pos)
	})
	type venueAt struct {
		venue uuid.UUID
		at    int64
	}
	ties, times := 0, map[venueAt]bool{}
	for _, r := range all {
		k := venueAt{r.venue, r.at.UnixNano()}
		if times[k] {
			ties++
		}
		times[k] = true
	}
	if ties == 0 {
		t.Fatal("no two passes at one venue share a time: the log does not test ties")
	}
	where := func(keep func(rec) bool) []uuid.UUID {
		var out []uuid.UUID
		for _, r := range all {
			if keep(r) {
				out = append(out, r.id)
			}
		}
		return out
	}
	in := func(r rec, from, to time.Time) bool { return !r.at.Before(from) && r.at.Before(to) }
	reversed := func(ids []uuid.UUID) []uuid.UUID {
		ids = slices.Clone(ids)
		slices.Reverse(ids)
		return ids
	}
	sortIDs := func(ids []uuid.UUID) []uuid.UUID {
		ids = slices.Clone(ids)
		slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
		return ids
	}
	first, last := all[len(all)-1].at, all[0].at
	// Windows over the whole span, inside it, and with bounds on a pass.
	windows := [][2]time.Time{
		{first, last.Add(time.Nanosecond)},
		{first.Add(7 * time.Minute), first.Add(9 * time.Minute)},
		{all[len(all)/3].at, all[len(all)/4].at},
		{last.Add(-333 * time.Second), last.Add(time.Hour)},
	}

	t.Run("EntriesPaged", func(t *testing.T) {
		for _, v := range l.Venues {
			for _, w := range windows {
				for _, dir := range []string{"", "in"} {
					q := domain.EntryQuery{VenueID: v, From: w[0], To: w[1], Direction: dir, Limit: 777}
					if dir != "" {
						// A cursor after the window changes nothing.
						q.AfterAt = w[1].Add(time.Hour)
					}
					var got []uuid.UUID
					for {
						es, err := s.Entries(context.Background(), q)
						if err != nil {
							t.Fatal(err)
						}
						for _, e := range es {
							got = append(got, e.EventID)
						}
						if len(es) < q.Limit {
							break
						}
						q.AfterAt, q.AfterPosition = es[len(es)-1].At, es[len(es)-1].Position
					}
					want := where(func(r rec) bool { return r.venue == v && in(r, w[0], w[1]) && (dir == "" || r.dir == dir) })
					if !slices.Equal(got, want) {
						t.Fatalf("venue %v, window %v, direction %q: %d entries, want %d", v, w, dir, len(got), len(want))
					}
				}
			}
		}
	})
	t.Run("Trace", func(t *testing.T) {
		for _, p := range l.People {
			for _, w := range windows {
				vs, err := s.Trace(context.Background(), p, w[0], w[1])
				if err != nil {
					t.Fatal(err)
				}
				var got []uuid.UUID
				for _, v := range vs {
					got = append(got, v.EventID)
				}
				want := reversed(where(func(r rec) bool { return r.person == p && in(r, w[0], w[1]) }))
				if !slices.Equal(got, want) {
					t.Fatalf("person %v, window %v: %d visits, want %d", p, w, len(got), len(want))
				}
			}
		}
	})
	t.Run("Occupancy", func(t *testing.T) {
		for _, v := range l.Venues {
			for _, now := range []time.Time{first.Add(10 * time.Minute), all[len(all)/2].at, last} {
				const dwell = 5 * time.Minute
				got, err := s.Occupancy(context.Background(), v, now, dwell)
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				seen := map[uuid.UUID]bool{}
				for _, r := range all {
					if r.venue != v || r.at.After(now) || !r.at.After(now.Add(-dwell)) || seen[r.person] {
						continue
					}
					seen[r.person] = true
					if r.dir == "in" {
						want++
					}
				}
				if got != want {
					t.Fatalf("venue %v at %v: occupancy %d, want %d", v, now, got, want)
				}
			}
		}
	})
	t.Run("TraceReads", func(t *testing.T) {
		for _, w := range windows {
			var vws []domain.VenueWindow
			for _, v := range l.Venues[:2] {
				vws = append(vws, domain.VenueWindow{VenueID: v, From: w[0], To: w[1]})
			}
			ps, err := s.PassesAtVenues(context.Background(), vws, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			got := sortIDs(ids(ps))
			want := sortIDs(where(func(r rec) bool { return (r.venue == l.Venues[0] || r.venue == l.Venues[1]) && in(r, w[0], w[1]) }))
			if !slices.Equal(got, want) {
				t.Fatalf("venues in window %v: %d passes, want %d", w, len(got), len(want))
			}
			persons := l.People[:5]
			ps, err = s.PassesOfPersons(context.Background(), persons, w[0], w[1], time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			got = sortIDs(ids(ps))
			want = sortIDs(where(func(r rec) bool { return slices.Contains(persons, r.person) && in(r, w[0], w[1]) }))
			if !slices.Equal(got, want) {
				t.Fatalf("persons in window %v: %d passes, want %d", w, len(got), len(want))
			}
		}
	})
}

func ids(ps []domain.PassPoint) []uuid.UUID {
	out := make([]uuid.UUID, len(ps))
	for i, p := range ps {
		out[i] = p.EventID
	}
	return out
}
