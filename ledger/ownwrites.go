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
// `make cluster`, found from outside). Every versioned append (persons,
// venues, declarations) and every health record notes its position; a
// pass first waits, up to Wait, for the facts to reach the newest noted.
// Passes themselves are not noted: they change no pass's facts (a stored
// event id is the event store's to find), and each pass would otherwise
// wait for the one before it. Another replica's writes are not known here:
// a client that writes through one replica and passes through another
// gives min_position to its reads, as for every read. nil: no waiting.
// Copies of a Ledger share it.
type OwnWrites struct {
	// Reach returns once the facts the passes read hold position, or
	// ctx's error (cmd: the command side's projector's WaitFor).
	Reach func(ctx context.Context, position uint64) error
	// Wait bounds the wait; after it the pass decides on what the facts
	// hold (as before there was a wait). Zero: a second.
	Wait time.Duration

	last    atomic.Uint64
	reached atomic.Uint64 // the newest position a Reach returned for
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
	wait := o.Wait
	if wait <= 0 {
		wait = time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := o.Reach(wctx, pos)
	switch {
	case err == nil:
		raise(&o.reached, pos)
	case ctx.Err() != nil:
		return ctx.Err()
	case !errors.Is(err, context.DeadlineExceeded):
		return err
	}
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
