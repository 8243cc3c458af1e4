package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/google/uuid"
)

func TestPositionEncoding(t *testing.T) {
	tests := []struct {
		seq   uint64
		index int
		want  uint64
	}{
		{1, 0, 1 << 16},
		{1, 1, 1<<16 | 1},
		{7, 65535, 7<<16 | 65535},
		{1<<37 - 1, 4095, (1<<37-1)<<16 | 4095}, // still exact in a JSON number
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d", tt.seq, tt.index), func(t *testing.T) {
			p := eventstore.PositionOf(tt.seq, tt.index)
			if p != tt.want {
				t.Fatalf("PositionOf = %d, want %d", p, tt.want)
			}
			if seq, index := eventstore.SeqOf(p); seq != tt.seq || index != tt.index {
				t.Fatalf("SeqOf(%d) = %d, %d", p, seq, index)
			}
			if p >= 1<<53 {
				t.Fatalf("position %d is not exact in a JSON number", p)
			}
		})
	}
	if eventstore.PositionOf(2, 0) <= eventstore.PositionOf(1, 65535) {
		t.Fatal("positions do not grow with the sequence")
	}
}

// TestRecordManyCallers is the group commit under load: 10,000 events from
// 200 goroutines, one event per call, passes and some alerts (the two kinds
// go into packs of their own).
func TestRecordManyCallers(t *testing.T) {
	s := open(t, "")
	const callers, perCaller = 200, 50
	type rec struct {
		id  uuid.UUID
		pos uint64
	}
	got := make([][]rec, callers)
	venue := uuid.New()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range perCaller {
				e := event(domain.PassAggregate(venue, uuid.New()), i)
				if (c+i)%9 == 0 {
					e = event(domain.AlertAggregate("371302"), i)
				}
				res, err := s.Record(ctx(t), e)
				if err != nil {
					t.Error(err)
					return
				}
				if res[0].Duplicate {
					t.Errorf("caller %d event %d: duplicate", c, i)
				}
				got[c] = append(got[c], rec{e.ID, res[0].Position})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	byPos := make(map[uint64]uuid.UUID, callers*perCaller)
	inPack := 0
	for c, recs := range got {
		for i, r := range recs {
			if i > 0 && r.pos <= recs[i-1].pos {
				t.Fatalf("caller %d: event %d at %d after %d", c, i, r.pos, recs[i-1].pos)
			}
			if prev, ok := byPos[r.pos]; ok {
				t.Fatalf("position %d given to %s and %s", r.pos, prev, r.id)
			}
			byPos[r.pos] = r.id
			if _, index := eventstore.SeqOf(r.pos); index > 0 {
				inPack++
			}
		}
	}
	if inPack == 0 {
		t.Fatal("no two events shared a pack: no group commit")
	}
	want := slices.Sorted(func(yield func(uint64) bool) {
		for p := range byPos {
			if !yield(p) {
				return
			}
		}
	})

	// Follow returns exactly those events, in position order.
	all := readAll(t, s, 0)
	if len(all) != len(want) {
		t.Fatalf("follow gave %d events, want %d", len(all), len(want))
	}
	for i, e := range all {
		if e.Position != want[i] || byPos[e.Position] != e.ID {
			t.Fatalf("event %d: %s at %d, want %s at %d", i, e.ID, e.Position, byPos[want[i]], want[i])
		}
	}

	// From a position inside a pack, Follow resumes right after it.
	for i, p := range want {
		if _, index := eventstore.SeqOf(p); index == 0 || i+1 == len(want) {
			continue
		}
		rest := readAll(t, s, p)
		if len(rest) != len(want)-i-1 || rest[0].Position != want[i+1] {
			t.Fatalf("follow from %d: %d events starting at %d, want %d starting at %d",
				p, len(rest), rest[0].Position, len(want)-i-1, want[i+1])
		}
		break
	}
	if n, err := s.CountAfter(ctx(t), 0); err != nil || n != callers*perCaller {
		t.Fatalf("count after 0: %d, %v", n, err)
	}
}

// TestFollowNeverSplitsAPack checks that a pack's events reach fn in one
// call, even past the usual batch size.
func TestFollowNeverSplitsAPack(t *testing.T) {
	s := open(t, "")
	r := &recorder{t: t, s: s, venue: uuid.New()}
	r.record(700)
	r.record(1500) // one pack of 1,500: over the 1,000 of a usual batch
	r.record(10)
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	var calls [][]uint64
	err := s.Follow(c, 0, func(evs []domain.Envelope) error {
		calls = append(calls, positions(evs))
		if evs[len(evs)-1].Position >= r.pos[len(r.pos)-1] {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	seen := map[uint64]int{} // seq → call
	for i, call := range calls {
		for _, p := range call {
			seq, _ := eventstore.SeqOf(p)
			if j, ok := seen[seq]; ok && j != i {
				t.Fatalf("pack %d split over calls %d and %d", seq, j, i)
			}
			seen[seq] = i
		}
	}
}

func TestRecordDedup(t *testing.T) {
	s := open(t, "")
	venue := uuid.New()
	pass := func() domain.Envelope { return event(domain.PassAggregate(venue, uuid.New()), 1) }

	t.Run("same id in one pack", func(t *testing.T) {
		// Many concurrent callers send the same event: they land in
		// one pack (or wait for the one carrying it).
		e := pass()
		res := make([]ledger.Appended, 20)
		var wg sync.WaitGroup
		for i := range res {
			wg.Go(func() {
				r, err := s.Record(ctx(t), e)
				if err != nil {
					t.Error(err)
					return
				}
				res[i] = r[0]
			})
		}
		wg.Wait()
		fresh := 0
		for _, r := range res {
			if r.Position != res[0].Position {
				t.Fatalf("positions %d and %d for one event", r.Position, res[0].Position)
			}
			if !r.Duplicate {
				fresh++
			}
		}
		if fresh != 1 {
			t.Fatalf("%d callers stored it, want 1", fresh)
		}
	})
	t.Run("same id twice in one call, with others", func(t *testing.T) {
		a, b := pass(), pass()
		res := record(t, s, a, b, a)
		if res[0].Duplicate || res[1].Duplicate || !res[2].Duplicate || res[2].Position != res[0].Position {
			t.Fatalf("results %+v", res)
		}
	})
	t.Run("across packs", func(t *testing.T) {
		a := pass()
		first := record(t, s, a)
		again := record(t, s, pass(), a, event(domain.AlertAggregate("371302"), 2))
		if again[0].Duplicate || !again[1].Duplicate || again[1].Position != first[0].Position || again[2].Duplicate {
			t.Fatalf("retry among new events: %+v, first at %d", again, first[0].Position)
		}
	})
	t.Run("unpacked kinds", func(t *testing.T) {
		e := event(person(), 1)
		first := record(t, s, e)
		again, err := s.Record(ctx(t), e)
		if err != nil || !again[0].Duplicate || again[0].Position != first[0].Position {
			t.Fatalf("retry: %+v, %v; first at %d", again, err, first[0].Position)
		}
	})
	// Nothing was stored twice: every event id once in the log.
	ids := map[uuid.UUID]bool{}
	for _, e := range readAll(t, s, 0) {
		if ids[e.ID] {
			t.Fatalf("event %s stored twice", e.ID)
		}
		ids[e.ID] = true
	}
}

func TestDedupRebuiltAtOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := eventstore.Open(context.Background(), eventstore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	venue := uuid.New()
	evs := passes(venue, 30)
	evs = append(evs, event(domain.HealthAggregate("h1"), 99))
	first := record(t, s, evs...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	again := record(t, s, evs[29], evs[0], evs[30])
	for i, j := range []int{29, 0, 30} {
		if !again[i].Duplicate || again[i].Position != first[j].Position {
			t.Fatalf("retry of event %d after restart: %+v, want duplicate at %d", j, again[i], first[j].Position)
		}
	}
	if n, _ := s.CountAfter(ctx(t), 0); n != uint64(len(evs)) {
		t.Fatalf("%d events stored, want %d", n, len(evs))
	}

	t.Run("outside the window", func(t *testing.T) {
		// A store whose window has passed does not load old packs.
		dir := t.TempDir()
		a := open(t, dir)
		e := event(domain.PassAggregate(venue, uuid.New()), 1)
		if _, err := a.Record(ctx(t), e); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // let the 1s window pass
		b := open(t, dir, func(o *eventstore.Options) { o.DuplicateWindow = time.Second })
		res, err := b.Record(ctx(t), e)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Duplicate {
			t.Fatal("a retry older than the window was caught: the table loaded too much")
		}
	})
}

func TestReadAndLoadPackedKinds(t *testing.T) {
	s := open(t, "")
	p1, p2 := uuid.New(), uuid.New()
	var all []domain.Envelope
	for i := range 200 {
		p := p2
		if i%7 == 0 {
			p = p1
		}
		all = append(all, event(domain.PassAggregate(uuid.New(), p), i))
	}
	all = append(all, event(domain.AlertAggregate("371302"), 1), event(domain.AlertAggregate("371311"), 2))
	res := record(t, s, all...)
	// A pass Appended on its own subject is read too.
	own := domain.PassAggregate(uuid.New(), p1)
	app, err := s.Append(ctx(t), own, 0, event(own, 500))
	if err != nil {
		t.Fatal(err)
	}
	posOf := map[uuid.UUID]uint64{}
	for i, e := range all {
		posOf[e.ID] = res[i].Position
	}
	var wantP1 []uint64
	for i, e := range all {
		if i < 200 && e.Aggregate[len(e.Aggregate)-36:] == p1.String() {
			wantP1 = append(wantP1, res[i].Position)
		}
	}
	wantP1 = append(wantP1, app[0].Position)

	tests := []struct {
		name   string
		filter string
		want   []uint64
	}{
		{"one person's passes", "pass.*." + p1.String(), wantP1},
		{"one district's alerts", "alert.371311", []uint64{res[201].Position}},
		{"all alerts", "alert.>", []uint64{res[200].Position, res[201].Position}},
		{"kind wildcard", "*." + all[0].Aggregate[len("pass."):], []uint64{res[0].Position}},
		{"nothing", "health.>", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			err := s.Read(ctx(t), tt.filter, 0, func(evs []domain.Envelope) error {
				for _, e := range evs {
					if e.ID != uuid.Nil && posOf[e.ID] != 0 && posOf[e.ID] != e.Position {
						return fmt.Errorf("event %s at %d, recorded at %d", e.ID, e.Position, posOf[e.ID])
					}
					got = append(got, e.Position)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("read %s: %v, want %v", tt.filter, got, tt.want)
			}
		})
	}
	t.Run("from inside a pack", func(t *testing.T) {
		var got []uint64
		if err := s.Read(ctx(t), "pass.*."+p1.String(), wantP1[2], func(evs []domain.Envelope) error {
			got = append(got, positions(evs)...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(wantP1[3:]) {
			t.Fatalf("read from %d: %v, want %v", wantP1[2], got, wantP1[3:])
		}
	})
	t.Run("passes of a person", func(t *testing.T) {
		var got []uint64
		if err := s.ReadPassesOf(ctx(t), p1, wantP1[1], func(evs []domain.Envelope) error {
			got = append(got, positions(evs)...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(wantP1[2:]) {
			t.Fatalf("passes of %s from %d: %v, want %v", p1, wantP1[1], got, wantP1[2:])
		}
	})
	t.Run("load", func(t *testing.T) {
		agg := all[7].Aggregate
		evs, version, err := s.Load(ctx(t), agg)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].ID != all[7].ID || version != res[7].Position {
			t.Fatalf("load %s: %d events, version %d, want 1 at %d", agg, len(evs), version, res[7].Position)
		}
	})
	if err := s.Read(ctx(t), "pack.>", 0, func([]domain.Envelope) error { return nil }); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("read of the packs themselves: %v, want ErrInvalid", err)
	}
}

func TestGetLastPositionCountAfter(t *testing.T) {
	s := open(t, "")
	if last, err := s.LastPosition(ctx(t)); err != nil || last != 0 {
		t.Fatalf("last position of an empty log: %d, %v", last, err)
	}
	if n, err := s.CountAfter(ctx(t), 0); err != nil || n != 0 {
		t.Fatalf("count of an empty log: %d, %v", n, err)
	}
	agg := person()
	single, err := s.Append(ctx(t), agg, 0, event(agg, 0))
	if err != nil {
		t.Fatal(err)
	}
	venue := uuid.New()
	evs := passes(venue, 10)
	pack := record(t, s, evs...)
	seq, _ := eventstore.SeqOf(pack[0].Position)
	for i, r := range pack {
		if r.Position != eventstore.PositionOf(seq, i) {
			t.Fatalf("event %d of one call at %d, want %d (one pack)", i, r.Position, eventstore.PositionOf(seq, i))
		}
	}

	t.Run("get", func(t *testing.T) {
		got := s.MessagesGot()
		for i, r := range pack {
			e, err := s.Get(ctx(t), r.Position)
			if err != nil {
				t.Fatal(err)
			}
			if e.ID != evs[i].ID || e.Position != r.Position || string(e.Payload) != string(evs[i].Payload) {
				t.Fatalf("get %d: %s at %d, want %s", r.Position, e.ID, e.Position, evs[i].ID)
			}
		}
		// One pack, one read of the stream (the originals of a batch that
		// lost a race are read this way, one after the other).
		if n := s.MessagesGot() - got; n != 1 {
			t.Fatalf("the 10 events of one pack read %d messages, want 1", n)
		}
		// Each answer's payload is the caller's own, though the message is
		// shared.
		e, _ := s.Get(ctx(t), pack[0].Position)
		clear(e.Payload)
		if again, err := s.Get(ctx(t), pack[0].Position); err != nil || string(again.Payload) != string(evs[0].Payload) {
			t.Fatalf("get after a caller changed its payload: %q, %v", again.Payload, err)
		}
		for _, p := range []uint64{eventstore.PositionOf(seq, 10), single[0].Position + 1} {
			if _, err := s.Get(ctx(t), p); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("get %d: %v, want ErrNotFound", p, err)
			}
		}
	})
	t.Run("last position", func(t *testing.T) {
		if last, err := s.LastPosition(ctx(t)); err != nil || last != pack[9].Position {
			t.Fatalf("last position %d, %v, want %d (last event of the pack)", last, err, pack[9].Position)
		}
	})
	tests := []struct {
		name string
		from uint64
		want uint64
	}{
		{"from the start", 0, 11},
		{"after the single", single[0].Position, 10},
		{"inside the pack", pack[3].Position, 6},
		{"at the end", pack[9].Position, 0},
		{"beyond the end", eventstore.PositionOf(seq+5, 0), 0},
	}
	for _, tt := range tests {
		t.Run("count after/"+tt.name, func(t *testing.T) {
			n, err := s.CountAfter(ctx(t), tt.from)
			if err != nil || n != tt.want {
				t.Fatalf("count after %d: %d, %v, want %d", tt.from, n, err, tt.want)
			}
		})
	}
	// A single after the pack: counts 1.
	if _, err := s.Append(ctx(t), agg, single[0].Position, event(agg, 1)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountAfter(ctx(t), pack[3].Position); err != nil || n != 7 {
		t.Fatalf("count after %d: %d, %v, want 7", pack[3].Position, n, err)
	}
}
