package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/google/uuid"
)

// maxAttempts bounds how often update decides again on an aggregate that
// changed between its load and its append.
const maxAttempts = 3

// kind says how one kind of versioned aggregate is named and replayed.
type kind[S any] struct {
	aggregate func(id uuid.UUID) string
	replay    func(events []domain.Envelope) (S, error)
	// last: the state is the last event's (the audit chain's head), so only
	// that event is loaded (AuditLog.LoadLast) and replayed.
	last bool
}

// The versioned aggregates.
var (
	persons      = kind[domain.Person]{domain.PersonAggregate, domain.ReplayPerson, false}
	venues       = kind[domain.Venue]{domain.VenueAggregate, domain.ReplayVenue, false}
	declarations = kind[domain.Declaration]{domain.DeclarationAggregate, domain.ReplayDeclaration, false}
	// auditChain is the one audit chain, whatever the id.
	auditChain = kind[domain.AuditChain]{func(uuid.UUID) string { return domain.AuditChainAggregate }, domain.ReplayAuditChain, true}
)

// load replays aggregate id of kind k and returns its state with its
// version (the position of its last event, 0 when it has none: the zero
// state).
func load[S any](ctx context.Context, l *Ledger, k kind[S], id uuid.UUID) (S, uint64, error) {
	agg := k.aggregate(id)
	var events []domain.Envelope
	var version uint64
	var err error
	if k.last {
		events, version, err = l.Audit.LoadLast(ctx, agg)
	} else {
		events, version, err = l.Events.Load(ctx, agg)
	}
	if err != nil {
		var zero S
		return zero, 0, fmt.Errorf("load %s: %w", agg, err)
	}
	s, err := k.replay(events)
	return s, version, err
}

// conflictPolicy says what update does when the aggregate changed between
// its load and its append.
type conflictPolicy int

const (
	// failOnConflict answers the stale append's ErrConflict.
	failOnConflict conflictPolicy = iota
	// retryOnConflict loads and decides again, up to maxAttempts times: for
	// commands that race the reactions (which append to the same venue or
	// declaration in the background), so the loser decides on the state
	// that won.
	retryOnConflict
	// retryUntilLinked loads and decides again up to maxChainAttempts
	// times, after a short random pause: for the audit chain, which every
	// audited action of every replica appends to, so that an entry that
	// lost the race links itself to the winner instead of failing.
	retryUntilLinked
)

// maxChainAttempts bounds retryUntilLinked.
const maxChainAttempts = 50

// attempts is how often update decides with policy p.
func (p conflictPolicy) attempts() int {
	switch p {
	case retryOnConflict:
		return maxAttempts
	case retryUntilLinked:
		return maxChainAttempts
	}
	return 1
}

// update is the one command path of the versioned aggregates: load id's
// state, decide on it, append what was decided at the loaded version (a
// concurrent writer makes that a conflict, never an overwrite), and, with
// retryOnConflict or retryUntilLinked, decide again on the new state when it
// lost the race.
//
// meta.ID, when set, is the first decided event's id. A decide that returns
// no events and no error means there is nothing to do: update then appends
// nothing and returns the state it decided on with a zero Result.EventID.
// The Result's ID is id.
func update[S any](ctx context.Context, l *Ledger, k kind[S], id uuid.UUID, meta domain.Meta, onConflict conflictPolicy,
	decide func(S) ([]domain.Event, error)) (S, Result, error) {
	for attempt := 1; ; attempt++ {
		s, version, err := load(ctx, l, k, id)
		if err != nil {
			return s, Result{}, err
		}
		events, err := decide(s)
		if err != nil {
			return s, Result{}, err
		}
		if len(events) == 0 {
			return s, Result{ID: id}, nil
		}
		res, err := l.append(ctx, k.aggregate(id), version, meta, l.now(), events)
		if errors.Is(err, domain.ErrConflict) && onConflict != failOnConflict {
			if attempt < onConflict.attempts() {
				if onConflict == retryUntilLinked {
					if err := pause(ctx, time.Duration(rand.IntN(attempt+1))*time.Millisecond); err != nil {
						return s, Result{}, err
					}
				}
				continue
			}
			return s, Result{}, domain.Errorf(domain.ErrConflict, "%s was changed concurrently %d times; try again", k.aggregate(id), attempt)
		}
		if err != nil {
			return s, Result{}, err
		}
		if res.Duplicate && !k.last {
			// The event id is on this aggregate already: a retry that
			// raced its original (or came from another replica at the same
			// moment), or another command under the same id. The state
			// that holds it tells which, as for a retry that comes after:
			// deciding again recognises the retry (nothing to do) and
			// refuses anything else. (Answering the store's duplicate as
			// it was told two callers with different bodies both
			// succeeded, and dropped one of them.) The audit chain's
			// entries are the chain's own business (RecordAudit).
			now, _, err := load(ctx, l, k, id)
			if err != nil {
				return s, Result{}, err
			}
			again, err := decide(now)
			switch {
			case err != nil:
				return now, Result{}, err
			case len(again) > 0:
				return now, Result{}, domain.Errorf(domain.ErrConflict, "event id %s was already used for another event", meta.ID)
			}
			return now, Result{ID: id}, nil
		}
		res.ID = id
		return s, res, nil
	}
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
	appended, err := l.Events.Append(ctx, aggregate, expectedVersion, envs...)
	if err != nil {
		return Result{}, fmt.Errorf("append %s: %w", aggregate, err)
	}
	if len(appended) != len(envs) {
		return Result{}, fmt.Errorf("append %s: store answered %d results for %d events", aggregate, len(appended), len(envs))
	}
	last := appended[len(appended)-1]
	if k := domain.AggregateKind(aggregate); k == domain.KindPerson || k == domain.KindVenue {
		l.Own.noted(last.Position) // what a pass decides on (not declarations, not the audit chain)
	}
	return Result{EventID: envs[len(envs)-1].ID, Position: last.Position, Duplicate: last.Duplicate}, nil
}

// record is the one path of the group-committed kinds (passes, health
// records, alerts, audit entries): no version to check, one durable write
// shared with concurrent callers, one result per event, in order.
func (l *Ledger) record(ctx context.Context, what string, envs ...domain.Envelope) ([]Appended, error) {
	appended, err := l.Events.Record(ctx, envs...)
	if err != nil {
		return nil, fmt.Errorf("record %d %s: %w", len(envs), what, err)
	}
	if len(appended) != len(envs) {
		return nil, fmt.Errorf("record %s: store answered %d results for %d events", what, len(appended), len(envs))
	}
	return appended, nil
}

// sealer returns a domain.Sealer for subject's personal fields that fetches
// (or creates) the subject's data key on its first use only, so that a
// command refused by its decide function makes no key.
func (l *Ledger) sealer(ctx context.Context, subject uuid.UUID) domain.Sealer {
	var key []byte
	return func(plaintext string) (domain.Sealed, error) {
		if key == nil {
			k, err := l.Keys.Key(ctx, subject, true)
			if err != nil {
				return "", fmt.Errorf("data key of %s: %w", subject, err)
			}
			key = k
		}
		return domain.SealField(key, plaintext)
	}
}

// opener returns a domain.Opener for subject's sealed fields, fetching the
// subject's data key on its first use only.
func (l *Ledger) opener(ctx context.Context, subject uuid.UUID) domain.Opener {
	var key []byte
	return func(s domain.Sealed) (string, error) {
		if key == nil {
			k, err := l.Keys.Key(ctx, subject, false)
			if err != nil {
				return "", fmt.Errorf("data key of %s: %w", subject, err)
			}
			key = k
		}
		v, err := pii.Open(key, string(s))
		if err != nil {
			return "", fmt.Errorf("open a sealed field of %s: %w", subject, err)
		}
		return v, nil
	}
}
