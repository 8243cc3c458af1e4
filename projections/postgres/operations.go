package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/checkin-ledger/ledger/projections"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var (
	_ projections.Parker    = (*Store)(nil)
	_ projections.LogBinder = (*Store)(nil)
)

// rejected reports whether err is PostgreSQL refusing a value rather than
// failing as a database: a data exception (class 22: a NUL byte or bad
// UTF-8 in text, a value out of range), an integrity violation (23) or a
// program limit (54: an index row too large). Those fail again on every
// retry of the same rows; anything else (connection, shutdown, lock
// timeout) may pass the next time.
func rejected(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}

// Park implements projections.Parker: one transaction records b's change as
// parked and moves the position to b.Last.
func (s *Store) Park(ctx context.Context, b projections.Batch, reason string) (projections.Checkpoint, error) {
	if len(b.Changes) != 1 {
		return projections.Checkpoint{}, fmt.Errorf("park: want one event, got %d", len(b.Changes))
	}
	c := b.Changes[0]
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return projections.Checkpoint{}, fmt.Errorf("park event %s: %w", c.EventID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var (
		pos int64
		rec *time.Time
	)
	if err := tx.QueryRow(ctx, s.q.lockCheckpoint, s.name).Scan(&pos, &rec); err != nil {
		return projections.Checkpoint{}, fmt.Errorf("park event %s: lock position: %w", c.EventID, err)
	}
	cp := projections.Checkpoint{Position: uint64(pos), RecordedAt: utc(rec)}
	if b.After > cp.Position {
		return cp, fmt.Errorf("park event %s: store at %d, batch after %d: %w", c.EventID, cp.Position, b.After, projections.ErrGap)
	}
	if b.Last <= cp.Position {
		return cp, nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+s.schema+`.parked_events (event_id, name, position, type, aggregate, reason)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING`,
		c.EventID, s.name, int64(c.Position), clean(c.Type), clean(c.Aggregate), clean(reason)); err != nil {
		return cp, fmt.Errorf("park event %s: %w", c.EventID, err)
	}
	next, err := s.commitBatch(ctx, tx, b)
	if err != nil {
		return cp, fmt.Errorf("park event %s: %w", c.EventID, err)
	}
	return next, nil
}

// clean makes s storable as PostgreSQL text: valid UTF-8 without NUL (the
// reason may quote what PostgreSQL refused).
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", `\x00`)
}

// ParkedEvents implements projections.Parker.
func (s *Store) ParkedEvents(ctx context.Context, limit int) ([]projections.ParkedEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_id, position, type, aggregate, reason, parked_at FROM `+s.schema+`.parked_events
		WHERE name = $1 ORDER BY position LIMIT $2`, s.name, limit)
	if err != nil {
		return nil, fmt.Errorf("parked events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (projections.ParkedEvent, error) {
		var (
			e   projections.ParkedEvent
			pos int64
		)
		err := r.Scan(&e.EventID, &pos, &e.Type, &e.Aggregate, &e.Reason, &e.ParkedAt)
		e.Position = uint64(pos)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("parked events: %w", err)
	}
	return out, nil
}

// BindLog implements projections.LogBinder on the projection's row.
func (s *Store) BindLog(ctx context.Context, id string, logLast uint64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("bind log: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var (
		have *string
		pos  int64
	)
	if err := tx.QueryRow(ctx, `SELECT log_id, position FROM `+s.schema+`.projection_positions WHERE name = $1 FOR UPDATE`, s.name).Scan(&have, &pos); err != nil {
		return fmt.Errorf("bind log: %w", err)
	}
	switch {
	case have != nil && *have == id:
		return nil
	case have != nil:
		return fmt.Errorf("schema %s (projection %s) follows log %s, the event store holds log %s: %w",
			s.schema, s.name, *have, id, projections.ErrOtherLog)
	case uint64(pos) > logLast:
		return fmt.Errorf("schema %s (projection %s) is at position %d, beyond the end of log %s (%d): %w",
			s.schema, s.name, pos, id, logLast, projections.ErrOtherLog)
	}
	if _, err := tx.Exec(ctx, `UPDATE `+s.schema+`.projection_positions SET log_id = $2 WHERE name = $1`, s.name, id); err != nil {
		return fmt.Errorf("bind log: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("bind log: %w", err)
	}
	return nil
}
