package projections

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// ErrRejected is wrapped by a store's Apply error when the batch holds an
// event the store cannot hold (its database refuses a value: a NUL byte in
// PostgreSQL text, an index entry too large): applying the same batch again
// fails the same way. Errors of the store itself (connection lost, database
// down) never wrap it: those are retried, and no event is parked for them.
var ErrRejected = errors.New("projections: the store cannot hold an event of the batch")

// ParkedEvent is an event a store could not apply, set aside so that the
// projection goes on. The event stays in the log: `ledger projections
// rebuild` applies it again (with a build that can hold it).
type ParkedEvent struct {
	EventID   uuid.UUID `json:"event_id"`
	Position  uint64    `json:"position"`
	Type      string    `json:"type"`
	Aggregate string    `json:"aggregate"`
	// Reason is the store's error.
	Reason   string    `json:"reason"`
	ParkedAt time.Time `json:"parked_at"`
}

// Parker is implemented by stores that may reject an event (ErrRejected).
type Parker interface {
	// Park records the one change of b as parked with reason and moves the
	// store's position to b.Last, in one atomic step, with Apply's rules
	// for a batch behind (skipped) or beyond (ErrGap) the store's position.
	Park(ctx context.Context, b Batch, reason string) (Checkpoint, error)
	// ParkedEvents lists up to limit parked events, oldest first.
	ParkedEvents(ctx context.Context, limit int) ([]ParkedEvent, error)
}

// apply hands b to the store. A batch the store rejects is bisected until
// the event it cannot hold is alone; that one is parked, the rest applied
// (about 2·log2(len) more transactions per bad event). Without a Parker the
// error is returned, and the projector retries it.
func (p *Projector) apply(ctx context.Context, b Batch) (Checkpoint, error) {
	cp, err := p.w.Apply(ctx, b)
	if err == nil || !errors.Is(err, ErrRejected) {
		return cp, err
	}
	pk, ok := p.w.(Parker)
	if !ok {
		return cp, err
	}
	return p.isolate(ctx, b, pk, err)
}

func (p *Projector) isolate(ctx context.Context, b Batch, pk Parker, rejected error) (Checkpoint, error) {
	if len(b.Changes) <= 1 {
		if len(b.Changes) == 0 {
			return Checkpoint{}, rejected // nothing to blame: retry
		}
		c := b.Changes[0]
		cp, err := pk.Park(ctx, b, rejected.Error())
		if err != nil {
			return cp, err
		}
		p.o.Logger.Error("projection parked an event its store cannot hold; see `ledger projections status`",
			"projection", p.o.Name, "event_id", c.EventID, "position", c.Position, "type", c.Type, "err", rejected)
		p.mu.Lock()
		p.parked++
		p.mu.Unlock()
		return cp, nil
	}
	k := len(b.Changes) / 2
	halves := [2]Batch{
		{After: b.After, Changes: b.Changes[:k], Last: b.Changes[k-1].Position, LastRecordedAt: b.Changes[k-1].RecordedAt},
		{After: b.Changes[k-1].Position, Changes: b.Changes[k:], Last: b.Last, LastRecordedAt: b.LastRecordedAt},
	}
	var cp Checkpoint
	for _, h := range halves {
		var err error
		cp, err = p.w.Apply(ctx, h)
		if errors.Is(err, ErrRejected) {
			cp, err = p.isolate(ctx, h, pk, err)
		}
		if err != nil {
			return cp, err
		}
	}
	return cp, nil
}
