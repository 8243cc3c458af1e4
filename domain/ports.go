package domain

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

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
	Load(ctx context.Context, aggregate string) ([]Envelope, uint64, error)
	// Append appends events to one aggregate if its version is still
	// expectedVersion (0: the aggregate must not exist yet). A stale version
	// is ErrConflict and appends nothing. Several events are appended
	// atomically. An event whose id was already stored is a Duplicate.
	Append(ctx context.Context, aggregate string, expectedVersion uint64, events ...Envelope) ([]Appended, error)
	// Record appends events with no version check, gathered with other
	// concurrent callers into one durable write (group commit). Used for
	// passes, health records, alerts and audit entries. The result has one
	// entry per event, in order.
	Record(ctx context.Context, events ...Envelope) ([]Appended, error)
	// Get returns the event at a position.
	Get(ctx context.Context, position uint64) (Envelope, error)
	// LastPosition returns the position of the newest event in the log.
	LastPosition(ctx context.Context) (uint64, error)
}

// Keyring holds each person's data key for Sealed fields. Destroying a key
// erases that person's personal data from every event that used it.
type Keyring interface {
	// Key returns the data key of subject, creating it when create is true
	// and none exists; ErrNotFound otherwise.
	Key(ctx context.Context, subject uuid.UUID, create bool) ([]byte, error)
	// Destroy deletes subject's key.
	Destroy(ctx context.Context, subject uuid.UUID) error
}

// Read-model views. Personal data in views is always masked.

// PersonView is a person as the read models know them.
type PersonView struct {
	ID            uuid.UUID   `json:"person_id"`
	NameMasked    string      `json:"name"`
	IDType        string      `json:"id_type"`
	IDMasked      string      `json:"id_number"`
	IDHash        string      `json:"-"`
	Verification  string      `json:"verification"` // pending | approved | rejected
	GuardianID    uuid.UUID   `json:"guardian_id,omitzero"`
	Relation      string      `json:"relation,omitempty"`
	FamilyMembers []uuid.UUID `json:"family_members"`
	RegisteredAt  time.Time   `json:"registered_at"`
	Position      uint64      `json:"-"` // version of the person aggregate
}

// HealthView is the latest health status known for an ID document.
type HealthView struct {
	CodeColour   string    `json:"code_colour"`
	NATResult    string    `json:"nat_result"`
	NATAt        time.Time `json:"nat_at,omitzero"`
	VaccineDoses int       `json:"vaccine_doses"`
	RecordedAt   time.Time `json:"recorded_at"`
}

// VenueView is a venue as the read models know it.
type VenueView struct {
	ID             uuid.UUID   `json:"venue_id"`
	Name           string      `json:"name"`
	Type           string      `json:"type"`
	District       string      `json:"district"`
	Address        string      `json:"address"`
	Lat            float64     `json:"lat"`
	Lng            float64     `json:"lng"`
	Status         string      `json:"status"` // pending | approved | rejected
	Reason         string      `json:"reason,omitempty"`
	ManagerID      uuid.UUID   `json:"manager_id"`
	Admins         []uuid.UUID `json:"admins"`
	RequireGreen   bool        `json:"require_green"`
	NATWithinHours int         `json:"nat_within_hours"`
	AppliedAt      time.Time   `json:"applied_at"`
	ReviewedAt     time.Time   `json:"reviewed_at,omitzero"`
}

// VenueFilter selects venues; empty fields match all.
type VenueFilter struct {
	District string
	Status   string
	Limit    int
}

// Entry is one row of a venue's entry list.
type Entry struct {
	EventID    uuid.UUID `json:"event_id"`
	PersonID   uuid.UUID `json:"person_id"`
	NameMasked string    `json:"name"`
	IDMasked   string    `json:"id_number"`
	At         time.Time `json:"at"`
	Direction  string    `json:"direction"`
	Decision   string    `json:"decision"`
	Method     string    `json:"method"`
	Operator   string    `json:"operator,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Position   uint64    `json:"-"`
}

// EntryQuery asks for a page of a venue's entry list, newest first.
type EntryQuery struct {
	VenueID   uuid.UUID
	From, To  time.Time // zero: unbounded
	Direction string    // "" | in | out
	Decision  string    // "" | pass | deny
	Limit     int
	// After continues a page: entries strictly older than (At, Position) in
	// the list's order. Zero: from the newest.
	AfterAt       time.Time
	AfterPosition uint64
}

// Visit is one pass in a person's trace history.
type Visit struct {
	EventID   uuid.UUID `json:"event_id"`
	VenueID   uuid.UUID `json:"venue_id"`
	VenueName string    `json:"venue_name"`
	VenueType string    `json:"venue_type"`
	District  string    `json:"district"`
	Address   string    `json:"address"`
	At        time.Time `json:"at"`
	Direction string    `json:"direction"`
	Decision  string    `json:"decision"`
}

// Alert is a district alert raised by a denied or abnormal pass.
type Alert struct {
	EventID     uuid.UUID `json:"event_id"`
	District    string    `json:"district"`
	VenueID     uuid.UUID `json:"venue_id"`
	PersonID    uuid.UUID `json:"person_id"`
	PassEventID uuid.UUID `json:"pass_event_id"`
	CodeColour  string    `json:"code_colour"`
	Decision    string    `json:"decision"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
}

// PassView is a stored pass, found by its event id (retries older than
// JetStream's duplicate window are answered from here).
type PassView struct {
	EventID  uuid.UUID
	Position uint64
	Pass     PassRecorded
}

// ReadModel is the query side of the read models, implemented by the memory
// and PostgreSQL stores in projections. Every method reflects the state at
// Position() or later.
type ReadModel interface {
	TraceReads
	AuditReads
	DeclarationReads

	// Position returns the global position of the last event applied.
	Position(ctx context.Context) (uint64, error)
	Person(ctx context.Context, id uuid.UUID) (PersonView, error)
	PersonByIDHash(ctx context.Context, idHash string) (PersonView, error)
	// Health returns the latest health status of an ID document; ok is false when none is known.
	Health(ctx context.Context, idHash string) (h HealthView, ok bool, err error)
	Venue(ctx context.Context, id uuid.UUID) (VenueView, error)
	Venues(ctx context.Context, f VenueFilter) ([]VenueView, error)
	Entries(ctx context.Context, q EntryQuery) ([]Entry, error)
	Trace(ctx context.Context, personID uuid.UUID, from, to time.Time) ([]Visit, error)
	// Occupancy counts people inside a venue at now: entries minus exits,
	// where an entry with no exit ends after dwell.
	Occupancy(ctx context.Context, venueID uuid.UUID, now time.Time, dwell time.Duration) (int, error)
	Alerts(ctx context.Context, district string, limit int) ([]Alert, error)
	// Pass returns a stored pass by event id; ok is false when unknown.
	Pass(ctx context.Context, eventID uuid.UUID) (p PassView, ok bool, err error)
	// Passes returns the stored passes among eventIDs, by event id, in one
	// call (a batch of retried passes); ids not stored are absent.
	Passes(ctx context.Context, eventIDs []uuid.UUID) (map[uuid.UUID]PassView, error)
}

// Log is the reading side of the event store, for projectors and replays.
// Implemented by eventstore.Store.
type Log interface {
	// Follow delivers every event with position > from, in order and in
	// batches, first from history and then live, with no gap and no
	// duplicate, until ctx ends or fn returns an error (which Follow returns).
	Follow(ctx context.Context, from uint64, fn func([]Envelope) error) error
	// Read delivers the events whose aggregate matches filter (NATS subject
	// wildcards over aggregate names, e.g. "pass.*.<person>" or "venue.>")
	// with position > from, in order, up to the log's end when Read started.
	Read(ctx context.Context, filter string, from uint64, fn func([]Envelope) error) error
	// LastPosition returns the position of the newest event in the log.
	LastPosition(ctx context.Context) (uint64, error)
}

// ArrivalDetails are what an arrival declaration (入临申报) says.
type ArrivalDetails struct {
	ArrivalDate         string    `json:"arrival_date"`
	Origin              string    `json:"origin"`
	DestinationDistrict string    `json:"destination_district"`
	NATResult           string    `json:"nat_result"`
	NATAt               time.Time `json:"nat_at,omitzero"`
}

// TruckDetails are what a truck pass (货车畅行) says; the contact's name and
// phone are masked.
type TruckDetails struct {
	PlateNumber      string    `json:"plate_number"`
	NATProofAt       time.Time `json:"nat_proof_at"`
	ItineraryOK      bool      `json:"itinerary_ok"`
	HealthCodeColour string    `json:"health_code_colour"`
	LogisticsPark    string    `json:"logistics_park"`
	ContactName      string    `json:"contact_name"`
	ContactPhone     string    `json:"contact_phone"`
}

// DeclarationStep is one event in a declaration's history: its submission,
// its joining the review queue, its review.
type DeclarationStep struct {
	EventID  uuid.UUID `json:"event_id"`
	Type     string    `json:"type"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor,omitempty"`
	Decision string    `json:"decision,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Position uint64    `json:"position"`
}

// DeclarationView is a declaration as the read models know it.
type DeclarationView struct {
	ID              uuid.UUID         `json:"declaration_id"`
	Kind            string            `json:"kind"` // arrival | truck
	PersonID        uuid.UUID         `json:"person_id"`
	FamilyMemberIDs []uuid.UUID       `json:"family_member_ids"`
	District        string            `json:"district"`
	Status          string            `json:"status"` // pending | approved | rejected
	Reason          string            `json:"reason,omitempty"`
	Queued          bool              `json:"queued"`
	SubmittedAt     time.Time         `json:"submitted_at"`
	QueuedAt        time.Time         `json:"queued_at,omitzero"`
	ReviewedAt      time.Time         `json:"reviewed_at,omitzero"`
	Arrival         *ArrivalDetails   `json:"arrival,omitempty"`
	Truck           *TruckDetails     `json:"truck,omitempty"`
	History         []DeclarationStep `json:"history"`
	// QueuePosition orders the review queue (first come, first served).
	QueuePosition uint64 `json:"-"`
}

// DeclarationFilter selects declarations in the review queue; empty fields
// match all.
type DeclarationFilter struct {
	District string
	Status   string
	Kind     string
	Limit    int
}

// DeclarationReads is the query side of declarations, implemented by the
// read-model stores in projections.
type DeclarationReads interface {
	// Declaration returns one declaration with its full history, oldest
	// step first; ErrNotFound when unknown.
	Declaration(ctx context.Context, id uuid.UUID) (DeclarationView, error)
	// Declarations lists the review queue: only declarations that joined
	// it (DeclarationQueued), in the order they joined.
	Declarations(ctx context.Context, f DeclarationFilter) ([]DeclarationView, error)
}

// PoisonEvent is one event of a message a reaction could not handle.
type PoisonEvent struct {
	EventID    uuid.UUID       `json:"event_id"`
	Type       string          `json:"type"`
	Aggregate  string          `json:"aggregate"`
	Position   uint64          `json:"position"`
	OccurredAt time.Time       `json:"occurred_at"`
	Payload    json.RawMessage `json:"payload"`
}

// PoisonMessage is a log message whose reaction kept failing and was set
// aside in the poison queue.
type PoisonMessage struct {
	// ID names the entry in the poison queue.
	ID uint64 `json:"id"`
	// Reaction is the handler that failed.
	Reaction string `json:"reaction"`
	// Reason is the handler's last error.
	Reason     string    `json:"reason"`
	PoisonedAt time.Time `json:"poisoned_at"`
	// Subject and Sequence locate the original message in the log.
	Subject  string `json:"subject"`
	Sequence uint64 `json:"sequence"`
	// Events are the original message's events the reaction acts on.
	Events []PoisonEvent `json:"events"`
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

// VenueWindow asks for one venue's passes with at in [From, To).
type VenueWindow struct {
	VenueID  uuid.UUID
	From, To time.Time
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
	PassesOfPersons(ctx context.Context, personIDs []uuid.UUID, from, to, asOf time.Time) ([]PassPoint, error)
	// PassesAtVenues returns the passes in the union of the windows.
	PassesAtVenues(ctx context.Context, windows []VenueWindow, asOf time.Time) ([]PassPoint, error)
	// PersonNames returns the masked names of the registered persons among
	// ids ("" for an erased person); unknown ids are absent.
	PersonNames(ctx context.Context, personIDs []uuid.UUID) (map[uuid.UUID]string, error)
	// VenuesByID returns the venues known among ids; unknown ids are absent.
	VenuesByID(ctx context.Context, venueIDs []uuid.UUID) (map[uuid.UUID]VenueView, error)
}

// AuditEntry is one recorded look at a person's history (a TraceRequested
// event), as the audit read model lists it.
type AuditEntry struct {
	EventID  uuid.UUID `json:"event_id"`
	TraceID  uuid.UUID `json:"trace_id"`
	Analyst  string    `json:"analyst"`
	PersonID uuid.UUID `json:"person_id"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Depth    int       `json:"depth"`
	Reason   string    `json:"reason"`
	// Kind is "contacts" (POST /v1/traces) or "history" (a person's passes).
	Kind   string `json:"kind,omitempty"`
	Source string `json:"source,omitempty"`
	// AsOf is the moment the answer was given as of (zero: not recorded).
	AsOf              time.Time `json:"as_of,omitzero"`
	MinOverlapMinutes int       `json:"min_overlap_minutes"`
	BufferMinutes     int       `json:"buffer_minutes"`
	Contacts          int       `json:"contacts"`
	// At is when the look happened (the event's OccurredAt).
	At       time.Time `json:"at"`
	Position uint64    `json:"position"`
}

// AuditQuery asks for the audit entries with at in [From, To) (zero bounds
// open), oldest first by (at, position), at most Limit of them, strictly
// after (AfterAt, AfterPosition) when AfterAt is set.
type AuditQuery struct {
	From, To      time.Time
	Limit         int
	AfterAt       time.Time
	AfterPosition uint64
}

// AuditReads lists recorded looks. Implemented by the read-model stores.
type AuditReads interface {
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
}
