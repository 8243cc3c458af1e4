package domain

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

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
func (l *Ledger) loadPerson(ctx context.Context, id uuid.UUID) (Person, uint64, error) {
	agg := PersonAggregate(id)
	events, version, err := l.Events.Load(ctx, agg)
	if err != nil {
		return Person{}, 0, fmt.Errorf("load %s: %w", agg, err)
	}
	p, err := ReplayPerson(events)
	if err != nil {
		return Person{}, 0, err
	}
	return p, version, nil
}

// loadVenue loads and replays a venue's aggregate, with its version.
func (l *Ledger) loadVenue(ctx context.Context, id uuid.UUID) (Venue, uint64, error) {
	agg := VenueAggregate(id)
	events, version, err := l.Events.Load(ctx, agg)
	if err != nil {
		return Venue{}, 0, fmt.Errorf("load %s: %w", agg, err)
	}
	v, err := ReplayVenue(events)
	if err != nil {
		return Venue{}, 0, err
	}
	return v, version, nil
}

// append wraps decided events in envelopes and appends them to aggregate
// at expectedVersion. meta.ID, when set, is the first event's id. The
// result names the last event.
func (l *Ledger) append(ctx context.Context, aggregate string, expectedVersion uint64, meta Meta, now time.Time, events []Event) (Result, error) {
	envs := make([]Envelope, 0, len(events))
	for i, ev := range events {
		m := meta
		if i > 0 {
			m.ID = uuid.Nil
		}
		env, err := NewEnvelope(aggregate, ev, m, now)
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
