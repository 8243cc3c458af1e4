package projections

import (
	"context"
	"time"
)

// Lease grants one process at a time the right to apply a projection to a
// shared store (PostgreSQL: an advisory lock held on a connection of its
// own, see postgres.Store.Lease). It is an efficiency measure, not what
// keeps the tables right: two writers at once still serialise on the
// store's position row (ErrGap, overlap), so a lease briefly held twice —
// a holder that has not yet noticed it lost its connection — costs work,
// never correctness.
type Lease interface {
	// Acquire blocks until the lease is held or ctx ends (ctx's error).
	// held is cancelled when the lease is lost (its connection died) or
	// ctx ends; release gives the lease up and must be called once.
	Acquire(ctx context.Context) (held context.Context, release func(), err error)
}

// standbyPollEvery bounds how often a standby reads the store's position:
// a read with min_position through a standby waits for it, and at
// CheckEvery (1 s) such a read of the replica's own write took 0.55-0.99 s
// (found from outside on make cluster). Ten small reads a second.
const standbyPollEvery = 100 * time.Millisecond

// standby waits for the lease. Meanwhile it follows the store's position
// (another process applies), so WaitFor, StartupDone and Ready answer for
// the shared tables.
func (p *Projector) standby(ctx context.Context) (context.Context, func(), error) {
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		t := time.NewTicker(min(p.o.CheckEvery, standbyPollEvery))
		defer t.Stop()
		for {
			if cp, err := p.w.Checkpoint(pollCtx); err == nil {
				p.setCheckpoint(cp, true)
			}
			select {
			case <-pollCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	held, release, err := p.o.Lease.Acquire(ctx)
	stopPoll()
	<-polled
	return held, release, err
}
