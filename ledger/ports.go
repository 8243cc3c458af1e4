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

// AuditLog keeps the audit chain besides the appends of its entries
// (EventStore.Append at the head's version): its head, its entries in
// order, and the anchor, the head recorded outside the audited events so
// that a truncated tail is found. Implemented by eventstore.Store.
type AuditLog interface {
	// LoadLast returns an aggregate's last event (none when it has no
	// events) and its version, as Load would, reading only that event.
	LoadLast(ctx context.Context, aggregate string) ([]domain.Envelope, uint64, error)
	// ReadAuditChain delivers the chain's entries in log order, in
	// batches, up to the log's end when it was called.
	ReadAuditChain(ctx context.Context, fn func([]domain.Envelope) error) error
	// AuditAnchor returns the anchor's state and, when stored, the head it
	// names.
	AuditAnchor(ctx context.Context) (head domain.AuditHead, state domain.AnchorState, err error)
	// AnchorAudit moves the anchored head forward to head; an older head
	// than the stored one changes nothing. An anchor that was deleted, or
	// does not open, is not written over: ErrAuditAnchorRemoved.
	AnchorAudit(ctx context.Context, head domain.AuditHead) error
	// ResetAuditAnchor writes head as the anchor whatever is stored (an
	// operator's repair once a removed anchor was looked into).
	ResetAuditAnchor(ctx context.Context, head domain.AuditHead) error
}

// ErrAuditAnchorRemoved is wrapped by AuditLog.AnchorAudit's error when the
// stored anchor was deleted or altered: the ledger never does either, so
// it is not written over (that would hide a truncation made with it) until
// an operator resets it (`ledger audit verify --reanchor`).
var ErrAuditAnchorRemoved = errors.New("ledger: the audit anchor was deleted or altered")

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
	// needs (and the health feed: whether its documents' persons were
	// erased): the venues, the persons named by id or by document hash and
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

// StayReads is what a read-model store that keeps every stay (the
// PostgreSQL store) adds to TraceReads: see domain.StayReads. ok is false
// when its stays cannot answer as of asOf; StayRules are the rules they
// are built under (a trace under other rules reads passes).
type StayReads interface {
	StayRules() domain.StayRules
	StaysOfPersons(ctx context.Context, personIDs []uuid.UUID, from, to, asOf time.Time) ([]domain.Presence, bool, error)
	StaysMeeting(ctx context.Context, windows []domain.VenueWindow, asOf time.Time, each func([]domain.Presence)) (bool, error)
}

// AuditReads lists recorded looks and the audit chain. Implemented by the
// read-model stores.
type AuditReads interface {
	// Audit lists the looks at persons' histories (TraceRequested), with
	// every parameter of each.
	Audit(ctx context.Context, q domain.AuditQuery) ([]domain.AuditEntry, error)
	// AuditChain lists the audit chain's entries (AuditRecorded), in
	// chain order; an entry appended twice under one event id is listed
	// once.
	AuditChain(ctx context.Context, q domain.AuditChainQuery) ([]domain.AuditChainEntry, error)
}

// RetireStats is what one RetirePasses call removed.
type RetireStats struct {
	// Passes and Alerts count the rows removed. A store that drops whole
	// partitions (PostgreSQL) counts a dropped partition by the planner's
	// estimate of its rows; rows deleted one by one are counted exactly.
	Passes, Alerts int64
	// Partitions counts the partitions dropped (PostgreSQL), 0 elsewhere.
	Partitions int
}

// Retirer is a holder of passes that drops them once they expired
// (domain.PassExpiresAt): the read-model stores, the command side's facts
// and the pass index. Implemented by memory.Store, postgres.Store,
// facts.Store and eventstore.PassIndex; called by projections.Sweeper with
// domain.RetireBefore(now, retention).
type Retirer interface {
	// RetirePasses removes every pass with occurred_at before before, and
	// every alert raised for such a pass (an alert carries its pass's
	// occurred_at), and keeps them out when the projector brings them
	// again (a replay of the log, which holds a pass until the last pass
	// of its message expires). Registrations, venues, declarations,
	// health records, the audit trail and dashboard counts are untouched.
	// It is idempotent: a second call with the same before removes
	// nothing.
	RetirePasses(ctx context.Context, before time.Time) (RetireStats, error)
}
