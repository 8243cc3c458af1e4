package projections

import (
	"context"
	"errors"
	"fmt"
)

// ErrOtherLog is returned when a store's tables were built from another log
// than the one the projector follows (the stream was deleted and created
// again, or the database belongs to another deployment). Nothing is applied;
// `ledger projections rebuild` replays this log into fresh tables.
var ErrOtherLog = errors.New("projections: the read models were built from another log; rebuild them (`ledger projections rebuild`)")

// LogIdentifier is implemented by logs that can name themselves: an id
// that stays the same for the life of the log and differs for a log created
// again (the event store: its stream's name and creation time).
type LogIdentifier interface {
	LogID(ctx context.Context) (string, error)
}

// LogBinder is implemented by stores that outlive a process (PostgreSQL):
// they record which log they follow.
type LogBinder interface {
	// BindLog records id as the store's log when it has none, and returns
	// an error wrapping ErrOtherLog when it has another. logLast is the
	// log's newest position: a store without a recorded id (made before
	// ids were recorded) that is beyond it cannot come from this log.
	BindLog(ctx context.Context, id string, logLast uint64) error
}

// CheckLog binds w to log when both can (LogIdentifier, LogBinder): an
// error wrapping ErrOtherLog is a store of another log. Other pairs pass.
func CheckLog(ctx context.Context, log any, w any) error {
	li, ok1 := log.(LogIdentifier)
	lb, ok2 := w.(LogBinder)
	if !ok1 || !ok2 {
		return nil
	}
	id, err := li.LogID(ctx)
	if err != nil {
		return fmt.Errorf("log id: %w", err)
	}
	var last uint64
	if l, ok := log.(interface {
		LastPosition(context.Context) (uint64, error)
	}); ok {
		if last, err = l.LastPosition(ctx); err != nil {
			return fmt.Errorf("log position: %w", err)
		}
	}
	return lb.BindLog(ctx, id, last)
}

func (p *Projector) bindLog(ctx context.Context) error {
	return CheckLog(ctx, p.log, p.w)
}
