package eventstore_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
)

// TestLoadLast: an aggregate's last event and version with one read, as
// Load would give them; nothing for an aggregate without events; refused
// for a packed kind, which has no message of its own.
func TestLoadLast(t *testing.T) {
	s := open(t, "")
	agg := person()
	if evs, v, err := s.LoadLast(ctx(t), agg); err != nil || len(evs) != 0 || v != 0 {
		t.Fatalf("empty: %v %d %v", evs, v, err)
	}
	var version uint64
	for i := range 3 {
		res, err := s.Append(ctx(t), agg, version, event(agg, i+1))
		if err != nil {
			t.Fatal(err)
		}
		version = res[0].Position
	}
	all, v, err := s.Load(ctx(t), agg)
	if err != nil {
		t.Fatal(err)
	}
	last, lv, err := s.LoadLast(ctx(t), agg)
	if err != nil || len(last) != 1 || lv != v || last[0].ID != all[2].ID || last[0].Position != all[2].Position {
		t.Fatalf("last %+v at %d, want %s at %d (%v)", last, lv, all[2].ID, v, err)
	}
	if _, _, err := s.LoadLast(ctx(t), domain.AlertAggregate("371302")); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("a packed kind: %v", err)
	}
}

// TestAuditAnchorMovesForwardOnly: the anchor is created, moved forward,
// never back (a slower writer's older head), and under concurrent writers
// ends at the newest head; a read-only store writes none.
func TestAuditAnchorMovesForwardOnly(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, state, err := s.AuditAnchor(ctx(t)); state != domain.AnchorNone || err != nil {
		t.Fatalf("before any: %v %v", state, err)
	}
	head := func(n uint64) domain.AuditHead { return domain.AuditHead{Seq: n, Hash: fmt.Sprintf("%064d", n)} }
	for _, n := range []uint64{5, 3, 5, 7} {
		if err := s.AnchorAudit(ctx(t), head(n)); err != nil {
			t.Fatal(err)
		}
	}
	if got, state, err := s.AuditAnchor(ctx(t)); state != domain.AnchorStored || err != nil || got != head(7) {
		t.Fatalf("after 5, 3, 5, 7: %+v %v %v", got, state, err)
	}
	var wg sync.WaitGroup
	for n := uint64(8); n <= 40; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.AnchorAudit(ctx(t), head(n)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got, _, err := s.AuditAnchor(ctx(t)); err != nil || got != head(40) {
		t.Fatalf("after concurrent anchors up to 40: %+v %v", got, err)
	}
	if err := s.ResetAuditAnchor(ctx(t), head(2)); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.AuditAnchor(ctx(t)); err != nil || got != head(2) {
		t.Fatalf("after a reset to 2: %+v %v", got, err)
	}
	s.Close()
	ro := open(t, dir, func(o *eventstore.Options) { o.ReadOnly = true })
	if err := ro.AnchorAudit(ctx(t), head(50)); !errors.Is(err, eventstore.ErrReadOnly) {
		t.Fatalf("a read-only store anchored: %v", err)
	}
	if got, _, err := ro.AuditAnchor(ctx(t)); err != nil || got != head(2) {
		t.Fatalf("read-only read: %+v %v", got, err)
	}
}
