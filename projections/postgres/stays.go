package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The stays table (migration 0006) holds domain.Presences over all the
// passes, under the store's stay rules: Apply keeps it so, batch by batch,
// and Open builds it from the passes when it was built under other rules
// (or never). A stay depends only on its passes' neighbours less than its
// venue type's maximum stay L apart (Presences), so a batch's new passes of
// a person at a venue between lo and hi change only that pair's stays that
// meet [lo-L, hi+L], and those are exact when built from the pair's passes
// in [lo-3L, hi+3L]: Apply reads those, builds the stays, and replaces the
// pair's stays meeting [lo-L, hi+L] with them (writing only those that
// changed).

var stayColumns = []string{"person_id", "venue_id", "start_at", "end_at", "has_entry", "has_exit"}

// stayRow is st as COPY takes it.
func stayRow(st domain.Presence) []any {
	return []any{[16]byte(st.PersonID), [16]byte(st.VenueID), st.Start, st.End, st.Entry, st.Exit}
}

// stayKey is a person at a venue: the stays Presences builds separately.
type stayKey struct{ person, venue uuid.UUID }

// span is when a pair's passes that changed lie.
type span struct{ lo, hi time.Time }

// applyStays updates the stays for the passes a batch inserted (inside its
// transaction, after they are in the passes table).
func (s *Store) applyStays(ctx context.Context, tx pgx.Tx, inserted []*projections.Change) error {
	if len(inserted) == 0 || s.skipStays {
		return nil
	}
	spans := make(map[stayKey]span)
	var (
		newest time.Time
		fresh  []domain.PassPoint
	)
	for _, c := range inserted {
		if c.RecordedAt.After(newest) {
			newest = c.RecordedAt
		}
		ev := c.Event.(*domain.PassRecorded)
		if ev.Direction != domain.DirectionOut && (ev.Direction != domain.DirectionIn || ev.Decision != domain.DecisionPass) {
			continue // a refused entry is no stay and changes none (Presences)
		}
		k := stayKey{ev.PersonID, ev.VenueID}
		// As the passes table holds it (pgx sends whole microseconds).
		at := c.OccurredAt.Truncate(time.Microsecond)
		fresh = append(fresh, domain.PassPoint{PersonID: ev.PersonID, VenueID: ev.VenueID, At: at,
			Direction: ev.Direction, Decision: ev.Decision})
		sp, ok := spans[k]
		if !ok {
			sp = span{at, at}
		}
		if at.Before(sp.lo) {
			sp.lo = at
		}
		if at.After(sp.hi) {
			sp.hi = at
		}
		spans[k] = sp
	}
	if err := s.restay(ctx, tx, spans, fresh); err != nil {
		return err
	}
	// Stays kept under other rules than the tables record (replicas
	// started with different --dwell or --max-stay) are no one's: the
	// rules are cleared, so every trace reads passes until an Open builds
	// the stays again.
	if _, err := tx.Exec(ctx, s.sql(`UPDATE {s}.stay_state SET newest_recorded_at =
		GREATEST(newest_recorded_at, $1::timestamptz), `+disownRules(2)),
		nullTime(newest), s.rulesKey); err != nil {
		return fmt.Errorf("stay state: %w", err)
	}
	return nil
}

// disownRules is the SET clause that clears the rules stay_state records
// unless they are the writer's ($n, its rulesKey): stays written under other
// rules than the tables' are no one's.
func disownRules(n int) string {
	return fmt.Sprintf(`rules = CASE WHEN rules = $%d THEN rules ELSE '' END`, n)
}

// widened lays out a batch of pairs' spans as the statements on stays take
// them, unnested arrays with one element a pair in one order: each pair's
// person and venue, its span and its venue type's maximum stay L. Lo and hi
// widen the spans by multiples of L (see the top of this file).
type widened struct {
	persons, venues [][16]byte
	keys            []stayKey
	spans           []span
	maxStay         []time.Duration
	types           map[uuid.UUID]string // the pairs' venue types
}

// widen reads the types of the venues of spans (their maximum stays) and
// lays the spans out as widened.
func (s *Store) widen(ctx context.Context, tx pgx.Tx, spans map[stayKey]span) (widened, error) {
	venueSet := make(map[uuid.UUID]bool)
	for k := range spans {
		venueSet[k.venue] = true
	}
	types, err := s.typesOf(ctx, tx, venueSet)
	if err != nil {
		return widened{}, err
	}
	n := len(spans)
	w := widened{
		persons: make([][16]byte, 0, n), venues: make([][16]byte, 0, n),
		keys: make([]stayKey, 0, n), spans: make([]span, 0, n), maxStay: make([]time.Duration, 0, n), types: types,
	}
	for k, sp := range spans {
		w.persons, w.venues = append(w.persons, k.person), append(w.venues, k.venue)
		w.keys, w.spans = append(w.keys, k), append(w.spans, sp)
		w.maxStay = append(w.maxStay, s.rules.MaxStayOf(types[k.venue]))
	}
	return w, nil
}

// lo returns each pair's span start less k times its L.
func (w widened) lo(k int) []time.Time {
	out := make([]time.Time, len(w.spans))
	for i, sp := range w.spans {
		out[i] = sp.lo.Add(-time.Duration(k) * w.maxStay[i])
	}
	return out
}

// hi returns each pair's span end plus k times its L.
func (w widened) hi(k int) []time.Time {
	out := make([]time.Time, len(w.spans))
	for i, sp := range w.spans {
		out[i] = sp.hi.Add(time.Duration(k) * w.maxStay[i])
	}
	return out
}

// keep returns each pair's span widened by its L, by pair: the stays the
// statements replace, which writeStays writes again.
func (w widened) keep() map[stayKey]span {
	out := make(map[stayKey]span, len(w.keys))
	for i, k := range w.keys {
		l := w.maxStay[i]
		out[k] = span{w.spans[i].lo.Add(-l), w.spans[i].hi.Add(l)}
	}
	return out
}

// writeStays builds the stays of points (Presences) and writes those of
// them that meet their pair's span in keep, raising the venues' longest
// stays to theirs. The caller has deleted the stored stays that meet the
// spans (replaced nil), or passes them in replaced, counted by what they
// hold: a stay built again as often as it is stored stays as it is; for any
// other, every stored copy is deleted and every built one copied. (Stays
// can be equal, and two can share a start: two exits at one instant with no
// entry, two entries at one instant. So a stay is named by all it holds,
// and copies are counted.)
func (s *Store) writeStays(ctx context.Context, tx pgx.Tx, points []domain.PassPoint, keep map[stayKey]span, replaced map[stayID]int) error {
	built := make(map[stayID]int)
	var order []domain.Presence // the built stays in Presences' order, each once
	for _, st := range domain.Presences(points, s.rules) {
		sp := keep[stayKey{st.PersonID, st.VenueID}]
		if st.Start.After(sp.hi) || st.End.Before(sp.lo) {
			continue
		}
		id := idOf(st)
		if built[id] == 0 {
			order = append(order, st)
		}
		built[id]++
	}
	var (
		out     [][]any
		longest = make(map[uuid.UUID]time.Duration)
		gone    []stayID
	)
	for _, st := range order {
		id := idOf(st)
		if replaced[id] == built[id] {
			delete(replaced, id) // unchanged: it stays as it is
			continue
		}
		if replaced[id] > 0 {
			gone = append(gone, id)
			delete(replaced, id)
		}
		for range built[id] {
			out = append(out, stayRow(st))
		}
		raiseSpan(longest, st)
	}
	for id := range replaced { // stored, not built again
		gone = append(gone, id)
	}
	if len(gone) > 0 {
		var (
			persons, venues [][16]byte
			starts, ends    []time.Time
			entries, exits  []bool
		)
		for _, id := range gone {
			persons, venues = append(persons, id.person), append(venues, id.venue)
			starts, ends = append(starts, time.UnixMicro(id.start)), append(ends, time.UnixMicro(id.end))
			entries, exits = append(entries, id.entry), append(exits, id.exit)
		}
		if _, err := tx.Exec(ctx, s.sql(`DELETE FROM {s}.stays x
			USING unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::timestamptz[], $5::boolean[], $6::boolean[])
				AS d(person_id, venue_id, start_at, end_at, has_entry, has_exit)
			WHERE x.person_id = d.person_id AND x.start_at = d.start_at AND x.venue_id = d.venue_id
				AND x.end_at = d.end_at AND x.has_entry = d.has_entry AND x.has_exit = d.has_exit`),
			persons, venues, starts, ends, entries, exits); err != nil {
			return fmt.Errorf("replace stays: %w", err)
		}
	}
	if len(out) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.schema, "stays"}, stayColumns, pgx.CopyFromRows(out)); err != nil {
			return fmt.Errorf("copy stays: %w", err)
		}
	}
	return s.growSpans(ctx, tx, longest)
}

// RetireStays forgets the stays of passes the tables no longer hold: call
// it after deleting the passes that occurred before cutoff (retention). It
// deletes the stays that hold a pass before cutoff and writes as a stay of
// its own each exit after cutoff whose entry before it is gone. Stays are
// movements: they must not outlive their passes. RetirePasses does it
// inside its own transaction.
func (s *Store) RetireStays(ctx context.Context, cutoff time.Time) error {
	tx, err := s.beginLocked(ctx)
	if err != nil {
		return fmt.Errorf("retire stays: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := s.retireStays(ctx, tx, time.Time{}, cutoff); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// retireStays is RetireStays inside tx, which holds the position row.
//
// A stay's passes are its entry at its start and its exit at its end
// (Presence's Entry and Exit), and a stay depends on no pass but those and
// the open entry before them (Presences). So, of the stays that start
// before cutoff: an exit alone after cutoff (a dwell before its exit) holds
// no pass before it and stays as it is; every other holds a pass before
// cutoff and is deleted. One with its entry before cutoff and its exit
// after it leaves that exit, which closes no entry now: Presences makes it
// the dwell before it, and no later stay of its pair changes (no counting
// pass of the pair lies between an entry and the exit that closes it, and
// after an exit no entry is open either way). So those exits alone are
// written from the crossing stays themselves. (Their pairs' stays used to
// be built again from the pairs' passes: at a cut-off in a city's morning,
// 84,000 pairs, 15 s of the 16-19 s a day of the 10 M dense city took to
// retire at once; before that, every pair with a stay before cutoff was
// built again at every sweep: 2-3 s a sweep on a city's day of 714,000
// passes, 55 s for a day at once.)
//
// since is the cut-off of the retirement before (zero: none, or unknown),
// which left no stay starting before it but the exits alone after it, and
// those start no earlier than since less the longest stay: the ranges
// start there. From the start of the index, the sweep after a day's stays
// were deleted walked every one of them again (dead rows until a vacuum).
func (s *Store) retireStays(ctx context.Context, tx pgx.Tx, since, cutoff time.Time) error {
	// Each statement is one range of stays_venue_start per venue that has
	// stays, from $2 less the longest stay to the cut-off $1: first the
	// exits of the stays crossing the cut-off (they start within the
	// longest stay before it), then the delete.
	const ranges = `venue_id = ANY(ARRAY(SELECT venue_id FROM {s}.stay_spans))
		AND start_at >= $2::timestamptz - (SELECT coalesce(max(longest), '0') FROM {s}.stay_spans) AND start_at < $1`
	rows, err := tx.Query(ctx, s.sql(`SELECT person_id, venue_id, end_at FROM {s}.stays
		WHERE `+ranges+` AND has_entry AND has_exit AND end_at >= $1`), cutoff, cutoff)
	if err != nil {
		return fmt.Errorf("retire stays: %w", err)
	}
	var exits []domain.PassPoint
	venues := make(map[uuid.UUID]bool)
	for rows.Next() {
		var (
			p, v [16]byte
			at   time.Time
		)
		if err := rows.Scan(&p, &v, &at); err != nil {
			rows.Close()
			return fmt.Errorf("retire stays: %w", err)
		}
		exits = append(exits, domain.PassPoint{PersonID: p, VenueID: v, At: at, Direction: domain.DirectionOut, Decision: domain.DecisionPass})
		venues[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("retire stays: %w", err)
	}
	if _, err := tx.Exec(ctx, s.sql(`DELETE FROM {s}.stays WHERE `+ranges+` AND (has_entry OR end_at < $1)`),
		cutoff, lowBound(since)); err != nil {
		return fmt.Errorf("retire stays: %w", err)
	}
	if len(exits) == 0 {
		return nil
	}
	types, err := s.typesOf(ctx, tx, venues)
	if err != nil {
		return fmt.Errorf("retire stays: %w", err)
	}
	for i := range exits {
		exits[i].VenueType = types[exits[i].VenueID]
	}
	alone := domain.Presences(exits, s.rules)
	// In person order: the copy's inserts into stays_person_start then
	// walk that index once, in its order (those into stays_venue_start all
	// fall near the cut-off, a few pages a venue).
	slices.SortFunc(alone, func(a, b domain.Presence) int { return bytes.Compare(a.PersonID[:], b.PersonID[:]) })
	out := make([][]any, 0, len(alone))
	spans := make(map[uuid.UUID]time.Duration)
	for _, st := range alone {
		out = append(out, stayRow(st))
		raiseSpan(spans, st)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.schema, "stays"}, stayColumns, pgx.CopyFromRows(out)); err != nil {
		return fmt.Errorf("retire stays: copy the exits alone: %w", err)
	}
	// The exits' dwell is this Store's rules' (as Apply's stays are).
	if _, err := tx.Exec(ctx, s.sql(`UPDATE {s}.stay_state SET `+disownRules(1)), s.rulesKey); err != nil {
		return fmt.Errorf("retire stays: stay state: %w", err)
	}
	return s.growSpans(ctx, tx, spans)
}

// restay builds again the stays of each pair whose new passes (fresh, not
// yet among the stays) lie between its span's lo and hi, from the pair's
// stays instead of its passes: every counting pass is the entry or the
// exit of exactly one stay (Presence's Entry and Exit), so the pair's stays
// meeting [lo-3L, hi+3L] give back every pass of it there, and with the new
// ones the stays meeting [lo-L, hi+L] are exact (see the top of this file).
// One statement reads those; writeStays writes the difference.
func (s *Store) restay(ctx context.Context, tx pgx.Tx, spans map[stayKey]span, fresh []domain.PassPoint) error {
	if len(spans) == 0 {
		return nil
	}
	w, err := s.widen(ctx, tx, spans)
	if err != nil {
		return err
	}
	// The pair's stays near its span, and which of them meet the span
	// widened by L (the ones its new passes may change). Only the stays
	// that changed are written: most pairs gain one stay and keep the
	// others, which are neither deleted nor copied again (each row copied
	// is an insert into two indexes keyed across the whole table). The read
	// is of the index alone (stays_person_start includes every column read
	// here): a row's heap page is a random read in a table of a whole city,
	// and at 10 M passes those reads were most of a batch's time.
	rows, err := tx.Query(ctx, s.sql(`SELECT x.person_id, x.venue_id, x.start_at, x.end_at, x.has_entry, x.has_exit,
			x.start_at <= w.hi1 AND x.end_at >= w.lo1
		FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[])
			AS w(person_id, venue_id, floor, lo3, hi3, lo1, hi1)
		CROSS JOIN LATERAL (SELECT person_id, venue_id, start_at, end_at, has_entry, has_exit FROM {s}.stays x
			WHERE x.person_id = w.person_id AND x.start_at >= w.floor AND x.start_at <= w.hi3 AND x.venue_id = w.venue_id
			AND x.end_at >= w.lo3 OFFSET 0) x`),
		w.persons, w.venues, w.lo(4), w.lo(3), w.hi(3), w.lo(1), w.hi(1))
	if err != nil {
		return fmt.Errorf("replace stays: %w", err)
	}
	points := fresh
	replaced := make(map[stayID]int)
	for rows.Next() {
		var (
			st       domain.Presence
			pid, vid [16]byte
			meets    bool
		)
		if err := rows.Scan(&pid, &vid, &st.Start, &st.End, &st.Entry, &st.Exit, &meets); err != nil {
			rows.Close()
			return fmt.Errorf("replace stays: %w", err)
		}
		st.PersonID, st.VenueID = pid, vid
		if meets {
			replaced[idOf(st)]++
		}
		if st.Entry {
			points = append(points, domain.PassPoint{PersonID: st.PersonID, VenueID: st.VenueID, At: st.Start,
				Direction: domain.DirectionIn, Decision: domain.DecisionPass})
		}
		if st.Exit {
			points = append(points, domain.PassPoint{PersonID: st.PersonID, VenueID: st.VenueID, At: st.End,
				Direction: domain.DirectionOut, Decision: domain.DecisionPass})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("replace stays: %w", err)
	}
	for i := range points {
		points[i].VenueType = w.types[points[i].VenueID]
	}
	return s.writeStays(ctx, tx, points, w.keep(), replaced)
}

// stayID is what makes two stays the same (times in whole microseconds,
// as the table holds them).
type stayID struct {
	person, venue uuid.UUID
	start, end    int64
	entry, exit   bool
}

func idOf(st domain.Presence) stayID {
	return stayID{st.PersonID, st.VenueID, st.Start.UnixMicro(), st.End.UnixMicro(), st.Entry, st.Exit}
}

// raiseSpan raises st's venue's longest stay in longest to st's length.
// A venue whose stays all have no length (an entry and an exit at one
// instant) gets a span of 0 all the same: a venue with no stay_spans row
// is one with no stays, whose windows StaysMeeting skips and whose stays
// retireStays never looks at (an outside tester's zero-length stay
// outlived its passes, and met no one).
func raiseSpan(longest map[uuid.UUID]time.Duration, st domain.Presence) {
	d := st.End.Sub(st.Start)
	if cur, ok := longest[st.VenueID]; !ok || d > cur {
		longest[st.VenueID] = d
	}
}

// growSpans raises each venue's longest stay to at least the given one.
func (s *Store) growSpans(ctx context.Context, tx pgx.Tx, longest map[uuid.UUID]time.Duration) error {
	if len(longest) == 0 {
		return nil
	}
	ids, ds := make([][16]byte, 0, len(longest)), make([]time.Duration, 0, len(longest))
	for v, d := range longest {
		ids, ds = append(ids, v), append(ds, d)
	}
	if _, err := tx.Exec(ctx, s.sql(`INSERT INTO {s}.stay_spans AS sp (venue_id, longest)
		SELECT * FROM unnest($1::uuid[], $2::interval[])
		ON CONFLICT (venue_id) DO UPDATE SET longest = EXCLUDED.longest WHERE sp.longest < EXCLUDED.longest`), ids, ds); err != nil {
		return fmt.Errorf("stay spans: %w", err)
	}
	return nil
}

func keysOf(set map[uuid.UUID]bool) [][16]byte {
	out := make([][16]byte, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	return out
}

// typesOf reads the types of the venues in set, in tx.
func (s *Store) typesOf(ctx context.Context, tx pgx.Tx, set map[uuid.UUID]bool) (map[uuid.UUID]string, error) {
	return venueTypes(ctx, tx, s.sql(`SELECT venue_id, type FROM {s}.venues WHERE venue_id = ANY($1::uuid[])`), keysOf(set))
}

// venueTypes runs sql (venue id, type rows) and answers the types by venue.
func venueTypes(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) (map[uuid.UUID]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("venue types: %w", err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID]string)
	for rows.Next() {
		var (
			id [16]byte
			t  string
		)
		if err := rows.Scan(&id, &t); err != nil {
			return nil, fmt.Errorf("venue types: %w", err)
		}
		out[id] = t
	}
	return out, rows.Err()
}

// ensureStays sets the store's stay rules (want, or the tables' when nil)
// and, given want, builds the stays from the passes when they were built
// under other rules, or never (at Open).
func (s *Store) ensureStays(ctx context.Context, want *domain.StayRules) error {
	var recorded string
	err := s.pool.QueryRow(ctx, s.sql(`SELECT rules FROM {s}.stay_state`)).Scan(&recorded)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("stay state: %w", err)
	}
	switch {
	case want != nil:
		s.rules = *want
	case err == nil && recorded != "": // "": stays of no rules (see applyStays)
		if s.rules, err = parseStayRules(recorded); err != nil {
			return fmt.Errorf("stay state: %w", err)
		}
	}
	s.rulesKey = s.rules.String()
	if recorded == s.rulesKey || want == nil {
		// Opened without rules (status, a rebuild's source) a store only
		// looks: it builds nothing, keeps no stays where the tables
		// record none, and traces there read passes.
		s.skipStays = want == nil && recorded == ""
		return nil
	}
	return s.rebuildStays(ctx)
}

// parseStayRules reads domain.StayRules.String back; a type it does not
// name has the rules of "" (an unknown type).
func parseStayRules(text string) (domain.StayRules, error) {
	dwell, maxStay := make(map[string]time.Duration), make(map[string]time.Duration)
	for _, part := range strings.Split(strings.TrimSuffix(text, ";"), ";") {
		name, ds, ok1 := strings.Cut(part, "=")
		d, m, ok2 := strings.Cut(ds, "/")
		dd, err1 := time.ParseDuration(d)
		md, err2 := time.ParseDuration(m)
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			return domain.StayRules{}, fmt.Errorf("stay rules %q: cannot read %q", text, part)
		}
		dwell[name], maxStay[name] = dd, md
	}
	if _, ok := dwell[""]; !ok {
		return domain.StayRules{}, fmt.Errorf("stay rules %q: no rule for an unknown type", text)
	}
	of := func(m map[string]time.Duration) func(string) time.Duration {
		return func(t string) time.Duration {
			if d, ok := m[t]; ok {
				return d
			}
			return m[""]
		}
	}
	return domain.StayRules{Dwell: of(dwell), MaxStay: of(maxStay)}, nil
}

// rebuildStays replaces every stay with those built from the passes, in
// one transaction that holds the projection's position row (so no batch
// is applied meanwhile), person by person in chunks.
//
// The stays are built into a temporary table and then written into stays
// in the order they start, with stays' indexes dropped meanwhile and made
// again from their own definitions (one sort each): the heap then holds
// them as Apply leaves them, by time, so that retirement, which deletes the
// stays before its cut-off, changes the pages of the days it retires, not
// every page. Written in the order they were built (by person), a city's
// day of stays lay on most of the table's pages, and every page's first
// change after a checkpoint is logged whole: deleting the 441,000 stays of
// a day of the 10 M dense city took 0.9-3.0 s (README, "City-scale
// PostgreSQL").
func (s *Store) rebuildStays(ctx context.Context) error {
	tx, err := s.beginLocked(ctx)
	if err != nil {
		return fmt.Errorf("build stays: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var rules string
	err = tx.QueryRow(ctx, s.sql(`SELECT rules FROM {s}.stay_state`)).Scan(&rules)
	if err == nil && rules == s.rulesKey {
		return nil // another replica built them meanwhile
	}
	if _, err := tx.Exec(ctx, s.sql(`TRUNCATE {s}.stays, {s}.stay_spans`)); err != nil {
		return fmt.Errorf("build stays: %w", err)
	}
	if _, err := tx.Exec(ctx, s.sql(`CREATE TEMPORARY TABLE stays_built (LIKE {s}.stays) ON COMMIT DROP`)); err != nil {
		return fmt.Errorf("build stays: %w", err)
	}
	types, err := venueTypes(ctx, tx, s.sql(`SELECT venue_id, type FROM {s}.venues`))
	if err != nil {
		return fmt.Errorf("build stays: %w", err)
	}
	const chunk = 200_000
	var (
		afterPerson [16]byte
		afterAt     = farPast
		afterPos    = int64(-1)
		pending     []domain.PassPoint // the last person of a chunk, who may go on in the next
		longest     = make(map[uuid.UUID]time.Duration)
	)
	flush := func(points []domain.PassPoint) error {
		var rows [][]any
		for _, st := range domain.Presences(points, s.rules) {
			rows = append(rows, stayRow(st))
			raiseSpan(longest, st)
		}
		if len(rows) == 0 {
			return nil
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"stays_built"}, stayColumns, pgx.CopyFromRows(rows))
		return err
	}
	for {
		rows, err := tx.Query(ctx, s.sql(`SELECT person_id, venue_id, at, direction, decision, position FROM {s}.passes
			WHERE (person_id, at, position) > ($1, $2, $3) ORDER BY person_id, at, position LIMIT `+fmt.Sprint(chunk)),
			afterPerson, afterAt, afterPos)
		if err != nil {
			return fmt.Errorf("build stays: %w", err)
		}
		n := 0
		points := pending
		for rows.Next() {
			var (
				p        domain.PassPoint
				pid, vid [16]byte
				ps       int64
			)
			if err := rows.Scan(&pid, &vid, &p.At, &p.Direction, &p.Decision, &ps); err != nil {
				rows.Close()
				return fmt.Errorf("build stays: %w", err)
			}
			p.PersonID, p.VenueID, p.VenueType = pid, vid, types[vid]
			points = append(points, p)
			afterPerson, afterAt, afterPos = pid, p.At, ps
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("build stays: %w", err)
		}
		if n < chunk {
			if err := flush(points); err != nil {
				return fmt.Errorf("build stays: %w", err)
			}
			break
		}
		// Hold back the chunk's last person.
		cut := len(points)
		for cut > 0 && points[cut-1].PersonID == uuid.UUID(afterPerson) {
			cut--
		}
		if err := flush(points[:cut]); err != nil {
			return fmt.Errorf("build stays: %w", err)
		}
		pending = append([]domain.PassPoint(nil), points[cut:]...)
	}
	if err := s.writeBuiltStays(ctx, tx); err != nil {
		return fmt.Errorf("build stays: %w", err)
	}
	if err := s.growSpans(ctx, tx, longest); err != nil {
		return fmt.Errorf("build stays: %w", err)
	}
	if _, err := tx.Exec(ctx, s.sql(`INSERT INTO {s}.stay_state (rules, newest_recorded_at)
		SELECT $1, max(recorded_at) FROM {s}.passes
		ON CONFLICT (one) DO UPDATE SET rules = EXCLUDED.rules, newest_recorded_at = EXCLUDED.newest_recorded_at`), s.rulesKey); err != nil {
		return fmt.Errorf("build stays: %w", err)
	}
	return tx.Commit(ctx)
}

// writeBuiltStays writes the stays of the temporary table stays_built
// into the (emptied) stays table in the order they start, with its indexes
// dropped and then made again from their definitions as PostgreSQL holds
// them (the migrations stay the one place that says what they are; an
// index a constraint owns is kept and filled as it goes).
func (s *Store) writeBuiltStays(ctx context.Context, tx pgx.Tx) error {
	// Indexes a constraint owns (none today) stay: dropping one fails.
	rows, err := tx.Query(ctx, `SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = to_regclass($1) AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)`,
		s.schema+".stays")
	if err != nil {
		return fmt.Errorf("indexes of stays: %w", err)
	}
	type index struct{ Name, Def string }
	indexes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[index])
	if err != nil {
		return fmt.Errorf("indexes of stays: %w", err)
	}
	for _, ix := range indexes {
		if _, err := tx.Exec(ctx, `DROP INDEX `+pgx.Identifier{s.schema, ix.Name}.Sanitize()); err != nil {
			return fmt.Errorf("drop index %s: %w", ix.Name, err)
		}
	}
	cols := strings.Join(stayColumns, ", ")
	if _, err := tx.Exec(ctx, s.sql(`INSERT INTO {s}.stays (`+cols+`) SELECT `+cols+` FROM stays_built ORDER BY start_at`)); err != nil {
		return fmt.Errorf("write stays in start order: %w", err)
	}
	for _, ix := range indexes {
		if _, err := tx.Exec(ctx, ix.Def); err != nil {
			return fmt.Errorf("make index %s again: %w", ix.Name, err)
		}
	}
	return nil
}

// StayRules returns the rules the store builds its stays under.
func (s *Store) StayRules() domain.StayRules { return s.rules }

// staysAnswer reports whether the stays give the answer as of asOf: built
// under the store's rules, and no pass recorded after asOf applied.
func (s *Store) staysAnswer(ctx context.Context, asOf time.Time) (bool, error) {
	var (
		rules  string
		newest *time.Time
	)
	err := s.pool.QueryRow(ctx, s.sql(`SELECT rules, newest_recorded_at FROM {s}.stay_state`)).Scan(&rules, &newest)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, readErr("stay state: %w", err)
	}
	return rules == s.rulesKey && (asOf.IsZero() || newest == nil || !newest.After(asOf)), nil
}

// StaysOfPersons implements ledger.StayReads: one range scan of
// stays_person_start per person, in one statement.
func (s *Store) StaysOfPersons(ctx context.Context, personIDs []uuid.UUID, from, to, asOf time.Time) ([]domain.Presence, bool, error) {
	if ok, err := s.staysAnswer(ctx, asOf); !ok || err != nil {
		return nil, false, err
	}
	personIDs = distinct(personIDs)
	rows, err := s.pool.Query(ctx, s.sql(`SELECT x.person_id, x.venue_id, x.start_at, x.end_at, x.has_entry, x.has_exit
		FROM unnest($1::uuid[]) AS w(person_id)
		CROSS JOIN LATERAL (SELECT person_id, venue_id, start_at, end_at, has_entry, has_exit FROM {s}.stays x
			WHERE x.person_id = w.person_id AND x.start_at <= $3 AND x.end_at >= $2 OFFSET 0) x`),
		rawIDs(personIDs), lowBound(from), highBound(to))
	if err != nil {
		return nil, false, readErr("stays of %d persons: %w", len(personIDs), err)
	}
	out := []domain.Presence{}
	err = eachStay(rows, fmt.Sprintf("stays of %d persons", len(personIDs)), func(p domain.Presence) { out = append(out, p) })
	return out, err == nil, err
}

// StaysMeeting implements ledger.StayReads: the windows, made ascending
// and merged, are one array each of venues, bounds and ends; each is one
// range scan of stays_venue_start from its start less the venue's longest
// stay (stay_spans, read first) to its end, in one statement. A window's
// range starts after the end of the venue's window before it: a stay
// starting by then that meets this window meets that one too (it starts
// after that one's start less the longest stay and ends after this one's
// start), so each stay comes once without a DISTINCT (which hashed every
// row). The rows are ordered by the windows' place in the arrays (WITH
// ORDINALITY), which is the plan's own order (the windows in order, each
// its index range: no sort), so each venue's rows come together and by
// start, as the trace needs them, and each venue's run goes to each as soon
// as the next venue's first row comes: the search pairs one venue while
// PostgreSQL reads the next (projections/DESIGN.md, "Stays kept in
// PostgreSQL", gives the rows a depth-2 trace reads).
func (s *Store) StaysMeeting(ctx context.Context, windows []domain.VenueWindow, asOf time.Time, each func([]domain.Presence)) (bool, error) {
	if ok, err := s.staysAnswer(ctx, asOf); !ok || err != nil {
		return false, err
	}
	asc := make([]domain.VenueWindow, len(windows))
	for i, w := range windows {
		from, to := w.From, w.To
		if to.Before(from) {
			from, to = to, from
		}
		asc[i] = domain.VenueWindow{VenueID: w.VenueID, From: from, To: to.Add(time.Nanosecond)} // never empty
	}
	ws := domain.MergeWindows(asc)
	longest, err := s.longestStays(ctx, ws)
	if err != nil {
		return false, err
	}
	n := len(ws)
	venues := make([][16]byte, 0, n)
	los, afters, froms, tos := make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n)
	for i, w := range ws {
		l, ok := longest[w.VenueID]
		if !ok {
			continue // a venue with no stays has no span: it has nothing to meet either
		}
		after := farPast
		if i > 0 && ws[i-1].VenueID == w.VenueID {
			after = ws[i-1].To
		}
		venues, los, afters = append(venues, w.VenueID), append(los, w.From.Add(-l)), append(afters, after)
		froms, tos = append(froms, w.From), append(tos, w.To)
	}
	if len(venues) == 0 {
		return true, nil
	}
	rows, err := s.pool.Query(ctx, s.sql(`SELECT x.person_id, x.venue_id, x.start_at, x.end_at, x.has_entry, x.has_exit
		FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[]) WITH ORDINALITY AS w(venue_id, lo, after, f, t, n)
		CROSS JOIN LATERAL (SELECT person_id, venue_id, start_at, end_at, has_entry, has_exit FROM {s}.stays x
			WHERE x.venue_id = w.venue_id AND x.start_at >= w.lo AND x.start_at > w.after AND x.start_at <= w.t
			AND x.end_at >= w.f OFFSET 0) x
		ORDER BY w.n`), venues, los, afters, froms, tos)
	if err != nil {
		return false, readErr("stays in %d venue windows: %w", len(venues), err)
	}
	var run []domain.Presence
	err = eachStay(rows, fmt.Sprintf("stays in %d venue windows", len(venues)), func(p domain.Presence) {
		if len(run) > 0 && run[0].VenueID != p.VenueID {
			each(run)
			run = run[:0]
		}
		run = append(run, p)
	})
	if err != nil {
		return false, err
	}
	if len(run) > 0 {
		each(run)
	}
	return true, nil
}

// longestStays returns the longest stay of each venue of ws that has stays.
func (s *Store) longestStays(ctx context.Context, ws []domain.VenueWindow) (map[uuid.UUID]time.Duration, error) {
	var ids [][16]byte
	for i, w := range ws {
		if i == 0 || ws[i-1].VenueID != w.VenueID {
			ids = append(ids, w.VenueID)
		}
	}
	return idMap[time.Duration](ctx, s, len(ids), fmt.Sprintf("stay spans of %d venues", len(ids)),
		`SELECT venue_id, longest FROM {s}.stay_spans WHERE venue_id = ANY($1::uuid[])`, ids)
}

// eachStay gives each the (person, venue, start, end, has_entry, has_exit)
// rows in turn, read straight from the wire when they come in binary (a
// depth-2 trace of a dense city reads hundreds of thousands).
func eachStay(rows pgx.Rows, what string, each func(domain.Presence)) error {
	defer rows.Close()
	raw := onWire(rows, 6)
	// One row's place for all (Scan takes its fields' addresses, so a
	// local would be on the heap: an allocation a row).
	p := new(domain.Presence)
	for rows.Next() {
		*p = domain.Presence{}
		if raw {
			v := rows.RawValues()
			if len(v[0]) != 16 || len(v[1]) != 16 || len(v[2]) != 8 || len(v[3]) != 8 || len(v[4]) != 1 || len(v[5]) != 1 {
				return readErr("%s: unexpected binary row", what)
			}
			copy(p.PersonID[:], v[0])
			copy(p.VenueID[:], v[1])
			p.Start, p.End = pgTime(v[2]), pgTime(v[3])
			p.Entry, p.Exit = v[4][0] != 0, v[5][0] != 0
		} else if err := rows.Scan(&p.PersonID, &p.VenueID, &p.Start, &p.End, &p.Entry, &p.Exit); err != nil {
			return readErr("%s: %w", what, err)
		} else {
			p.Start, p.End = p.Start.UTC(), p.End.UTC()
		}
		each(*p)
	}
	if err := rows.Err(); err != nil {
		return readErr("%s: %w", what, err)
	}
	return nil
}

// beginLocked begins a transaction that holds the projection's position
// row (lockCheckpoint), so that no batch is applied until it ends: the
// work on stays and retired passes that must not interleave with Apply.
func (s *Store) beginLocked(ctx context.Context) (pgx.Tx, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	var (
		pos int64
		rec *time.Time
	)
	if err := tx.QueryRow(ctx, s.q.lockCheckpoint, s.name).Scan(&pos, &rec); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("lock position: %w", err)
	}
	return tx, nil
}
