// Package projections builds the ledger's read models from the log.
//
// One Projector follows ledger.Log, decodes every event with domain.Decode
// (an unknown type or a newer schema version stops it: events are never
// skipped), replaces sealed personal fields with their masks, and hands
// batches to a Store. A Store (projections/memory, projections/postgres)
// applies a batch and records the batch's last position atomically, and
// serves the queries of ledger.ReadModel. Rows are keyed by event id, so an
// event delivered twice (a retry appended again after JetStream's duplicate
// window) counts once.
package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/google/uuid"
)

// DefaultName is the name under which the read models record their position.
const DefaultName = "read_models"

// Names are the projections this build knows: what `ledger projections
// rebuild NAME` accepts.
var Names = []string{DefaultName}

// ErrGap is returned by Writer.Apply when a batch does not continue from the
// store's position: the store is behind what the projector believes it
// applied (another process rebuilt or reset the tables). The projector then
// reloads the store's checkpoint and follows the log again from there.
var ErrGap = errors.New("projections: batch does not continue from the store's position")

// Change is one decoded event, ready to be applied to a store.
type Change struct {
	EventID    uuid.UUID
	Type       string
	Aggregate  string
	Position   uint64
	OccurredAt time.Time
	RecordedAt time.Time
	Actor      string
	// Event is the decoded payload, a pointer such as *domain.PassRecorded.
	Event domain.Event
	// Masks holds the masked personal fields of a PersonRegistered event;
	// the sealed values never reach a store.
	Masks PersonMasks
	// Contact holds the masked contact of a TruckPassDeclared event.
	Contact ContactMasks
	// Declared holds the opened fields of an ArrivalDeclared (Origin) or
	// TruckPassDeclared (PlateNumber) event: "" once the declarant was
	// erased.
	Declared DeclaredFields
}

// DeclaredFields are a declaration's sealed fields, opened for its
// reviewers (the read models hold them in clear until the declarant is
// erased).
type DeclaredFields struct {
	Origin      string
	PlateNumber string
}

// ContactMasks are the masked forms of a truck pass's sealed contact.
type ContactMasks struct {
	// Name is the surname followed by "*", "" when the data was erased.
	Name string
	// Phone keeps the first 3 and last 4 digits, "***" when erased.
	Phone string
}

// PersonMasks are the masked forms of a person's sealed fields.
type PersonMasks struct {
	// Name is the surname followed by "*", "" when the data was erased.
	Name string
	// IDNumber keeps the first 3 and last 4 characters, "***" when erased.
	IDNumber string
}

// ErasedMasks are the masks stored for a person whose data key was destroyed.
var ErasedMasks = PersonMasks{Name: "", IDNumber: "***"}

// ErasedContact are the masks of a truck pass's contact once its driver's
// data key was destroyed.
var ErasedContact = ContactMasks{Name: "", Phone: "***"}

// EraseDeclaration blanks what a declaration view holds of its erased
// declarant: the origin, the plate and the contact (as a replay, whose key
// is destroyed, would show them). Both stores follow it.
func EraseDeclaration(d *domain.DeclarationView) {
	if d.Arrival != nil {
		d.Arrival.Origin = ""
	}
	if d.Truck != nil {
		d.Truck.PlateNumber = ""
		d.Truck.ContactName, d.Truck.ContactPhone = ErasedContact.Name, ErasedContact.Phone
	}
}

// Batch is a run of consecutive changes handed to a Writer.
type Batch struct {
	// After is the position the projector had applied before this batch;
	// every change's Position is greater.
	After uint64
	// Changes are in log order. The batch may be empty when every event in
	// it was skipped by the projector; it still moves the position to Last.
	Changes []Change
	// Last is the position of the batch's last event.
	Last uint64
	// LastRecordedAt is the RecordedAt of the batch's last event.
	LastRecordedAt time.Time
}

// Checkpoint is the position a store has applied, with the RecordedAt of the
// last event applied (used to report lag in seconds).
type Checkpoint struct {
	Position   uint64
	RecordedAt time.Time
}

// Writer is the writing side of a read-model store.
type Writer interface {
	// Apply applies b and records b.Last as the store's position in one
	// atomic step (one transaction, one lock). Changes at or below the
	// store's position are skipped; a change whose event id was already
	// applied is a no-op. When b.After is beyond the store's position, Apply
	// returns ErrGap and changes nothing.
	Apply(ctx context.Context, b Batch) (Checkpoint, error)
	// Checkpoint returns the store's position.
	Checkpoint(ctx context.Context) (Checkpoint, error)
}

// Store is a read-model store: the queries, the writer and the window reads.
//
// Query conventions shared by every store (checked by projections/storetest):
//   - time windows are [from, to), zero bounds are open;
//   - Entries are newest first by (at, position); Trace oldest first; Alerts newest first; Venues by application
//     order (the review queue is first come, first served);
//   - "at" of a pass is its OccurredAt (the device's clock);
//   - the window reads of ledger.TraceReads come in no particular order
//     and leave out passes recorded after asOf; audit entries are oldest
//     first by (at, position).
type Store interface {
	ledger.ReadModel
	Writer
	// Retirer drops expired passes and their alerts (RetirePasses).
	ledger.Retirer
	// Pass returns a stored pass by event id; ok is false when unknown.
	Pass(ctx context.Context, eventID uuid.UUID) (p domain.PassView, ok bool, err error)
	// Passes returns the stored passes among eventIDs, by event id, in one
	// read; ids not stored are absent. (The command side reads them with
	// the rest of a call's facts, ReadModel.PassFacts.)
	Passes(ctx context.Context, eventIDs []uuid.UUID) (map[uuid.UUID]domain.PassView, error)
}

// ProjectionStatus is what `ledger projections status` prints and /readyz checks.
type ProjectionStatus struct {
	Name string `json:"name"`
	// Position is the last position applied.
	Position uint64 `json:"position"`
	// LogPosition is the log's newest position when the status was taken.
	LogPosition uint64 `json:"log_position"`
	// LagEvents is LogPosition − Position (0 when caught up).
	LagEvents uint64 `json:"lag_events"`
	// LagSeconds is now − RecordedAt of the last applied event while there
	// is a lag in events, 0 when caught up.
	LagSeconds float64 `json:"lag_seconds"`
	// LastRecordedAt is the RecordedAt of the last applied event.
	LastRecordedAt time.Time `json:"last_recorded_at,omitzero"`
	// Error is the projector's last error, empty when it is healthy.
	Error string `json:"error,omitempty"`
	// Role is RoleActive when this process applies the projection,
	// RoleStandby when it waits for the lease (another replica applies);
	// empty in a report read from the store alone.
	Role string `json:"role,omitempty"`
	// ParkedEvents counts the events the store could not hold, set aside
	// (see Parker): by this projector since it started, or, read from the
	// store, all of them.
	ParkedEvents int `json:"parked_events,omitempty"`
	// LogID names the log the store follows (see LogIdentifier).
	LogID string `json:"log_id,omitempty"`
}

// EventCounter is implemented by logs whose positions are not dense (the
// event store packs many events into one message, so positions skip): it
// counts the events after a position, for an exact lag in events.
type EventCounter interface {
	CountAfter(ctx context.Context, position uint64) (uint64, error)
}

// LagOf fills st.LagEvents with the exact number of events after st.Position
// when log can count them.
func LagOf(ctx context.Context, log ledger.Log, st *ProjectionStatus) error {
	c, ok := log.(EventCounter)
	if !ok || st.LagEvents == 0 {
		return nil
	}
	n, err := c.CountAfter(ctx, st.Position)
	if err != nil {
		return fmt.Errorf("projection %s lag: %w", st.Name, err)
	}
	st.LagEvents = n
	return nil
}

// StatusOf computes a ProjectionStatus from a checkpoint and the log's newest
// position. LagEvents is the difference of positions, an upper bound when
// positions are not dense: LagOf makes it exact.
func StatusOf(name string, cp Checkpoint, logPosition uint64, now time.Time) ProjectionStatus {
	st := ProjectionStatus{Name: name, Position: cp.Position, LogPosition: logPosition, LastRecordedAt: cp.RecordedAt}
	if logPosition > cp.Position {
		st.LagEvents = logPosition - cp.Position
		if !cp.RecordedAt.IsZero() {
			st.LagSeconds = now.Sub(cp.RecordedAt).Seconds()
			if st.LagSeconds < 0 {
				st.LagSeconds = 0
			}
		}
	}
	return st
}
