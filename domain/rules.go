package domain

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Pass methods, directions and decisions, as used on the wire.
const (
	MethodSelfScan  = "self_scan"
	MethodStaffScan = "staff_scan"
	MethodManual    = "manual"

	DirectionIn  = "in"
	DirectionOut = "out"

	DecisionPass = "pass"
	DecisionDeny = "deny"
)

// Health-code colours and nucleic-acid (NAT) results.
const (
	ColourGreen  = "green"
	ColourYellow = "yellow"
	ColourRed    = "red"
	// ColourUnknown is shown for a person with no health record yet.
	ColourUnknown = "unknown"

	NATNegative = "negative"
	NATPositive = "positive"
	NATNone     = "none"
)

// DecidePass decides whether person may cross venue's boundary at at,
// given their latest health status (nil: none known). The rules, in order:
//   - a red or yellow code is denied;
//   - a positive latest nucleic-acid test is denied (an abnormal status
//     whatever the colour says);
//   - a venue that requires a green code denies anything else, including an
//     unknown colour (no record); elsewhere an unknown colour passes;
//   - a venue with NATWithinHours > 0 requires a negative test taken no more
//     than that many hours before at (a test recorded after at counts: the
//     ledger keeps only the latest test, and a scanner replaying offline
//     passes must not deny a person for having been tested since).
//
// A person whose identity check was rejected is denied entry.
//
// An exit is never refused: whoever is inside may leave, and the exit
// closes their stay. The screen still shows their status, and an abnormal
// status still raises an alert (IsAbnormal). A refused entry means the
// person did not go in: contact tracing and occupancy count no stay for it.
func DecidePass(venue VenueView, person PersonView, health *HealthView, direction string, at time.Time) (decision, reason string) {
	if direction == DirectionOut {
		return DecisionPass, ""
	}
	if person.Verification == VerificationRejected {
		return DecisionDeny, "identity check was rejected"
	}
	colour := ColourUnknown
	if health != nil && health.CodeColour != "" {
		colour = health.CodeColour
	}
	switch colour {
	case ColourRed:
		return DecisionDeny, "red health code"
	case ColourYellow:
		return DecisionDeny, "yellow health code"
	}
	if health != nil && health.NATResult == NATPositive {
		return DecisionDeny, "latest nucleic-acid test is positive"
	}
	if venue.RequireGreen && colour != ColourGreen {
		return DecisionDeny, "venue requires a green health code; health code is " + colour
	}
	if h := venue.NATWithinHours; h > 0 {
		window := time.Duration(h) * time.Hour
		if health == nil || health.NATResult != NATNegative || health.NATAt.IsZero() || at.Sub(health.NATAt) > window {
			return DecisionDeny, fmt.Sprintf("venue requires a negative nucleic-acid test within %d hours", h)
		}
	}
	return DecisionPass, ""
}

// IsAbnormal reports whether a pass must be reported to the district: it
// was denied, or the code is yellow or red, or the latest test is positive.
func IsAbnormal(decision string, health *HealthView) bool {
	if decision == DecisionDeny {
		return true
	}
	if health == nil {
		return false
	}
	return health.CodeColour == ColourYellow || health.CodeColour == ColourRed || health.NATResult == NATPositive
}

// BuildScreen assembles the "one screen" of a pass as the event keeps it:
// the person's health status, the venue, time, direction and decision. The
// masked name is not in the log; the answer adds it (PassFacts.AnswerScreen).
func BuildScreen(venue VenueView, health *HealthView, at time.Time, direction, decision, reason string) Screen {
	s := Screen{
		CodeColour: ColourUnknown,
		VenueID:    venue.ID,
		VenueName:  venue.Name,
		At:         at.UTC(),
		Direction:  direction,
		Decision:   decision,
		Reason:     reason,
	}
	if health != nil {
		if health.CodeColour != "" {
			s.CodeColour = health.CodeColour
		}
		s.NATResult = health.NATResult
		if !health.NATAt.IsZero() {
			s.NATAt = health.NATAt.UTC()
		}
		s.VaccineDoses = health.VaccineDoses
	}
	return s
}

// DefaultDwell is how long a person is taken to stay at a venue of a type
// when no exit was recorded: occupancy and contact tracing end an open
// entry after it.
func DefaultDwell(venueType string) time.Duration {
	switch venueType {
	case VenuePublicTransport:
		return time.Hour
	case VenueMall, VenueLibrary, VenueMuseum, VenueCulturalCenter, VenueEntertainment, VenueTouristSite:
		return 3 * time.Hour
	case VenueHospital:
		return 4 * time.Hour
	case VenueSchool:
		return 8 * time.Hour
	case VenueEnterprise, VenueGovernment, VenuePublicInstitution, VenueConstructionSite,
		VenueColdChain, VenueLogistics:
		return 9 * time.Hour
	case VenueHotel, VenueGuesthouse, VenueResidential, VenueElderlyCare:
		return 12 * time.Hour
	default:
		// restaurant, supermarket, farmers_market, pharmacy, service_hall,
		// transport_station and other.
		return 2 * time.Hour
	}
}

// DefaultMaxStay is the longest stay a recorded entry and exit may close at
// a venue of a type: a guard against a missing exit, so an exit days after
// a forgotten exit scan is not taken for one long stay. Places where people
// stay the night or longer get days; elsewhere a day.
func DefaultMaxStay(venueType string) time.Duration {
	switch venueType {
	case VenueHotel, VenueGuesthouse, VenueElderlyCare, VenueHospital:
		return 14 * 24 * time.Hour
	case VenueResidential:
		return 3 * 24 * time.Hour
	case VenuePublicTransport:
		return 6 * time.Hour
	default:
		return 24 * time.Hour
	}
}

// StayRules say how long stays at a venue of each type last where the
// passes leave an end open, and how long a recorded stay may be. The zero
// value is the defaults.
type StayRules struct {
	// Dwell is the stay assumed where its entry or its exit is missing;
	// nil: DefaultDwell.
	Dwell func(venueType string) time.Duration
	// MaxStay is the longest stay an entry and the exit after it close;
	// nil: DefaultMaxStay. It is never shorter than the dwell.
	MaxStay func(venueType string) time.Duration
}

// DwellOf returns the dwell of venueType.
func (r StayRules) DwellOf(venueType string) time.Duration {
	if r.Dwell == nil {
		return DefaultDwell(venueType)
	}
	return r.Dwell(venueType)
}

// MaxStayOf returns the longest recorded stay at venueType (at least its dwell).
func (r StayRules) MaxStayOf(venueType string) time.Duration {
	m := DefaultMaxStay(venueType)
	if r.MaxStay != nil {
		m = r.MaxStay(venueType)
	}
	return max(m, r.DwellOf(venueType))
}

// Longest returns the longest stay of any venue type (and of an unknown
// one): no stay is longer, and a stay depends only on passes less than
// that apart.
func (r StayRules) Longest() time.Duration {
	longest := r.MaxStayOf("")
	for _, t := range VenueTypes() {
		longest = max(longest, r.MaxStayOf(t))
	}
	return longest
}

// String spells the rules out, type by type ("" is an unknown type): two
// rules with the same String give the same stays. A store that keeps stays
// records it to know which rules they were built under.
func (r StayRules) String() string {
	var b []byte
	for _, t := range append([]string{""}, VenueTypes()...) {
		b = fmt.Appendf(b, "%s=%s/%s;", t, r.DwellOf(t), r.MaxStayOf(t))
	}
	return string(b)
}

// Dwell overrides DefaultDwell per venue type (configuration). A nil or
// empty Dwell is DefaultDwell.
type Dwell map[string]time.Duration

// For returns the dwell of venueType: the override when set and positive,
// DefaultDwell otherwise. d.For fits the dwell function of Presences.
func (d Dwell) For(venueType string) time.Duration {
	if v, ok := d[venueType]; ok && v > 0 {
		return v
	}
	return DefaultDwell(venueType)
}

// codePassNamespace is the UUIDv5 namespace of passes read from a personal code.
var codePassNamespace = uuid.MustParse("5d0c7a2e-9b14-4c3f-8e61-2f7a9d3b1c40")

// CodePassEventID is the event id of the pass a personal code (named by
// codeID) records at a venue in a direction: one code, one pass there that
// way, however often it is scanned; a replay answers the original pass.
func CodePassEventID(codeID string, venueID uuid.UUID, direction string) uuid.UUID {
	return uuid.NewSHA1(codePassNamespace, []byte(codeID+"\x00"+venueID.String()+"\x00"+direction))
}

// alertNamespace is the UUIDv5 namespace of alert event ids.
var alertNamespace = uuid.MustParse("8f1c2b6e-3a57-4f0d-9c1e-5b7a2d4e6f80")

// AlertEventID is the event id of the alert raised by a pass: derived from
// the pass's event id, so a retried pass (or a reaction that raises the same
// alert) stores it once.
func AlertEventID(passEventID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(alertNamespace, passEventID[:])
}

// FamilyPassEventID is the event id of a dependant's pass made with their
// guardian's pass: derived from the guardian's event id, so a retry of the
// guardian's pass stores each dependant's pass once.
func FamilyPassEventID(mainEventID, memberID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(mainEventID, memberID[:])
}
