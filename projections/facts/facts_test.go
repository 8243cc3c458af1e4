package facts_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/facts"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/google/uuid"
)

var (
	ctx   = context.Background()
	venue = uuid.MustParse("0190c0de-0000-7000-8000-000000000001")
	at    = time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
)

// the venue applied at position 1, approved at position 2.
func applied() projections.Change {
	return projections.Change{EventID: uuid.New(), Position: 1, OccurredAt: at, RecordedAt: at,
		Event: &domain.VenueApplied{VenueID: venue, Name: "沂河超市", Type: "supermarket", District: "371302"}}
}

func approved() projections.Change {
	return projections.Change{EventID: uuid.New(), Position: 2, OccurredAt: at, RecordedAt: at,
		Event: &domain.VenueReviewed{VenueID: venue, Decision: "approve"}}
}

func apply(t *testing.T, w projections.Writer, after uint64, cs ...projections.Change) {
	t.Helper()
	last := cs[len(cs)-1]
	if _, err := w.Apply(ctx, projections.Batch{After: after, Changes: cs, Last: last.Position, LastRecordedAt: last.RecordedAt}); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

func status(t *testing.T, rm ledger.ReadModel) string {
	t.Helper()
	f, err := rm.PassFacts(ctx, ledger.PassFactsQuery{Venues: []uuid.UUID{venue}})
	if err != nil {
		t.Fatalf("pass facts: %v", err)
	}
	return f.Venues[venue].Status
}

// follower stands for the facts store's projector: started, and WaitFor
// applies the approval when asked (the projector catching up).
type follower struct {
	t       *testing.T
	store   *facts.Store
	catchUp atomic.Bool
}

func (f *follower) StartupDone() bool { return true }

func (f *follower) WaitFor(ctx context.Context, pos uint64) error {
	if f.catchUp.Load() {
		apply(f.t, f.store, 1, approved())
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

// A venue the tables show approved takes passes even when the facts store
// has not got there yet: PassFacts waits for it, or reads the tables.
func TestNeverBehindTheTables(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tracked bool // the tracker knows the tables' position (sole writer)
		catchUp bool // the facts store reaches it within the wait
	}{
		{"tracked, the store catches up", true, true},
		{"tracked, the store stays behind", true, false},
		{"untracked, the store catches up", false, true},
		{"untracked, the store stays behind", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tables, fs := memory.New(memory.Options{}), facts.NewStore()
			tr := facts.NewTracker(tables)
			if !tc.tracked {
				tr.Lease(nil) // a lease not held: another process may write the tables
			}
			fw := &follower{t: t, store: fs}
			fw.catchUp.Store(tc.catchUp)
			rm := facts.NewReadModel(facts.Options{Tables: tables, Store: fs, Projector: fw, Tracker: tr, Wait: 50 * time.Millisecond})
			apply(t, fs, 0, applied())
			apply(t, tr, 0, applied())
			if _, err := tr.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			if got := status(t, rm); got != "pending" {
				t.Fatalf("status %q, want pending", got)
			}
			apply(t, tr, 1, approved()) // the tables move on; the facts store not yet
			if got := status(t, rm); got != "approved" {
				t.Fatalf("status %q after the tables showed the approval, want approved", got)
			}
		})
	}
}

// The facts store answers once it holds the tables' position, without
// reading the tables: ahead of them, it shows what they do not yet.
func TestAnswersFromTheStore(t *testing.T) {
	tables, fs := memory.New(memory.Options{}), facts.NewStore()
	tr := facts.NewTracker(tables)
	apply(t, tr, 0, applied())
	if _, err := tr.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	apply(t, fs, 0, applied(), approved())
	rm := facts.NewReadModel(facts.Options{Tables: tables, Store: fs, Tracker: tr})
	if got := status(t, rm); got != "approved" {
		t.Fatalf("status %q, want approved (from the facts store, ahead of the tables)", got)
	}
}

// A lease taken makes the tracker trust its position only after a
// checkpoint read while it is held; a lease lost stops trusting it.
func TestTrackerAndLease(t *testing.T) {
	tables, fs := memory.New(memory.Options{}), facts.NewStore()
	tr := facts.NewTracker(tables)
	l := tr.Lease(freeLease{})
	// Another process applies both events; the tracker has only polled
	// before (standby).
	apply(t, tables, 0, applied())
	if _, err := tr.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	apply(t, tables, 1, approved())
	apply(t, fs, 0, applied())
	rm := facts.NewReadModel(facts.Options{Tables: tables, Store: fs, Tracker: tr, Wait: 10 * time.Millisecond})
	// Untrusted: PassFacts reads the tables' position (2), the store is at 1.
	if got := status(t, rm); got != "approved" {
		t.Fatalf("standby: status %q, want approved", got)
	}
	held, release, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := status(t, rm); got != "approved" {
		t.Fatalf("lease held, no checkpoint read since: status %q, want approved", got)
	}
	release()
	if held.Err() == nil {
		t.Fatal("held context not done after release")
	}
}

type freeLease struct{}

func (freeLease) Acquire(ctx context.Context) (context.Context, func(), error) {
	held, cancel := context.WithCancel(ctx)
	return held, cancel, nil
}

// A store replayed from a log that has lost passes looks the event ids it
// does not know up in the tables.
func TestOlderPassesFromTheTables(t *testing.T) {
	person := uuid.New()
	old := projections.Change{EventID: uuid.New(), Position: 3, OccurredAt: at, RecordedAt: at,
		Event: &domain.PassRecorded{VenueID: venue, PersonID: person, Direction: "in", Method: "self_scan", Decision: "pass"}}
	for _, tc := range []struct {
		name  string
		older bool
		found bool
	}{
		{"the log holds every pass", false, false},
		{"the log lost passes", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tables, fs := memory.New(memory.Options{}), facts.NewStore()
			tr := facts.NewTracker(tables)
			apply(t, tr, 0, applied(), approved(), old)
			apply(t, fs, 0, applied(), approved())
			// The pass expired from the log: the store's replay skips it.
			apply(t, fs, 2, projections.Change{EventID: uuid.New(), Position: 4, OccurredAt: at, RecordedAt: at,
				Event: &domain.VenueReviewed{VenueID: venue, Decision: "approve"}})
			var asked uint64
			rm := facts.NewReadModel(facts.Options{Tables: tables, Store: fs, Tracker: tr,
				Older: func(_ context.Context, pos uint64) (bool, error) { asked = pos; return tc.older, nil }})
			f, err := rm.PassFacts(ctx, ledger.PassFactsQuery{EventIDs: []uuid.UUID{old.EventID}})
			if err != nil {
				t.Fatal(err)
			}
			if asked != 1 {
				t.Fatalf("Older asked with %d, want the store's first position 1", asked)
			}
			if _, ok := f.Stored[old.EventID]; ok != tc.found {
				t.Fatalf("stored pass found: %v, want %v", ok, tc.found)
			}
		})
	}
}
