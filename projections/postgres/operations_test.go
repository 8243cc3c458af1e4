package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/google/uuid"
)

// traceEvent is an analyst's look; with nul its reason holds a NUL byte,
// put into the payload behind the domain's back (as events written before
// the domain refused them are): PostgreSQL text cannot hold it.
func traceEvent(t *testing.T, reason string, nul bool) domain.Envelope {
	t.Helper()
	at := time.Now().UTC()
	e, err := domain.NewEnvelope(domain.AuditAggregate("analyst"), &domain.TraceRequested{
		TraceID: uuid.New(), Analyst: "analyst", PersonID: uuid.New(), From: at.Add(-time.Hour), To: at, Depth: 1,
		Reason: reason, Kind: "contacts",
	}, domain.Meta{OccurredAt: at}, at)
	if err != nil {
		t.Fatal(err)
	}
	if nul {
		bad := bytes.Replace(e.Payload, []byte(`"reason":"`+reason), []byte(`"reason":"`+reason+`\u0000`), 1)
		if bytes.Equal(bad, e.Payload) {
			t.Fatalf("payload %s has no reason to spoil", e.Payload)
		}
		e.Payload = bad
	}
	return e
}

func runProjector(t *testing.T, p *projections.Projector) (cancel func(), done <-chan error) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- p.Run(ctx) }()
	var once atomic.Bool
	cancel = func() {
		if once.CompareAndSwap(false, true) {
			stop()
			<-ch
		}
	}
	t.Cleanup(cancel)
	return cancel, ch
}

func waitPos(t *testing.T, p *projections.Projector, pos uint64, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := p.WaitFor(ctx, pos); err != nil {
		st, _ := p.Status(context.Background())
		t.Fatalf("position %d not reached within %s: %+v: %v", pos, within, st, err)
	}
}

// One event PostgreSQL cannot hold, in the middle of a batch of good ones:
// the projection parks it (and only it), applies the rest, and goes on with
// what comes after; status shows it.
func TestEventTheStoreCannotHoldIsParked(t *testing.T) {
	l := newTestLog(t, 300)
	s := openStore(t)
	ctx := context.Background()

	var envs []domain.Envelope
	for i := range 40 {
		envs = append(envs, traceEvent(t, "r"+strings.Repeat("x", i), false))
	}
	bad := traceEvent(t, "nul", true)
	envs = append(envs[:17], append([]domain.Envelope{bad}, envs[17:]...)...)
	l.record(t, envs) // one pack, one batch: the bad event is found by bisecting it

	p := projections.New(l, s, projections.Options{Opener: projections.KeyringOpener(l.gen.Keys), RetryMin: 10 * time.Millisecond})
	runProjector(t, p)
	waitPos(t, p, l.last, 20*time.Second)

	// Live events after it are applied too.
	l.record(t, []domain.Envelope{traceEvent(t, "after", false)})
	waitPos(t, p, l.last, 10*time.Second)

	parked, err := s.ParkedEvents(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || parked[0].EventID != bad.ID || parked[0].Type != domain.TypeTraceRequested || !strings.Contains(parked[0].Reason, "22") {
		t.Fatalf("parked %+v, want only %s with PostgreSQL's refusal", parked, bad.ID)
	}
	var audits int
	if err := testPool.QueryRow(ctx, `SELECT count(*) FROM `+s.Schema()+`.audit_entries`).Scan(&audits); err != nil {
		t.Fatal(err)
	}
	if audits != 41 {
		t.Fatalf("%d audit entries, want the 41 good ones", audits)
	}
	st, err := p.Status(ctx)
	if err != nil || st.ParkedEvents != 1 || st.Position != l.last {
		t.Fatalf("projector status %+v %v", st, err)
	}
	sts, err := s.Status(ctx, l)
	if err != nil || len(sts) != 1 || sts[0].ParkedEvents != 1 {
		t.Fatalf("store status %+v %v", sts, err)
	}
	// The rest of the tables are what a clean build gives (which parks the
	// same event).
	sameTables(t, digest(t, s.Schema()), digest(t, cleanBuild(t, l)))
}

// A store error that is not about the data (the database away) parks
// nothing: it is retried.
func TestStoreOutageParksNothing(t *testing.T) {
	l := newTestLog(t, 100)
	s := openStore(t)
	w := &failing{s: s}
	w.fail.Store(true)
	p := projections.New(l, w, projections.Options{RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	runProjector(t, p)
	if !ledgertest.Poll(5*time.Second, func() bool { return w.calls.Load() >= 5 }) {
		t.Fatal("projector did not retry")
	}
	w.fail.Store(false)
	waitPos(t, p, l.last, 20*time.Second)
	if parked, err := s.ParkedEvents(context.Background(), 10); err != nil || len(parked) != 0 {
		t.Fatalf("parked %+v %v during an outage", parked, err)
	}
}

// failing is a store that can park but is down for a while.
type failing struct {
	s     *postgres.Store
	fail  atomic.Bool
	calls atomic.Int64
}

func (w *failing) Apply(ctx context.Context, b projections.Batch) (projections.Checkpoint, error) {
	w.calls.Add(1)
	if w.fail.Load() {
		return projections.Checkpoint{}, errors.New("connection refused")
	}
	return w.s.Apply(ctx, b)
}

func (w *failing) Checkpoint(ctx context.Context) (projections.Checkpoint, error) {
	return w.s.Checkpoint(ctx)
}

func (w *failing) Park(ctx context.Context, b projections.Batch, reason string) (projections.Checkpoint, error) {
	return w.s.Park(ctx, b, reason)
}

func (w *failing) ParkedEvents(ctx context.Context, limit int) ([]projections.ParkedEvent, error) {
	return w.s.ParkedEvents(ctx, limit)
}

// counting counts the applies that reached the store.
type counting struct {
	projections.Writer
	applies atomic.Int64
}

func (w *counting) Apply(ctx context.Context, b projections.Batch) (projections.Checkpoint, error) {
	w.applies.Add(1)
	return w.Writer.Apply(ctx, b)
}

// Two replicas' projectors on one schema: one applies, the other stands by
// and follows the position; when the holder goes, the other takes over
// within seconds and nothing is lost or doubled.
func TestOneProjectorAppliesAndAnotherTakesOver(t *testing.T) {
	for _, tc := range []struct {
		name string
		// stop ends the holder: a clean cancel, or its lock's session
		// killed under it (what a dead replica leaves PostgreSQL with).
		kill bool
	}{{name: "holder stopped"}, {name: "holder's session killed", kill: true}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLog(t, 2000)
			s := openStore(t)
			lease := postgres.LeaseOptions{TryEvery: 200 * time.Millisecond, CheckEvery: 200 * time.Millisecond}
			w1, w2 := &counting{Writer: s}, &counting{Writer: s}
			p1 := projections.New(l, w1, projections.Options{Lease: s.Lease(lease), CheckEvery: 100 * time.Millisecond, Opener: projections.KeyringOpener(l.gen.Keys)})
			p2 := projections.New(l, w2, projections.Options{Lease: s.Lease(lease), CheckEvery: 100 * time.Millisecond, Opener: projections.KeyringOpener(l.gen.Keys)})
			stop1, _ := runProjector(t, p1)
			waitPos(t, p1, l.last, 20*time.Second)
			runProjector(t, p2)

			// Live traffic: p1 applies it, p2 sees the position move.
			l.record(t, []domain.Envelope{traceEvent(t, "live", false)})
			waitPos(t, p2, l.last, 10*time.Second)
			if n := w2.applies.Load(); n != 0 {
				t.Fatalf("the standby applied %d batches", n)
			}
			role := func(p *projections.Projector) string {
				st, err := p.Status(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return st.Role
			}
			if r1, r2 := role(p1), role(p2); r1 != projections.RoleActive || r2 != projections.RoleStandby {
				t.Fatalf("roles %s, %s", r1, r2)
			}

			start := time.Now()
			if tc.kill {
				// Every session holding an advisory lock of this schema's key.
				var killed int
				if err := testPool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
					WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
					AND objid = (hashtext('ledger-projection:' || $1 || '.read_models')::bigint & x'ffffffff'::bigint)::oid`, s.Schema()).Scan(&killed); err != nil || killed != 1 {
					t.Fatalf("killed %d lock sessions: %v", killed, err)
				}
			} else {
				stop1()
			}
			l.record(t, []domain.Envelope{traceEvent(t, "after the holder went", false)})
			if !ledgertest.Poll(10*time.Second, func() bool {
				return w2.applies.Load() > 0 || w1.applies.Load() > 0 && tc.kill && role(p1) == projections.RoleActive && p1.Position() >= l.last
			}) {
				t.Fatal("nobody took over within 10 s")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := waitStore(ctx, s, l.last); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			t.Logf("takeover: the new event applied %s after the holder went", took.Round(time.Millisecond))
			if took > 5*time.Second {
				t.Errorf("takeover took %s, bound 5 s", took)
			}
			sameTables(t, digest(t, s.Schema()), digest(t, cleanBuild(t, l)))
		})
	}
}

func waitStore(ctx context.Context, s *postgres.Store, pos uint64) error {
	for {
		if got, err := s.Position(ctx); err == nil && got >= pos {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Tables built from one log are refused by a projector on another, with a
// message that says how to rebuild; a rebuild binds them to the new log.
func TestTablesOfAnotherLogAreRefused(t *testing.T) {
	l := newTestLog(t, 50)
	s := openStore(t)
	p := projections.New(l, s, projections.Options{Opener: projections.KeyringOpener(l.gen.Keys)})
	stop, _ := runProjector(t, p)
	waitPos(t, p, l.last, 20*time.Second)
	stop()

	ctx := context.Background()
	other, err := eventstore.Open(ctx, eventstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	if _, err := other.Record(ctx, traceEvent(t, "other", false)); err != nil {
		t.Fatal(err)
	}
	err = projections.CheckLog(ctx, other, s)
	if !errors.Is(err, projections.ErrOtherLog) || !strings.Contains(err.Error(), "rebuild") {
		t.Fatalf("CheckLog on another log = %v, want ErrOtherLog", err)
	}
	before, _ := s.Position(ctx)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := projections.New(other, s, projections.Options{}).Run(rctx); !errors.Is(err, projections.ErrOtherLog) {
		t.Fatalf("Run on another log = %v, want ErrOtherLog", err)
	}
	if after, _ := s.Position(ctx); after != before {
		t.Fatalf("position moved %d -> %d on another log", before, after)
	}
	// The same log is accepted again.
	if err := projections.CheckLog(ctx, l, s); err != nil {
		t.Fatalf("CheckLog on its own log: %v", err)
	}
	// A rebuild from the other log is accepted by it.
	if _, err := postgres.Rebuild(ctx, other, postgres.RebuildOptions{Pool: testPool, Schema: s.Schema()}); err != nil {
		t.Fatal(err)
	}
	if err := projections.CheckLog(ctx, other, s); err != nil {
		t.Fatalf("CheckLog after a rebuild: %v", err)
	}

	// Tables that predate the recorded id, beyond the log's end: refused.
	if _, err := testPool.Exec(ctx, `UPDATE `+s.Schema()+`.projection_positions SET log_id = NULL, position = $1`, int64(1<<40)); err != nil {
		t.Fatal(err)
	}
	if err := projections.CheckLog(ctx, other, s); !errors.Is(err, projections.ErrOtherLog) {
		t.Fatalf("unbound tables beyond the log's end: %v", err)
	}
}

// TestLeaseOfAFrozenHolder: a holder that stops checking its lock (frozen:
// its connection stays open, the kernel answers keepalives) loses it after
// its idle timeout, and another replica takes it (an outside tester froze
// the holder for 40 s and no replica took over).
func TestLeaseOfAFrozenHolder(t *testing.T) {
	needDB(t)
	s := openStore(t)
	frozen := s.Lease(postgres.LeaseOptions{CheckEvery: time.Hour, IdleTimeout: time.Second})
	_, release, err := frozen.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	other := s.Lease(postgres.LeaseOptions{TryEvery: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	start := time.Now()
	_, release2, err := other.Acquire(ctx)
	if err != nil {
		t.Fatalf("the lease was not taken over within 15 s of a holder that stopped checking: %v", err)
	}
	defer release2()
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("taken over after %s, before the holder's idle timeout", took)
	}
}
