package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Bounds that stand for an open window or no as_of: the statements always
// get two bounds on "at", so the planner always scans an index range.
var (
	farPast   = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	farFuture = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

func lowBound(t time.Time) time.Time {
	if t.IsZero() {
		return farPast
	}
	return t
}

func highBound(t time.Time) time.Time {
	if t.IsZero() {
		return farFuture
	}
	return t
}

// pointCols are the columns scanPoints reads; w is the row naming the venue
// (the pass itself or its window) that venues v is joined on.
const pointCols = `p.event_id, p.person_id, p.venue_id, COALESCE(v.type, ''), p.at, p.direction, p.decision,
	p.position, p.recorded_at`

// coveredCols are the columns of passes a trace reads: all of them are in
// passes_venue_at and passes_person_at (migration 0002), so the window
// reads can be index-only scans.
const coveredCols = `p.event_id, p.person_id, p.venue_id, p.at, p.direction, p.decision, p.position, p.recorded_at`

// recordedBy keeps the passes recorded at or before $n (rows stored before
// migration 0002 have no recorded_at and are kept).
func recordedBy(n int) string {
	return `(p.recorded_at IS NULL OR p.recorded_at <= $` + strconv.Itoa(n) + `)`
}

// binaryBE decodes PostgreSQL's big-endian binary integers.
var binaryBE = binary.BigEndian

// pgEpoch is the zero of PostgreSQL's binary timestamps (microseconds).
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// onWire reports whether rows, read for n columns, can be decoded straight
// from the wire (RawValues): there are n, and each comes in binary (pgx's
// default) but the text columns, which come in text format: their bytes.
func onWire(rows pgx.Rows, n int, text ...int) bool {
	fds := rows.FieldDescriptions()
	if len(fds) != n {
		return false
	}
	for i, fd := range fds {
		if fd.Format != pgx.BinaryFormatCode && !slices.Contains(text, i) {
			return false
		}
	}
	return true
}

// pgTime decodes a binary timestamp (8 bytes: its caller checks).
func pgTime(b []byte) time.Time {
	return pgEpoch.Add(time.Duration(int64(binaryBE.Uint64(b))) * time.Microsecond)
}

// scanPoints reads the rows of a window read. A trace reads tens of
// thousands of them, so when every column comes in binary (pgx's default)
// they are decoded straight from the wire: uuids as 16 bytes, timestamps as
// microseconds, the few distinct strings (directions, decisions, venue
// types) shared instead of allocated per row. Otherwise Scan does it.
func scanPoints(rows pgx.Rows, what string) ([]domain.PassPoint, error) {
	defer rows.Close()
	out := []domain.PassPoint{}
	raw := onWire(rows, 9, 3, 5, 6)
	strs := make(map[string]string)
	intern := func(b []byte) string {
		if s, ok := strs[string(b)]; ok {
			return s
		}
		s := string(b)
		strs[s] = s
		return s
	}
	stamp := func(b []byte) (time.Time, error) {
		if len(b) != 8 {
			return time.Time{}, readErr("timestamp of %d bytes", len(b))
		}
		return pgTime(b), nil
	}
	for rows.Next() {
		var (
			p   domain.PassPoint
			err error
		)
		if raw {
			v := rows.RawValues()
			if len(v[0]) != 16 || len(v[1]) != 16 || len(v[2]) != 16 || len(v[7]) != 8 {
				return nil, readErr("%s: unexpected binary row", what)
			}
			copy(p.EventID[:], v[0])
			copy(p.PersonID[:], v[1])
			copy(p.VenueID[:], v[2])
			p.VenueType, p.Direction, p.Decision = intern(v[3]), intern(v[5]), intern(v[6])
			p.Position = binaryBE.Uint64(v[7])
			if p.At, err = stamp(v[4]); err == nil && v[8] != nil {
				p.RecordedAt, err = stamp(v[8])
			}
		} else {
			var (
				pos int64
				rec *time.Time
			)
			err = rows.Scan(&p.EventID, &p.PersonID, &p.VenueID, &p.VenueType, &p.At, &p.Direction, &p.Decision, &pos, &rec)
			p.At, p.Position, p.RecordedAt = p.At.UTC(), uint64(pos), utc(rec)
		}
		if err != nil {
			return nil, readErr("%s: %w", what, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, readErr("%s: %w", what, err)
	}
	return out, nil
}

// customPlan runs a statement over the day-partitioned pass tables that
// takes an array of keys as an unnamed statement, which PostgreSQL plans for
// its arguments each time, at the cost of a second round trip. A prepared
// statement may get a cached generic plan, which cannot see the array's
// length; one made while the day's partition was empty (every midnight)
// scans that partition whole for every key as it fills (Apply met it: see
// apply.go).
const customPlan = pgx.QueryExecModeDescribeExec

// PassesOfPersons implements ledger.TraceReads: one range scan of
// passes_person_at per person, in one statement. Ids are deduplicated first
// (a person named twice would be scanned twice).
func (s *Store) PassesOfPersons(ctx context.Context, personIDs []uuid.UUID, from, to, asOf time.Time) ([]domain.PassPoint, error) {
	personIDs = distinct(personIDs)
	if len(personIDs) == 0 {
		return []domain.PassPoint{}, nil
	}
	text := `SELECT ` + pointCols + `
		FROM unnest($1::uuid[]) AS w(person_id)
		CROSS JOIN LATERAL (SELECT ` + coveredCols + ` FROM {s}.passes p
			WHERE p.person_id = w.person_id AND p.at >= $2 AND p.at < $3 AND ` + recordedBy(4) + ` OFFSET 0) p
		LEFT JOIN {s}.venues v ON v.venue_id = p.venue_id`
	rows, err := s.pool.Query(ctx, s.sql(text), customPlan, rawIDs(personIDs), lowBound(from), highBound(to), highBound(asOf))
	if err != nil {
		return nil, readErr("passes of %d persons: %w", len(personIDs), err)
	}
	return scanPoints(rows, fmt.Sprintf("passes of %d persons", len(personIDs)))
}

// PassesAtVenues implements ledger.TraceReads: the windows, merged, are
// joined to passes as one array each of venues, starts and ends, so every
// window is one range scan of passes_venue_at in one statement.
func (s *Store) PassesAtVenues(ctx context.Context, windows []domain.VenueWindow, asOf time.Time) ([]domain.PassPoint, error) {
	ws := domain.MergeWindows(windows)
	if len(ws) == 0 {
		return []domain.PassPoint{}, nil
	}
	venues := make([][16]byte, len(ws))
	froms := make([]time.Time, len(ws))
	tos := make([]time.Time, len(ws))
	for i, w := range ws {
		venues[i], froms[i], tos[i] = w.VenueID, w.From, w.To
	}
	// The LATERAL subquery with OFFSET 0 is not pulled up into a join, so
	// each window is its own range scan of passes_venue_at: a plain join
	// lets the planner, which cannot see how few rows each window holds,
	// hash the whole passes table instead.
	text := `SELECT ` + pointCols + `
		FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS w(venue_id, f, t)
		CROSS JOIN LATERAL (SELECT ` + coveredCols + ` FROM {s}.passes p
			WHERE p.venue_id = w.venue_id AND p.at >= w.f AND p.at < w.t AND ` + recordedBy(4) + ` OFFSET 0) p
		LEFT JOIN {s}.venues v ON v.venue_id = w.venue_id`
	rows, err := s.pool.Query(ctx, s.sql(text), customPlan, venues, froms, tos, highBound(asOf))
	if err != nil {
		return nil, readErr("passes in %d venue windows: %w", len(ws), err)
	}
	return scanPoints(rows, fmt.Sprintf("passes in %d venue windows", len(ws)))
}

// PersonNames implements ledger.TraceReads.
func (s *Store) PersonNames(ctx context.Context, personIDs []uuid.UUID) (map[uuid.UUID]string, error) {
	if len(personIDs) == 0 {
		return map[uuid.UUID]string{}, nil
	}
	return idMap[string](ctx, s, len(personIDs), fmt.Sprintf("names of %d persons", len(personIDs)),
		`SELECT person_id, name_masked FROM {s}.persons WHERE person_id = ANY($1::uuid[]) AND registered`, rawIDs(personIDs))
}

// idMap runs text, a read of (id, value) rows named what in its errors
// (through readErr), and answers the values by id; size is how many to
// expect.
func idMap[T any](ctx context.Context, s *Store, size int, what, text string, args ...any) (map[uuid.UUID]T, error) {
	rows, err := s.pool.Query(ctx, s.sql(text), args...)
	if err != nil {
		return nil, readErr("%s: %w", what, err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID]T, size)
	for rows.Next() {
		var (
			id [16]byte // not uuid.UUID, whose Scan goes through its text form
			v  T
		)
		if err := rows.Scan(&id, &v); err != nil {
			return nil, readErr("%s: %w", what, err)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		return nil, readErr("%s: %w", what, err)
	}
	return out, nil
}

// VenuesByID implements ledger.TraceReads.
func (s *Store) VenuesByID(ctx context.Context, venueIDs []uuid.UUID) (map[uuid.UUID]domain.VenueView, error) {
	out := make(map[uuid.UUID]domain.VenueView, len(venueIDs))
	if len(venueIDs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, s.sql(`SELECT `+venueCols+` FROM {s}.venues v WHERE v.venue_id = ANY($1::uuid[])`), rawIDs(venueIDs))
	if err != nil {
		return nil, readErr("%d venues: %w", len(venueIDs), err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scanVenue(rows)
		if err != nil {
			return nil, readErr("%d venues: %w", len(venueIDs), err)
		}
		out[v.ID] = v
	}
	if err := rows.Err(); err != nil {
		return nil, readErr("%d venues: %w", len(venueIDs), err)
	}
	return out, nil
}

// Audit implements ledger.AuditReads: oldest first by (at, position).
func (s *Store) Audit(ctx context.Context, q domain.AuditQuery) ([]domain.AuditEntry, error) {
	var c conds
	c.window("at", q.From, q.To)
	if !q.AfterAt.IsZero() {
		c.add("(at, position) > (?, ?)", q.AfterAt, int64(q.AfterPosition))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	text := `SELECT event_id, position, trace_id, analyst, person_id, from_at, to_at, depth, reason, kind, source,
		as_of, min_overlap_minutes, buffer_minutes, contacts, at FROM {s}.audit_entries` + c.where() +
		" ORDER BY at, position LIMIT " + c.arg(limit)
	return appendRows(ctx, s, []domain.AuditEntry{}, "audit entries", scanAuditEntry, s.sql(text), c.args...)
}

func scanAuditEntry(row pgx.Row) (domain.AuditEntry, error) {
	var (
		e              domain.AuditEntry
		pos            int64
		from, to, asOf *time.Time
		depth, minOv   int32
		buffer, count  int32
	)
	err := row.Scan(&e.EventID, &pos, &e.TraceID, &e.Analyst, &e.PersonID, &from, &to, &depth, &e.Reason,
		&e.Kind, &e.Source, &asOf, &minOv, &buffer, &count, &e.At)
	e.Position, e.From, e.To, e.AsOf, e.At = uint64(pos), utc(from), utc(to), utc(asOf), e.At.UTC()
	e.Depth, e.MinOverlapMinutes, e.BufferMinutes, e.Contacts = int(depth), int(minOv), int(buffer), int(count)
	return e, err
}

// applyAudit inserts the batch's TraceRequested events into audit_entries
// with one statement; an event already listed is not listed again.
func (s *Store) applyAudit(ctx context.Context, tx pgx.Tx, cs []*projections.Change) error {
	n := len(cs)
	var (
		traces, persons   = make([]uuid.UUID, n), make([]uuid.UUID, n)
		analysts, reasons = make([]string, n), make([]string, n)
		kinds, sources    = make([]string, n), make([]string, n)
		froms, tos, asOfs = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		depths, minOvs    = make([]int32, n), make([]int32, n)
		buffers, counts   = make([]int32, n), make([]int32, n)
		at                = make([]time.Time, n)
	)
	for i, c := range cs {
		ev := c.Event.(*domain.TraceRequested)
		traces[i], persons[i] = ev.TraceID, ev.PersonID
		analysts[i], reasons[i], kinds[i], sources[i] = ev.Analyst, ev.Reason, ev.Kind, ev.Source
		froms[i], tos[i], asOfs[i] = nullTime(ev.From), nullTime(ev.To), nullTime(ev.AsOf)
		depths[i], minOvs[i], buffers[i], counts[i] = int32(ev.Depth), int32(ev.MinOverlapMinutes), int32(ev.BufferMinutes), int32(ev.Contacts)
		at[i] = c.OccurredAt
	}
	return insertEvents(ctx, tx, cs, "audit entries", s.sql(`INSERT INTO {s}.audit_entries
		(event_id, position, trace_id, analyst, person_id, from_at, to_at, depth, reason, kind, source, as_of,
		 min_overlap_minutes, buffer_minutes, contacts, at)
		SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::uuid[], $6::timestamptz[],
			$7::timestamptz[], $8::int[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::int[],
			$14::int[], $15::int[], $16::timestamptz[])
		ON CONFLICT (event_id) DO NOTHING`),
		traces, analysts, persons, froms, tos, depths, reasons, kinds, sources, asOfs, minOvs, buffers, counts, at)
}

// distinct returns ids without repeats, in first-seen order.
func distinct(ids []uuid.UUID) []uuid.UUID {
	seen := make(map[uuid.UUID]bool, len(ids))
	out := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// rawIDs returns ids as 16-byte arrays, which pgx encodes directly (a
// uuid.UUID goes through its driver.Valuer, a string per id).
func rawIDs(ids []uuid.UUID) [][16]byte {
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// applyAuditChain inserts the batch's AuditRecorded entries into
// audit_chain with one statement; an event already listed is not listed
// again.
func (s *Store) applyAuditChain(ctx context.Context, tx pgx.Tx, cs []*projections.Change) error {
	n := len(cs)
	var (
		sources                 = make([]uuid.UUID, n)
		persons, venues, decls  = make([]*uuid.UUID, n), make([]*uuid.UUID, n), make([]*uuid.UUID, n)
		seqs                    = make([]int64, n)
		prevs, hashes, kinds    = make([]string, n), make([]string, n), make([]string, n)
		actors, roles, outcomes = make([]string, n), make([]string, n), make([]string, n)
		reasons, types          = make([]string, n), make([]string, n)
		froms, tos              = make([]*time.Time, n), make([]*time.Time, n)
		depths                  = make([]int32, n)
		at                      = make([]time.Time, n)
	)
	for i, c := range cs {
		a := c.Event.(*domain.AuditRecorded)
		sources[i], seqs[i] = a.SourceEventID, int64(a.Seq)
		persons[i], venues[i], decls[i] = nullUUID(a.PersonID), nullUUID(a.VenueID), nullUUID(a.DeclarationID)
		prevs[i], hashes[i], kinds[i], actors[i], roles[i] = a.PrevHash, a.Hash, a.Kind, a.Actor, a.Role
		outcomes[i], reasons[i], types[i] = a.Outcome, a.Reason, a.SourceType
		froms[i], tos[i], depths[i], at[i] = nullTime(a.From), nullTime(a.To), int32(a.Depth), a.At
	}
	return insertEvents(ctx, tx, cs, "audit chain entries", s.sql(`INSERT INTO {s}.audit_chain
		(event_id, position, seq, prev_hash, hash, kind, actor, role, person_id, venue_id, declaration_id,
		 outcome, reason, from_at, to_at, depth, source_event_id, source_type, at)
		SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::uuid[], $10::uuid[], $11::uuid[], $12::text[], $13::text[], $14::timestamptz[],
			$15::timestamptz[], $16::int[], $17::uuid[], $18::text[], $19::timestamptz[])
		ON CONFLICT (event_id) DO NOTHING`),
		seqs, prevs, hashes, kinds, actors, roles, persons, venues, decls, outcomes, reasons, froms, tos,
		depths, sources, types, at)
}

// AuditChain implements ledger.AuditReads: in chain order.
func (s *Store) AuditChain(ctx context.Context, q domain.AuditChainQuery) ([]domain.AuditChainEntry, error) {
	var c conds
	c.add("seq > ?", int64(q.AfterSeq))
	if q.PersonID != uuid.Nil {
		c.add("person_id = ?", q.PersonID)
	}
	if q.Source != uuid.Nil {
		c.add("source_event_id = ?", q.Source)
	}
	c.equal("kind", q.Kind)
	c.equal("actor", q.Actor)
	c.window("at", q.Since, q.Until)
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	text := `SELECT event_id, position, seq, prev_hash, hash, kind, actor, role, person_id, venue_id, declaration_id,
		outcome, reason, from_at, to_at, depth, source_event_id, source_type, at FROM {s}.audit_chain` + c.where() +
		" ORDER BY seq, position LIMIT " + c.arg(limit)
	return appendRows(ctx, s, []domain.AuditChainEntry{}, "audit chain", scanAuditChainEntry, s.sql(text), c.args...)
}

func scanAuditChainEntry(row pgx.Row) (domain.AuditChainEntry, error) {
	var (
		e                   domain.AuditChainEntry
		pos, seq            int64
		person, venue, decl *uuid.UUID
		from, to            *time.Time
		depth               int32
	)
	err := row.Scan(&e.EventID, &pos, &seq, &e.PrevHash, &e.Hash, &e.Kind, &e.Actor, &e.Role, &person, &venue, &decl,
		&e.Outcome, &e.Reason, &from, &to, &depth, &e.SourceEventID, &e.SourceType, &e.At)
	e.Position, e.Seq, e.Depth, e.From, e.To, e.At = uint64(pos), uint64(seq), int(depth), utc(from), utc(to), e.At.UTC()
	for _, p := range []struct {
		dst *uuid.UUID
		src *uuid.UUID
	}{{&e.PersonID, person}, {&e.VenueID, venue}, {&e.DeclarationID, decl}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
	return e, err
}
