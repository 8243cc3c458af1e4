package ledgertest_test

import (
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/google/uuid"
)

// TestExitIsNeverDenied: a person whose code turned red while inside is let
// out (the exit closes the stay) and the screen still shows red; the entry
// they would try now is denied.
func TestExitIsNeverDenied(t *testing.T) {
	h := newHarness(t)
	vid, manager := h.approvedVenue(domain.ApplyVenue{})
	p, number := h.register("张三")
	h.health(number, domain.ColourRed, domain.NATPositive, time.Now().Add(-time.Hour))
	h.caughtUp(h.lastPosition())
	for _, tc := range []struct{ dir, want string }{{domain.DirectionOut, domain.DecisionPass}, {domain.DirectionIn, domain.DecisionDeny}} {
		res, err := h.ledger.RecordPass(h.ctx, person(manager), domain.RecordPass{Method: domain.MethodStaffScan, VenueID: vid, PersonID: p, Direction: tc.dir})
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision != tc.want || res.Screen.CodeColour != domain.ColourRed || res.Screen.Direction != tc.dir {
			t.Fatalf("%s: %+v, want decision %s with the red code shown", tc.dir, res, tc.want)
		}
	}
}

// TestRecordedStayLongerThanDwell: a recorded 6-hour restaurant stay (dwell
// 2 h) is one stay: a person there in its middle hour is a contact.
func TestRecordedStayLongerThanDwell(t *testing.T) {
	h := newHarness(t)
	vid, manager := h.approvedVenue(domain.ApplyVenue{Name: "沂河饭店", Type: domain.VenueRestaurant, District: "371302",
		Address: "兰山区沂河路2号", Lat: 35.05, Lng: 118.35})
	long, _ := h.register("张三")
	middle, _ := h.register("李四")
	h.caughtUp(h.lastPosition())
	t0 := time.Now().Add(-10 * time.Hour).Truncate(time.Second)
	for _, p := range []struct {
		who uuid.UUID
		dir string
		at  time.Time
	}{
		{long, domain.DirectionIn, t0}, {long, domain.DirectionOut, t0.Add(6 * time.Hour)},
		{middle, domain.DirectionIn, t0.Add(3 * time.Hour)}, {middle, domain.DirectionOut, t0.Add(3*time.Hour + 40*time.Minute)},
	} {
		if _, err := h.ledger.RecordPass(h.ctx, person(manager), domain.RecordPass{Method: domain.MethodStaffScan, VenueID: vid,
			PersonID: p.who, Direction: p.dir, OccurredAt: p.at}); err != nil {
			t.Fatal(err)
		}
	}
	h.caughtUp(h.lastPosition())
	res, err := h.ledger.Trace(h.ctx, domain.Actor{Role: domain.RoleAnalyst, Subject: "analyst:test"}, domain.TraceQuery{
		PersonID: long, From: t0.Add(-time.Hour), To: t0.Add(7 * time.Hour), Depth: 1, MinOverlap: 30 * time.Minute, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Contacts) != 1 || res.Contacts[0].PersonID != middle || res.Contacts[0].OverlapMinutes != 40 {
		t.Fatalf("contacts of a 6-hour stay: %+v, want the person of its middle hour, 40 minutes", res.Contacts)
	}
	if len(res.Visits) != 1 || !res.Visits[0].Start.Equal(t0) || !res.Visits[0].End.Equal(t0.Add(6*time.Hour)) {
		t.Fatalf("stays: %+v, want one from entry to exit", res.Visits)
	}
}

// TestOfflinePassDecidedOnTheStatusKnownThen: a pass uploaded later by a
// scanner that was offline is decided on the health status the ledger knew
// at its occurred_at, as an online scanner would have been.
func TestOfflinePassDecidedOnTheStatusKnownThen(t *testing.T) {
	h := newHarness(t)
	vid, manager := h.approvedVenue(domain.ApplyVenue{})
	p, number := h.register("张三")
	now := time.Now()
	at := func(ago time.Duration) func() time.Time { return func() time.Time { return now.Add(-ago) } }
	h.ledger.Now = at(5 * time.Hour)
	h.health(number, domain.ColourGreen, domain.NATNegative, now.Add(-6*time.Hour))
	h.ledger.Now = at(time.Hour)
	h.health(number, domain.ColourRed, domain.NATPositive, now.Add(-2*time.Hour))
	h.ledger.Now = time.Now
	h.caughtUp(h.lastPosition())
	for _, tc := range []struct {
		name     string
		at       time.Time
		colour   string
		decision string
	}{
		{"offline, three hours ago: green then", now.Add(-3 * time.Hour), domain.ColourGreen, domain.DecisionPass},
		{"online: red now", time.Time{}, domain.ColourRed, domain.DecisionDeny},
	} {
		res, err := h.ledger.RecordPass(h.ctx, person(manager), domain.RecordPass{Method: domain.MethodStaffScan, VenueID: vid,
			PersonID: p, Direction: domain.DirectionIn, OccurredAt: tc.at})
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision != tc.decision || res.Screen.CodeColour != tc.colour {
			t.Fatalf("%s: %s with %s shown, want %s with %s", tc.name, res.Decision, res.Screen.CodeColour, tc.decision, tc.colour)
		}
	}
}
