package eventstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

func masterKey() []byte { return bytes.Repeat([]byte{7}, 32) }

// open starts a store on an embedded server in dir (a fresh temp dir when
// empty) and closes it at the end of the test.
func open(t testing.TB, dir string, mod ...func(*eventstore.Options)) *eventstore.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	o := eventstore.Options{Dir: dir, MasterKey: masterKey()}
	for _, m := range mod {
		m(&o)
	}
	s, err := eventstore.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// epoch is an hour ago: the passes of these tests are within their
// retention (a pass message lives until occurred_at + retention).
var epoch = time.Now().UTC().Truncate(time.Second).Add(-time.Hour)

// event makes an envelope for aggregate with a small payload.
func event(aggregate string, n int) domain.Envelope {
	id, err := uuid.NewV7()
	if err != nil {
		panic(err)
	}
	return domain.Envelope{
		ID:            id,
		Type:          "TestHappened",
		SchemaVersion: 1,
		Aggregate:     aggregate,
		OccurredAt:    epoch.Add(time.Duration(n) * time.Second),
		Actor:         "test",
		CorrelationID: fmt.Sprintf("c-%d", n),
		Payload:       json.RawMessage(fmt.Sprintf(`{"n":%d,"name":"张三 \"quoted\""}`, n)),
	}
}

// passes makes n pass events at venue, each of another person, numbered
// from 0 as event numbers them.
func passes(venue uuid.UUID, n int) []domain.Envelope {
	evs := make([]domain.Envelope, n)
	for i := range evs {
		evs[i] = event(domain.PassAggregate(venue, uuid.New()), i)
	}
	return evs
}

// record records evs, failing the test on an error.
func record(t testing.TB, s *eventstore.Store, evs ...domain.Envelope) []ledger.Appended {
	t.Helper()
	res, err := s.Record(ctx(t), evs...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// logStream is the store's stream in JetStream, to look behind the store.
func logStream(t testing.TB, s *eventstore.Store) jetstream.Stream {
	t.Helper()
	st, err := s.JetStream().Stream(ctx(t), eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func person() string { return domain.PersonAggregate(uuid.New()) }

func ctx(t testing.TB) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestAppendConcurrencyConflict(t *testing.T) {
	s := open(t, "")
	agg := person()
	first, err := s.Append(ctx(t), agg, 0, event(agg, 1))
	if err != nil {
		t.Fatalf("first append: %v", err)
	}
	v := first[0].Position

	// Two writers decided on version v at the same time.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.Append(ctx(t), agg, v, event(agg, 10+i))
		})
	}
	wg.Wait()
	wins, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, domain.ErrConflict):
			conflicts++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if wins != 1 || conflicts != 1 {
		t.Fatalf("wins=%d conflicts=%d, want 1 and 1", wins, conflicts)
	}
	evs, version, err := s.Load(ctx(t), agg)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || version != evs[1].Position {
		t.Fatalf("loaded %d events at version %d, want 2", len(evs), version)
	}

	t.Run("new aggregate must be empty", func(t *testing.T) {
		if _, err := s.Append(ctx(t), agg, 0, event(agg, 3)); !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("append at 0 to an existing aggregate: %v, want conflict", err)
		}
	})
	t.Run("stale batch appends nothing", func(t *testing.T) {
		before, _ := s.LastPosition(ctx(t))
		_, err := s.Append(ctx(t), agg, v, event(agg, 4), event(agg, 5), event(agg, 6))
		if !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("stale batch: %v, want conflict", err)
		}
		after, _ := s.LastPosition(ctx(t))
		if after != before {
			t.Fatalf("last position moved from %d to %d", before, after)
		}
	})
}

func TestAppendAtomicBatch(t *testing.T) {
	s := open(t, "")
	agg := person()
	other := person()
	if _, err := s.Append(ctx(t), other, 0, event(other, 0)); err != nil {
		t.Fatal(err)
	}
	evs := []domain.Envelope{event(agg, 1), event("", 2), event(agg, 3)}
	res, err := s.Append(ctx(t), agg, 0, evs...)
	if err != nil {
		t.Fatalf("append batch: %v", err)
	}
	if len(res) != 3 {
		t.Fatalf("%d results", len(res))
	}
	first, _ := eventstore.SeqOf(res[0].Position)
	for i, r := range res {
		// One message per event, stored contiguously.
		if r.Duplicate || r.Position != eventstore.PositionOf(first+uint64(i), 0) {
			t.Fatalf("result %d = %+v, want consecutive new positions", i, r)
		}
		got, err := s.Get(ctx(t), r.Position)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != evs[i].ID || got.Aggregate != agg || got.Position != r.Position {
			t.Fatalf("position %d holds %s/%s", r.Position, got.ID, got.Aggregate)
		}
	}
	loaded, version, err := s.Load(ctx(t), agg)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 3 || version != res[2].Position {
		t.Fatalf("load: %d events, version %d", len(loaded), version)
	}
	if string(loaded[0].Payload) != string(evs[0].Payload) || !loaded[0].OccurredAt.Equal(evs[0].OccurredAt) ||
		loaded[0].RecordedAt.IsZero() || loaded[0].RecordedAt.Location() != time.UTC {
		t.Fatalf("loaded %+v, want %+v with recorded_at in UTC", loaded[0], evs[0])
	}
}

func TestAppendDuplicate(t *testing.T) {
	s := open(t, "")
	agg := person()
	e := event(agg, 1)
	first, err := s.Append(ctx(t), agg, 0, e)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		version uint64
	}{
		{"same version", 0},                    // a plain retry: refused by the version check first
		{"current version", first[0].Position}, // decided again on the new state
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			again, err := s.Append(ctx(t), agg, tt.version, e)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if !again[0].Duplicate || again[0].Position != first[0].Position {
				t.Fatalf("retry = %+v, want duplicate of %d", again[0], first[0].Position)
			}
		})
	}
	t.Run("batch retry", func(t *testing.T) {
		b := []domain.Envelope{event(agg, 2), event(agg, 3)}
		res, err := s.Append(ctx(t), agg, first[0].Position, b...)
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.Append(ctx(t), agg, first[0].Position, b...)
		if err != nil {
			t.Fatalf("batch retry: %v", err)
		}
		for i := range res {
			if !again[i].Duplicate || again[i].Position != res[i].Position {
				t.Fatalf("retry %d = %+v, want duplicate of %d", i, again[i], res[i].Position)
			}
		}
	})
	evs, _, err := s.Load(ctx(t), agg)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d events stored, want 3", len(evs))
	}
}

func TestAppendInvalid(t *testing.T) {
	s := open(t, "")
	agg := person()
	noID := event(agg, 1)
	noID.ID = uuid.Nil
	badPayload := event(agg, 1)
	badPayload.Payload = json.RawMessage(`{"n":`)
	same := event(agg, 1)
	tests := []struct {
		name      string
		aggregate string
		events    []domain.Envelope
	}{
		{"no events", agg, nil},
		{"empty aggregate", "", []domain.Envelope{event("", 1)}},
		{"wildcard aggregate", "person.*", []domain.Envelope{event("person.*", 1)}},
		{"empty token", "person..x", []domain.Envelope{event("person..x", 1)}},
		{"other aggregate", agg, []domain.Envelope{event(person(), 1)}},
		{"no id", agg, []domain.Envelope{noID}},
		{"payload not JSON", agg, []domain.Envelope{badPayload}},
		{"same id twice", agg, []domain.Envelope{same, same}},
		{"the store's own kind", "pack.pass", []domain.Envelope{event("pack.pass", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Append(ctx(t), tt.aggregate, 0, tt.events...); !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := s.Record(ctx(t), badPayload); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("record: err = %v, want ErrInvalid", err)
	}
	if _, err := s.Record(ctx(t), event("pack.event", 1)); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("record on the store's own kind: err = %v, want ErrInvalid", err)
	}
	if last, _ := s.LastPosition(ctx(t)); last != 0 {
		t.Fatalf("last position %d after invalid appends, want 0", last)
	}
}

func TestRecordConcurrentCallers(t *testing.T) {
	s := open(t, "")
	const callers, perCaller = 50, 20
	type call struct {
		events []domain.Envelope
		res    []ledger.Appended
		err    error
	}
	calls := make([]call, callers)
	var wg sync.WaitGroup
	for c := range calls {
		wg.Go(func() {
			venue := uuid.New()
			evs := passes(venue, perCaller)
			// Each caller records in three calls; the last repeats the
			// first call's first event (a retry) and two of its own.
			parts := [][]domain.Envelope{evs[:10], evs[10:], {evs[0], evs[10], evs[19]}}
			for _, p := range parts {
				res, err := s.Record(ctx(t), p...)
				if err != nil {
					calls[c].err = err
					return
				}
				calls[c].events = append(calls[c].events, p...)
				calls[c].res = append(calls[c].res, res...)
			}
		})
	}
	wg.Wait()
	positions := map[uint64]uuid.UUID{}
	for c, cl := range calls {
		if cl.err != nil {
			t.Fatalf("caller %d: %v", c, cl.err)
		}
		if len(cl.res) != perCaller+3 {
			t.Fatalf("caller %d: %d results", c, len(cl.res))
		}
		for i, r := range cl.res {
			id := cl.events[i].ID
			wantDup := i >= perCaller
			if r.Duplicate != wantDup {
				t.Fatalf("caller %d event %d: duplicate=%v, want %v", c, i, r.Duplicate, wantDup)
			}
			if prev, ok := positions[r.Position]; ok && prev != id {
				t.Fatalf("position %d given to %s and %s", r.Position, prev, id)
			}
			positions[r.Position] = id
		}
	}
	if len(positions) != callers*perCaller {
		t.Fatalf("%d distinct positions, want %d", len(positions), callers*perCaller)
	}
	stored, err := s.CountAfter(ctx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if stored != callers*perCaller {
		t.Fatalf("%d events stored, want %d (nothing stored twice)", stored, callers*perCaller)
	}
	// Every position holds the event its caller was told.
	for pos, id := range positions {
		e, err := s.Get(ctx(t), pos)
		if err != nil {
			t.Fatal(err)
		}
		if e.ID != id {
			t.Fatalf("position %d holds %s, caller was told %s", pos, e.ID, id)
		}
	}
}

func TestRecordDuplicates(t *testing.T) {
	s := open(t, "")
	venue := uuid.New()
	a := event(domain.PassAggregate(venue, uuid.New()), 1)
	b := event(domain.PassAggregate(venue, uuid.New()), 2)
	res := record(t, s, a, a)
	if res[0].Duplicate || !res[1].Duplicate || res[0].Position != res[1].Position {
		t.Fatalf("same id twice in one call: %+v", res)
	}
	// A call mixing a stored event with a new one.
	res2 := record(t, s, b, a)
	if res2[0].Duplicate || !res2[1].Duplicate || res2[1].Position != res[0].Position {
		t.Fatalf("stored + new: %+v", res2)
	}
	if n, _ := s.CountAfter(ctx(t), 0); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}
}

func TestRecordLargeRequestSplits(t *testing.T) {
	s := open(t, "", func(o *eventstore.Options) { o.MaxPack = 100 })
	venue := uuid.New()
	evs := passes(venue, 1000)
	res := record(t, s, evs...)
	// Ten packs of 100, one after the other.
	for i, r := range res {
		want := eventstore.PositionOf(uint64(i/100+1), i%100)
		if r.Position != want || r.Duplicate {
			t.Fatalf("result %d = %+v, want position %d", i, r, want)
		}
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s, err := eventstore.Open(context.Background(), eventstore.Options{Dir: dir, MasterKey: masterKey()})
	if err != nil {
		t.Fatal(err)
	}
	agg := person()
	pid := uuid.New()
	if _, err := s.Append(ctx(t), agg, 0, event(agg, 1), event(agg, 2)); err != nil {
		t.Fatal(err)
	}
	passes := []domain.Envelope{
		event(domain.PassAggregate(uuid.New(), pid), 3),
		event(domain.PassAggregate(uuid.New(), pid), 4),
		event(domain.PassAggregate(uuid.New(), pid), 5),
	}
	rec := record(t, s, passes...)
	key, err := s.Key(ctx(t), pid, true)
	if err != nil {
		t.Fatal(err)
	}
	before := readAll(t, s, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx(t), event(agg, 9)); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("record after close: %v, want ErrClosed", err)
	}

	s = open(t, dir)
	evs, version, err := s.Load(ctx(t), agg)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || version != eventstore.PositionOf(2, 0) {
		t.Fatalf("after restart: %d events at version %d", len(evs), version)
	}
	// The last event of the last pack, read from its header (the new
	// store has written nothing).
	if last, _ := s.LastPosition(ctx(t)); last != rec[2].Position {
		t.Fatalf("last position %d, want %d", last, rec[2].Position)
	}
	if after := readAll(t, s, 0); fmt.Sprint(positions(after)) != fmt.Sprint(positions(before)) {
		t.Fatalf("log after restart %v, before %v", positions(after), positions(before))
	}
	again, err := s.Key(ctx(t), pid, false)
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("key after restart: %x, %v", again, err)
	}
	// Still deduplicating across the restart.
	res, err := s.Append(ctx(t), agg, version, evs[1])
	if err != nil || !res[0].Duplicate {
		t.Fatalf("retry after restart: %+v, %v", res, err)
	}
}

// readAll follows the log from position from up to its current end.
func readAll(t *testing.T, s *eventstore.Store, from uint64) []domain.Envelope {
	t.Helper()
	last, err := s.LastPosition(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []domain.Envelope
	if last <= from {
		return nil
	}
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	err = s.Follow(c, from, func(evs []domain.Envelope) error {
		got = append(got, evs...)
		if got[len(got)-1].Position >= last {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("follow: %v", err)
	}
	return got
}

// follower follows a store in the background and gathers the positions it
// is handed, and in how many batches.
type follower struct {
	cancel context.CancelFunc
	errc   chan error

	mu      sync.Mutex
	got     []uint64
	batches int
}

// follow starts a follower of s from position from.
func follow(t *testing.T, s *eventstore.Store, from uint64) *follower {
	c, cancel := context.WithCancel(ctx(t))
	t.Cleanup(cancel)
	f := &follower{cancel: cancel, errc: make(chan error, 1)}
	go func() {
		f.errc <- s.Follow(c, from, func(evs []domain.Envelope) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.batches++
			for _, e := range evs {
				f.got = append(f.got, e.Position)
			}
			return nil
		})
	}()
	return f
}

// count is how many events f has been handed so far.
func (f *follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

// stop ends f's Follow, checks that it ended for that reason, and returns
// the positions f was handed and in how many batches.
func (f *follower) stop(t *testing.T) ([]uint64, int) {
	t.Helper()
	f.cancel()
	if err := <-f.errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("follow returned %v, want context.Canceled", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got, f.batches
}

func positions(evs []domain.Envelope) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Position
	}
	return out
}

// recorder records passes at one venue and remembers their positions in
// log order.
type recorder struct {
	t     *testing.T
	s     *eventstore.Store
	venue uuid.UUID
	mu    sync.Mutex
	pos   []uint64
}

func (r *recorder) record(n int) []ledger.Appended {
	r.t.Helper()
	var evs []domain.Envelope
	for i := range n {
		evs = append(evs, event(domain.PassAggregate(r.venue, uuid.New()), i))
	}
	res, err := r.s.Record(ctx(r.t), evs...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range res {
		r.pos = append(r.pos, a.Position)
	}
	return res
}

// after returns the recorded positions after from, in order.
func (r *recorder) after(from uint64) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, p := range r.pos {
		if p > from {
			out = append(out, p)
		}
	}
	return out
}

func TestFollowHistoryThenLive(t *testing.T) {
	s := open(t, "", func(o *eventstore.Options) { o.MaxPack = 300 })
	r := &recorder{t: t, s: s, venue: uuid.New()}
	res := r.record(2500) // history: packs of up to 300
	mid := res[1234].Position
	if _, i := eventstore.SeqOf(mid); i == 0 {
		t.Fatalf("position %d is not inside a pack", mid)
	}

	tests := []struct {
		name string
		from uint64
	}{
		{"from the start", 0},
		{"from inside a pack", mid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := follow(t, s, tt.from)
			waitFor(t, func() bool { return f.count() >= len(r.after(tt.from)) })
			r.record(300) // live
			want := r.after(tt.from)
			waitFor(t, func() bool { return f.count() >= len(want) })
			got, batches := f.stop(t)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("followed %d events, want %d (gap, duplicate or order)", len(got), len(want))
			}
			if batches >= len(got) {
				t.Fatalf("%d batches for %d events: not batched", batches, len(got))
			}
		})
	}
	t.Run("fn error stops", func(t *testing.T) {
		stop := errors.New("stop here")
		if err := s.Follow(ctx(t), 0, func([]domain.Envelope) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("follow returned %v, want %v", err, stop)
		}
	})
}

func TestFollowSurvivesConsumerLoss(t *testing.T) {
	s := open(t, "")
	r := &recorder{t: t, s: s, venue: uuid.New()}
	r.record(100)
	f := follow(t, s, 0)
	waitFor(t, func() bool { return f.count() == 100 })

	// The server loses the consumer (inactivity, a restart of a cluster
	// node, an operator): the ordered consumer starts a new one after the
	// last delivered position.
	st := logStream(t, s)
	names := st.ConsumerNames(ctx(t))
	deleted := 0
	for name := range names.Name() {
		if err := st.DeleteConsumer(ctx(t), name); err != nil {
			t.Fatal(err)
		}
		deleted++
	}
	if deleted == 0 {
		t.Fatal("no consumer to delete")
	}
	r.record(100)
	waitFor(t, func() bool { return f.count() >= 200 })
	got, _ := f.stop(t)
	if want := r.after(0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("followed %v\nwant %v (gap or duplicate)", got, want)
	}
}

func TestCloseEndsFollow(t *testing.T) {
	s, err := eventstore.Open(context.Background(), eventstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	agg := person()
	if _, err := s.Append(ctx(t), agg, 0, event(agg, 1)); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		var once sync.Once
		errc <- s.Follow(ctx(t), 0, func([]domain.Envelope) error {
			once.Do(func() { close(started) })
			return nil
		})
	}()
	<-started
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("follow returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow still running 10s after close")
	}
}

func TestFollowRejectsForeignBody(t *testing.T) {
	s := open(t, "")
	agg := person()
	if _, err := s.Append(ctx(t), agg, 0, event(agg, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.JetStream().Publish(ctx(t), "ledger.person.garbage", []byte(`not an envelope`)); err != nil {
		t.Fatal(err)
	}
	var n int
	err := s.Follow(ctx(t), 0, func(evs []domain.Envelope) error { n += len(evs); return nil })
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("follow over a foreign body returned %v, want a decode error", err)
	}
	if _, err := s.Get(ctx(t), eventstore.PositionOf(2, 0)); err == nil {
		t.Fatal("get of a foreign body: no error")
	}
}

func TestLoadEmptyAndRead(t *testing.T) {
	s := open(t, "")
	evs, v, err := s.Load(ctx(t), person())
	if err != nil || len(evs) != 0 || v != 0 {
		t.Fatalf("load of an empty aggregate: %d events, version %d, %v", len(evs), v, err)
	}
	if err := s.Read(ctx(t), "pass.>", 0, func([]domain.Envelope) error { return errors.New("called") }); err != nil {
		t.Fatalf("read of an empty log: %v", err)
	}

	venueA, venueB, p1, p2 := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	var all []domain.Envelope
	for i, pair := range [][2]uuid.UUID{{venueA, p1}, {venueA, p2}, {venueB, p1}, {venueB, p2}, {venueA, p1}} {
		all = append(all, event(domain.PassAggregate(pair[0], pair[1]), i))
	}
	agg := domain.VenueAggregate(venueA)
	all = append(all, event(agg, 9))
	res := record(t, s, all...)
	tests := []struct {
		name   string
		filter string
		from   uint64
		want   []int // indexes into all
	}{
		{"person's passes", "pass.*." + p1.String(), 0, []int{0, 2, 4}},
		{"venue's passes", "pass." + venueA.String() + ".*", 0, []int{0, 1, 4}},
		{"from a position", "pass.*." + p1.String(), res[0].Position, []int{2, 4}},
		{"all passes", "pass.>", 0, []int{0, 1, 2, 3, 4}},
		{"venues", "venue.>", 0, []int{5}},
		{"nothing", "person.>", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			err := s.Read(ctx(t), tt.filter, tt.from, func(evs []domain.Envelope) error {
				for _, e := range evs {
					for i := range all {
						if all[i].ID == e.ID && res[i].Position == e.Position {
							got = append(got, i)
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("read %s from %d: %v, want %v", tt.filter, tt.from, got, tt.want)
			}
		})
	}
	if err := s.Read(ctx(t), "pass.>.x", 0, func([]domain.Envelope) error { return nil }); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("bad filter: %v, want ErrInvalid", err)
	}
	for _, pos := range []uint64{999, eventstore.PositionOf(999, 0), res[0].Position + 100} {
		if _, err := s.Get(ctx(t), pos); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("get %d beyond the end: %v, want ErrNotFound", pos, err)
		}
	}
}

func TestScansLeaveNoConsumers(t *testing.T) {
	s := open(t, "")
	agg := person()
	if _, err := s.Append(ctx(t), agg, 0, event(agg, 1)); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if err := s.Read(ctx(t), "person.>", 0, func([]domain.Envelope) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Load(ctx(t), agg); err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
		err := s.Follow(c, 0, func([]domain.Envelope) error { return nil })
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("follow: %v", err)
		}
	}
	st := logStream(t, s)
	info, err := st.Info(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Fatalf("%d consumers left behind", info.State.Consumers)
	}
}

func TestPassesCarryTTL(t *testing.T) {
	// The store's clock is the test's: a TTL counts from the pass's
	// occurred_at, not from when it was stored.
	now := time.Now().Truncate(time.Second)
	s := open(t, "", func(o *eventstore.Options) {
		o.PassRetention = 2 * time.Second
		o.Now = func() time.Time { return now }
	})
	at := func(e domain.Envelope, t time.Time) domain.Envelope { e.OccurredAt = t; return e }
	pass := at(event(domain.PassAggregate(uuid.New(), uuid.New()), 1), now)
	alert := at(event(domain.AlertAggregate("371302"), 2), now)
	health := event(domain.HealthAggregate("h"), 4)
	reg := event(person(), 3)
	res := record(t, s, pass, alert, health, reg)
	// A pack of late passes: its TTL counts from its latest occurred_at.
	late, err := s.Record(ctx(t), at(event(domain.PassAggregate(uuid.New(), uuid.New()), 5), now.Add(-1500*time.Millisecond)),
		at(event(domain.PassAggregate(uuid.New(), uuid.New()), 6), now.Add(-1100*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	// A pass already past its retention gets the least JetStream takes.
	old := record(t, s, at(event(domain.PassAggregate(uuid.New(), uuid.New()), 7), now.Add(-time.Hour)))
	st := logStream(t, s)
	tests := []struct {
		name    string
		pos     uint64
		subject string
		ttl     string
		count   string
		msgID   string
	}{
		{"pass pack", res[0].Position, "ledger.pack.pass", "2s", "1", ""},
		{"alert pack", res[1].Position, "ledger.pack.alert", "2s", "1", ""},
		{"event pack", res[2].Position, "ledger.pack.event", "", "1", ""},
		{"registration, its own message", res[3].Position, "ledger.person." + reg.Aggregate[len("person."):], "", "", reg.ID.String()},
		{"late passes: from the latest occurred_at, rounded up", late[0].Position, "ledger.pack.pass", "1s", "2", ""},
		{"expired pass: at least 1s", old[0].Position, "ledger.pack.pass", "1s", "1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, _ := eventstore.SeqOf(tt.pos)
			m, err := st.GetMsg(ctx(t), seq)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tt.subject {
				t.Fatalf("subject %q, want %q", m.Subject, tt.subject)
			}
			if got := m.Header.Get("Nats-TTL"); got != tt.ttl {
				t.Fatalf("Nats-TTL = %q, want %q", got, tt.ttl)
			}
			if got := m.Header.Get("Ledger-Pack-Count"); got != tt.count {
				t.Fatalf("Ledger-Pack-Count = %q, want %q", got, tt.count)
			}
			id := m.Header.Get("Nats-Msg-Id")
			if _, err := uuid.Parse(id); err != nil || tt.msgID != "" && id != tt.msgID {
				t.Fatalf("Nats-Msg-Id = %q, want %q (a fresh uuid for a pack)", id, tt.msgID)
			}
		})
	}
	// The pass goes when its retention ends; the others stay.
	waitFor(t, func() bool {
		_, err := s.Get(ctx(t), res[0].Position)
		return errors.Is(err, domain.ErrNotFound)
	})
	waitFor(t, func() bool {
		_, err := s.Get(ctx(t), res[1].Position)
		return errors.Is(err, domain.ErrNotFound)
	})
	for _, r := range res[2:] {
		if _, err := s.Get(ctx(t), r.Position); err != nil {
			t.Fatalf("event at %d after the pass and alert expired: %v", r.Position, err)
		}
	}
}

func TestKeyring(t *testing.T) {
	s := open(t, "")
	id := uuid.New()
	if _, err := s.Key(ctx(t), id, false); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("key before creation: %v, want ErrNotFound", err)
	}
	// Many creators race; all get the winner's key.
	keys := make([][]byte, 16)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := s.Key(ctx(t), id, true)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i, k := range keys {
		if len(k) != 32 || !bytes.Equal(k, keys[0]) {
			t.Fatalf("creator %d got %x, creator 0 got %x", i, k, keys[0])
		}
	}
	got, err := s.Key(ctx(t), id, false)
	if err != nil || !bytes.Equal(got, keys[0]) {
		t.Fatalf("key: %x, %v", got, err)
	}
	// The stored value is sealed, not the key itself.
	kv, err := s.JetStream().KeyValue(ctx(t), eventstore.KeyBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx(t), id.String())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(entry.Value(), got) {
		t.Fatal("data key stored in the clear")
	}
	other, err := s.Key(ctx(t), uuid.New(), true)
	if err != nil || bytes.Equal(other, got) {
		t.Fatalf("another person's key: %x, %v", other, err)
	}

	if err := s.Destroy(ctx(t), id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Key(ctx(t), id, false); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("key after destroy: %v, want ErrNotFound", err)
	}
	// Only the purge marker may remain.
	history, _ := kv.History(ctx(t), id.String())
	for _, e := range history {
		if len(e.Value()) > 0 {
			t.Fatalf("a revision with a value survived destroy")
		}
	}

	t.Run("wrong master key", func(t *testing.T) {
		dir := t.TempDir()
		a := open(t, dir)
		if _, err := a.Key(ctx(t), id, true); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		b := open(t, dir, func(o *eventstore.Options) { o.MasterKey = bytes.Repeat([]byte{8}, 32) })
		if _, err := b.Key(ctx(t), id, false); !errors.Is(err, eventstore.ErrKeyCorrupt) {
			t.Fatalf("key under another master key: %v, want ErrKeyCorrupt", err)
		}
	})
	t.Run("no master key", func(t *testing.T) {
		n := open(t, "", func(o *eventstore.Options) { o.MasterKey = nil })
		if _, err := n.Key(ctx(t), id, true); !errors.Is(err, eventstore.ErrNoMasterKey) {
			t.Fatalf("%v, want ErrNoMasterKey", err)
		}
	})
}

func TestReady(t *testing.T) {
	s := open(t, "")
	// Open rebuilds the table of recent ids in the background; Record
	// waits for it, and Ready says so until it is done.
	if _, err := s.Record(ctx(t), event(domain.PassAggregate(uuid.New(), uuid.New()), 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s.Conn() == nil || s.JetStream() == nil {
		t.Fatal("no connection")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx(t), event(domain.PassAggregate(uuid.New(), uuid.New()), 1)); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("record after close: %v, want ErrClosed", err)
	}
	if err := s.Ready(ctx(t)); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("ready after close: %v, want ErrClosed", err)
	}
}

// waitFor polls cond until it holds or 20 seconds pass.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A destroyed key leaves no byte of its sealed value in JetStream's files:
// a purge alone only marks it deleted in its block; Destroy overwrites it
// first. Keys of other people stay.
func TestDestroyOverwritesTheStoredKey(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	kv, err := s.JetStream().KeyValue(ctx(t), eventstore.KeyBucket)
	if err != nil {
		t.Fatal(err)
	}
	gone, kept := uuid.New(), uuid.New()
	sealed := map[uuid.UUID][]byte{}
	for _, id := range []uuid.UUID{gone, kept} {
		if _, err := s.Key(ctx(t), id, true); err != nil {
			t.Fatal(err)
		}
		e, err := kv.Get(ctx(t), id.String())
		if err != nil {
			t.Fatal(err)
		}
		sealed[id] = e.Value()
	}
	if err := s.Destroy(ctx(t), gone); err != nil {
		t.Fatal(err)
	}
	if err := s.Destroy(ctx(t), gone); err != nil { // again: idempotent
		t.Fatal(err)
	}
	if _, err := s.Key(ctx(t), gone, false); !errors.Is(err, domain.ErrNotFound) || errors.Is(err, eventstore.ErrKeyMissing) {
		t.Fatalf("destroyed key: %v, want ErrNotFound and not ErrKeyMissing", err)
	}
	// Never created, destroyed: a tombstone all the same (it reads as erased).
	never := uuid.New()
	if err := s.Destroy(ctx(t), never); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Key(ctx(t), never, false); !errors.Is(err, domain.ErrNotFound) || errors.Is(err, eventstore.ErrKeyMissing) {
		t.Fatalf("destroyed key that never was: %v", err)
	}
	found := map[uuid.UUID]bool{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for id, v := range sealed {
			if bytes.Contains(b, v) {
				found[id] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found[gone] {
		t.Fatal("the destroyed key's sealed value is still in the store's files")
	}
	if !found[kept] {
		t.Fatal("the scan does not find a key that exists: it proves nothing")
	}
}
