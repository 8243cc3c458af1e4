package postgres

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Partitions and retirement.
//
// passes and alerts are partitioned by day (UTC) of at (migration 0005):
// partition <table>_pYYYYMMDD holds [day, day+1). Apply creates the
// partitions a batch needs that are missing, in its own transaction, after
// it locked the position row; RetirePasses takes the same lock, drops every
// partition wholly before its cut-off and deletes the expired rows of the
// one partial day. So a partition never goes between the check and the
// COPY, and a writer never meets a missing one (which would be a
// check_violation, and the batch parked). Rows older than the last
// retirement's cut-off (the retirement table) are left out of a batch: a
// replay of the log brings passes of a message whose latest pass has not
// expired yet.

var _ ledger.Retirer = (*Store)(nil)

// partitionedTables are the tables partitioned by day of at.
var partitionedTables = []string{"passes", "alerts"}

const partitionDay = "20060102"

// dayOf returns the start (UTC) of the day holding t.
func dayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// partitionName names table's partition for day.
func partitionName(table string, day time.Time) string {
	return table + "_p" + day.Format(partitionDay)
}

// partitionDayOf parses the day out of a partition's name; ok is false for
// a name that is not table's partition.
func partitionDayOf(table, name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, table+"_p")
	if !ok {
		return time.Time{}, false
	}
	d, err := time.Parse(partitionDay, rest)
	return d, err == nil
}

// retirementCutoff reads the last retirement's cut-off in tx (the zero
// time when none).
func (s *Store) retirementCutoff(ctx context.Context, tx pgx.Tx) (time.Time, error) {
	var before *time.Time
	err := tx.QueryRow(ctx, `SELECT (SELECT before FROM `+s.schema+`.retirement)`).Scan(&before)
	if err != nil || before == nil {
		return time.Time{}, err
	}
	return *before, nil
}

// dropExpired removes from cs the changes at before cutoff.
func dropExpired(cs []*projections.Change, cutoff time.Time) []*projections.Change {
	if cutoff.IsZero() {
		return cs
	}
	kept := cs[:0]
	for _, c := range cs {
		if !c.OccurredAt.Before(cutoff) {
			kept = append(kept, c)
		}
	}
	return kept
}

// ensurePartitions creates, in tx, table's partitions for the days of cs
// that do not exist yet: one query to find them, one statement per missing
// day (a new day, or a rebuild's replay).
func (s *Store) ensurePartitions(ctx context.Context, tx pgx.Tx, table string, cs []*projections.Change) error {
	if len(cs) == 0 {
		return nil
	}
	var (
		days []time.Time
		last time.Time
	)
	for _, c := range cs {
		if d := dayOf(c.OccurredAt); !d.Equal(last) { // mostly one day per batch
			days, last = append(days, d), d
		}
	}
	return s.ensureDays(ctx, tx, table, days)
}

// ensureDays creates, in tx, table's partitions of days that are missing.
func (s *Store) ensureDays(ctx context.Context, tx pgx.Tx, table string, list []time.Time) error {
	var (
		names []string
		days  = map[string]time.Time{}
	)
	for _, d := range list {
		n := partitionName(table, d)
		if _, ok := days[n]; !ok {
			days[n] = d
			names = append(names, n)
		}
	}
	var missing []string
	err := tx.QueryRow(ctx, `SELECT ARRAY(SELECT n FROM unnest($1::text[]) n WHERE to_regclass($2 || '.' || n) IS NULL)`,
		names, s.schema).Scan(&missing)
	if err != nil {
		return fmt.Errorf("find partitions of %s: %w", table, err)
	}
	for _, n := range missing {
		d := days[n]
		// The names are ours (table and digits), quoted all the same.
		stmt := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
			pgx.Identifier{s.schema, n}.Sanitize(), pgx.Identifier{s.schema, table}.Sanitize(),
			d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339))
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create partition %s: %w", n, err)
		}
	}
	return nil
}

// RetirePasses implements ledger.Retirer. In one transaction, serialised
// with Apply by the lock on the position row: it records before as the
// cut-off (raising it only), makes today's and tomorrow's partitions (UTC,
// by the wall clock) when missing, drops every partition of passes and
// alerts that ends at or before before, and deletes the rows before it
// from the one partial day left. A dropped partition's rows are counted by the
// planner's estimate (pg_class.reltuples), the deleted ones exactly.
func (s *Store) RetirePasses(ctx context.Context, before time.Time) (ledger.RetireStats, error) {
	var st ledger.RetireStats
	tx, err := s.beginLocked(ctx)
	if err != nil {
		return st, fmt.Errorf("retire passes before %s: %w", before, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	prev, err := s.retirementCutoff(ctx, tx)
	if err != nil {
		return st, fmt.Errorf("retire passes: read cut-off: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+s.schema+`.retirement (before) VALUES ($1)
		ON CONFLICT (one) DO UPDATE SET before = GREATEST(retirement.before, EXCLUDED.before)`, before); err != nil {
		return st, fmt.Errorf("retire passes: record cut-off: %w", err)
	}
	// Today's and tomorrow's partitions are made ahead, here, so that the
	// projector seldom makes one inside its own transaction (making one
	// locks the parent table against readers until that commit).
	today := dayOf(time.Now())
	ahead := []time.Time{today, today.AddDate(0, 0, 1)}
	// The block range indexes of the cut-off's day, up to date for the
	// reads of the passes before it (the presence rows', then the partial
	// day's DELETE).
	for _, table := range partitionedTables {
		if err := s.summarizeDay(ctx, tx, table, dayOf(before)); err != nil {
			return st, err
		}
	}
	if err := s.retirePresence(ctx, tx, prev, before); err != nil {
		return st, err
	}
	for _, table := range partitionedTables {
		if err := s.ensureDays(ctx, tx, table, ahead); err != nil {
			return st, err
		}
		dropped, rows, err := s.dropPartitions(ctx, tx, table, before)
		if err != nil {
			return st, err
		}
		var deleted int64
		if table == "passes" {
			deleted, err = s.retirePartialDay(ctx, tx, before)
		} else {
			var tag pgconn.CommandTag
			tag, err = tx.Exec(ctx, `DELETE FROM `+s.schema+`.`+table+` WHERE at < $1`, before)
			deleted = tag.RowsAffected()
		}
		if err != nil {
			return st, fmt.Errorf("retire %s before %s: %w", table, before, err)
		}
		rows += deleted
		st.Partitions += dropped
		if table == "passes" {
			st.Passes = rows
		} else {
			st.Alerts = rows
		}
	}
	// The stays built from those passes go with them, in the same
	// transaction. Each venue's range starts at the last cut-off less the
	// longest stay, but at the first retirement of this Store from the
	// start: older versions could leave stays of retired passes behind
	// (before migration 0012 those of no length at a venue without a span;
	// earlier, stays retired in a transaction of their own, or not at all),
	// which the next sweep deleted, and a range that starts at the last
	// cut-off would never reach them again.
	since := prev
	if !s.staysSwept.Load() {
		since = time.Time{}
	}
	if err := s.retireStays(ctx, tx, since, before); err != nil {
		return st, fmt.Errorf("retire passes before %s: %w", before, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return st, fmt.Errorf("retire passes before %s: commit: %w", before, err)
	}
	s.staysSwept.Store(true)
	return st, nil
}

// retirePresence deletes, in tx, the presence rows older than before: a
// presence row is its pair's newest pass, and one before the cut-off has no
// pass left. Call it before the passes go. The sweeps move the cut-off a
// minute at a time, and every row older than the last one's (prev) went
// then, so the rows to delete are those of the pairs of the passes in
// [prev, before): a minute of passes, found through the passes' block
// range index (summarised first), where a plain "at < before" read the whole table at every
// sweep (300-500 ms at a city's day of 714,000 passes), and an index on at
// cost Apply about a tenth at 10 M passes. Without a last cut-off (the
// first sweep of these tables), or when the last one is more than
// wholeScanAfter before (a day at once, after the service was down), it
// reads the table once: a pair a pass is a descent of the primary key per
// pass, and a day's 744,000 of them took 4.5-8 s where reading the table
// took 0.2-0.3 s (BenchmarkRetireDay, a city's day).
func (s *Store) retirePresence(ctx context.Context, tx pgx.Tx, prev, before time.Time) error {
	var err error
	switch {
	case prev.IsZero() || before.Sub(prev) > wholeScanAfter:
		_, err = tx.Exec(ctx, s.sql(`DELETE FROM {s}.presence WHERE at < $1`), before)
	case prev.Before(before):
		_, err = tx.Exec(ctx, s.sql(`DELETE FROM {s}.presence p
			USING (SELECT DISTINCT venue_id, person_id FROM {s}.passes WHERE at >= $1 AND at < $2) x
			WHERE p.venue_id = x.venue_id AND p.person_id = x.person_id AND p.at < $2`), prev, before)
	}
	if err != nil {
		return fmt.Errorf("retire presence before %s: %w", before, err)
	}
	return nil
}

// wholeScanAfter is the span of passes beyond which retirePresence reads
// the presence table whole instead of through the span's pairs: an hour of
// a city's day of 714,000 passes is about 30,000 descents (about 0.2 s),
// as long as a scan of a 10 M city's 1.2 million presence rows.
const wholeScanAfter = time.Hour

// summarizeDay brings the block range index on at of table's partition of
// day up to date (brin_summarize_new_values: only the ranges filled since
// the last summary), so that the DELETE of the partial day reads the few
// ranges before the cut-off, not the whole day, whether or not autovacuum
// has run since the day was written.
func (s *Store) summarizeDay(ctx context.Context, tx pgx.Tx, table string, day time.Time) error {
	_, err := tx.Exec(ctx, `SELECT brin_summarize_new_values(i.indexrelid)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
		WHERE i.indrelid = to_regclass($1) AND a.amname = 'brin'`, s.schema+"."+partitionName(table, day))
	if err != nil {
		return fmt.Errorf("summarize %s: %w", partitionName(table, day), err)
	}
	return nil
}

// dropPartitions drops table's partitions whose day ends at or before
// before, and returns how many and their estimated rows.
func (s *Store) dropPartitions(ctx context.Context, tx pgx.Tx, table string, before time.Time) (int, int64, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname, c.reltuples FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass($1)`, s.schema+"."+table)
	if err != nil {
		return 0, 0, fmt.Errorf("partitions of %s: %w", table, err)
	}
	type part struct {
		name string
		rows float32
	}
	var old []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.name, &p.rows); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("partitions of %s: %w", table, err)
		}
		if d, ok := partitionDayOf(table, p.name); ok && !d.AddDate(0, 0, 1).After(before) {
			old = append(old, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("partitions of %s: %w", table, err)
	}
	var n int64
	for _, p := range old {
		if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{s.schema, p.name}.Sanitize()); err != nil {
			return 0, 0, fmt.Errorf("drop partition %s: %w", p.name, err)
		}
		// reltuples is -1 for a partition never analysed.
		n += int64(math.Max(float64(p.rows), 0))
	}
	return len(old), n, nil
}

// retirePartialDay deletes the passes before before that the dropped
// partitions left (those of before's own day) and takes them off the
// dashboard's count of passes held; the whole days dropped leave it with
// their rows. It returns how many passes it deleted.
func (s *Store) retirePartialDay(ctx context.Context, tx pgx.Tx, before time.Time) (int64, error) {
	if _, err := tx.Exec(ctx, s.sql(`DELETE FROM {s}.dashboard_held WHERE day < ($1::timestamptz AT TIME ZONE 'UTC')::date`), before); err != nil {
		return 0, fmt.Errorf("dashboard: passes held before %s: %w", before, err)
	}
	var n int64
	err := tx.QueryRow(ctx, s.sql(`WITH gone AS (
			DELETE FROM {s}.passes WHERE at < $1 RETURNING venue_id, at),
		counted AS (
			SELECT coalesce(v.district, '') AS district, (g.at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
			FROM gone g LEFT JOIN {s}.venues v ON v.venue_id = g.venue_id GROUP BY 1, 2),
		held AS (
			UPDATE {s}.dashboard_held h SET passes = h.passes - c.n FROM counted c
			WHERE h.district = c.district AND h.day = c.day)
		SELECT coalesce(sum(n), 0) FROM counted`), before).Scan(&n)
	return n, err
}
