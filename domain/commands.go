package domain

import (
	"context"
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
)

// Actor is who issues a command, as proven by their token. Venue staff are
// persons (RolePerson) who manage a venue; a scanner is bound to one venue.
type Actor struct {
	Role     string
	PersonID uuid.UUID // RolePerson
	VenueID  uuid.UUID // RoleScanner
	// District, when set on a reviewer, limits them to that district's
	// declarations; empty: city-wide.
	District string
	// Subject is a stable name for audit and Envelope.Actor, e.g. "person:<id>".
	Subject string
}

// IDHasher computes the keyed hash of an ID document (pii.Hasher).
type IDHasher interface {
	IDHash(idType, idNumber string) string
}

// Ledger runs commands: load an aggregate's events (or the read models a
// rule needs), decide with a pure rule, append the resulting events.
type Ledger struct {
	Events EventStore
	Keys   Keyring
	Hasher IDHasher
	Reads  ReadModel
	Now    func() time.Time
	// Retention is how long passes are kept; a pass older than this is refused.
	Retention time.Duration
	// ClockSkew is how far in the future a device's occurred_at may be.
	ClockSkew time.Duration
	// Dwell is how long a person with no exit is taken to stay at a venue
	// of a type, for contact tracing (the same function the HTTP layer's
	// occupancy uses); nil: DefaultDwell.
	Dwell func(venueType string) time.Duration
	// Log is the log's reading side, to replay a person's passes straight
	// from it (the event store implements both EventStore and Log).
	Log Log
}

// Result is the outcome of a command that created or changed an aggregate.
type Result struct {
	ID        uuid.UUID // the aggregate's id (person, venue, declaration)
	EventID   uuid.UUID
	Position  uint64
	Duplicate bool
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
}

// PassResult is the answer to a pass: the "one screen".
type PassResult struct {
	EventID   uuid.UUID
	Position  uint64
	Decision  string
	Screen    Screen
	Duplicate bool
	// Family holds the results of the dependants who passed with a guardian.
	Family []PassResult
}

// BatchItem is one item's outcome in a batch of passes.
type BatchItem struct {
	EventID uuid.UUID
	Status  string // accepted | duplicate | rejected
	Err     error
	Result  PassResult
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

// HealthResult says where a feed's records landed.
type HealthResult struct {
	Accepted      int
	FirstPosition uint64
	LastPosition  uint64
}

// Commands run by the ledger; the bodies live in the files named after each aggregate.
var _ interface {
	RegisterPerson(context.Context, Actor, RegisterPerson) (Result, error)
	VerifyPerson(context.Context, Actor, uuid.UUID, VerifyPerson) (Result, error)
	AddFamilyMember(context.Context, Actor, uuid.UUID, AddFamilyMember) (Result, error)
	ApplyVenue(context.Context, Actor, ApplyVenue) (Result, error)
	ReviewVenue(context.Context, Actor, uuid.UUID, ReviewVenue) (Result, error)
	AddSubAdmin(context.Context, Actor, uuid.UUID, uuid.UUID) (Result, error)
	RemoveSubAdmin(context.Context, Actor, uuid.UUID, uuid.UUID) (Result, error)
	RecordPass(context.Context, Actor, RecordPass) (PassResult, error)
	RecordPasses(context.Context, Actor, []RecordPass) ([]BatchItem, error)
	RecordHealth(context.Context, Actor, []HealthRecord) (HealthResult, error)
} = (*Ledger)(nil)
