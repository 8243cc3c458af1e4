package domain

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Envelope is one event as it is stored in the log: the fact (Payload) with
// the metadata every event carries. Envelopes are never changed once written.
type Envelope struct {
	// ID is the event id (UUIDv7; a client may supply it). It is the
	// JetStream Nats-Msg-Id, so a retry with the same id stores nothing new.
	ID uuid.UUID `json:"id"`
	// Type names the fact in the past tense, e.g. "PersonRegistered".
	Type string `json:"type"`
	// SchemaVersion is the version of Payload's shape for Type.
	SchemaVersion int `json:"schema_version"`
	// Aggregate names the aggregate the event belongs to, as "<kind>.<id>"
	// (e.g. "person.0190…"); the event store maps it to a subject.
	Aggregate string `json:"aggregate"`
	// OccurredAt is the client's clock: when the thing happened.
	OccurredAt time.Time `json:"occurred_at"`
	// RecordedAt is the server's clock: when the ledger appended it.
	RecordedAt time.Time `json:"recorded_at"`
	// Actor is who caused it: "person:<id>", "reviewer", "scanner:<venue>", ….
	Actor string `json:"actor,omitempty"`
	// CorrelationID ties together events caused by one request.
	CorrelationID string `json:"correlation_id,omitempty"`
	// Payload is the event's JSON body.
	Payload json.RawMessage `json:"payload"`

	// Position is the event's global position in the log: unique and growing,
	// not consecutive (the event store encodes the stream sequence and the
	// index inside a pack of events).
	// It is set by the event store on append and on read, and not stored in
	// the body.
	Position uint64 `json:"-"`
}

// Event is a payload type: a fact in the past tense with a schema version.
type Event interface {
	EventType() string
	SchemaVersion() int
}

// Meta is the caller-provided part of an envelope.
type Meta struct {
	ID            uuid.UUID // zero: a new UUIDv7 is made
	OccurredAt    time.Time // zero: now
	Actor         string
	CorrelationID string
}

// NewEnvelope wraps ev for aggregate with meta. RecordedAt is left for the
// event store to set.
func NewEnvelope(aggregate string, ev Event, meta Meta, now time.Time) (Envelope, error) {
	if err := checkStrings(ev); err != nil {
		return Envelope{}, fmt.Errorf("event %s: %w", ev.EventType(), err)
	}
	if err := checkStrings(meta); err != nil {
		return Envelope{}, fmt.Errorf("event %s: %w", ev.EventType(), err)
	}
	payload, err := marshalEvent(ev)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s: %w", ev.EventType(), err)
	}
	id := meta.ID
	if id == uuid.Nil {
		id, err = uuid.NewV7()
		if err != nil {
			return Envelope{}, fmt.Errorf("new event id: %w", err)
		}
	}
	at := meta.OccurredAt
	if at.IsZero() {
		at = now
	}
	return Envelope{
		ID:            id,
		Type:          ev.EventType(),
		SchemaVersion: ev.SchemaVersion(),
		Aggregate:     aggregate,
		OccurredAt:    at.UTC(),
		Actor:         meta.Actor,
		CorrelationID: meta.CorrelationID,
		Payload:       payload,
	}, nil
}

// Aggregate kinds: the first part of Envelope.Aggregate and of the subject.
const (
	KindPerson      = "person"
	KindVenue       = "venue"
	KindPass        = "pass"
	KindHealth      = "health"
	KindAlert       = "alert"
	KindDeclaration = "declaration"
	KindAudit       = "audit"
)

// PersonAggregate names a person's aggregate.
func PersonAggregate(id uuid.UUID) string { return KindPerson + "." + id.String() }

// VenueAggregate names a venue's aggregate.
func VenueAggregate(id uuid.UUID) string { return KindVenue + "." + id.String() }

// PassAggregate names the pass stream of one person at one venue. Passes are
// not an aggregate with rules; the two ids let a venue's or a person's passes
// be read by subject filter ("pass.<venue>.*" or "pass.*.<person>").
func PassAggregate(venueID, personID uuid.UUID) string {
	return KindPass + "." + venueID.String() + "." + personID.String()
}

// HealthAggregate names the health records of one ID document, by its keyed
// hash, so records can arrive before the person registers.
func HealthAggregate(idHash string) string { return KindHealth + "." + idHash }

// AlertAggregate names a district's alerts.
func AlertAggregate(district string) string { return KindAlert + "." + district }

// DeclarationAggregate names a declaration's aggregate.
func DeclarationAggregate(id uuid.UUID) string { return KindDeclaration + "." + id.String() }

// AuditAggregate names an analyst's audit trail.
func AuditAggregate(actor string) string {
	return KindAudit + "." + strings.ReplaceAll(actor, ".", "_")
}

// AggregateKind returns the kind part of an aggregate name.
func AggregateKind(aggregate string) string {
	kind, _, _ := strings.Cut(aggregate, ".")
	return kind
}

// root is what every versioned aggregate (Person, Venue, Declaration)
// holds besides its own state; its apply keeps it.
type root struct {
	id      uuid.UUID
	version uint64 // the position of the last event applied
}

// ID returns the aggregate's id (zero before its first event).
func (r root) ID() uuid.UUID { return r.id }

// Version returns the position of the aggregate's last event (0: none).
func (r root) Version() uint64 { return r.version }

// replay rebuilds an aggregate's state from its events, in log order,
// through its one apply, which is given each event decoded.
func replay[S any](events []Envelope, apply func(*S, Envelope, Event) error) (S, error) {
	var s S
	for _, e := range events {
		ev, err := Decode(e)
		if err == nil {
			err = apply(&s, e, ev)
		} else {
			err = fmt.Errorf("replay %s: %w", e.Aggregate, err)
		}
		if err != nil {
			var zero S
			return zero, err
		}
	}
	return s, nil
}

// notPartOf is apply's answer to an event of a type the aggregate (what)
// does not hold.
func notPartOf(e Envelope, what string) error {
	return fmt.Errorf("replay %s: event %s of type %s does not belong to %s: %w", e.Aggregate, e.ID, e.Type, what, ErrUnknownEvent)
}
