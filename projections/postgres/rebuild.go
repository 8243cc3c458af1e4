package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RebuildOptions configure Rebuild.
type RebuildOptions struct {
	// Pool is the database holding the live schema.
	Pool *pgxpool.Pool
	// Schema is the live schema to replace (DefaultSchema if empty).
	Schema string
	// Name is the projection's name (projections.DefaultName if empty).
	Name string
	// Opener opens sealed personal fields to mask them.
	Opener projections.Opener
	// Progress, when set, is called about every Interval with the events
	// replayed so far and the events in the log when the rebuild started
	// (total), and once more at the end. A CLI draws its progress bar
	// (events/s, ETA) from it.
	Progress func(done, total uint64)
	// Interval between Progress calls (default 250 ms).
	Interval time.Duration
	// Now names the rebuild schema (default time.Now).
	Now func() time.Time
	// Stays are the rules the new tables build their stays under (nil:
	// the live tables').
	Stays *domain.StayRules
}

// Rebuild replays the log from position 0 into a fresh schema
// (<schema>_rebuild_<unix nanos>), and when it has caught up with the log's
// position at its start, swaps it in: the live schema is renamed away and
// the new one renamed to the live name in one transaction, then the old one
// is dropped. Readers keep reading the old tables until the swap commits
// and the new ones right after; a projector still writing to the live name
// finds the new tables' position and continues from it (ErrGap or overlap
// handling in Apply), so no event is lost or doubled. It returns the
// position the new tables had reached at the swap; Progress counts events.
func Rebuild(ctx context.Context, log ledger.Log, o RebuildOptions) (uint64, error) {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if o.Name == "" {
		o.Name = projections.DefaultName
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if !identRE.MatchString(o.Schema) {
		return 0, fmt.Errorf("rebuild %q: %w", o.Schema, errInvalidSchema)
	}
	total, err := log.LastPosition(ctx)
	if err != nil {
		return 0, fmt.Errorf("rebuild %s: %w", o.Schema, err)
	}
	fresh := o.Schema + "_rebuild_" + strconv.FormatInt(o.Now().UnixNano(), 10)
	if len(fresh) > 63 {
		return 0, fmt.Errorf("rebuild %q: schema name too long", o.Schema)
	}
	if o.Stays == nil {
		live, err := Open(ctx, Options{Pool: o.Pool, Schema: o.Schema, Name: o.Name})
		if err != nil {
			return 0, fmt.Errorf("rebuild %s: %w", o.Schema, err)
		}
		rules := live.StayRules()
		o.Stays = &rules
	}
	st, err := Open(ctx, Options{Pool: o.Pool, Schema: fresh, Name: o.Name, Stays: o.Stays})
	if err != nil {
		return 0, fmt.Errorf("rebuild %s: %w", o.Schema, err)
	}
	swapped := false
	defer func() {
		if !swapped {
			_, _ = o.Pool.Exec(context.WithoutCancel(ctx), `DROP SCHEMA IF EXISTS `+fresh+` CASCADE`)
		}
	}()

	p := projections.New(log, st, projections.Options{Name: o.Name, Opener: o.Opener})
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(runCtx) }()
	// Progress counts events; positions are not consecutive when the log
	// packs many events into one message, so count them when it can.
	totalEvents := total
	if c, ok := log.(projections.EventCounter); ok {
		if n, err := c.CountAfter(ctx, 0); err == nil {
			totalEvents = n
		}
	}
	waitErr := waitWithProgress(ctx, p, total, totalEvents, o, runErr)
	stop()
	if err := <-runErr; waitErr == nil && err != nil && !errors.Is(err, context.Canceled) {
		waitErr = err
	}
	if waitErr != nil {
		return 0, fmt.Errorf("rebuild %s: %w", o.Schema, waitErr)
	}
	pos, err := swap(ctx, o.Pool, o.Schema, fresh)
	if err != nil {
		return 0, fmt.Errorf("rebuild %s: %w", o.Schema, err)
	}
	swapped = true
	if o.Progress != nil {
		o.Progress(p.Applied(), totalEvents)
	}
	return pos, nil
}

func waitWithProgress(ctx context.Context, p *projections.Projector, total, totalEvents uint64, o RebuildOptions, runErr <-chan error) error {
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for {
		done := p.Position()
		if o.Progress != nil {
			o.Progress(min(p.Applied(), totalEvents), totalEvents)
		}
		if done >= total {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-runErr:
			return fmt.Errorf("projector stopped at %d of %d: %w", p.Position(), total, err)
		case <-tick.C:
		}
	}
}

// swap renames live away and fresh to live in one transaction, then drops
// the old tables. It returns the position of the swapped-in tables.
func swap(ctx context.Context, pool *pgxpool.Pool, live, fresh string) (uint64, error) {
	old := fresh + "_old"
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("swap: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, live).Scan(&exists); err != nil {
		return 0, fmt.Errorf("swap: %w", err)
	}
	if exists {
		if _, err := tx.Exec(ctx, `ALTER SCHEMA `+live+` RENAME TO `+old); err != nil {
			return 0, fmt.Errorf("swap: rename %s: %w", live, err)
		}
	}
	if _, err := tx.Exec(ctx, `ALTER SCHEMA `+fresh+` RENAME TO `+live); err != nil {
		return 0, fmt.Errorf("swap: rename %s: %w", fresh, err)
	}
	var pos int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(max(position), 0) FROM `+live+`.projection_positions`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("swap: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("swap: commit: %w", err)
	}
	if exists {
		// Waits for readers and a writer still in the old tables to finish.
		if _, err := pool.Exec(ctx, `DROP SCHEMA `+old+` CASCADE`); err != nil {
			return uint64(pos), fmt.Errorf("swap: drop old tables: %w", err)
		}
	}
	return uint64(pos), nil
}

// Status returns every projection recorded in the store's schema with its
// position and lag behind log, for `ledger projections status`.
func (s *Store) Status(ctx context.Context, log ledger.Log) ([]projections.ProjectionStatus, error) {
	last, err := log.LastPosition(ctx)
	if err != nil {
		return nil, fmt.Errorf("projection status: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT p.name, p.position, p.last_recorded_at, COALESCE(p.log_id, ''),
		(SELECT count(*) FROM `+s.schema+`.parked_events e WHERE e.name = p.name)
		FROM `+s.schema+`.projection_positions p ORDER BY p.name`)
	if err != nil {
		return nil, fmt.Errorf("projection status: %w", err)
	}
	defer rows.Close()
	now := time.Now()
	var out []projections.ProjectionStatus
	for rows.Next() {
		var (
			name, logID string
			pos, parked int64
			rec         *time.Time
		)
		if err := rows.Scan(&name, &pos, &rec, &logID, &parked); err != nil {
			return nil, fmt.Errorf("projection status: %w", err)
		}
		st := projections.StatusOf(name, projections.Checkpoint{Position: uint64(pos), RecordedAt: utc(rec)}, last, now)
		st.LogID, st.ParkedEvents = logID, int(parked)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projection status: %w", err)
	}
	for i := range out {
		if err := projections.LagOf(ctx, log, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
