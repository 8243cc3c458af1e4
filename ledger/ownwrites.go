package ledger

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// OwnWrites makes a pass see what this process wrote before it: the
// command side decides passes on read models that follow the log a few
// milliseconds behind (with PostgreSQL, a memory copy of the facts fed by a
// follower of its own), so a person registered, a venue approved or a
// health record stored a moment ago through this replica was "not found"
// by the pass that came right after (about one in three such passes on
// `make cluster`, found from outside). Every append to a person or a
// venue and every health record notes its position (declarations and the
// audit chain are not what a pass reads); a pass first waits, up to Wait,
// for the facts to reach the newest noted.
// Passes themselves are not noted: they change no pass's facts (a stored
// event id is the event store's to find), and each pass would otherwise
// wait for the one before it. Another replica's writes are not known here
// (a pass takes no min_position: a client that registers through one
// replica and passes through the other may meet the lag). A wait that
// times out at a position is not waited again for it: the passes after it
// decide on what the facts hold, as before there was a wait. nil: no
// waiting. Copies of a Ledger share it.
type OwnWrites struct {
	// Reach returns once the facts the passes read hold position, or
	// ctx's error (cmd: the command side's projector's WaitFor).
	Reach func(ctx context.Context, position uint64) error
	// Following reports whether Reach's facts follow the log live (cmd:
	// the projector's StartupDone); while not, a pass does not wait (the
	// facts are then read from the tables, and every pass would pay the
	// whole Wait). nil: always.
	Following func() bool
	// Wait bounds the wait; after it the pass decides on what the facts
	// hold (as before there was a wait). Zero: a second.
	Wait time.Duration

	last    atomic.Uint64
	reached atomic.Uint64 // the newest position reached, or waited for until Wait
}

// noted raises the newest position written to position.
func (o *OwnWrites) noted(position uint64) {
	if o != nil {
		raise(&o.last, position)
	}
}

// reach waits for the facts to hold the newest position noted; only ctx's
// own end is an error.
func (o *OwnWrites) reach(ctx context.Context) error {
	if o == nil || o.Reach == nil {
		return nil
	}
	pos := o.last.Load()
	if pos == 0 || o.reached.Load() >= pos {
		return nil // nothing written, or known held: no wait, no timer
	}
	if o.Following != nil && !o.Following() {
		return nil
	}
	wait := o.Wait
	if wait <= 0 {
		wait = time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := o.Reach(wctx, pos)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	case !errors.Is(err, context.DeadlineExceeded):
		return err
	}
	raise(&o.reached, pos) // reached, or waited for once: not again
	return nil
}

// raise sets v to pos when pos is larger.
func raise(v *atomic.Uint64, pos uint64) {
	for {
		cur := v.Load()
		if pos <= cur || v.CompareAndSwap(cur, pos) {
			return
		}
	}
}
