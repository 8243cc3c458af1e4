package postgres

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// countPasses adds a batch's new passes to the dashboard's counts
// (migrations/0007_dashboard.sql) and to who is inside (0010_presence.sql)
// in Apply's transaction: one statement, whatever the batch's size. What a
// pass counts (domain.CountPass), its hour (domain.PassHour) and whether it
// moves a person in or out (Occupancy's rule: an exit, or an entry let in)
// are decided here in Go; the venue's district and type come from the
// venues table.
func (s *Store) countPasses(ctx context.Context, tx pgx.Tx, cs []*projections.Change) error {
	n := len(cs)
	var (
		hours     = make([]time.Time, n)
		at        = make([]time.Time, n)
		venues    = make([]uuid.UUID, n)
		denied    = make([]int64, n)
		abnormal  = make([]int64, n)
		persons   = make([]uuid.UUID, n)
		positions = make([]int64, n)
		moves     = make([]bool, n)
		inside    = make([]bool, n)
	)
	for i, c := range cs {
		ev := c.Event.(*domain.PassRecorded)
		k := domain.CountPass(*ev)
		hours[i], at[i], venues[i], denied[i], abnormal[i] = domain.PassHour(c.OccurredAt), c.OccurredAt, ev.VenueID, k.Denied, k.Abnormal
		persons[i], positions[i] = ev.PersonID, int64(c.Position)
		inside[i] = ev.Direction == domain.DirectionIn && ev.Decision == domain.DecisionPass
		moves[i] = inside[i] || ev.Direction == domain.DirectionOut
	}
	if _, err := tx.Exec(ctx, s.q.countPasses, hours, at, venues, denied, abnormal, persons, positions, moves, inside); err != nil {
		return fmt.Errorf("count passes for the dashboard: %w", err)
	}
	return nil
}

const countPassesSQL = `WITH b AS (
		SELECT b.hour, b.at, b.venue_id, b.denied, b.abnormal, b.person_id, b.position, b.moves, b.inside,
			coalesce(v.district, '') AS district, coalesce(v.type, '') AS venue_type
		FROM unnest($1::timestamptz[], $2::timestamptz[], $3::uuid[], $4::bigint[], $5::bigint[],
				$6::uuid[], $7::bigint[], $8::boolean[], $9::boolean[])
			AS b(hour, at, venue_id, denied, abnormal, person_id, position, moves, inside)
		LEFT JOIN {s}.venues v ON v.venue_id = b.venue_id),
	presence AS (
		INSERT INTO {s}.presence AS p (venue_id, person_id, at, position, inside)
		SELECT DISTINCT ON (venue_id, person_id) venue_id, person_id, at, position, inside FROM b WHERE moves
		ORDER BY venue_id, person_id, at DESC, position DESC
		ON CONFLICT (venue_id, person_id) DO UPDATE SET at = EXCLUDED.at, position = EXCLUDED.position, inside = EXCLUDED.inside
		WHERE (EXCLUDED.at, EXCLUDED.position) > (p.at, p.position)),
	hours AS (
		INSERT INTO {s}.dashboard_hours AS h (hour, district, venue_type, passes, denied, abnormal)
		SELECT hour, district, venue_type, count(*), sum(denied), sum(abnormal) FROM b GROUP BY 1, 2, 3
		ON CONFLICT (hour, district, venue_type) DO UPDATE SET passes = h.passes + EXCLUDED.passes,
			denied = h.denied + EXCLUDED.denied, abnormal = h.abnormal + EXCLUDED.abnormal),
	last AS (
		INSERT INTO {s}.dashboard_venues AS d (venue_id, last_at)
		SELECT venue_id, max(at) FROM b GROUP BY 1
		ON CONFLICT (venue_id) DO UPDATE SET last_at = greatest(d.last_at, EXCLUDED.last_at))
	INSERT INTO {s}.dashboard_held AS d (district, day, passes)
	SELECT district, (at AT TIME ZONE 'UTC')::date, count(*) FROM b GROUP BY 1, 2
	ON CONFLICT (district, day) DO UPDATE SET passes = d.passes + EXCLUDED.passes`

// The dashboard's reads, sent together in one read-only snapshot.
const (
	dashHoursSQL = `SELECT hour, district, venue_type, passes, denied, abnormal FROM {s}.dashboard_hours
		WHERE hour >= $1 AND hour < $2 AND ($3 = '' OR district = $3)`
	dashHeldSQL          = `SELECT coalesce(sum(passes), 0) FROM {s}.dashboard_held WHERE $1 = '' OR district = $1`
	dashPendingVenuesSQL = `SELECT count(*) FROM {s}.venues WHERE status = 'pending' AND ($1 = '' OR district = $1)`
	dashPendingDeclsSQL  = `SELECT count(*) FROM {s}.declarations WHERE queued AND kind <> '' AND status = $2 AND ($1 = '' OR district = $1)`
	// The busiest venues, in two parts whose lists Dashboard merges. A
	// venue with no pass after Now counts its presence rows inside within
	// its dwell (each is its person's newest move there, at or before
	// Now); one with a later pass (a dashboard of the past: none at the
	// present) reads its passes within the dwell, each person's last one.
	dashOccupancyNowSQL = `WITH d(type, secs) AS (SELECT * FROM unnest($2::text[], $3::float8[])),
		p AS (SELECT venue_id, at FROM {s}.presence
			WHERE inside AND at > $1::timestamptz - $4::float8 * interval '1 second' AND at <= $1::timestamptz)
		SELECT v.venue_id, v.name, v.type, v.district, count(*) AS n
		FROM p
		JOIN {s}.venues v ON v.venue_id = p.venue_id
		JOIN d ON d.type = v.type AND p.at > $1::timestamptz - d.secs * interval '1 second'
		WHERE ($5::text = '' OR v.district = $5::text)
			AND NOT EXISTS (SELECT FROM {s}.dashboard_venues dv WHERE dv.venue_id = p.venue_id AND dv.last_at > $1::timestamptz)
		GROUP BY v.venue_id
		ORDER BY n DESC, v.venue_id LIMIT $6` // the memory store's order: uuids compare as bytes
	dashLaterSQL         = `SELECT EXISTS (SELECT FROM {s}.dashboard_venues WHERE last_at > $1)`
	dashOccupancyPastSQL = `WITH d(type, secs) AS (SELECT * FROM unnest($2::text[], $3::float8[]))
		SELECT v.venue_id, v.name, v.type, v.district, o.n
		FROM {s}.dashboard_venues dv
		JOIN {s}.venues v ON v.venue_id = dv.venue_id
		JOIN d ON d.type = v.type
		CROSS JOIN LATERAL (
			SELECT count(*) AS n FROM (
				SELECT DISTINCT ON (person_id) direction FROM {s}.passes p
				WHERE p.venue_id = v.venue_id AND p.at > $1::timestamptz - d.secs * interval '1 second' AND p.at <= $1::timestamptz
					AND (p.direction = 'out' OR p.decision = 'pass')
				ORDER BY person_id, at DESC, position DESC) last
			WHERE direction = 'in') o
		WHERE dv.last_at > $1::timestamptz AND ($4::text = '' OR v.district = $4::text) AND o.n > 0
		ORDER BY o.n DESC, v.venue_id LIMIT $5`
)

// Dashboard implements ledger.ReadModel: the counts Apply keeps, the
// occupancy (Occupancy's rule) of the venues with a pass within their
// dwell, the review queues' lengths; one snapshot, one round trip.
func (s *Store) Dashboard(ctx context.Context, q domain.DashboardQuery) (domain.Dashboard, error) {
	dwell := q.Dwell
	if dwell == nil {
		dwell = domain.DefaultDwell
	}
	out := domain.Dashboard{ByDistrict: map[string]domain.PassCounts{}, ByVenueType: map[string]domain.PassCounts{}}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return out, readErr("dashboard: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	types := append(domain.VenueTypes(), "")
	secs := make([]float64, len(types))
	longest := 0.0
	for i, t := range types {
		secs[i] = dwell(t).Seconds()
		longest = max(longest, secs[i])
	}
	var b pgx.Batch
	from, to := q.From, q.To
	if from.IsZero() || !to.After(from) {
		from, to = time.Time{}, time.Time{}
	} else {
		from = domain.PassHour(from)
	}
	hourly := map[int64]*domain.HourCounts{}
	b.Queue(s.sql(dashHoursSQL), from, to, q.District).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				h             time.Time
				district, typ string
				n             domain.PassCounts
			)
			if err := rows.Scan(&h, &district, &typ, &n.Passes, &n.Denied, &n.Abnormal); err != nil {
				return err
			}
			hc := hourly[h.Unix()]
			if hc == nil {
				hc = &domain.HourCounts{Hour: h.UTC()}
				hourly[h.Unix()] = hc
			}
			hc.Add(n)
			dc, tc := out.ByDistrict[district], out.ByVenueType[typ]
			dc.Add(n)
			tc.Add(n)
			out.ByDistrict[district], out.ByVenueType[typ] = dc, tc
		}
		return rows.Err()
	})
	b.Queue(s.sql(dashHeldSQL), q.District).QueryRow(func(row pgx.Row) error { return row.Scan(&out.PassesHeld) })
	b.Queue(s.sql(dashPendingVenuesSQL), q.District).QueryRow(func(row pgx.Row) error { return row.Scan(&out.PendingVenues) })
	b.Queue(s.sql(dashPendingDeclsSQL), q.District, domain.DeclarationPending).QueryRow(func(row pgx.Row) error {
		return row.Scan(&out.PendingDeclarations)
	})
	var (
		later bool
		top   func(pgx.Rows) error
	)
	if q.Top > 0 {
		top = func(rows pgx.Rows) error {
			for rows.Next() {
				var v domain.VenueOccupancy
				var n int64
				if err := rows.Scan(&v.VenueID, &v.Name, &v.Type, &v.District, &n); err != nil {
					return err
				}
				v.Occupancy = int(n)
				out.OccupancyTop = append(out.OccupancyTop, v)
			}
			return rows.Err()
		}
		b.Queue(s.sql(dashOccupancyNowSQL), q.Now, types, secs, longest, q.District, q.Top).Query(top)
		// The part of the past only when a venue has a pass after Now
		// (never at the present): planning it over the pass partitions
		// costs more than the whole present part.
		b.Queue(s.sql(dashLaterSQL), q.Now).QueryRow(func(row pgx.Row) error { return row.Scan(&later) })
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return out, readErr("dashboard: %w", err)
	}
	if later {
		rows, err := tx.Query(ctx, s.sql(dashOccupancyPastSQL), q.Now, types, secs, q.District, q.Top)
		if err == nil {
			err = top(rows)
			rows.Close()
		}
		if err != nil {
			return out, readErr("dashboard: %w", err)
		}
	}
	slices.SortFunc(out.OccupancyTop, func(a, b domain.VenueOccupancy) int {
		return cmp.Or(cmp.Compare(b.Occupancy, a.Occupancy), bytes.Compare(a.VenueID[:], b.VenueID[:]))
	})
	out.OccupancyTop = out.OccupancyTop[:min(len(out.OccupancyTop), q.Top)]
	if !from.IsZero() {
		for h := from; h.Before(to); h = h.Add(time.Hour) {
			hc := domain.HourCounts{Hour: h.UTC()}
			if n := hourly[h.Unix()]; n != nil {
				hc = *n
			}
			out.Total.Add(hc.PassCounts)
			out.Hours = append(out.Hours, hc)
		}
	}
	return out, nil
}
