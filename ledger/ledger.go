package ledger

import (
	"context"
	"fmt"
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

// loadPerson loads and replays a person's aggregate, with its version for
// Append. A person with no events is the zero Person (not registered).
func (l *Ledger) loadPerson(ctx context.Context, id uuid.UUID) (domain.Person, uint64, error) {
	agg := domain.PersonAggregate(id)
	events, version, err := l.Events.Load(ctx, agg)
	if err != nil {
		return domain.Person{}, 0, fmt.Errorf("load %s: %w", agg, err)
	}
	p, err := domain.ReplayPerson(events)
	if err != nil {
		return domain.Person{}, 0, err
	}
	return p, version, nil
}

// loadVenue loads and replays a venue's aggregate, with its version.
func (l *Ledger) loadVenue(ctx context.Context, id uuid.UUID) (domain.Venue, uint64, error) {
	agg := domain.VenueAggregate(id)
	events, version, err := l.Events.Load(ctx, agg)
	if err != nil {
		return domain.Venue{}, 0, fmt.Errorf("load %s: %w", agg, err)
	}
	v, err := domain.ReplayVenue(events)
	if err != nil {
		return domain.Venue{}, 0, err
	}
	return v, version, nil
}

// append wraps decided events in envelopes and appends them to aggregate
// at expectedVersion. meta.ID, when set, is the first event's id. The
// result names the last event.
func (l *Ledger) append(ctx context.Context, aggregate string, expectedVersion uint64, meta domain.Meta, now time.Time, events []domain.Event) (Result, error) {
	envs := make([]domain.Envelope, 0, len(events))
	for i, ev := range events {
		m := meta
		if i > 0 {
			m.ID = uuid.Nil
		}
		env, err := domain.NewEnvelope(aggregate, ev, m, now)
		if err != nil {
			return Result{}, err
		}
		envs = append(envs, env)
	}
	if len(envs) == 0 {
		return Result{}, fmt.Errorf("append %s: no events decided", aggregate)
	}
	appended, err := l.Events.Append(ctx, aggregate, expectedVersion, envs...)
	if err != nil {
		return Result{}, fmt.Errorf("append %s: %w", aggregate, err)
	}
	if len(appended) != len(envs) {
		return Result{}, fmt.Errorf("append %s: store answered %d results for %d events", aggregate, len(appended), len(envs))
	}
	last := appended[len(appended)-1]
	return Result{EventID: envs[len(envs)-1].ID, Position: last.Position, Duplicate: last.Duplicate}, nil
}
