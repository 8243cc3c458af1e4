package domain

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestDecidePass(t *testing.T) {
	at := testNow
	plain := VenueView{ID: uuid.New(), Name: "超市", Status: VenueStatusApproved}
	green := VenueView{ID: plain.ID, RequireGreen: true}
	nat24 := VenueView{ID: plain.ID, NATWithinHours: 24}
	strict := VenueView{ID: plain.ID, RequireGreen: true, NATWithinHours: 48}
	person := PersonView{ID: uuid.New(), NameMasked: "张*"}
	h := func(colour, nat string, natAgo time.Duration) *HealthView {
		v := &HealthView{CodeColour: colour, NATResult: nat}
		if nat != NATNone && nat != "" {
			v.NATAt = at.Add(-natAgo)
		}
		return v
	}
	tests := []struct {
		name     string
		venue    VenueView
		health   *HealthView
		decision string
		abnormal bool
	}{
		{"green passes", plain, h(ColourGreen, NATNone, 0), DecisionPass, false},
		{"yellow denied", plain, h(ColourYellow, NATNone, 0), DecisionDeny, true},
		{"red denied", plain, h(ColourRed, NATNegative, time.Hour), DecisionDeny, true},
		{"unknown passes", plain, nil, DecisionPass, false},
		{"empty colour is unknown", plain, &HealthView{}, DecisionPass, false},
		{"positive test denied", plain, h(ColourGreen, NATPositive, time.Hour), DecisionDeny, true},
		{"require green, green", green, h(ColourGreen, NATNone, 0), DecisionPass, false},
		{"require green, unknown", green, nil, DecisionDeny, true},
		{"require green, yellow", green, h(ColourYellow, NATNone, 0), DecisionDeny, true},
		{"nat 24h, negative 2h ago", nat24, h(ColourGreen, NATNegative, 2*time.Hour), DecisionPass, false},
		{"nat 24h, negative exactly 24h ago", nat24, h(ColourGreen, NATNegative, 24*time.Hour), DecisionPass, false},
		{"nat 24h, negative 25h ago", nat24, h(ColourGreen, NATNegative, 25*time.Hour), DecisionDeny, true},
		{"nat 24h, test after the pass", nat24, h(ColourGreen, NATNegative, -time.Hour), DecisionPass, false},
		{"nat 24h, no test", nat24, h(ColourGreen, NATNone, 0), DecisionDeny, true},
		{"nat 24h, no record", nat24, nil, DecisionDeny, true},
		{"nat 24h, negative without time", nat24, &HealthView{CodeColour: ColourGreen, NATResult: NATNegative}, DecisionDeny, true},
		{"nat 24h, unknown colour with test", nat24, h("", NATNegative, time.Hour), DecisionPass, false},
		{"strict, all good", strict, h(ColourGreen, NATNegative, 47*time.Hour), DecisionPass, false},
		{"strict, old test", strict, h(ColourGreen, NATNegative, 49*time.Hour), DecisionDeny, true},
		{"strict, unknown colour", strict, h("", NATNegative, time.Hour), DecisionDeny, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An exit is never refused; its alert follows the status alone.
			if d, r := DecidePass(tt.venue, person, tt.health, DirectionOut, at); d != DecisionPass || r != "" {
				t.Fatalf("exit decision = %s (%s), want pass", d, r)
			}
			statusAbnormal := tt.health != nil && (tt.health.CodeColour == ColourYellow || tt.health.CodeColour == ColourRed || tt.health.NATResult == NATPositive)
			if got := IsAbnormal(DecisionPass, tt.health); got != statusAbnormal {
				t.Fatalf("IsAbnormal of the exit = %v, want %v", got, statusAbnormal)
			}
			decision, reason := DecidePass(tt.venue, person, tt.health, DirectionIn, at)
			if decision != tt.decision {
				t.Fatalf("decision = %s (%s), want %s", decision, reason, tt.decision)
			}
			if (decision == DecisionDeny) != (reason != "") {
				t.Fatalf("decision %s with reason %q", decision, reason)
			}
			if got := IsAbnormal(decision, tt.health); got != tt.abnormal {
				t.Fatalf("IsAbnormal = %v, want %v", got, tt.abnormal)
			}
		})
	}
}

func TestIsAbnormal(t *testing.T) {
	tests := []struct {
		name     string
		decision string
		health   *HealthView
		want     bool
	}{
		{"pass green", DecisionPass, &HealthView{CodeColour: ColourGreen}, false},
		{"pass unknown", DecisionPass, nil, false},
		{"deny unknown", DecisionDeny, nil, true},
		{"pass yellow (not decided here)", DecisionPass, &HealthView{CodeColour: ColourYellow}, true},
		{"pass red", DecisionPass, &HealthView{CodeColour: ColourRed}, true},
		{"pass positive", DecisionPass, &HealthView{CodeColour: ColourGreen, NATResult: NATPositive}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsAbnormal(tt.decision, tt.health); got != tt.want {
				t.Fatalf("IsAbnormal = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBuildScreen(t *testing.T) {
	venue := VenueView{ID: uuid.New(), Name: "临沂书城"}
	person := PersonView{ID: uuid.New(), NameMasked: "张*"}
	at := time.Date(2022, 5, 1, 16, 0, 0, 0, time.FixedZone("CST", 8*3600))
	natAt := at.Add(-5 * time.Hour)
	t.Run("with health", func(t *testing.T) {
		h := &HealthView{CodeColour: ColourGreen, NATResult: NATNegative, NATAt: natAt, VaccineDoses: 3}
		s := BuildScreen(venue, h, at, DirectionIn, DecisionPass, "")
		want := Screen{CodeColour: ColourGreen, NATResult: NATNegative, NATAt: natAt.UTC(),
			VaccineDoses: 3, VenueID: venue.ID, VenueName: "临沂书城", At: at.UTC(), Direction: DirectionIn, Decision: DecisionPass}
		if s != want {
			t.Fatalf("screen = %+v\nwant     %+v", s, want)
		}
	})
	t.Run("answered", func(t *testing.T) {
		// The event's screen has no name; the answer puts in the current one.
		s := BuildScreen(venue, nil, at, DirectionIn, DecisionPass, "")
		f := PassFacts{Persons: map[uuid.UUID]PersonView{person.ID: person}}
		if got := f.AnswerScreen(s, person.ID); got.NameMasked != "张*" || s.NameMasked != "" {
			t.Fatalf("answer %q, event %q", got.NameMasked, s.NameMasked)
		}
		erased := person
		erased.NameMasked, erased.Erased = "", true
		f.Persons[person.ID] = erased
		if got := f.AnswerScreen(s, person.ID); got.NameMasked != ErasedName {
			t.Fatalf("answer for an erased person: %q", got.NameMasked)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		s := BuildScreen(venue, nil, at, DirectionOut, DecisionDeny, "r")
		if s.CodeColour != ColourUnknown || s.NATResult != "" || !s.NATAt.IsZero() || s.VaccineDoses != 0 ||
			s.Decision != DecisionDeny || s.Reason != "r" || s.Direction != DirectionOut || s.At.Location() != time.UTC {
			t.Fatalf("screen = %+v", s)
		}
	})
}

func TestDwell(t *testing.T) {
	tests := []struct {
		venueType string
		want      time.Duration
	}{
		{VenueRestaurant, 2 * time.Hour},
		{VenueMall, 3 * time.Hour},
		{VenueHospital, 4 * time.Hour},
		{VenueHotel, 12 * time.Hour},
		{VenueGuesthouse, 12 * time.Hour},
		{VenueResidential, 12 * time.Hour},
		{VenueSchool, 8 * time.Hour},
		{VenueEnterprise, 9 * time.Hour},
		{VenuePublicTransport, time.Hour},
		{VenueOther, 2 * time.Hour},
		{"not-a-type", 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.venueType, func(t *testing.T) {
			if got := DefaultDwell(tt.venueType); got != tt.want {
				t.Fatalf("DefaultDwell = %s, want %s", got, tt.want)
			}
			if got := Dwell(nil).For(tt.venueType); got != tt.want {
				t.Fatalf("nil Dwell.For = %s, want %s", got, tt.want)
			}
		})
	}
	for _, ty := range VenueTypes() {
		if DefaultDwell(ty) <= 0 {
			t.Fatalf("DefaultDwell(%s) = %s", ty, DefaultDwell(ty))
		}
	}
	d := Dwell{VenueMall: 90 * time.Minute, VenueSchool: 0}
	if got := d.For(VenueMall); got != 90*time.Minute {
		t.Fatalf("override = %s", got)
	}
	if got := d.For(VenueSchool); got != 8*time.Hour {
		t.Fatalf("zero override = %s, want the default", got)
	}
}

func TestDerivedEventIDs(t *testing.T) {
	pass, member, other := uuid.New(), uuid.New(), uuid.New()
	if AlertEventID(pass) != AlertEventID(pass) || AlertEventID(pass) == AlertEventID(other) || AlertEventID(pass) == pass {
		t.Fatal("AlertEventID is not a stable function of the pass id")
	}
	if FamilyPassEventID(pass, member) != FamilyPassEventID(pass, member) ||
		FamilyPassEventID(pass, member) == FamilyPassEventID(pass, other) ||
		FamilyPassEventID(pass, member) == FamilyPassEventID(other, member) {
		t.Fatal("FamilyPassEventID is not a stable function of both ids")
	}
}

func TestHealthAsOf(t *testing.T) {
	t0 := testNow
	rec := func(minutes int, pos uint64, colour, nat string, natAgo int) HealthRecordFact {
		r := HealthRecordFact{OccurredAt: t0.Add(time.Duration(minutes) * time.Minute), Position: pos, CodeColour: colour, NATResult: nat, VaccineDoses: int(pos)}
		if natAgo >= 0 {
			r.NATAt = r.OccurredAt.Add(-time.Duration(natAgo) * time.Minute)
		}
		return r
	}
	records := []HealthRecordFact{
		rec(60, 3, ColourRed, NATPositive, 10),  // turned red at +60
		rec(0, 1, ColourGreen, NATNegative, 30), // green at 0, tested at -30
		rec(30, 2, ColourGreen, NATNone, -1),    // green again at +30, no test
		rec(60, 4, ColourYellow, NATNone, -1),   // same instant as the red one, later position
	}
	tests := []struct {
		name   string
		at     time.Time
		ok     bool
		colour string
		nat    string
		natAt  time.Time
	}{
		{"before any record", t0.Add(-time.Minute), false, "", "", time.Time{}},
		{"the first record", t0, true, ColourGreen, NATNegative, t0.Add(-30 * time.Minute)},
		{"a record without a test keeps the earlier test", t0.Add(45 * time.Minute), true, ColourGreen, NATNegative, t0.Add(-30 * time.Minute)},
		{"same instant: the later position wins the colour, the newest test the result", t0.Add(time.Hour), true, ColourYellow, NATPositive, t0.Add(50 * time.Minute)},
		{"now: all of them", time.Time{}, true, ColourYellow, NATPositive, t0.Add(50 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := HealthAsOf(records, tt.at)
			if ok != tt.ok || h.CodeColour != tt.colour || h.NATResult != tt.nat || !h.NATAt.Equal(tt.natAt) {
				t.Fatalf("HealthAsOf = %+v %v, want %s %s %v (%v)", h, ok, tt.colour, tt.nat, tt.natAt, tt.ok)
			}
		})
	}
	if _, ok := HealthAsOf(nil, time.Time{}); ok {
		t.Fatal("no records: ok")
	}
}
