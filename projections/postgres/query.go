package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// queries are the store's SQL with its schema filled in.
type queries struct {
	schema                                                             string
	checkpoint, lockCheckpoint, setCheckpoint                          string
	markApplied, storedPasses, insertHealth, insertAlerts              string
	countPasses                                                        string
	personRegistered, personVerified, personReleased, personErased     string
	declarationsErased                                                 string
	venueApplied, venueReviewed, subAdminAdded, subAdminRemoved        string
	person, personByHash, health, venue, alerts, passByID, passesByIDs string
	occupancy                                                          string
	factVenues, factPersons, factHealth                                string
}

func newQueries(schema string) queries {
	r := strings.NewReplacer("{s}.", schema+".")
	q := func(s string) string { return r.Replace(s) }
	const personCols = `p.person_id, p.name_masked, p.id_type, p.id_masked, p.id_hash, p.verification, p.erased,
		p.guardian_id, p.relation, p.registered_at, p.position,
		ARRAY(SELECT c.person_id FROM {s}.persons c WHERE c.guardian_id = p.person_id AND c.registered ORDER BY c.reg_position)`
	return queries{
		schema:         schema,
		checkpoint:     q(`SELECT position, last_recorded_at FROM {s}.projection_positions WHERE name = $1`),
		lockCheckpoint: q(`SELECT position, last_recorded_at FROM {s}.projection_positions WHERE name = $1 FOR UPDATE`),
		setCheckpoint:  q(`UPDATE {s}.projection_positions SET position = $2, updated_at = now(), last_recorded_at = $3 WHERE name = $1`),
		markApplied: q(`INSERT INTO {s}.applied_events (event_id, position)
			SELECT * FROM unnest($1::uuid[], $2::bigint[]) ON CONFLICT (event_id) DO NOTHING RETURNING event_id`),
		// Within the batch's days ± a day (storedPassesSlack): the
		// partitions pruned to those, not one probe per partition.
		countPasses:  q(countPassesSQL),
		storedPasses: q(`SELECT event_id FROM {s}.passes WHERE event_id = ANY($1::uuid[]) AND at >= $2 AND at < $3`),
		insertHealth: q(`INSERT INTO {s}.health_records
			(event_id, position, id_hash, occurred_at, code_colour, nat_result, nat_at, vaccine_doses)
			SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::timestamptz[], $8::int[])
			ON CONFLICT (event_id) DO NOTHING`),
		insertAlerts: q(`INSERT INTO {s}.alerts
			(event_id, position, district, venue_id, person_id, pass_event_id, code_colour, decision, reason, at)
			SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::uuid[], $5::uuid[], $6::uuid[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])
			ON CONFLICT (event_id, at) DO NOTHING`),
		personRegistered: q(`INSERT INTO {s}.persons AS p
			(person_id, registered, name_masked, id_type, id_masked, id_hash, verification, guardian_id, relation, registered_at, reg_position, position)
			VALUES ($1, true, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $9)
			ON CONFLICT (person_id) DO UPDATE SET registered = true, name_masked = EXCLUDED.name_masked,
				id_type = EXCLUDED.id_type, id_masked = EXCLUDED.id_masked, id_hash = EXCLUDED.id_hash,
				verification = CASE WHEN p.verification = '' THEN 'pending' ELSE p.verification END,
				guardian_id = EXCLUDED.guardian_id, relation = EXCLUDED.relation,
				registered_at = EXCLUDED.registered_at, reg_position = EXCLUDED.reg_position,
				position = GREATEST(p.position, EXCLUDED.position)`),
		// A released family registration: unregistered until the
		// document's owner registers it.
		personReleased: q(`UPDATE {s}.persons SET registered = false, guardian_id = NULL, relation = '', verification = '',
			position = GREATEST(position, $2) WHERE person_id = $1`),
		// An erased person: their masks blanked, their document no lookup
		// key; their passes stay as anonymous facts under their id.
		personErased: q(`UPDATE {s}.persons SET erased = true, name_masked = $2, id_masked = $3, id_hash = '',
			position = GREATEST(position, $4) WHERE person_id = $1`),
		// projections.EraseDeclaration, in SQL.
		declarationsErased: q(`UPDATE {s}.declarations SET origin = '', plate_number = '',
			contact_name = CASE WHEN kind = 'truck' THEN $2 ELSE contact_name END,
			contact_phone = CASE WHEN kind = 'truck' THEN $3 ELSE contact_phone END WHERE person_id = $1`),
		personVerified: q(`INSERT INTO {s}.persons AS p (person_id, verification, position) VALUES ($1, $2, $3)
			ON CONFLICT (person_id) DO UPDATE SET verification = EXCLUDED.verification,
				position = GREATEST(p.position, EXCLUDED.position)`),
		venueApplied: q(`INSERT INTO {s}.venues
			(venue_id, name, type, district, address, lat, lng, status, reason, manager_id, require_green, nat_within_hours, applied_at, reviewed_at, applied_position)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', '', $8, $9, $10, $11, NULL, $12)
			ON CONFLICT (venue_id) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type, district = EXCLUDED.district,
				address = EXCLUDED.address, lat = EXCLUDED.lat, lng = EXCLUDED.lng, status = 'pending', reason = '',
				manager_id = EXCLUDED.manager_id, require_green = EXCLUDED.require_green,
				nat_within_hours = EXCLUDED.nat_within_hours, applied_at = EXCLUDED.applied_at, reviewed_at = NULL,
				applied_position = EXCLUDED.applied_position`),
		venueReviewed:   q(`UPDATE {s}.venues SET status = $2, reason = $3, reviewed_at = $4 WHERE venue_id = $1`),
		subAdminAdded:   q(`INSERT INTO {s}.venue_admins (venue_id, person_id, position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`),
		subAdminRemoved: q(`DELETE FROM {s}.venue_admins WHERE venue_id = $1 AND person_id = $2`),

		person:       q(`SELECT ` + personCols + ` FROM {s}.persons p WHERE p.person_id = $1 AND p.registered`),
		personByHash: q(`SELECT ` + personCols + ` FROM {s}.persons p WHERE p.id_hash = $1 AND p.registered`),
		health: q(`SELECT c.code_colour, c.vaccine_doses, c.occurred_at, c.nat_result, n.nat_result, n.nat_at
			FROM (SELECT * FROM {s}.health_records WHERE id_hash = $1 ORDER BY occurred_at DESC, position DESC LIMIT 1) c
			LEFT JOIN LATERAL (SELECT nat_result, nat_at FROM {s}.health_records
				WHERE id_hash = $1 AND nat_at IS NOT NULL ORDER BY nat_at DESC, position DESC LIMIT 1) n ON true`),
		venue: q(`SELECT ` + venueCols + ` FROM {s}.venues v WHERE v.venue_id = $1`),
		alerts: q(`SELECT event_id, district, venue_id, person_id, pass_event_id, code_colour, decision, reason, at
			FROM {s}.alerts WHERE district = $1 ORDER BY at DESC, position DESC LIMIT $2`),
		passByID: q(`SELECT event_id, position, venue_id, person_id, direction, method, decision, reason, operator,
			guardian_id, s_name, s_colour, s_nat_result, s_nat_at, s_doses, s_venue_id, s_venue_name, s_at,
			s_direction, s_decision, s_reason FROM {s}.passes WHERE event_id = $1`),
		passesByIDs: q(`SELECT event_id, position, venue_id, person_id, direction, method, decision, reason, operator,
			guardian_id, s_name, s_colour, s_nat_result, s_nat_at, s_doses, s_venue_id, s_venue_name, s_at,
			s_direction, s_decision, s_reason FROM {s}.passes WHERE event_id = ANY($1)`),
		factVenues:  q(`SELECT ` + venueCols + ` FROM {s}.venues v WHERE v.venue_id = ANY($1::uuid[])`),
		factPersons: q(`SELECT ` + personCols + ` FROM {s}.persons p WHERE p.registered AND (p.person_id = ANY($1::uuid[]) OR p.id_hash = ANY($2::text[]))`),
		// Every health record of every person of the facts: domain.HealthAsOf
		// folds them at each pass's time.
		factHealth: q(`SELECT r.id_hash, r.occurred_at, r.position, r.code_colour, r.nat_result, r.nat_at, r.vaccine_doses
			FROM {s}.health_records r
			WHERE r.id_hash IN (SELECT p.id_hash FROM {s}.persons p
				WHERE p.registered AND p.id_hash <> '' AND (p.person_id = ANY($1::uuid[]) OR p.id_hash = ANY($2::text[])))`),
		occupancy: q(`SELECT count(*) FROM (
				SELECT DISTINCT ON (person_id) direction FROM {s}.passes
				WHERE venue_id = $1 AND at > $2 AND at <= $3 AND (direction = 'out' OR decision = 'pass')
				ORDER BY person_id, at DESC, position DESC) last
			WHERE direction = 'in'`),
	}
}

const venueCols = `v.venue_id, v.name, v.type, v.district, v.address, v.lat, v.lng, v.status, v.reason,
	v.manager_id, ARRAY(SELECT a.person_id FROM {s}.venue_admins a WHERE a.venue_id = v.venue_id ORDER BY a.position),
	v.require_green, v.nat_within_hours, v.applied_at, v.reviewed_at`

func (s *Store) sql(text string) string {
	return strings.ReplaceAll(text, "{s}.", s.schema+".")
}

func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// orZero is *p, or T's zero value for a NULL column.
func orZero[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// orEmpty is ids, or an empty list for none: a view's lists are never nil.
func orEmpty(ids []uuid.UUID) []uuid.UUID {
	if ids == nil {
		return []uuid.UUID{}
	}
	return ids
}

func scanPerson(row pgx.Row) (domain.PersonView, error) {
	var (
		v        domain.PersonView
		guardian *uuid.UUID
		regAt    *time.Time
		pos      int64
	)
	err := row.Scan(&v.ID, &v.NameMasked, &v.IDType, &v.IDMasked, &v.IDHash, &v.Verification, &v.Erased,
		&guardian, &v.Relation, &regAt, &pos, &v.FamilyMembers)
	if err != nil {
		return v, err
	}
	v.GuardianID, v.FamilyMembers = orZero(guardian), orEmpty(v.FamilyMembers)
	v.RegisteredAt, v.Position = utc(regAt), uint64(pos)
	return v, nil
}

func notFound(err error, format string, args ...any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Errorf(domain.ErrNotFound, format, args...)
	}
	return readErr(format+": %w", append(args, err)...)
}

// readErr is fmt.Errorf for a read's error, which also wraps
// ledger.ErrUnavailable when the error (the last of args) says that
// PostgreSQL could not be reached or did not answer: the pool is closed, a
// connection could not be made or was lost (the server shut it down), or
// the deadline passed. Any other error (bad SQL, a scan that does not fit)
// stays a bug.
func readErr(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if cause, ok := args[len(args)-1].(error); ok && outage(cause) {
		return fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
	}
	return err
}

// appendRows runs text, a read of many rows named what in its errors (through
// readErr), and appends each row, as scan reads it, to out: callers start
// from an empty list, so a read of no rows answers [] and not null.
func appendRows[T any](ctx context.Context, s *Store, out []T, what string, scan func(pgx.Row) (T, error),
	text string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, text, args...)
	if err != nil {
		return nil, readErr("%s: %w", what, err)
	}
	out, err = pgx.AppendRows(out, rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
	if err != nil {
		return nil, readErr("%s: %w", what, err)
	}
	return out, nil
}

// outage reports whether err means PostgreSQL is out of reach.
func outage(err error) bool {
	var connect *pgconn.ConnectError
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return false // the caller left; not the store's failure
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return true
	case errors.As(err, &connect), errors.Is(err, pgconn.ErrConnClosed), errors.As(err, &netErr),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-57P03: the server is
		// shutting down or starting (pg_terminate_backend is 57P01);
		// 53300: too many connections.
		c := pgErr.Code
		return strings.HasPrefix(c, "08") || c == "57P01" || c == "57P02" || c == "57P03" || c == "53300"
	}
	// pgxpool answers a closed pool with puddle's ErrClosedPool, a module
	// this package does not import.
	return err.Error() == "closed pool" || strings.HasSuffix(err.Error(), ": closed pool")
}

// Person implements ledger.ReadModel.
func (s *Store) Person(ctx context.Context, id uuid.UUID) (domain.PersonView, error) {
	v, err := scanPerson(s.pool.QueryRow(ctx, s.q.person, id))
	if err != nil {
		return domain.PersonView{}, notFound(err, "person %s", id)
	}
	return v, nil
}

// PersonByIDHash implements ledger.ReadModel.
func (s *Store) PersonByIDHash(ctx context.Context, idHash string) (domain.PersonView, error) {
	v, err := scanPerson(s.pool.QueryRow(ctx, s.q.personByHash, idHash))
	if err != nil {
		return domain.PersonView{}, notFound(err, "person with that ID document")
	}
	return v, nil
}

// Health implements ledger.ReadModel: colour and doses from the newest
// record (by occurred_at, position), the nucleic-acid result from the record
// with the newest test time (or the newest record when none has one).
func (s *Store) Health(ctx context.Context, idHash string) (domain.HealthView, bool, error) {
	h, err := scanHealth(s.pool.QueryRow(ctx, s.q.health, idHash))
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.HealthView{}, false, nil
	}
	if err != nil {
		return domain.HealthView{}, false, readErr("health status: %w", err)
	}
	return h, true, nil
}

// scanHealth reads the columns of the health query.
func scanHealth(row pgx.Row) (domain.HealthView, error) {
	var (
		h               domain.HealthView
		doses           int32
		at              time.Time
		natRes          *string
		natAt           *time.Time
		latestNATResult string
	)
	if err := row.Scan(&h.CodeColour, &doses, &at, &latestNATResult, &natRes, &natAt); err != nil {
		return domain.HealthView{}, err
	}
	h.VaccineDoses, h.RecordedAt, h.NATResult = int(doses), at.UTC(), latestNATResult
	if natRes != nil {
		h.NATResult, h.NATAt = *natRes, utc(natAt)
	}
	return h, nil
}

// PassFacts implements ledger.ReadModel: three queries sent in one batch,
// one round trip, and the stored passes by id in a second.
func (s *Store) PassFacts(ctx context.Context, q ledger.PassFactsQuery) (domain.PassFacts, error) {
	f := projections.NewPassFacts(q)
	hashes := q.IDHashes
	if hashes == nil {
		hashes = []string{}
	}
	wanted := make(map[string]bool, len(hashes))
	for _, h := range hashes {
		wanted[h] = true
	}
	var b pgx.Batch
	b.Queue(s.q.factVenues, q.Venues).Query(func(rows pgx.Rows) error {
		return eachRow(rows, func() error {
			v, err := scanVenue(rows)
			f.Venues[v.ID] = v
			return err
		})
	})
	b.Queue(s.q.factPersons, q.Persons, hashes).Query(func(rows pgx.Rows) error {
		return eachRow(rows, func() error {
			v, err := scanPerson(rows)
			f.Persons[v.ID] = v
			if wanted[v.IDHash] {
				f.ByIDHash[v.IDHash] = v.ID
			}
			return err
		})
	})
	b.Queue(s.q.factHealth, q.Persons, hashes).Query(func(rows pgx.Rows) error {
		return eachRow(rows, func() error {
			var (
				hash  string
				r     domain.HealthRecordFact
				pos   int64
				natAt *time.Time
				doses int32
			)
			if err := rows.Scan(&hash, &r.OccurredAt, &pos, &r.CodeColour, &r.NATResult, &natAt, &doses); err != nil {
				return err
			}
			r.OccurredAt, r.Position, r.NATAt, r.VaccineDoses = r.OccurredAt.UTC(), uint64(pos), utc(natAt), int(doses)
			f.Health[hash] = append(f.Health[hash], r)
			return nil
		})
	})
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return domain.PassFacts{}, readErr("pass facts: %w", err)
	}
	// The stored passes are looked up apart, planned for their ids
	// (Passes: a batch takes the pool's cached statements, and a generic
	// plan made while the live day's partition was empty scans it whole
	// once it fills): one more round trip, on this fallback path only.
	if len(q.EventIDs) > 0 {
		stored, err := s.Passes(ctx, q.EventIDs)
		if err != nil {
			return domain.PassFacts{}, err
		}
		maps.Copy(f.Stored, stored)
	}
	return f, nil
}

// eachRow calls scan for every row of rows and closes them.
func eachRow(rows pgx.Rows, scan func() error) error {
	defer rows.Close()
	for rows.Next() {
		if err := scan(); err != nil {
			return err
		}
	}
	return rows.Err()
}

func scanVenue(row pgx.Row) (domain.VenueView, error) {
	var (
		v          domain.VenueView
		reviewedAt *time.Time
		natHours   int32
	)
	err := row.Scan(&v.ID, &v.Name, &v.Type, &v.District, &v.Address, &v.Lat, &v.Lng, &v.Status, &v.Reason,
		&v.ManagerID, &v.Admins, &v.RequireGreen, &natHours, &v.AppliedAt, &reviewedAt)
	if err != nil {
		return v, err
	}
	v.Admins = orEmpty(v.Admins)
	v.NATWithinHours, v.AppliedAt, v.ReviewedAt = int(natHours), v.AppliedAt.UTC(), utc(reviewedAt)
	return v, nil
}

// Venue implements ledger.ReadModel.
func (s *Store) Venue(ctx context.Context, id uuid.UUID) (domain.VenueView, error) {
	v, err := scanVenue(s.pool.QueryRow(ctx, s.q.venue, id))
	if err != nil {
		return domain.VenueView{}, notFound(err, "venue %s", id)
	}
	return v, nil
}

// Venues implements ledger.ReadModel: in application order.
func (s *Store) Venues(ctx context.Context, f domain.VenueFilter) ([]domain.VenueView, error) {
	var c conds
	c.equal("v.district", f.District)
	c.equal("v.status", f.Status)
	text := `SELECT ` + venueCols + ` FROM {s}.venues v` + c.where() + " ORDER BY v.applied_position"
	if f.Limit > 0 {
		text += " LIMIT " + c.arg(f.Limit)
	}
	return appendRows(ctx, s, []domain.VenueView{}, "venues", scanVenue, s.sql(text), c.args...)
}

// Entries implements ledger.ReadModel: newest first by (at, position). The
// statement is built from the filters present, so the cursor and the window
// become bounds of the (venue_id, at, position) index scan.
func (s *Store) Entries(ctx context.Context, q domain.EntryQuery) ([]domain.Entry, error) {
	var c conds
	c.add("p.venue_id = ?", q.VenueID)
	c.window("p.at", q.From, q.To)
	c.equal("p.direction", q.Direction)
	c.equal("p.decision", q.Decision)
	if !q.AfterAt.IsZero() {
		c.add("(p.at, p.position) < (?, ?)", q.AfterAt, int64(q.AfterPosition))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	text := `SELECT p.event_id, p.person_id, COALESCE(pe.name_masked, ''), COALESCE(pe.id_masked, ''), p.at,
		p.direction, p.decision, p.method, p.operator, p.reason, p.position
		FROM {s}.passes p LEFT JOIN {s}.persons pe ON pe.person_id = p.person_id AND pe.registered` + c.where() + `
		ORDER BY p.at DESC, p.position DESC LIMIT ` + c.arg(limit)
	out := make([]domain.Entry, 0, min(limit, 64))
	return appendRows(ctx, s, out, "entries of venue "+q.VenueID.String(), scanEntry, s.sql(text), c.args...)
}

func scanEntry(row pgx.Row) (domain.Entry, error) {
	var (
		e   domain.Entry
		pos int64
	)
	err := row.Scan(&e.EventID, &e.PersonID, &e.NameMasked, &e.IDMasked, &e.At, &e.Direction,
		&e.Decision, &e.Method, &e.Operator, &e.Reason, &pos)
	e.At, e.Position = e.At.UTC(), uint64(pos)
	return e, err
}

// conds gathers the WHERE conditions of a statement built from the filters
// present, with their arguments: each ? in a condition stands for the
// placeholder ($1, $2, ...) of the next of its values.
type conds struct {
	list []string
	args []any
}

// add appends cond with the values of its ?s.
func (c *conds) add(cond string, values ...any) {
	for _, v := range values {
		cond = strings.Replace(cond, "?", c.arg(v), 1)
	}
	c.list = append(c.list, cond)
}

// equal appends col = v when v is set: a filter left empty matches all.
func (c *conds) equal(col, v string) {
	if v != "" {
		c.add(col+" = ?", v)
	}
}

// window appends the [from, to) conditions on col; a zero time is no bound.
func (c *conds) window(col string, from, to time.Time) {
	if !from.IsZero() {
		c.add(col+" >= ?", from)
	}
	if !to.IsZero() {
		c.add(col+" < ?", to)
	}
}

// arg appends v, an argument of the statement, and returns its placeholder.
func (c *conds) arg(v any) string {
	c.args = append(c.args, v)
	return "$" + strconv.Itoa(len(c.args))
}

// where returns the WHERE clause, with a leading space, of the conditions;
// "" when there are none.
func (c *conds) where() string {
	if len(c.list) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.list, " AND ")
}

// Trace implements ledger.ReadModel: oldest first.
func (s *Store) Trace(ctx context.Context, personID uuid.UUID, from, to time.Time) ([]domain.Visit, error) {
	var c conds
	c.add("p.person_id = ?", personID)
	c.window("p.at", from, to)
	text := `SELECT p.event_id, p.venue_id, COALESCE(v.name, ''), COALESCE(v.type, ''), COALESCE(v.district, ''),
		COALESCE(v.address, ''), p.at, p.direction, p.decision
		FROM {s}.passes p LEFT JOIN {s}.venues v ON v.venue_id = p.venue_id` + c.where() + ` ORDER BY p.at, p.position`
	return appendRows(ctx, s, []domain.Visit{}, "trace of person "+personID.String(), scanVisit, s.sql(text), c.args...)
}

func scanVisit(row pgx.Row) (domain.Visit, error) {
	var v domain.Visit
	err := row.Scan(&v.EventID, &v.VenueID, &v.VenueName, &v.VenueType, &v.District, &v.Address,
		&v.At, &v.Direction, &v.Decision)
	v.At = v.At.UTC()
	return v, err
}

// Occupancy implements ledger.ReadModel: the people whose last pass at the
// venue in (now−dwell, now] is a passed entry.
func (s *Store) Occupancy(ctx context.Context, venueID uuid.UUID, now time.Time, dwell time.Duration) (int, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, s.q.occupancy, venueID, now.Add(-dwell), now).Scan(&n); err != nil {
		return 0, readErr("occupancy of venue %s: %w", venueID, err)
	}
	return int(n), nil
}

// Alerts implements ledger.ReadModel: newest first.
func (s *Store) Alerts(ctx context.Context, district string, limit int) ([]domain.Alert, error) {
	if limit <= 0 {
		limit = 50
	}
	return appendRows(ctx, s, []domain.Alert{}, "alerts of "+district, scanAlert, s.q.alerts, district, limit)
}

func scanAlert(row pgx.Row) (domain.Alert, error) {
	var a domain.Alert
	err := row.Scan(&a.EventID, &a.District, &a.VenueID, &a.PersonID, &a.PassEventID, &a.CodeColour,
		&a.Decision, &a.Reason, &a.At)
	a.At = a.At.UTC()
	return a, err
}

// Pass implements ledger.ReadModel.
func (s *Store) Pass(ctx context.Context, eventID uuid.UUID) (domain.PassView, bool, error) {
	v, err := scanPass(s.pool.QueryRow(ctx, s.q.passByID, eventID))
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.PassView{}, false, nil
	}
	if err != nil {
		return domain.PassView{}, false, readErr("pass %s: %w", eventID, err)
	}
	return v, true, nil
}

// Passes returns the stored passes among eventIDs, in one query.
func (s *Store) Passes(ctx context.Context, eventIDs []uuid.UUID) (map[uuid.UUID]domain.PassView, error) {
	rows, err := s.pool.Query(ctx, s.q.passesByIDs, customPlan, eventIDs)
	if err != nil {
		return nil, readErr("passes by id: %w", err)
	}
	defer rows.Close()
	found := make(map[uuid.UUID]domain.PassView)
	for rows.Next() {
		v, err := scanPass(rows)
		if err != nil {
			return nil, readErr("passes by id: %w", err)
		}
		found[v.EventID] = v
	}
	if err := rows.Err(); err != nil {
		return nil, readErr("passes by id: %w", err)
	}
	return found, nil
}

// scanPass reads one row of the passByID / passesByIDs queries.
func scanPass(row pgx.Row) (domain.PassView, error) {
	var (
		v                domain.PassView
		pos              int64
		guardian, sVenue *uuid.UUID
		natAt, sAt       *time.Time
		doses            int32
		p                = &v.Pass
		sc               = &p.Screen
	)
	err := row.Scan(&v.EventID, &pos, &p.VenueID, &p.PersonID,
		&p.Direction, &p.Method, &p.Decision, &p.Reason, &p.Operator, &guardian, &sc.NameMasked, &sc.CodeColour,
		&sc.NATResult, &natAt, &doses, &sVenue, &sc.VenueName, &sAt, &sc.Direction, &sc.Decision, &sc.Reason)
	if err != nil {
		return domain.PassView{}, err
	}
	v.Position = uint64(pos)
	p.GuardianID, sc.VenueID = orZero(guardian), orZero(sVenue)
	sc.NATAt, sc.At, sc.VaccineDoses = utc(natAt), utc(sAt), int(doses)
	return v, nil
}

// HasPassBefore reports whether the read models hold a pass at a position
// below position. projections/facts asks it once, to learn whether its
// copy of the passes, replayed from the log, may lack passes the log no
// longer holds (expired after the retention) while the tables still do.
func (s *Store) HasPassBefore(ctx context.Context, position uint64) (bool, error) {
	var found bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.schema+`.passes WHERE position < $1)`,
		int64(min(position, math.MaxInt64))).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("passes before %d: %w", position, err)
	}
	return found, nil
}
