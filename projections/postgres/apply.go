package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// passColumns are the columns COPY fills, in order.
var passColumns = []string{"event_id", "position", "venue_id", "person_id", "at", "direction", "method",
	"decision", "reason", "operator", "guardian_id", "s_name", "s_colour", "s_nat_result", "s_nat_at",
	"s_doses", "s_venue_id", "s_venue_name", "s_at", "s_direction", "s_decision", "s_reason", "recorded_at"}

// Apply implements projections.Writer. One transaction: lock the position
// row, skip what the store already holds, write the rows, move the position.
//
// Passes are loaded with COPY straight into the passes table: the ids of the
// batch already stored are looked up first (one index probe per pass, inside
// the same transaction, serialised with every other writer by the lock on the
// position row), so COPY never meets a duplicate key and no staging table is
// needed. Health records and alerts are inserted with one multi-row
// statement each (ON CONFLICT (event_id) DO NOTHING). The other events are
// few; they are recorded in applied_events and, if new, applied in log order
// in one pipelined batch of statements.
func (s *Store) Apply(ctx context.Context, b projections.Batch) (projections.Checkpoint, error) {
	cp, err := s.apply(ctx, b)
	if err != nil {
		if rejected(err) {
			return cp, fmt.Errorf("apply events %d..%d to %s: %w: %w", b.After+1, b.Last, s.schema, projections.ErrRejected, err)
		}
		return cp, fmt.Errorf("apply events %d..%d to %s: %w", b.After+1, b.Last, s.schema, err)
	}
	return cp, nil
}

func (s *Store) apply(ctx context.Context, b projections.Batch) (projections.Checkpoint, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return projections.Checkpoint{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// The log is the record, not these tables: a commit lost in a database
	// crash takes its rows and its position with it, and the projector's
	// next batch then finds the older position (ErrGap) and replays from
	// there. So the commit need not wait for its WAL flush.
	//
	// And each statement is planned for its batch (no cached generic plan):
	// the pass tables are partitioned by day, and a generic plan made while
	// the day's partition was empty scans it whole (looking up a batch's
	// event ids in every row), and goes on doing so all day as the
	// partition fills: seen at 10 M passes, 270-410 ms a batch for what an
	// index answers in 3 ms.
	//
	// And a transaction left open by a frozen projector (SIGSTOP, a stalled
	// VM: its TCP connection stays alive) is ended after 10 s idle, so the
	// position row it holds does not stop the replica that took its lease
	// over (LeaseOptions.IdleTimeout frees the lease itself).
	if _, err := tx.Exec(ctx, `SELECT set_config('synchronous_commit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true),
		set_config('idle_in_transaction_session_timeout', '10s', true)`); err != nil {
		return projections.Checkpoint{}, fmt.Errorf("set the transaction's settings: %w", err)
	}
	var (
		pos int64
		rec *time.Time
	)
	if err := tx.QueryRow(ctx, s.q.lockCheckpoint, s.name).Scan(&pos, &rec); err != nil {
		return projections.Checkpoint{}, fmt.Errorf("lock position: %w", err)
	}
	cp := projections.Checkpoint{Position: uint64(pos)}
	if rec != nil {
		cp.RecordedAt = rec.UTC()
	}
	if b.After > cp.Position {
		return cp, fmt.Errorf("store at %d, batch after %d: %w", cp.Position, b.After, projections.ErrGap)
	}
	if b.Last <= cp.Position {
		return cp, nil // all of it is already applied
	}

	var (
		passes []*projections.Change
		health []*projections.Change
		alerts []*projections.Change
		audits []*projections.Change
		chain  []*projections.Change
		others []*projections.Change
	)
	for i := range b.Changes {
		c := &b.Changes[i]
		if c.Position <= cp.Position {
			continue
		}
		switch c.Event.(type) {
		case *domain.PassRecorded:
			passes = append(passes, c)
		case *domain.HealthStatusRecorded:
			health = append(health, c)
		case *domain.AlertRaised:
			alerts = append(alerts, c)
		case *domain.TraceRequested:
			audits = append(audits, c)
		case *domain.AuditRecorded:
			chain = append(chain, c)
		case *domain.PersonRegistered, *domain.PersonVerified, *domain.PersonReleased, *domain.PersonErased, *domain.VenueApplied, *domain.VenueReviewed,
			*domain.SubAdminAdded, *domain.SubAdminRemoved:
			others = append(others, c)
		default:
			if isDeclarationEvent(c.Event) {
				others = append(others, c)
			}
		}
	}
	if len(passes) > 0 || len(alerts) > 0 {
		// Expired rows stay out; the days left get their partitions.
		cutoff, err := s.retirementCutoff(ctx, tx)
		if err != nil {
			return cp, fmt.Errorf("read retirement cut-off: %w", err)
		}
		passes, alerts = dropExpired(passes, cutoff), dropExpired(alerts, cutoff)
		if err := s.ensurePartitions(ctx, tx, "passes", passes); err != nil {
			return cp, err
		}
		if err := s.ensurePartitions(ctx, tx, "alerts", alerts); err != nil {
			return cp, err
		}
	}
	// In this order: the passes' stays after the passes.
	for _, w := range []struct {
		apply func(context.Context, pgx.Tx, []*projections.Change) error
		cs    []*projections.Change
	}{
		{s.applyOthers, others}, {s.applyHealth, health}, {s.applyAlerts, alerts},
		{s.applyPassesAndStays, passes}, {s.applyAudit, audits}, {s.applyAuditChain, chain},
	} {
		if err := w.apply(ctx, tx, w.cs); err != nil {
			return cp, err
		}
	}
	next, err := s.commitBatch(ctx, tx, b)
	if err != nil {
		return cp, err
	}
	return next, nil
}

// applyPassesAndStays COPYs the batch's new passes and keeps the stays they
// change.
func (s *Store) applyPassesAndStays(ctx context.Context, tx pgx.Tx, cs []*projections.Change) error {
	inserted, err := s.applyPasses(ctx, tx, cs)
	if err != nil {
		return err
	}
	return s.applyStays(ctx, tx, inserted)
}

// commitBatch records b's last position (and when it was recorded) as the
// projection's checkpoint in tx and commits tx, so that a batch's changes
// and the position that says they are applied land together.
func (s *Store) commitBatch(ctx context.Context, tx pgx.Tx, b projections.Batch) (projections.Checkpoint, error) {
	var last *time.Time
	if !b.LastRecordedAt.IsZero() {
		last = &b.LastRecordedAt
	}
	if _, err := tx.Exec(ctx, s.q.setCheckpoint, s.name, int64(b.Last), last); err != nil {
		return projections.Checkpoint{}, fmt.Errorf("record position: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return projections.Checkpoint{}, fmt.Errorf("commit: %w", err)
	}
	return projections.Checkpoint{Position: b.Last, RecordedAt: b.LastRecordedAt}, nil
}

// queryIDs runs sql, a statement named what in its errors that returns one
// column of event ids, and answers the set of them.
func queryIDs(ctx context.Context, tx pgx.Tx, what, sql string, args ...any) (map[uuid.UUID]bool, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	set := make(map[uuid.UUID]bool)
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		set[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return set, nil
}

func (s *Store) applyOthers(ctx context.Context, tx pgx.Tx, cs []*projections.Change) error {
	if len(cs) == 0 {
		return nil
	}
	ids, positions := eventColumns(cs)
	fresh, err := queryIDs(ctx, tx, "mark applied", s.q.markApplied, ids, positions)
	if err != nil {
		return err
	}
	var batch pgx.Batch
	for _, c := range cs {
		if !fresh[c.EventID] {
			continue
		}
		// An event appended twice in one batch is applied once.
		fresh[c.EventID] = false
		s.queue(&batch, c)
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return fmt.Errorf("apply registrations and venue changes: %w", err)
	}
	return nil
}

// eventColumns are cs's event ids and log positions: the first two arrays
// of every multi-row statement.
func eventColumns(cs []*projections.Change) ([]uuid.UUID, []int64) {
	ids, pos := make([]uuid.UUID, len(cs)), make([]int64, len(cs))
	for i, c := range cs {
		ids[i], pos[i] = c.EventID, int64(c.Position)
	}
	return ids, pos
}

// insertEvents runs sql, a multi-row insert of unnested arrays, with cs's
// event ids and log positions (eventColumns) as its first two and cols
// after them; what names the rows in its error. An empty cs inserts
// nothing.
func insertEvents(ctx context.Context, tx pgx.Tx, cs []*projections.Change, what, sql string, cols ...any) error {
	if len(cs) == 0 {
		return nil
	}
	ids, pos := eventColumns(cs)
	if _, err := tx.Exec(ctx, sql, append([]any{ids, pos}, cols...)...); err != nil {
		return fmt.Errorf("insert %s: %w", what, err)
	}
	return nil
}

func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Store) queue(b *pgx.Batch, c *projections.Change) {
	pos := int64(c.Position)
	switch ev := c.Event.(type) {
	case *domain.PersonRegistered:
		b.Queue(s.q.personRegistered, ev.PersonID, c.Masks.Name, ev.IDType, c.Masks.IDNumber, ev.IDHash,
			nullUUID(ev.GuardianID), ev.Relation, c.OccurredAt, pos)
	case *domain.PersonVerified:
		b.Queue(s.q.personVerified, ev.PersonID, ev.Result, pos)
	case *domain.PersonReleased:
		b.Queue(s.q.personReleased, ev.PersonID, pos)
	case *domain.PersonErased:
		b.Queue(s.q.personErased, ev.PersonID, projections.ErasedMasks.Name, projections.ErasedMasks.IDNumber, pos)
		b.Queue(s.q.declarationsErased, ev.PersonID, projections.ErasedContact.Name, projections.ErasedContact.Phone)
	case *domain.VenueApplied:
		b.Queue(s.q.venueApplied, ev.VenueID, ev.Name, ev.Type, ev.District, ev.Address, ev.Lat, ev.Lng,
			ev.ManagerID, ev.RequireGreen, ev.NATWithinHours, c.OccurredAt, pos)
	case *domain.VenueReviewed:
		status := domain.ReviewedStatus(ev.Decision, domain.VenueStatusApproved, domain.VenueStatusRejected)
		b.Queue(s.q.venueReviewed, ev.VenueID, status, ev.Reason, c.OccurredAt)
	case *domain.SubAdminAdded:
		b.Queue(s.q.subAdminAdded, ev.VenueID, ev.PersonID, pos)
	case *domain.SubAdminRemoved:
		b.Queue(s.q.subAdminRemoved, ev.VenueID, ev.PersonID)
	default:
		s.queueDeclaration(b, c)
	}
}

func (s *Store) applyHealth(ctx context.Context, tx pgx.Tx, cs []*projections.Change) error {
	n := len(cs)
	var (
		hashes  = make([]string, n)
		at      = make([]time.Time, n)
		colours = make([]string, n)
		nats    = make([]string, n)
		natAt   = make([]*time.Time, n)
		doses   = make([]int32, n)
	)
	for i, c := range cs {
		ev := c.Event.(*domain.HealthStatusRecorded)
		hashes[i], at[i], colours[i] = ev.IDHash, c.OccurredAt, ev.CodeColour
		nats[i], natAt[i], doses[i] = ev.NATResult, nullTime(ev.NATAt), int32(ev.VaccineDoses)
	}
	return insertEvents(ctx, tx, cs, "health records", s.q.insertHealth, hashes, at, colours, nats, natAt, doses)
}

func (s *Store) applyAlerts(ctx context.Context, tx pgx.Tx, cs []*projections.Change) error {
	n := len(cs)
	var (
		districts = make([]string, n)
		venues    = make([]uuid.UUID, n)
		persons   = make([]uuid.UUID, n)
		passIDs   = make([]uuid.UUID, n)
		colours   = make([]string, n)
		decisions = make([]string, n)
		reasons   = make([]string, n)
		at        = make([]time.Time, n)
	)
	for i, c := range cs {
		ev := c.Event.(*domain.AlertRaised)
		districts[i], venues[i], persons[i] = ev.District, ev.VenueID, ev.PersonID
		passIDs[i], colours[i], decisions[i], reasons[i], at[i] = ev.PassEventID, ev.CodeColour, ev.Decision, ev.Reason, c.OccurredAt
	}
	return insertEvents(ctx, tx, cs, "alerts", s.q.insertAlerts, districts, venues, persons, passIDs, colours, decisions, reasons, at)
}

// applyPasses COPYs the batch's passes not yet stored and returns them.
func (s *Store) applyPasses(ctx context.Context, tx pgx.Tx, cs []*projections.Change) ([]*projections.Change, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	ids := make([]uuid.UUID, len(cs))
	lo, hi := cs[0].OccurredAt, cs[0].OccurredAt
	for i, c := range cs {
		ids[i] = c.EventID
		if c.OccurredAt.Before(lo) {
			lo = c.OccurredAt
		}
		if c.OccurredAt.After(hi) {
			hi = c.OccurredAt
		}
	}
	skip, err := queryIDs(ctx, tx, "find stored passes", s.q.storedPasses, ids,
		lo.Add(-storedPassesSlack), hi.Add(storedPassesSlack))
	if err != nil {
		return nil, err
	}
	fresh := cs[:0:0]
	for _, c := range cs {
		if !skip[c.EventID] {
			skip[c.EventID] = true // a repeat within the batch is applied once
			fresh = append(fresh, c)
		}
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	src := &passSource{cs: fresh, row: make([]any, len(passColumns))}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.schema, "passes"}, passColumns, src); err != nil {
		return nil, fmt.Errorf("copy passes: %w", err)
	}
	if err := s.countPasses(ctx, tx, fresh); err != nil {
		return nil, err
	}
	return fresh, nil
}

// storedPassesSlack is how far from a batch's passes' times a stored copy
// of one of them is looked for (the tables are partitioned by day of at, so
// a lookup by event id alone probes every day's partition). Two copies of
// one event id are two appends of a pass decided while the first was not
// yet in the read models (a retry racing the projection: the pass command
// looks the id up first); their times are the client's (equal) or the
// server's at each decision (seconds apart). A day is far more than that.
const storedPassesSlack = 24 * time.Hour

// passSource feeds COPY from a batch's new passes.
type passSource struct {
	cs  []*projections.Change
	i   int
	row []any
}

// Next implements pgx.CopyFromSource.
func (p *passSource) Next() bool {
	for p.i < len(p.cs) {
		c := p.cs[p.i]
		p.i++
		ev := c.Event.(*domain.PassRecorded)
		sc := &ev.Screen
		r := p.row
		r[0], r[1], r[2], r[3], r[4] = c.EventID, int64(c.Position), ev.VenueID, ev.PersonID, c.OccurredAt
		r[5], r[6], r[7], r[8], r[9] = ev.Direction, ev.Method, ev.Decision, ev.Reason, ev.Operator
		r[10], r[11], r[12], r[13], r[14] = nullUUID(ev.GuardianID), sc.NameMasked, sc.CodeColour, sc.NATResult, nullTime(sc.NATAt)
		r[15], r[16], r[17], r[18] = int32(sc.VaccineDoses), nullUUID(sc.VenueID), sc.VenueName, nullTime(sc.At)
		r[19], r[20], r[21] = sc.Direction, sc.Decision, sc.Reason
		r[22] = nullTime(c.RecordedAt)
		return true
	}
	return false
}

// Values implements pgx.CopyFromSource.
func (p *passSource) Values() ([]any, error) { return p.row, nil }

// Err implements pgx.CopyFromSource.
func (p *passSource) Err() error { return nil }
