package projections_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/google/uuid"
)

// openLog opens an event store on an embedded JetStream; the projector
// tests run their own projectors over it, so ledgertest starts none.
func openLog(t *testing.T) *eventstore.Store {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	return ledgertest.Start(t, ledgertest.Options{MasterKey: key, NoProjector: true}).Store
}

func envelope(t *testing.T, agg string, ev domain.Event) domain.Envelope {
	t.Helper()
	e, err := domain.NewEnvelope(agg, ev, domain.Meta{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func record(t *testing.T, es *eventstore.Store, envs ...domain.Envelope) uint64 {
	t.Helper()
	res, err := es.Record(context.Background(), envs...)
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	return res[len(res)-1].Position
}

// register seals a person's fields with their key in the event store's keyring.
func register(t *testing.T, es *eventstore.Store, name, idNumber string) (uuid.UUID, domain.Envelope) {
	t.Helper()
	id := uuid.New()
	key, err := es.Key(context.Background(), id, true)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	seal := func(v string) domain.Sealed {
		s, err := pii.Seal(key, v)
		if err != nil {
			t.Fatal(err)
		}
		return domain.Sealed(s)
	}
	return id, envelope(t, domain.PersonAggregate(id), &domain.PersonRegistered{
		PersonID: id, IDType: "resident_id", IDHash: "h-" + id.String(), Name: seal(name), IDNumber: seal(idNumber),
	})
}

func start(t *testing.T, es *eventstore.Store, s projections.Writer) (*projections.Projector, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := projections.New(es, s, projections.Options{Opener: projections.KeyringOpener(es)})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return p, done
}

func waitFor(t *testing.T, p *projections.Projector, pos uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitFor(ctx, pos); err != nil {
		t.Fatalf("position %d not reached (at %d): %v", pos, p.Position(), err)
	}
}

func TestProjectorFollowsHistoryThenLive(t *testing.T) {
	es := openLog(t)
	zhang, reg := register(t, es, "张三", "371302199001011234")
	record(t, es, reg)
	// Erased before the projector ever saw them.
	li, reg2 := register(t, es, "李四", "371302199001015678")
	record(t, es, reg2)
	if err := es.Destroy(context.Background(), li); err != nil {
		t.Fatal(err)
	}
	s := memory.New(memory.Options{})
	p, _ := start(t, es, s)
	waitFor(t, p, 2)

	ctx := context.Background()
	if v, err := s.Person(ctx, zhang); err != nil || v.NameMasked != "张*" || v.IDMasked != "371***********1234" {
		t.Fatalf("person from history: %+v %v", v, err)
	}
	if v, err := s.Person(ctx, li); err != nil || v.NameMasked != "" || v.IDMasked != "***" {
		t.Fatalf("erased person: %+v %v", v, err)
	}
	if ok, err := p.CaughtUp(ctx); err != nil || !ok {
		t.Fatalf("caught up: %v %v", ok, err)
	}

	// Live: a write, then a read that waits for its position.
	venue := uuid.New()
	pos := record(t, es, envelope(t, domain.PassAggregate(venue, zhang), &domain.PassRecorded{
		VenueID: venue, PersonID: zhang, Direction: "in", Method: "self_scan", Decision: "pass"}))
	waitFor(t, p, pos)
	if es, err := s.Entries(ctx, domain.EntryQuery{VenueID: venue}); err != nil || len(es) != 1 {
		t.Fatalf("live pass: %+v %v", es, err)
	}
	st, err := p.Status(ctx)
	if err != nil || st.Position != pos || st.LagEvents != 0 || st.LagSeconds != 0 || st.Name != projections.DefaultName {
		t.Fatalf("status: %+v %v", st, err)
	}

	// WaitFor a position not yet written gives up with the context.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := p.WaitFor(short, pos+100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for a future position: %v", err)
	}
}

func TestProjectorStopsOnUnknownEvent(t *testing.T) {
	tests := []struct {
		name string
		edit func(*domain.Envelope)
	}{
		{"unknown type", func(e *domain.Envelope) { e.Type = "PassTeleported" }},
		{"newer schema version", func(e *domain.Envelope) { e.SchemaVersion = 99 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es := openLog(t)
			venue, person := uuid.New(), uuid.New()
			pass := func() domain.Envelope {
				return envelope(t, domain.PassAggregate(venue, person), &domain.PassRecorded{
					VenueID: venue, PersonID: person, Direction: "in", Method: "self_scan", Decision: "pass"})
			}
			bad := pass()
			tc.edit(&bad)
			good := record(t, es, pass())
			record(t, es, bad, pass())

			s := memory.New(memory.Options{})
			p := projections.New(es, s, projections.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := p.Run(ctx)
			if !errors.Is(err, domain.ErrUnknownEvent) || !errors.Is(err, projections.ErrDecode) {
				t.Fatalf("run: %v, want ErrUnknownEvent", err)
			}
			if got, _ := s.Position(ctx); got != good {
				t.Fatalf("store at %d, want %d: nothing at or after the unknown event applied", got, good)
			}
			if st, err := p.Status(ctx); err != nil || st.Error == "" || st.LagEvents != 2 {
				t.Fatalf("status after the stop: %+v %v", st, err)
			}
			if ok, _ := p.CaughtUp(ctx); ok {
				t.Fatal("a stopped projector reports caught up")
			}
		})
	}
}

func TestKeyringOpenerFailures(t *testing.T) {
	es := openLog(t)
	ctx := context.Background()
	_, reg := register(t, es, "王五", "P1234567")
	ev, err := domain.Decode(reg)
	if err != nil {
		t.Fatal(err)
	}
	pr := ev.(*domain.PersonRegistered)
	open := projections.KeyringOpener(es)
	m, err := projections.Mask(ctx, pr, open)
	if err != nil || m.Name != "王*" || m.IDNumber != "****4567" {
		t.Fatalf("masks: %+v %v", m, err)
	}
	// Another person's key cannot open these fields: treated as erased.
	other := *pr
	other.PersonID = uuid.New()
	if _, err := es.Key(ctx, other.PersonID, true); err != nil {
		t.Fatal(err)
	}
	if m, err := projections.Mask(ctx, &other, projections.KeyringOpener(es)); err != nil || m != projections.ErasedMasks {
		t.Fatalf("wrong key: %+v %v", m, err)
	}
}

// BenchmarkPrepare decodes pass envelopes on one core: the part of a replay
// that domain.Decode (encoding/json) costs.
func BenchmarkPrepare(b *testing.B) {
	l := storetest.Generate(100, 10, 10_000, 1, 1)
	envs := l.Envelopes[120:]
	open := projections.KeyringOpener(l.Keys)
	b.ResetTimer()
	for b.Loop() {
		if _, err := projections.Prepare(context.Background(), envs, open); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(envs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// staleCheckpoint answers one armed Checkpoint with the position it read
// before a batch that commits during the read: what a database read whose
// snapshot predates a concurrent commit gives.
type staleCheckpoint struct {
	*memory.Store
	p       *projections.Projector
	armed   atomic.Bool
	entered chan struct{}
	calls   atomic.Int64
}

func (s *staleCheckpoint) Checkpoint(ctx context.Context) (projections.Checkpoint, error) {
	s.calls.Add(1)
	cp, err := s.Store.Checkpoint(ctx)
	if err != nil || !s.armed.CompareAndSwap(true, false) {
		return cp, err
	}
	close(s.entered)
	for s.p.Position() <= cp.Position {
		select {
		case <-ctx.Done():
			return cp, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return cp, nil
}

// TestProjectorCheckRacingApply: the watch for tables moved back (a rebuild
// swapped in) must not take a batch committed while it read the store's
// position for a gap. Under load it did: the projection restarted, its
// in-flight apply logged as failed with "context canceled".
func TestProjectorCheckRacingApply(t *testing.T) {
	es := openLog(t)
	w := &staleCheckpoint{Store: memory.New(memory.Options{}), entered: make(chan struct{})}
	var logs ledgertest.Logs
	p := projections.New(es, w, projections.Options{Opener: projections.KeyringOpener(es), CheckEvery: 2 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	w.p = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	_, reg := register(t, es, "张三", "371302199001011234")
	waitFor(t, p, record(t, es, reg))
	w.armed.Store(true)
	<-w.entered
	_, reg2 := register(t, es, "李四", "371302199001015678")
	waitFor(t, p, record(t, es, reg2))
	// Let the watch act on the stale answer, and check a few times more.
	for n := w.calls.Load(); w.calls.Load() < n+5; {
		time.Sleep(time.Millisecond)
	}
	if out := string(logs.Bytes()); strings.Contains(out, "restarts") || strings.Contains(out, "failed") {
		t.Fatalf("a batch committed during the check was taken for a gap:\n%s", out)
	}
}
