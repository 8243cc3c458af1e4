package ledger

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestOwnWritesWaits: a pass waits for the newest noted write; once the
// facts hold it (or it was waited for until Wait) it is not waited for
// again; a wait that runs out is no error, a caller that leaves is; and
// nothing is waited for while the facts do not follow the log live.
func TestOwnWritesWaits(t *testing.T) {
	held := uint64(0) // the facts' position
	waits := 0
	o := &OwnWrites{Wait: 50 * time.Millisecond, Reach: func(ctx context.Context, pos uint64) error {
		waits++
		if held >= pos {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}}
	ctx := context.Background()
	if err := o.reach(ctx); err != nil || waits != 0 {
		t.Fatalf("nothing noted: %v, %d waits", err, waits)
	}
	o.noted(7)
	held = 7
	if err := o.reach(ctx); err != nil || waits != 1 {
		t.Fatalf("noted 7, held 7: %v, %d waits", err, waits)
	}
	if err := o.reach(ctx); err != nil || waits != 1 {
		t.Fatalf("7 again, known held: %v, %d waits (want no new one)", err, waits)
	}
	o.noted(5) // an older position changes nothing
	o.noted(9)
	start := time.Now()
	if err := o.reach(ctx); err != nil || waits != 2 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("noted 9, held 7: %v, %d waits after %v (want the whole Wait, no error)", err, waits, time.Since(start))
	}
	if err := o.reach(ctx); err != nil || waits != 2 {
		t.Fatalf("9 waited for once: %v, %d waits (want no new one)", err, waits)
	}
	o.noted(11)
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := o.reach(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("a caller that left: %v, want its context's error", err)
	}
	o.Following = func() bool { return false }
	if err := o.reach(ctx); err != nil || waits != 3 {
		t.Fatalf("facts replaying: %v, %d waits (want none)", err, waits)
	}
	var none *OwnWrites
	none.noted(3)
	if err := none.reach(ctx); err != nil {
		t.Fatalf("no OwnWrites: %v", err)
	}
}
