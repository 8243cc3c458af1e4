package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/google/uuid"
)

// ErrUnavailable is wrapped by a read-model store's error when the store
// could not be reached or did not answer in time (a connection refused,
// dropped or closed, a deadline): an outage to retry later, not a bug and
// not an answer. The HTTP layer answers it 503 with Retry-After.
var ErrUnavailable = errors.New("ledger: read models unavailable")

// Appended is where an event landed in the log.
type Appended struct {
	// Position is the event's global position (unique, growing, not consecutive).
	Position uint64
	// Duplicate is true when an event with the same id was already stored;
	// Position is then the original event's position and nothing new was stored.
	Duplicate bool
}

// EventStore is the log of record (JetStream). Implemented by eventstore.Store.
type EventStore interface {
	// Load returns one aggregate's events in order and its version: the
	// position of its last event, 0 when it has none.
	Load(ctx context.Context, aggregate string) ([]domain.Envelope, uint64, error)
	// Append appends events to one aggregate if its version is still
	// expectedVersion (0: the aggregate must not exist yet). A stale version
	// is ErrConflict and appends nothing. Several events are appended
	// atomically. An event whose id was already stored is a Duplicate.
	Append(ctx context.Context, aggregate string, expectedVersion uint64, events ...domain.Envelope) ([]Appended, error)
	// Record appends events with no version check, gathered with other
	// concurrent callers into one durable write (group commit). Used for
	// passes, health records, alerts and audit entries. The result has one
	// entry per event, in order.
	Record(ctx context.Context, events ...domain.Envelope) ([]Appended, error)
	// Get returns the event at a position.
	Get(ctx context.Context, position uint64) (domain.Envelope, error)
	// LastPosition returns the position of the newest event in the log.
	LastPosition(ctx context.Context) (uint64, error)
}

// Keyring holds each person's data key for Sealed fields. Destroying a key
// erases that person's personal data from every event that used it.
type Keyring interface {
	// Key returns the data key of subject, creating it when create is true
	// and none exists; ErrNotFound otherwise (a key that was never there may say so apart from a destroyed one: see eventstore.ErrKeyMissing).
	Key(ctx context.Context, subject uuid.UUID, create bool) ([]byte, error)
	// Destroy deletes subject's key.
	Destroy(ctx context.Context, subject uuid.UUID) error
}

// Read-model views. Personal data in views is always masked.

// ReadModel is the query side of the read models, implemented by the memory
// and PostgreSQL stores in projections. Every method reflects the state at
// Position() or later.
type ReadModel interface {
	TraceReads
	AuditReads
	DeclarationReads

	// Position returns the global position of the last event applied.
	Position(ctx context.Context) (uint64, error)
	Person(ctx context.Context, id uuid.UUID) (domain.PersonView, error)
	PersonByIDHash(ctx context.Context, idHash string) (domain.PersonView, error)
	// Health returns the latest health status of an ID document; ok is false when none is known.
	Health(ctx context.Context, idHash string) (h domain.HealthView, ok bool, err error)
	Venue(ctx context.Context, id uuid.UUID) (domain.VenueView, error)
	Venues(ctx context.Context, f domain.VenueFilter) ([]domain.VenueView, error)
	Entries(ctx context.Context, q domain.EntryQuery) ([]domain.Entry, error)
	Trace(ctx context.Context, personID uuid.UUID, from, to time.Time) ([]domain.Visit, error)
	// Occupancy counts people inside a venue at now: entries minus exits,
	// where an entry with no exit ends after dwell.
	Occupancy(ctx context.Context, venueID uuid.UUID, now time.Time, dwell time.Duration) (int, error)
	Alerts(ctx context.Context, district string, limit int) ([]domain.Alert, error)
	// Dashboard answers the dashboard's counts: the hourly pass counts the
	// projector keeps (never a scan of passes), the passes held, the
	// busiest venues' occupancy (Occupancy's rule) and the review queues.
	Dashboard(ctx context.Context, q domain.DashboardQuery) (domain.Dashboard, error)
	// PassFacts returns, in one read, what deciding one call's passes
	// needs: the venues, the persons named by id or by document hash and
	// their health, the passes already stored among the event ids. Unknown
	// names are absent from the answer, not errors.
	PassFacts(ctx context.Context, q PassFactsQuery) (domain.PassFacts, error)
}

// PassFactsQuery names what the passes of one call are about (ids may
// repeat; the zero id is never found).
type PassFactsQuery struct {
	Venues   []uuid.UUID
	Persons  []uuid.UUID
	IDHashes []string
	EventIDs []uuid.UUID
}

// Log is the reading side of the event store, for projectors and replays.
// Implemented by eventstore.Store.
type Log interface {
	// Follow delivers every event with position > from, in order and in
	// batches, first from history and then live, with no gap and no
	// duplicate, until ctx ends or fn returns an error (which Follow returns).
	Follow(ctx context.Context, from uint64, fn func([]domain.Envelope) error) error
	// ReadPassesOf delivers the events of every pass aggregate of personID
	// (domain.PassAggregate(venue, personID) for any venue) with position >
	// from, in order and in batches, up to the log's end when it started.
	ReadPassesOf(ctx context.Context, personID uuid.UUID, from uint64, fn func([]domain.Envelope) error) error
	// LastPosition returns the position of the newest event in the log.
	LastPosition(ctx context.Context) (uint64, error)
}

// DeclarationReads is the query side of declarations, implemented by the
// read-model stores in projections.
type DeclarationReads interface {
	// Declaration returns one declaration with its full history, oldest
	// step first; ErrNotFound when unknown.
	Declaration(ctx context.Context, id uuid.UUID) (domain.DeclarationView, error)
	// Declarations lists the review queue: only declarations that joined
	// it (DeclarationQueued), in the order they joined.
	Declarations(ctx context.Context, f domain.DeclarationFilter) ([]domain.DeclarationView, error)
}

// PoisonEvent is one event of a message a reaction could not handle.
type PoisonEvent struct {
	EventID    uuid.UUID
	Type       string
	Aggregate  string
	Position   uint64
	OccurredAt time.Time
	Payload    json.RawMessage
}

// PoisonMessage is a log message whose reaction kept failing and was set
// aside in the poison queue.
type PoisonMessage struct {
	// ID names the entry in the poison queue.
	ID uint64
	// Reaction is the handler that failed.
	Reaction string
	// Reason is the handler's last error.
	Reason     string
	PoisonedAt time.Time
	// Subject and Sequence locate the original message in the log.
	Subject  string
	Sequence uint64
	// Events are the original message's events the reaction acts on.
	Events []PoisonEvent
}

// PoisonQueue holds the reactions that kept failing. Implemented by the
// reactions router.
type PoisonQueue interface {
	// Poisoned lists up to limit entries, oldest first.
	Poisoned(ctx context.Context, limit int) ([]PoisonMessage, error)
	// RetryPoisoned runs the entry's reaction again; when it succeeds the
	// entry leaves the queue. ErrNotFound when there is no such entry.
	RetryPoisoned(ctx context.Context, id uint64) error
}

// TraceReads is the read side of contact tracing: window reads in batches,
// so that a depth-2 trace is a handful of queries rather than one per
// contact, and the names a trace shows. Implemented by the memory and
// PostgreSQL read-model stores (projections.Store).
//
// Passes come back with every decision (the caller keeps those that count),
// each pass once, in no particular order. asOf, when not zero,
// leaves out the passes recorded after it (RecordedAt > asOf); a pass whose
// RecordedAt is unknown (zero) is kept.
type TraceReads interface {
	// PassesOfPersons returns the passes of the persons with at in [from, to).
	PassesOfPersons(ctx context.Context, personIDs []uuid.UUID, from, to, asOf time.Time) ([]domain.PassPoint, error)
	// PassesAtVenues returns the passes in the union of the windows.
	PassesAtVenues(ctx context.Context, windows []domain.VenueWindow, asOf time.Time) ([]domain.PassPoint, error)
	// PersonNames returns the masked names of the registered persons among
	// ids ("" for an erased person); unknown ids are absent.
	PersonNames(ctx context.Context, personIDs []uuid.UUID) (map[uuid.UUID]string, error)
	// VenuesByID returns the venues known among ids; unknown ids are absent.
	VenuesByID(ctx context.Context, venueIDs []uuid.UUID) (map[uuid.UUID]domain.VenueView, error)
}

// AuditReads lists recorded looks. Implemented by the read-model stores.
type AuditReads interface {
	Audit(ctx context.Context, q domain.AuditQuery) ([]domain.AuditEntry, error)
}
