package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// TestPresenceKeepsNewestAndRetires: the presence table (who is inside)
// holds each pair's newest pass that moves a person, whatever order the
// passes arrive in (an offline batch late), leaves a refused entry out, and
// goes with the passes a retirement deletes.
func TestPresenceKeepsNewestAndRetires(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	venue, a, b, c, d := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	day := time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC)
	pos := uint64(0)
	pass := func(person uuid.UUID, dir, decision string, at time.Time) projections.Change {
		pos++
		return projections.Change{EventID: uuid.New(), Type: domain.TypePassRecorded, Aggregate: domain.PassAggregate(venue, person),
			Position: pos, OccurredAt: at, Event: &domain.PassRecorded{VenueID: venue, PersonID: person,
				Direction: dir, Method: "self_scan", Decision: decision}}
	}
	apply := func(cs ...projections.Change) {
		t.Helper()
		if _, err := s.Apply(ctx, projections.Batch{Changes: cs, Last: pos}); err != nil {
			t.Fatal(err)
		}
	}
	apply(pass(a, "in", "pass", day), pass(a, "out", "pass", day.Add(time.Hour)), pass(b, "in", "pass", day.Add(26*time.Hour)),
		pass(c, "out", "pass", day.Add(25*time.Hour)), pass(d, "in", "pass", day.Add(25*time.Hour)), pass(d, "out", "pass", day.Add(27*time.Hour)))
	// Late: a's earlier entry again, and a refused entry after the exit.
	apply(pass(a, "in", "pass", day.Add(30*time.Minute)), pass(a, "in", "deny", day.Add(2*time.Hour)))
	rows := func() map[uuid.UUID]bool {
		t.Helper()
		out := map[uuid.UUID]bool{}
		r, err := testPool.Query(ctx, `SELECT person_id, inside FROM `+s.Schema()+`.presence WHERE venue_id = $1`, venue)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for r.Next() {
			var p uuid.UUID
			var in bool
			if err := r.Scan(&p, &in); err != nil {
				t.Fatal(err)
			}
			out[p] = in
		}
		return out
	}
	if got := rows(); len(got) != 4 || got[a] || !got[b] {
		t.Fatalf("presence %v: want a outside (its exit is its newest move), b inside, c and d", got)
	}
	// The first sweep of these tables reads them whole; the next ones look
	// at the pairs of the passes since the last cut-off.
	if _, err := s.RetirePasses(ctx, day.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := rows(); len(got) != 3 || !got[b] {
		t.Fatalf("presence after retiring the first day: %v, want b, c and d", got)
	}
	if _, err := s.RetirePasses(ctx, day.Add(25*time.Hour+30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := rows(); len(got) != 2 || !got[b] || got[d] {
		t.Fatalf("presence after the next sweep: %v, want b inside and d (its newest pass is later)", got)
	}
}
