package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
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
	if _, ok, err := s.StaysMeeting(ctx, []domain.VenueWindow{{VenueID: city.Venues[0], From: storetest.Base, To: storetest.Base.Add(time.Hour)}}, time.Time{}); ok || err != nil {
		t.Fatalf("a store whose rules are not the tables' answered from them (ok %v, %v)", ok, err)
	}
}

// TestRetireStays: once the passes before a cutoff are deleted,
// RetireStays leaves the stays Presences builds from the passes kept (an
// exit whose entry went is a stay of its own; nothing before the cutoff).
func TestRetireStays(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	city := storetest.GenerateTraceCity(800, 60, 6000, 4, storetest.TraceCityRules, 4)
	if err := storetest.Feed(ctx, s, city.Envelopes, projections.KeyringOpener(city.Keys), 500); err != nil {
		t.Fatal(err)
	}
	cutoff := storetest.Base.Add(2 * 24 * time.Hour)
	if _, err := testPool.Exec(ctx, "DELETE FROM "+s.Schema()+".passes WHERE at < $1", cutoff); err != nil {
		t.Fatal(err)
	}
	if err := s.RetireStays(ctx, cutoff); err != nil {
		t.Fatal(err)
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

// TestStaysNotKeptWithoutRules: a store opened without rules on tables that
// record none (a status command on tables from before migration 0006)
// builds and keeps no stays, and its traces read passes.
func TestStaysNotKeptWithoutRules(t *testing.T) {
	ctx := context.Background()
	s := openWith(t, postgres.Options{})
	city := storetest.GenerateTraceCity(100, 10, 300, 1, domain.StayRules{}, 6)
	if err := storetest.Feed(ctx, s, city.Envelopes, projections.KeyringOpener(city.Keys), 100); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := testPool.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+s.Schema()+".stays) + (SELECT count(*) FROM "+s.Schema()+".stay_state)").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d stays and state rows kept without rules (%v)", n, err)
	}
	if _, ok, err := s.StaysOfPersons(ctx, city.Busy[:1], time.Time{}, time.Time{}, time.Time{}); ok || err != nil {
		t.Fatalf("stays answered without rules: ok %v, %v", ok, err)
	}
}

// TestStaysMeetingInParts: a large frontier's stays, read in parts on
// several connections at once, give the same contacts as one statement.
func TestStaysMeetingInParts(t *testing.T) {
	ctx := context.Background()
	s := openStore(t) // storetest.TraceCityRules
	rules := storetest.TraceCityRules
	city := storetest.GenerateTraceCity(800, 60, 6000, 4, rules, 6)
	if err := storetest.Feed(ctx, s, city.Envelopes, projections.KeyringOpener(city.Keys), 1000); err != nil {
		t.Fatal(err)
	}
	w := domain.TraceWindow{From: storetest.Base, To: storetest.Base.Add(4 * 24 * time.Hour), MinOverlap: 10 * time.Minute, Buffer: 5 * time.Minute}
	trace := func(p uuid.UUID) domain.FoundContacts {
		t.Helper()
		found, err := domain.FindContacts(ledger.BindTraceReads(ctx, s, rules), domain.ContactSearch{PersonID: p, Window: w, Depth: 2}, rules)
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	var whole []domain.FoundContacts
	for _, p := range city.Busy[:3] {
		whole = append(whole, trace(p))
	}
	postgres.SplitStayReads(t, 2)
	for i, p := range city.Busy[:3] {
		parts := trace(p)
		if whole[i].Persons[2] == 0 {
			t.Fatalf("person %v: nobody at depth 2: the city is too sparse to split", p)
		}
		if !slices.Equal(parts.Contacts, whole[i].Contacts) || parts.Persons != whole[i].Persons {
			t.Fatalf("person %v: %d contacts read in parts, %d in one statement", p, len(parts.Contacts), len(whole[i].Contacts))
		}
	}
}

// TestSplitByVenue: the parts cover every window once, in order, and a
// venue's windows stay in one part.
func TestSplitByVenue(t *testing.T) {
	v := func(b byte) [16]byte { return [16]byte{b} }
	venues := [][16]byte{v(1), v(1), v(1), v(2), v(3), v(3), v(4), v(4), v(4), v(4)}
	for k := 1; k <= 12; k++ {
		cuts := postgres.SplitByVenue(venues, k)
		if cuts[0] != 0 || cuts[len(cuts)-1] != len(venues) || len(cuts)-1 > k {
			t.Fatalf("k=%d: cuts %v", k, cuts)
		}
		for i := 1; i < len(cuts); i++ {
			if cuts[i] <= cuts[i-1] {
				t.Fatalf("k=%d: empty or backward part in %v", k, cuts)
			}
			if c := cuts[i]; c < len(venues) && venues[c] == venues[c-1] {
				t.Fatalf("k=%d: cut %d splits a venue's windows: %v", k, c, cuts)
			}
		}
	}
	if got := postgres.SplitByVenue(venues, 2); !slices.Equal(got, []int{0, 6, 10}) {
		t.Fatalf("2 parts: cuts %v, want [0 6 10]", got)
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
