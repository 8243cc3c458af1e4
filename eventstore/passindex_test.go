package eventstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/google/uuid"
)

func passEnvelope(t testing.TB, venue, person uuid.UUID, at time.Time) domain.Envelope {
	t.Helper()
	e, err := domain.NewEnvelope(domain.PassAggregate(venue, person), &domain.PassRecorded{
		VenueID: venue, PersonID: person, Direction: "in", Method: "staff_scan", Decision: "pass", Operator: "scanner",
		Screen: domain.Screen{NameMasked: "张*", CodeColour: "green", NATResult: "negative", NATAt: at.Add(-time.Hour), VaccineDoses: 3,
			VenueID: venue, VenueName: "沂河超市兰山店", At: at, Direction: "in", Decision: "pass"},
	}, domain.Meta{OccurredAt: at, Actor: "scanner:" + venue.String()}, at)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// fillPasses records passes of persons at venues in packs of pack, with a
// non-pass event between packs; it returns every pass's position by person.
func fillPasses(t testing.TB, s *eventstore.Store, persons, venues []uuid.UUID, passes, pack int, rnd *rand.Rand) map[uuid.UUID][]uint64 {
	t.Helper()
	want := make(map[uuid.UUID][]uint64)
	at := time.Now().Add(-24 * time.Hour)
	for done := 0; done < passes; {
		n := min(pack, passes-done)
		envs := make([]domain.Envelope, n)
		who := make([]uuid.UUID, n)
		for i := range envs {
			who[i] = persons[rnd.IntN(len(persons))]
			envs[i] = passEnvelope(t, venues[rnd.IntN(len(venues))], who[i], at)
			at = at.Add(time.Millisecond)
		}
		res, err := s.Record(context.Background(), envs...)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			want[who[i]] = append(want[who[i]], r.Position)
		}
		done += n
	}
	return want
}

func readPasses(t testing.TB, log interface {
	ReadPassesOf(context.Context, uuid.UUID, uint64, func([]domain.Envelope) error) error
}, p uuid.UUID, from uint64) []uint64 {
	t.Helper()
	var got []uint64
	if err := log.ReadPassesOf(context.Background(), p, from, func(evs []domain.Envelope) error {
		for _, e := range evs {
			if e.Type != domain.TypePassRecorded {
				return fmt.Errorf("event %s of type %s", e.ID, e.Type)
			}
			got = append(got, e.Position)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// The index answers what the full scan answers — before it has caught up,
// once it has, for events recorded after, from any position — and reads
// only the messages holding the person's passes.
func TestPassIndexReadsOnlyThePersonsPacks(t *testing.T) {
	s := open(t, "")
	rnd := rand.New(rand.NewPCG(1, 2))
	persons := make([]uuid.UUID, 300)
	for i := range persons {
		persons[i] = uuid.New()
	}
	venues := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	want := fillPasses(t, s, persons, venues, 6000, 200, rnd) // 30 packs

	x := eventstore.NewPassIndex(s)
	// Not running yet: the index is empty and the scan answers.
	if got := readPasses(t, x, persons[0], 0); !slices.Equal(got, want[persons[0]]) {
		t.Fatalf("before Run: %v, want %v", got, want[persons[0]])
	}
	runIndex(t, s, x, 10*time.Second)
	// More after it caught up, one person only in these.
	late := uuid.New()
	for k, v := range fillPasses(t, s, append(persons[:10:10], late), venues, 400, 50, rnd) {
		want[k] = append(want[k], v...)
	}
	for i, p := range append(persons[:20:20], late) {
		from := uint64(0)
		if i%3 == 1 && len(want[p]) > 2 {
			from = want[p][1]
		}
		wantFrom := slices.DeleteFunc(slices.Clone(want[p]), func(pos uint64) bool { return pos <= from })
		before := x.Gets()
		got := readPasses(t, x, p, from)
		if !slices.Equal(got, wantFrom) {
			t.Fatalf("person %d from %d: %v, want %v", i, from, got, wantFrom)
		}
		if scan := readPasses(t, s, p, from); !slices.Equal(scan, wantFrom) {
			t.Fatalf("person %d: the full scan gives %v, want %v", i, scan, wantFrom)
		}
		// The messages holding the person's passes at or after from's.
		packs := map[uint64]bool{}
		fromSeq, _ := eventstore.SeqOf(from)
		for _, pos := range want[p] {
			if seq, _ := eventstore.SeqOf(pos); seq >= fromSeq {
				packs[seq] = true
			}
		}
		if fetched := x.Gets() - before; fetched > int64(len(packs)) {
			t.Fatalf("person %d: fetched %d messages for passes in %d", i, fetched, len(packs))
		}
	}
	// A person with no passes fetches nothing.
	before := x.Gets()
	if got := readPasses(t, x, uuid.New(), 0); len(got) != 0 || x.Gets() != before {
		t.Fatalf("nobody's passes: %v, %d fetches", got, x.Gets()-before)
	}
}

// TestPassIndexAtAMillionPasses measures a person's replay at LEDGER_BIG_PASSES
// passes (e.g. 1000000) through the index and through the full scan. Off by
// default: it takes a minute to load.
func TestPassIndexAtAMillionPasses(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("LEDGER_BIG_PASSES"))
	if n == 0 {
		t.Skip("set LEDGER_BIG_PASSES=1000000 to measure")
	}
	s := open(t, "")
	rnd := rand.New(rand.NewPCG(3, 4))
	persons := make([]uuid.UUID, 20000)
	for i := range persons {
		persons[i] = uuid.New()
	}
	venues := make([]uuid.UUID, 1000)
	for i := range venues {
		venues[i] = uuid.New()
	}
	start := time.Now()
	want := fillPasses(t, s, persons, venues, n, 1000, rnd)
	t.Logf("loaded %d passes in %s", n, time.Since(start).Round(time.Millisecond))
	x := eventstore.NewPassIndex(s)
	start = time.Now()
	runIndex(t, s, x, 120*time.Second)
	t.Logf("index built in %s", time.Since(start).Round(time.Millisecond))
	var idx, scan []time.Duration
	for i := range 5 {
		p := persons[i]
		t0 := time.Now()
		got := readPasses(t, x, p, 0)
		idx = append(idx, time.Since(t0))
		if !slices.Equal(got, want[p]) {
			t.Fatalf("index: %d passes, want %d", len(got), len(want[p]))
		}
		if i < 2 {
			t0 = time.Now()
			readPasses(t, s, p, 0)
			scan = append(scan, time.Since(t0))
		}
	}
	slices.Sort(idx)
	t.Logf("a person's passes (~%d) at %d passes: index median %s (max %s), full scan %v", len(want[persons[0]]), n, idx[2], idx[4], scan)
	if idx[2] > time.Second {
		t.Errorf("index median %s, bound 1 s", idx[2])
	}
}

// runIndex runs x until the test ends and waits, up to within, until it has
// indexed all of s's log.
func runIndex(t *testing.T, s *eventstore.Store, x *eventstore.PassIndex, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	last, _ := s.LastPosition(context.Background())
	lastSeq, _ := eventstore.SeqOf(last)
	if !ledgertest.Poll(within, func() bool { return x.IndexedUpTo() >= lastSeq }) {
		t.Fatalf("index at %d, log at %d", x.IndexedUpTo(), lastSeq)
	}
}
