package ledger

import (
	"context"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/google/uuid"
)

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
	// Dwell is how long a stay at a venue of a type is taken to last where
	// its entry or exit is missing, for contact tracing (the same function
	// the HTTP layer's occupancy uses); nil: domain.DefaultDwell.
	Dwell func(venueType string) time.Duration
	// MaxStay is the longest stay a recorded entry and exit close at a
	// venue of a type; nil: domain.DefaultMaxStay.
	MaxStay func(venueType string) time.Duration
	// Stays are the read models' stays when they keep them (the
	// PostgreSQL store, opened with the same Dwell and MaxStay): traces
	// then read the stays that meet their windows. nil: traces build
	// stays from the pass windows.
	Stays StayReads
	// Log is the log's reading side, to replay a person's passes straight
	// from it (the event store implements both EventStore and Log).
	Log Log
	// Audit keeps the audit chain's head, entries and anchor (the event
	// store implements it too).
	Audit AuditLog
	// Metrics is told of each pass recorded (nil: none).
	Metrics Metrics
	// Fence orders erasures against the writes that check a person
	// (ErasureFence); nil: none. Copies of a Ledger share it.
	Fence *ErasureFence
	// Own makes a pass wait for the facts this process wrote before it
	// (OwnWrites); nil: none.
	Own *OwnWrites
}

// Metrics is told what the ledger records, for monitoring (cmd wires it to
// Prometheus). Its methods must be quick and safe for concurrent use.
type Metrics interface {
	// PassRecorded is told of every new pass stored (not of a retry
	// answered with the original), with its method and decision.
	PassRecorded(method, decision string)
}

// Result is the outcome of a command that created or changed an aggregate.
type Result struct {
	ID        uuid.UUID // the aggregate's id (person, venue, declaration)
	EventID   uuid.UUID
	Position  uint64
	Duplicate bool
}

// PassResult is the answer to a pass: the "one screen".
type PassResult struct {
	EventID   uuid.UUID
	Position  uint64
	Decision  string
	Screen    domain.Screen
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

// HealthResult says where a feed's records landed.
type HealthResult struct {
	Accepted      int
	FirstPosition uint64
	LastPosition  uint64
}

// DefaultClockSkew is how far in the future a device's occurred_at may be
// when Ledger.ClockSkew is zero.
const DefaultClockSkew = 2 * time.Minute

// now returns the ledger's clock, time.Now when none is set.
func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Ledger) clockSkew() time.Duration {
	if l.ClockSkew > 0 {
		return l.ClockSkew
	}
	return DefaultClockSkew
}

// LogPosition returns the position of the newest event in the log: what a
// caller waits for the read models to reach before a query that must hold
// everything recorded before it (a contact trace).
func (l *Ledger) LogPosition(ctx context.Context) (uint64, error) {
	return l.Events.LastPosition(ctx)
}
