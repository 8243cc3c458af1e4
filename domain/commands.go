package domain

import (
	"time"

	"github.com/google/uuid"
)

// Roles carried by bearer tokens.
const (
	RoleAdmin      = "admin"
	RoleReviewer   = "reviewer"
	RolePerson     = "person"
	RoleScanner    = "scanner"
	RoleAnalyst    = "analyst"
	RoleDashboard  = "dashboard"
	RoleHealthFeed = "health-feed"
	// RoleAuditor reads and verifies the audit trail, and nothing else:
	// the admins whose actions it records do not audit themselves.
	RoleAuditor = "auditor"
)

// Actor is who issues a command, as proven by their token. Venue staff are
// persons (RolePerson) who manage a venue; a scanner is bound to one venue.
type Actor struct {
	Role     string
	PersonID uuid.UUID // RolePerson
	VenueID  uuid.UUID // RoleScanner
	// District, when set on a reviewer or a dashboard (DistrictBound),
	// limits them to that district; empty: city-wide.
	District string
	// Subject is a stable name for audit and Envelope.Actor, e.g. "person:<id>".
	Subject string
}

// RegisterPerson registers a citizen. EventID, when set, makes a retry idempotent.
type RegisterPerson struct {
	EventID  uuid.UUID
	Name     string
	IDType   string
	IDNumber string
	Phone    string
}

// VerifyPerson records the outcome of a face check or manual review.
type VerifyPerson struct {
	Method string // face | manual
	Result string // approved | rejected
}

// AddFamilyMember registers a dependant (no phone) under a guardian.
type AddFamilyMember struct {
	Name     string
	IDType   string
	IDNumber string
	Relation string
}

// ApplyVenue applies for a venue code; the applicant becomes its manager.
type ApplyVenue struct {
	Name           string
	Type           string
	District       string
	Address        string
	Lat, Lng       float64
	RequireGreen   bool
	NATWithinHours int
}

// ReviewVenue approves or rejects a venue application.
type ReviewVenue struct {
	Decision string // approve | reject
	Reason   string
}

// RecordPass records one pass. The HTTP layer has already turned a venue
// code or personal code into VenueID / PersonID; a manual entry carries
// IDType and IDNumber instead of PersonID.
type RecordPass struct {
	EventID         uuid.UUID // zero: a new UUIDv7
	OccurredAt      time.Time // zero: now
	Method          string    // self_scan | staff_scan | manual
	VenueID         uuid.UUID
	PersonID        uuid.UUID
	IDType          string
	IDNumber        string
	Direction       string // in | out
	FamilyMemberIDs []uuid.UUID
	// CodeID names the personal code a staff scan read (its signature):
	// the pass's event id is then derived from it (CodePassEventID), so a
	// code records at most one pass per venue and direction in its life.
	CodeID string
}

// HealthRecord is one record of the health data feed.
type HealthRecord struct {
	IDType       string
	IDNumber     string
	CodeColour   string
	NATResult    string
	NATAt        time.Time
	VaccineDoses int
}
