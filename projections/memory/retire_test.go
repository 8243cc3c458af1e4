package memory

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// TestPassListDropBefore cuts lists of many chunks at cut-offs before
// everything, inside a chunk, on a chunk's edge, on ties and after
// everything, and inserts again after each cut: the list stays the sorted
// slice with the cut entries gone.
func TestPassListDropBefore(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var l passList
	var ref []entry
	ids := r.Perm(1 << 20)
	add := func(times []int64) {
		ref = insertRun(&l, ref, &ids, times)
	}
	for range 40 {
		add(spaced(r, r.Int64N(100_000), 1+r.IntN(500), 20))
	}
	checkList(t, &l, ref)
	cut := func(at int64) {
		t.Helper()
		k := 0
		for k < len(ref) && ref[k].at < at {
			k++
		}
		if n := l.dropBefore(at); n != k {
			t.Fatalf("dropBefore(%d) removed %d, want %d", at, n, k)
		}
		ref = ref[k:]
		checkList(t, &l, ref)
	}
	cut(-1)                                   // before everything
	cut(ref[0].at)                            // nothing is before the first
	cut(ref[100].at)                          // inside the first chunk, on a tie maybe
	cut(l.chunk(2)[0].at)                     // a chunk's first entry: two whole chunks go
	cut(l.chunk(1)[len(l.chunk(1))-1].at + 1) // just past a chunk's end
	add(spaced(r, ref[0].at, 300, 5))         // merged into the cut front
	cut(ref[len(ref)/2].at)
	add(spaced(r, ref[len(ref)-1].at+1, 50, 3)) // appended
	cut(ref[len(ref)-1].at + 1)                 // after everything: empty
	if l.chunks() != 0 || l.count() != 0 {
		t.Fatalf("list after the last cut: %d chunks, %d entries", l.chunks(), l.count())
	}
	add(spaced(r, 5, 700, 2)) // an emptied list takes passes again
	checkList(t, &l, ref)
}

// TestRetireReleasesChunks: passes in time order fill several table
// chunks; retiring the older ones releases the chunks they filled, the
// event-id index forgets them, the venue's and people's lists lose their
// fronts, and the store goes on taking passes.
func TestRetireReleasesChunks(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	venue := uuid.New()
	people := make([]uuid.UUID, 50)
	for i := range people {
		people[i] = uuid.New()
	}
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var pos uint64
	var all []projections.Change
	apply := func(n int, from time.Time) {
		t.Helper()
		var cs []projections.Change
		after := pos
		for i := range n {
			pos++
			p := people[i%len(people)]
			cs = append(cs, projections.Change{EventID: uuid.New(), Type: domain.TypePassRecorded, Aggregate: domain.PassAggregate(venue, p),
				Position: pos, OccurredAt: from.Add(time.Duration(i) * time.Second), Event: &domain.PassRecorded{VenueID: venue, PersonID: p,
					Direction: "in", Method: "self_scan", Decision: "pass"}})
		}
		if _, err := s.Apply(ctx, projections.Batch{After: after, Changes: cs, Last: pos}); err != nil {
			t.Fatal(err)
		}
		all = append(all, cs...)
	}
	n := 3*passChunk + 100
	apply(n, t0)
	cut := t0.Add(time.Duration(2*passChunk+10) * time.Second)
	st, err := s.RetirePasses(ctx, cut)
	if err != nil || st.Passes != int64(2*passChunk+10) {
		t.Fatalf("retire: %+v %v, want %d passes", st, err, 2*passChunk+10)
	}
	if s.passes.chunks[0] != nil || s.passes.chunks[1] != nil || s.passes.chunks[2] == nil {
		t.Fatal("the two chunks whose passes all expired are not released (or a live one is)")
	}
	if len(s.passByID) != n-(2*passChunk+10) {
		t.Fatalf("event-id index holds %d passes, want %d", len(s.passByID), n-(2*passChunk+10))
	}
	es, _ := s.Entries(ctx, domain.EntryQuery{VenueID: venue, Limit: 1 << 20})
	if len(es) != n-(2*passChunk+10) || es[len(es)-1].At.Before(cut) {
		t.Fatalf("entries after retirement: %d, oldest %s", len(es), es[len(es)-1].At)
	}
	for _, p := range people {
		vs, _ := s.Trace(ctx, p, time.Time{}, time.Time{})
		for _, v := range vs {
			if v.At.Before(cut) {
				t.Fatalf("trace of %s still has a pass at %s", p, v.At)
			}
		}
	}
	// More passes come; an old one (a replay) is kept out.
	apply(10, t0.Add(24*time.Hour))
	apply(1, t0)
	if _, ok, _ := s.Pass(ctx, all[len(all)-1].EventID); ok {
		t.Fatal("a pass older than the cut-off was applied after the retirement")
	}
	es, _ = s.Entries(ctx, domain.EntryQuery{VenueID: venue, Limit: 1 << 20})
	if len(es) != n-(2*passChunk+10)+10 {
		t.Fatalf("entries after more passes: %d", len(es))
	}
	// Everything expires.
	if st, err := s.RetirePasses(ctx, t0.Add(48*time.Hour)); err != nil || st.Passes != int64(n-(2*passChunk+10)+10) {
		t.Fatalf("retire all: %+v %v", st, err)
	}
	if es, _ := s.Entries(ctx, domain.EntryQuery{VenueID: venue, Limit: 1 << 20}); len(es) != 0 || len(s.passByID) != 0 {
		t.Fatalf("after retiring everything: %d entries, %d ids", len(es), len(s.passByID))
	}
}

// TestRetireWhileReadingAndApplying runs retirements beside the projector
// and readers (run it with -race): readers never see a pass before a
// cut-off already taken, and nothing fails.
func TestRetireWhileReadingAndApplying(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	venue, person := uuid.New(), uuid.New()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var (
		done = make(chan struct{})
		wg   sync.WaitGroup
		cut  atomic.Int64 // the cut-off of the last finished retirement
	)
	cut.Store(t0.UnixNano())
	wg.Go(func() { // the sweeper: an hour behind the newest pass
		for k := 0; ; k++ {
			select {
			case <-done:
				return
			default:
			}
			before := t0.Add(time.Duration(k) * time.Minute)
			if _, err := s.RetirePasses(ctx, before); err != nil {
				t.Error(err)
				return
			}
			cut.Store(before.UnixNano())
		}
	})
	wg.Go(func() { // a reader
		for {
			select {
			case <-done:
				return
			default:
			}
			floor := time.Unix(0, cut.Load())
			es, _ := s.Entries(ctx, domain.EntryQuery{VenueID: venue, Limit: 1 << 20})
			vs, _ := s.Trace(ctx, person, time.Time{}, time.Time{})
			for _, e := range es {
				if e.At.Before(floor) {
					t.Errorf("entry at %s after a retirement before %s", e.At, floor)
					return
				}
			}
			for _, v := range vs {
				if v.At.Before(floor) {
					t.Errorf("visit at %s after a retirement before %s", v.At, floor)
					return
				}
			}
		}
	})
	var pos uint64
	for b := range 200 {
		var cs []projections.Change
		after := pos
		for i := range 50 {
			pos++
			cs = append(cs, projections.Change{EventID: uuid.New(), Type: domain.TypePassRecorded, Aggregate: domain.PassAggregate(venue, person),
				Position: pos, OccurredAt: t0.Add(time.Duration(b*50+i) * 3 * time.Second), Event: &domain.PassRecorded{VenueID: venue,
					PersonID: person, Direction: "in", Method: "self_scan", Decision: "pass"}})
		}
		if _, err := s.Apply(ctx, projections.Batch{After: after, Changes: cs, Last: pos}); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
}
