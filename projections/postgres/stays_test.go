package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/google/uuid"
)

// cityStays are the stays domain.Presences builds from all of the city's
// passes under rules, as sorted strings.
func cityStays(c storetest.TraceCity, rules domain.StayRules) []string {
	points := make([]domain.PassPoint, len(c.Passes))
	for i, p := range c.Passes {
		points[i] = domain.PassPoint{PersonID: p.PersonID, VenueID: p.VenueID, VenueType: p.VenueType, At: p.At,
			Direction: p.Direction, Decision: p.Decision}
	}
	var out []string
	for _, st := range domain.Presences(points, rules) {
		out = append(out, stayString(st.PersonID, st.VenueID, st.Start, st.End, st.Entry, st.Exit))
	}
	slices.Sort(out)
	return out
}

func stayString(p, v uuid.UUID, start, end time.Time, entry, exit bool) string {
	return fmt.Sprintf("%s %s %s %s %v %v", p, v, start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano), entry, exit)
}

// storedStays reads the stays table.
func storedStays(t *testing.T, s *postgres.Store) []string {
	t.Helper()
	rows, err := testPool.Query(context.Background(), "SELECT person_id, venue_id, start_at, end_at, has_entry, has_exit FROM "+s.Schema()+".stays")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			p, v        uuid.UUID
			start, end  time.Time
			entry, exit bool
		)
		if err := rows.Scan(&p, &v, &start, &end, &entry, &exit); err != nil {
			t.Fatal(err)
		}
		out = append(out, stayString(p, v, start, end, entry, exit))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(want) < 1000 {
		t.Fatalf("%s: only %d stays to compare", what, len(want))
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("%s: %d stays, want %d; first difference at %d: %s, want %s", what, len(got), len(want), i, got[i], want[i])
			}
		}
		t.Fatalf("%s: %d stays, want %d", what, len(got), len(want))
	}
}

// TestStaysFollowPasses: the stays table Apply keeps, batch by batch, with
// offline passes recorded hours late (so inserted between passes already
// stored), repeated entries, missing exits and entries and refused passes,
// is Presences over all the passes; a batch applied again changes nothing;
// opened under other rules, the store builds the stays again under those;
// the stays answer only as of a moment after every applied pass was
// recorded.
func TestStaysFollowPasses(t *testing.T) {
	ctx := context.Background()
	s := openStore(t) // storetest.TraceCityRules
	city := storetest.GenerateTraceCity(800, 60, 6000, 4, storetest.TraceCityRules, 3)
	open := projections.KeyringOpener(city.Keys)
	if err := storetest.Feed(ctx, s, city.Envelopes[:len(city.Envelopes)/2], open, 173); err != nil {
		t.Fatal(err)
	}
	// Half of it again from position 0 in other batch sizes: a projector
	// replaying after a crash skips what is stored.
	again := city.Envelopes[len(city.Envelopes)/3 : len(city.Envelopes)/2]
	changes, err := projections.Prepare(ctx, again, open)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Appended again beyond the duplicate window: new positions, same ids.
	for i := range changes {
		changes[i].Position = cp.Position + uint64(i) + 1
	}
	if _, err := s.Apply(ctx, projections.Batch{After: cp.Position, Changes: changes, Last: cp.Position + uint64(len(changes))}); err != nil {
		t.Fatal(err)
	}
	rest := city.Envelopes[len(city.Envelopes)/2:]
	for i := range rest {
		rest[i].Position += uint64(len(changes))
	}
	if err := storetest.Feed(ctx, s, rest, open, 211); err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "applied in batches", storedStays(t, s), cityStays(city, storetest.TraceCityRules))

	newest := city.Passes[len(city.Passes)-1].RecordedAt
	for _, tc := range []struct {
		asOf time.Time
		ok   bool
	}{{time.Time{}, true}, {newest, true}, {newest.Add(-time.Second), false}} {
		stays, ok, err := s.StaysOfPersons(ctx, city.Busy[:3], time.Time{}, time.Time{}, tc.asOf)
		if err != nil || ok != tc.ok || (ok && len(stays) == 0) {
			t.Fatalf("stays as of %v: %d, %v, %v; want ok %v", tc.asOf, len(stays), ok, err, tc.ok)
		}
	}

	// The same tables under the default rules: built again at Open.
	d := openWith(t, postgres.Options{Schema: s.Schema(), Stays: &domain.StayRules{}})
	// Opened without rules, a store takes the tables' (and builds nothing).
	adopted := openWith(t, postgres.Options{Schema: s.Schema()})
	if adopted.StayRules().String() != (domain.StayRules{}).String() {
		t.Fatalf("opened without rules: %s, want the tables' (the defaults)", adopted.StayRules())
	}
	sameStrings(t, "rebuilt under the defaults", storedStays(t, d), cityStays(city, domain.StayRules{}))
	// Built person by person, written in the order they start (as Apply
	// leaves them, and as retirement deletes them), with stays' indexes
	// made again.
	var back int
	if err := testPool.QueryRow(ctx, `SELECT count(*) FROM (SELECT start_at < lag(start_at) OVER (ORDER BY ctid) AS back
		FROM `+d.Schema()+`.stays) x WHERE back`).Scan(&back); err != nil || back != 0 {
		t.Fatalf("rebuilt stays lie out of start order: %d start before the row stored before them (%v)", back, err)
	}
	var indexes []string
	if err := testPool.QueryRow(ctx, `SELECT array_agg(indexname::text ORDER BY indexname) FROM pg_indexes
		WHERE schemaname = $1 AND tablename = 'stays'`, d.Schema()).Scan(&indexes); err != nil ||
		!slices.Equal(indexes, []string{"stays_person_start", "stays_venue_start"}) {
		t.Fatalf("stays' indexes after the rebuild: %v (%v)", indexes, err)
	}
	if _, ok, err := staysMeeting(ctx, s, []domain.VenueWindow{{VenueID: city.Venues[0], From: storetest.Base, To: storetest.Base.Add(time.Hour)}}, time.Time{}); ok || err != nil {
		t.Fatalf("a store whose rules are not the tables' answered from them (ok %v, %v)", ok, err)
	}
}

// staysMeeting is s.StaysMeeting's stays in one list, each venue's run
// checked to be one venue's, in start order, and given once.
func staysMeeting(ctx context.Context, s *postgres.Store, ws []domain.VenueWindow, asOf time.Time) ([]domain.Presence, bool, error) {
	out := []domain.Presence{}
	seen := make(map[uuid.UUID]bool)
	var bad error
	ok, err := s.StaysMeeting(ctx, ws, asOf, func(run []domain.Presence) {
		v := run[0].VenueID
		switch {
		case seen[v]:
			bad = fmt.Errorf("venue %s given twice", v)
		case !slices.IsSortedFunc(run, func(a, b domain.Presence) int { return a.Start.Compare(b.Start) }):
			bad = fmt.Errorf("venue %s's stays not in start order", v)
		case slices.ContainsFunc(run, func(p domain.Presence) bool { return p.VenueID != v }):
			bad = fmt.Errorf("a run of venue %s holds another venue's stays", v)
		}
		seen[v] = true
		out = append(out, run...)
	})
	if err == nil {
		err = bad
	}
	return out, ok, err
}

// feedCity feeds s the whole of city, batch events a batch.
func feedCity(t *testing.T, s *postgres.Store, city storetest.TraceCity, batch int) {
	t.Helper()
	if err := storetest.Feed(context.Background(), s, city.Envelopes, projections.KeyringOpener(city.Keys), batch); err != nil {
		t.Fatal(err)
	}
}

// TestRetireStays: once the passes before a cutoff are deleted,
// RetireStays leaves the stays Presences builds from the passes kept (an
// exit whose entry went is a stay of its own; nothing before the cutoff).
func TestRetireStays(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	city := storetest.GenerateTraceCity(800, 60, 6000, 4, storetest.TraceCityRules, 4)
	feedCity(t, s, city, 500)
	cutoff := storetest.Base.Add(2 * 24 * time.Hour)
	if _, err := testPool.Exec(ctx, "DELETE FROM "+s.Schema()+".passes WHERE at < $1", cutoff); err != nil {
		t.Fatal(err)
	}
	if err := s.RetireStays(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	// What starts before the cut-off now is an exit after it whose entry
	// went: a stay of its own, starting a dwell before its exit.
	var early int
	if err := testPool.QueryRow(ctx, `SELECT count(*) FROM `+s.Schema()+`.stays
		WHERE start_at < $1 AND NOT (has_exit AND NOT has_entry AND end_at >= $1)`, cutoff).Scan(&early); err != nil || early != 0 {
		t.Fatalf("%d stays before the cut-off hold a pass before it (%v)", early, err)
	}
	kept := city
	kept.Passes = nil
	for _, p := range city.Passes {
		if !p.At.Before(cutoff) {
			kept.Passes = append(kept.Passes, p)
		}
	}
	sameStrings(t, "after retiring", storedStays(t, s), cityStays(kept, storetest.TraceCityRules))
}

// TestRetireReachesOldStays: stays an older version left behind a
// retirement (before migration 0012, those of no length at a venue without
// a span) go at the first retirement of a Store opened on the tables, though
// they start long before the last cut-off less the longest stay, where the
// later sweeps' ranges start.
func TestRetireReachesOldStays(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	city := storetest.GenerateTraceCity(200, 20, 1500, 4, storetest.TraceCityRules, 5)
	feedCity(t, s, city, 500)
	first := storetest.Base.Add(2 * 24 * time.Hour)
	if _, err := s.RetirePasses(ctx, first); err != nil {
		t.Fatal(err)
	}
	old := storetest.Base.Add(-20 * 24 * time.Hour)
	if _, err := testPool.Exec(ctx, `INSERT INTO `+s.Schema()+`.stays (person_id, venue_id, start_at, end_at, has_entry, has_exit)
		VALUES ($1, $2, $3, $3, true, true)`, city.Busy[0], city.Venues[0], old); err != nil {
		t.Fatal(err)
	}
	reopened := openWith(t, postgres.Options{Schema: s.Schema(), Stays: &storetest.TraceCityRules})
	if _, err := reopened.RetirePasses(ctx, first.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := testPool.QueryRow(ctx, `SELECT count(*) FROM `+s.Schema()+`.stays WHERE start_at = $1`, old).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d stays from %s left after the retirement to %s (%v)", left, old, first.Add(time.Hour), err)
	}
}

// TestStaysOfMixedRules: a store applying under other rules than the tables
// record (two replicas started with different --dwell) leaves stays that
// no trace reads until an Open builds them again.
func TestStaysOfMixedRules(t *testing.T) {
	ctx := context.Background()
	a := openStore(t) // storetest.TraceCityRules
	city := storetest.GenerateTraceCity(300, 30, 1500, 2, storetest.TraceCityRules, 5)
	open := projections.KeyringOpener(city.Keys)
	half := len(city.Envelopes) / 2
	if err := storetest.Feed(ctx, a, city.Envelopes[:half], open, 400); err != nil {
		t.Fatal(err)
	}
	b := openWith(t, postgres.Options{Schema: a.Schema(), Stays: &domain.StayRules{}})
	if _, ok, err := b.StaysOfPersons(ctx, city.Busy[:2], time.Time{}, time.Time{}, time.Time{}); !ok || err != nil {
		t.Fatalf("stays just built under b's rules: ok %v, %v", ok, err)
	}
	if err := storetest.Feed(ctx, a, city.Envelopes[half:], open, 400); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*postgres.Store{"a": a, "b": b} {
		if _, ok, err := s.StaysOfPersons(ctx, city.Busy[:2], time.Time{}, time.Time{}, time.Time{}); ok || err != nil {
			t.Fatalf("%s read stays kept under two rules (ok %v, %v)", name, ok, err)
		}
	}
	c := openWith(t, postgres.Options{Schema: a.Schema(), Stays: &storetest.TraceCityRules})
	sameStrings(t, "built again", storedStays(t, c), cityStays(city, storetest.TraceCityRules))
}

// TestRetireUnderOtherRules: a store retiring under other rules than the
// tables record (a replica's sweeper started with another --dwell) writes the
// exits whose entries went with its own dwell, so it leaves the stays no
// one's, as Apply does, and traces read passes until an Open builds them.
func TestRetireUnderOtherRules(t *testing.T) {
	ctx := context.Background()
	a := openStore(t) // storetest.TraceCityRules
	city := storetest.GenerateTraceCity(300, 30, 1500, 2, storetest.TraceCityRules, 5)
	feedCity(t, a, city, 400)
	b := openWith(t, postgres.Options{Schema: a.Schema(), Stays: &domain.StayRules{}})
	// A cut-off inside a stay with its entry before it and its exit after it.
	var cutoff time.Time
	if err := testPool.QueryRow(ctx, `SELECT start_at + (end_at - start_at) / 2 FROM `+a.Schema()+`.stays
		WHERE has_entry AND has_exit AND end_at - start_at > interval '2 second' ORDER BY start_at LIMIT 1`).Scan(&cutoff); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RetirePasses(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.StaysOfPersons(ctx, city.Busy[:2], time.Time{}, time.Time{}, time.Time{}); ok || err != nil {
		t.Fatalf("b read stays a retirement under other rules wrote into (ok %v, %v)", ok, err)
	}
}

// TestStaysNotKeptWithoutRules: a store opened without rules on tables that
// record none (a status command on tables from before migration 0006)
// builds and keeps no stays, and its traces read passes.
func TestStaysNotKeptWithoutRules(t *testing.T) {
	ctx := context.Background()
	s := openWith(t, postgres.Options{})
	city := storetest.GenerateTraceCity(100, 10, 300, 1, domain.StayRules{}, 6)
	feedCity(t, s, city, 100)
	var n int
	if err := testPool.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+s.Schema()+".stays) + (SELECT count(*) FROM "+s.Schema()+".stay_state)").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d stays and state rows kept without rules (%v)", n, err)
	}
	if _, ok, err := s.StaysOfPersons(ctx, city.Busy[:1], time.Time{}, time.Time{}, time.Time{}); ok || err != nil {
		t.Fatalf("stays answered without rules: ok %v, %v", ok, err)
	}
}

// TestStaysAtOneInstant: stays that are equal (two exits at one instant,
// no entry) or share a start (two entries at one instant) are kept as
// Presences builds them while later batches rebuild the pair's stays
// around them.
func TestStaysAtOneInstant(t *testing.T) {
	ctx := context.Background()
	s := openStore(t) // storetest.TraceCityRules
	venue, person := uuid.New(), uuid.New()
	day := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	var (
		pos    uint64
		points []domain.PassPoint
	)
	pass := func(dir string, at time.Time) projections.Change {
		pos++
		points = append(points, domain.PassPoint{PersonID: person, VenueID: venue, At: at, Direction: dir, Decision: domain.DecisionPass})
		return projections.Change{EventID: uuid.New(), Type: domain.TypePassRecorded, Aggregate: domain.PassAggregate(venue, person),
			Position: pos, OccurredAt: at, RecordedAt: at, Event: &domain.PassRecorded{VenueID: venue, PersonID: person,
				Direction: dir, Method: "self_scan", Decision: domain.DecisionPass}}
	}
	batches := [][]projections.Change{
		{pass("out", day), pass("out", day)},                                        // two equal exit-only stays
		{pass("in", day.Add(2*time.Hour)), pass("in", day.Add(2*time.Hour))},        // two stays starting together
		{pass("out", day.Add(150*time.Minute))},                                     // closes the second of them
		{pass("in", day.Add(20*time.Minute)), pass("out", day.Add(30*time.Minute))}, // late, between them
	}
	for _, b := range batches {
		if _, err := s.Apply(ctx, projections.Batch{Changes: b, Last: b[len(b)-1].Position}); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for _, st := range domain.Presences(points, storetest.TraceCityRules) {
		want = append(want, stayString(st.PersonID, st.VenueID, st.Start, st.End, st.Entry, st.Exit))
	}
	slices.Sort(want)
	if got := storedStays(t, s); !slices.Equal(got, want) {
		t.Fatalf("stays\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestStaysFollowRandomPasses: random small pass sequences of many pairs
// (entries and exits on a coarse grid, so that passes meet at one instant
// and lie exactly a dwell or a maximum stay apart; refused entries, exits
// without entries, a pass days away, passes appended again), applied in a
// random order in random batches with two retirements part way, leave the
// stays Presences builds from every applied pass kept.
func TestStaysFollowRandomPasses(t *testing.T) {
	for seed := range int64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { staysFollowRandomPasses(t, seed) })
	}
}

func staysFollowRandomPasses(t *testing.T, seed int64) {
	ctx := context.Background()
	s := openStore(t) // storetest.TraceCityRules
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	rules := storetest.TraceCityRules
	// The grid (15 minutes) divides every dwell and maximum stay here:
	// restaurant 90 min / 4.5 h, hotel 10 h / 30 h, unknown 2 h / 6 h.
	const step = 15 * time.Minute
	base := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	cutoff := base.Add(2*24*time.Hour + 7*time.Hour + 15*time.Minute) // inside a day
	types := map[uuid.UUID]string{}
	var (
		pos      uint64
		venueIDs []uuid.UUID
		venues   []projections.Change
		pending  []projections.Change
		points   = map[uuid.UUID]domain.PassPoint{} // by event id: the passes applied
	)
	for i, typ := range []string{domain.VenueRestaurant, domain.VenueHotel, "", domain.VenueRestaurant} {
		v := uuid.New()
		types[v], venueIDs = typ, append(venueIDs, v)
		if typ == "" {
			continue // a venue the read models never heard of
		}
		pos++
		venues = append(venues, projections.Change{EventID: uuid.New(), Type: domain.TypeVenueApplied, Aggregate: domain.VenueAggregate(v),
			Position: pos, OccurredAt: base, RecordedAt: base, Event: &domain.VenueApplied{VenueID: v, Name: fmt.Sprint("venue ", i),
				Type: typ, District: "d", ManagerID: uuid.New()}})
	}
	if _, err := s.Apply(ctx, projections.Batch{Changes: venues, Last: pos}); err != nil {
		t.Fatal(err)
	}
	for range 150 {
		person := uuid.New()
		// Most groups lie near the cut-off, on either side of it.
		start := cutoff.Add(time.Duration(rng.IntN(80)-50) * step)
		for range 1 + rng.IntN(2) {
			venue := venueIDs[rng.IntN(len(venueIDs))]
			for range 1 + rng.IntN(12) {
				at := start.Add(time.Duration(rng.IntN(48)) * step)
				if rng.IntN(20) == 0 {
					at = at.Add(time.Duration(1+rng.IntN(3)) * 24 * time.Hour) // far from the others
				}
				dir, decision := domain.DirectionIn, domain.DecisionPass
				if rng.IntN(2) == 0 {
					dir = domain.DirectionOut
				}
				if rng.IntN(6) == 0 {
					decision = domain.DecisionDeny
				}
				pending = append(pending, projections.Change{EventID: uuid.New(), Type: domain.TypePassRecorded,
					Aggregate: domain.PassAggregate(venue, person), OccurredAt: at, RecordedAt: at,
					Event: &domain.PassRecorded{VenueID: venue, PersonID: person, Direction: dir, Method: "self_scan", Decision: decision}})
			}
		}
	}
	// Some passes are appended twice (a retry racing the projection).
	for range len(pending) / 10 {
		pending = append(pending, pending[rng.IntN(len(pending))])
	}
	rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
	// Retired twice, a quarter of the passes apart: the second cut-off
	// later than the first.
	var before time.Time
	retirements, total := []time.Time{cutoff, cutoff.Add(3*time.Hour + 30*time.Minute)}, len(pending)
	for len(pending) > 0 {
		if len(retirements) > 0 && len(pending) <= total*len(retirements)/4 {
			if _, err := s.RetirePasses(ctx, retirements[0]); err != nil {
				t.Fatal(err)
			}
			before, retirements = retirements[0], retirements[1:]
		}
		n := min(len(pending), 1+rng.IntN(8))
		batch := slices.Clone(pending[:n])
		pending = pending[n:]
		for i := range batch {
			pos++
			batch[i].Position = pos
			ev := batch[i].Event.(*domain.PassRecorded)
			if !batch[i].OccurredAt.Before(before) {
				points[batch[i].EventID] = domain.PassPoint{PersonID: ev.PersonID, VenueID: ev.VenueID, VenueType: types[ev.VenueID],
					At: batch[i].OccurredAt, Direction: ev.Direction, Decision: ev.Decision}
			}
		}
		if _, err := s.Apply(ctx, projections.Batch{After: pos - uint64(n), Changes: batch, Last: pos}); err != nil {
			t.Fatal(err)
		}
	}
	if len(retirements) > 0 {
		t.Fatal("not retired")
	}
	var kept []domain.PassPoint
	for _, p := range points {
		if !p.At.Before(before) {
			kept = append(kept, p)
		}
	}
	var want []string
	for _, st := range domain.Presences(kept, rules) {
		want = append(want, stayString(st.PersonID, st.VenueID, st.Start, st.End, st.Entry, st.Exit))
	}
	slices.Sort(want)
	got := storedStays(t, s)
	if slices.Equal(got, want) {
		return
	}
	// Name the first pair whose stays differ, with its passes.
	pairOf := func(st string) string { return st[:73] }
	var pair string
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			if i < len(want) && (i >= len(got) || want[i] < got[i]) {
				pair = pairOf(want[i])
			} else {
				pair = pairOf(got[i])
			}
			break
		}
	}
	var passes []string
	for _, p := range kept {
		if p.PersonID.String()+" "+p.VenueID.String() == pair {
			passes = append(passes, fmt.Sprintf("%s %s %s", p.At.Format(time.RFC3339), p.Direction, p.Decision))
		}
	}
	slices.Sort(passes)
	onlyPair := func(all []string) []string {
		var out []string
		for _, st := range all {
			if strings.HasPrefix(st, pair) {
				out = append(out, st[74:])
			}
		}
		return out
	}
	t.Fatalf("%d stays, want %d; pair %s (type %q) with passes\n%s\nstays\n%s\nwant\n%s", len(got), len(want), pair,
		types[uuid.MustParse(pair[37:])], strings.Join(passes, "\n"), strings.Join(onlyPair(got), "\n"), strings.Join(onlyPair(want), "\n"))
}

// TestMigrateZeroSpans: migration 0012 gives a venue whose kept stays all
// have no length the stay_spans row that Apply did not write before, and
// leaves the spans already there as they are.
func TestMigrateZeroSpans(t *testing.T) {
	needDB(t)
	ctx := context.Background()
	schema := freshSchema(t)
	if err := postgres.MigrateUpTo(ctx, testPool, schema, 11); err != nil {
		t.Fatalf("migrate to 0011: %v", err)
	}
	zero, spanned, person := uuid.New(), uuid.New(), uuid.New()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, v := range []uuid.UUID{zero, spanned} {
		if _, err := testPool.Exec(ctx, `INSERT INTO `+schema+`.stays (person_id, venue_id, start_at, end_at, has_entry, has_exit)
			VALUES ($1, $2, $3, $3, true, true)`, person, v, at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := testPool.Exec(ctx, `INSERT INTO `+schema+`.stay_spans (venue_id, longest) VALUES ($1, '2 hours')`, spanned); err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateUpTo(ctx, testPool, schema, 12); err != nil {
		t.Fatalf("migrate to 0012: %v", err)
	}
	got := map[uuid.UUID]time.Duration{}
	rows, err := testPool.Query(ctx, `SELECT venue_id, longest FROM `+schema+`.stay_spans`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v uuid.UUID
		var d time.Duration
		if err := rows.Scan(&v, &d); err != nil {
			t.Fatal(err)
		}
		got[v] = d
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if len(got) != 2 || got[zero] != 0 || got[spanned] != 2*time.Hour {
		t.Fatalf("spans %v: want %s at 0 and %s at 2h", got, zero, spanned)
	}
}
