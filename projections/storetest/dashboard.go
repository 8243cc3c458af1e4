package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// testDashboard checks the dashboard's counts: per hour, district and venue
// type, denied and abnormal apart, a redelivered pass once, an offline
// pass in its own hour, the district filter, the passes held, the busiest
// venues by Occupancy's rule with each type's dwell, the review queues.
func testDashboard(t *testing.T, f *feeder) {
	zhang, _, r1 := f.person("张三", "371302199001011234")
	li, _, r2 := f.person("李四", "P12345678")
	wang, _, r3 := f.person("王五", "371302199001015678")
	lib, e1 := f.venue("371302", Base) // library, dwell 3 h
	mall := uuid.New()
	mallEnv := f.env(domain.VenueAggregate(mall), &domain.VenueApplied{VenueID: mall, Name: "临沂万达", Type: domain.VenueMall,
		District: "371311", Address: "河东区", Lat: 35.1, Lng: 118.4, ManagerID: uuid.New()}, Base)
	_, e3 := f.venue("371311", Base) // waits for review
	f.apply(r1, r2, r3, e1, mallEnv, e3,
		f.env(domain.VenueAggregate(lib), &domain.VenueReviewed{VenueID: lib, Decision: "approve"}, Base),
		f.env(domain.VenueAggregate(mall), &domain.VenueReviewed{VenueID: mall, Decision: "approve"}, Base))
	declID := uuid.New()
	f.apply(
		f.env(domain.DeclarationAggregate(declID), &domain.ArrivalDeclared{DeclarationID: declID, PersonID: zhang,
			ArrivalDate: "2022-03-02", Origin: "济南市", DestinationDistrict: "371302", NATResult: "none"}, Base),
		f.env(domain.DeclarationAggregate(declID), &domain.DeclarationQueued{DeclarationID: declID, Kind: "arrival", District: "371302"}, Base))

	h0 := domain.PassHour(Base) // 00:00 UTC, 08:00 in the city
	yellow := f.pass(lib, li, "in", "pass", h0.Add(70*time.Minute))
	ev, _ := domain.Decode(yellow)
	y := ev.(*domain.PassRecorded)
	y.Screen.CodeColour = "yellow"
	yellow = f.env(yellow.Aggregate, y, h0.Add(70*time.Minute))
	first := f.pass(lib, zhang, "in", "pass", h0.Add(10*time.Minute))
	f.apply(
		first,
		f.pass(lib, wang, "in", "deny", h0.Add(20*time.Minute)),
		yellow,
		f.pass(mall, zhang, "in", "pass", h0.Add(2*time.Hour+5*time.Minute)),
		f.pass(mall, wang, "in", "pass", h0.Add(2*time.Hour+6*time.Minute)),
		f.pass(mall, li, "in", "pass", h0.Add(2*time.Hour+7*time.Minute)),
	)
	// The first pass again (a retry past the duplicate window) and an
	// offline scanner's pass from the first hour, both late.
	late := f.pass(lib, li, "out", "pass", h0.Add(30*time.Minute))
	f.apply(first, late)

	now := h0.Add(2*time.Hour + 30*time.Minute)
	q := domain.DashboardQuery{From: h0, To: h0.Add(4 * time.Hour), Now: now, Top: 5}
	got := Must(f.s.Dashboard(ctx, q))(t)
	hour := func(h int, c domain.PassCounts) domain.HourCounts {
		return domain.HourCounts{Hour: h0.Add(time.Duration(h) * time.Hour).UTC(), PassCounts: c}
	}
	want := domain.Dashboard{
		Hours: []domain.HourCounts{
			hour(0, domain.PassCounts{Passes: 3, Denied: 1, Abnormal: 1}),
			hour(1, domain.PassCounts{Passes: 1, Abnormal: 1}),
			hour(2, domain.PassCounts{Passes: 3}),
			hour(3, domain.PassCounts{}),
		},
		Total: domain.PassCounts{Passes: 7, Denied: 1, Abnormal: 2},
		ByDistrict: map[string]domain.PassCounts{
			"371302": {Passes: 4, Denied: 1, Abnormal: 2},
			"371311": {Passes: 3},
		},
		ByVenueType: map[string]domain.PassCounts{
			"library":        {Passes: 4, Denied: 1, Abnormal: 2},
			domain.VenueMall: {Passes: 3},
		},
		PassesHeld: 7,
		// At 10:30 the library's entries (3 h dwell) still count: zhang
		// and li (whose exit at 08:30 came before their entry at 09:10;
		// wang was refused); the mall has three inside.
		OccupancyTop: []domain.VenueOccupancy{
			{VenueID: mall, Name: "临沂万达", Type: domain.VenueMall, District: "371311", Occupancy: 3},
			{VenueID: lib, Name: "临沂大学图书馆", Type: "library", District: "371302", Occupancy: 2},
		},
		PendingVenues:       1,
		PendingDeclarations: 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("dashboard:\n got %+v\nwant %+v", got, want)
	}

	t.Run("one district", func(t *testing.T) {
		q := q
		q.District = "371311"
		got := Must(f.s.Dashboard(ctx, q))(t)
		if got.Total != (domain.PassCounts{Passes: 3}) || got.PassesHeld != 3 || got.PendingVenues != 1 ||
			got.PendingDeclarations != 0 || len(got.OccupancyTop) != 1 || got.OccupancyTop[0].VenueID != mall ||
			len(got.ByDistrict) != 1 || got.Hours[0].Passes != 0 || got.Hours[2].Passes != 3 {
			t.Fatalf("district 371311: %+v", got)
		}
	})
	t.Run("top one, a shorter dwell", func(t *testing.T) {
		q := q
		q.Top = 1
		q.Dwell = func(string) time.Duration { return time.Hour }
		q.Now = h0.Add(3 * time.Hour)
		got := Must(f.s.Dashboard(ctx, q))(t)
		if len(got.OccupancyTop) != 1 || got.OccupancyTop[0].VenueID != mall || got.OccupancyTop[0].Occupancy != 3 {
			t.Fatalf("top 1 at 11:00, 1 h dwell: %+v", got.OccupancyTop)
		}
		q.Now = h0.Add(4 * time.Hour)
		if got := Must(f.s.Dashboard(ctx, q))(t); len(got.OccupancyTop) != 0 {
			t.Fatalf("everyone's dwell over: %+v", got.OccupancyTop)
		}
	})
	t.Run("another day", func(t *testing.T) {
		q := domain.DashboardQuery{From: h0.Add(24 * time.Hour), To: h0.Add(48 * time.Hour), Now: now}
		got := Must(f.s.Dashboard(ctx, q))(t)
		if got.Total != (domain.PassCounts{}) || len(got.Hours) != 24 || got.PassesHeld != 7 || got.OccupancyTop != nil {
			t.Fatalf("next day: total %+v, %d hours, held %d, top %v", got.Total, len(got.Hours), got.PassesHeld, got.OccupancyTop)
		}
	})
}

// testDashboardGenerated feeds a generated city and checks the dashboard's
// counts against a count over the log, and its busiest venues against
// Occupancy asked venue by venue.
func testDashboardGenerated(t *testing.T, f *feeder) {
	l := Generate(60, 12, 3000, 3, 11)
	if err := Feed(ctx, f.s, l.Envelopes, projections.KeyringOpener(l.Keys), 250); err != nil {
		t.Fatal(err)
	}
	district := map[uuid.UUID]string{}
	for _, e := range l.Envelopes {
		if e.Type == domain.TypeVenueApplied {
			ev, _ := domain.Decode(e)
			v := ev.(*domain.VenueApplied)
			district[v.VenueID] = v.District
		}
	}
	from, to := domain.PassHour(Base.Add(24*time.Hour)), domain.PassHour(Base.Add(48*time.Hour))
	var want domain.PassCounts
	byDistrict := map[string]domain.PassCounts{}
	held := int64(0)
	for _, e := range l.Envelopes {
		if e.Type != domain.TypePassRecorded {
			continue
		}
		ev, _ := domain.Decode(e)
		p := ev.(*domain.PassRecorded)
		held++
		if e.OccurredAt.Before(from) || !e.OccurredAt.Before(to) {
			continue
		}
		c := domain.CountPass(*p)
		want.Add(c)
		d := byDistrict[district[p.VenueID]]
		d.Add(c)
		byDistrict[district[p.VenueID]] = d
	}
	now := Base.Add(36 * time.Hour)
	got := Must(f.s.Dashboard(ctx, domain.DashboardQuery{From: from, To: to, Now: now, Top: 100}))(t)
	if got.Total != want || !reflect.DeepEqual(got.ByDistrict, byDistrict) || got.PassesHeld != held || len(got.Hours) != 24 {
		t.Fatalf("generated city: total %+v want %+v; by district %v want %v; held %d want %d",
			got.Total, want, got.ByDistrict, byDistrict, got.PassesHeld, held)
	}
	if want.Passes == 0 || want.Abnormal == 0 {
		t.Fatalf("the generated day has %+v: too few to test", want)
	}
	// The busiest venues in the middle of the history (venues with later
	// passes) and at its end, as the present is (none).
	var end time.Time
	for _, e := range l.Envelopes {
		if e.Type == domain.TypePassRecorded && e.OccurredAt.After(end) {
			end = e.OccurredAt
		}
	}
	for _, now := range []time.Time{now, end} {
		got := Must(f.s.Dashboard(ctx, domain.DashboardQuery{From: from, To: to, Now: now, Top: 100}))(t)
		busy := 0
		for _, v := range l.Venues {
			n := Must(f.s.Occupancy(ctx, v, now, domain.DefaultDwell("supermarket")))(t)
			found := 0
			for _, o := range got.OccupancyTop {
				if o.VenueID == v {
					found = o.Occupancy
				}
			}
			if n != found {
				t.Fatalf("at %s: venue %s: Occupancy %d, dashboard %d", now, v, n, found)
			}
			if n > 0 {
				busy++
			}
		}
		if busy == 0 || busy != len(got.OccupancyTop) {
			t.Fatalf("at %s: %d busy venues, dashboard lists %d", now, busy, len(got.OccupancyTop))
		}
	}
}
