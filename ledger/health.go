package ledger

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
)

// RecordHealth stores a batch of the health data feed (health-feed role
// only), up to MaxHealthRecords records. Any invalid record refuses the
// whole batch, naming the record ("records[7].code_colour"), and nothing is
// stored. Each record becomes a HealthStatusRecorded event on the document's
// health aggregate, known by the document's keyed hash, so records for
// people who have not registered yet are kept until they do. All records
// are stored with one group commit. A record whose document names an
// erased person is refused like an invalid one (domain.CheckHealthSubject).
func (l *Ledger) RecordHealth(ctx context.Context, actor domain.Actor, records []domain.HealthRecord) (HealthResult, error) {
	if err := domain.HealthFeeds.Require(actor, "only the health data feed may record health status"); err != nil {
		return HealthResult{}, err
	}
	if len(records) == 0 {
		return HealthResult{}, domain.Invalid("records", "is empty")
	}
	if len(records) > domain.MaxHealthRecords {
		return HealthResult{}, domain.Invalid("records", "has %d records, at most %d allowed", len(records), domain.MaxHealthRecords)
	}
	now := l.now()
	skew := l.clockSkew()
	envs := make([]domain.Envelope, 0, len(records))
	subjects := make([]uuid.UUID, 0, len(records))
	for i, r := range records {
		ev, number, err := domain.ValidateHealthRecord(fmt.Sprintf("records[%d]", i), r, now, skew)
		if err != nil {
			return HealthResult{}, err
		}
		ev.IDHash = l.Hasher.IDHash(r.IDType, number)
		env, err := domain.NewEnvelope(domain.HealthAggregate(ev.IDHash), ev, domain.Meta{Actor: actor.Subject}, now)
		if err != nil {
			return HealthResult{}, err
		}
		envs = append(envs, env)
		subjects = append(subjects, pii.PersonID(ev.IDHash))
	}
	// The persons the documents name, by the ids they derive (an erased
	// person's document is no lookup key any more), in one read, once it
	// holds what this replica wrote before.
	if err := l.Own.reach(ctx); err != nil {
		return HealthResult{}, fmt.Errorf("wait for this replica's writes: %w", err)
	}
	defer l.Fence.write()()
	facts, err := l.Reads.PassFacts(ctx, PassFactsQuery{Persons: subjects})
	if err != nil {
		return HealthResult{}, fmt.Errorf("read the persons of %d health records: %w", len(records), err)
	}
	l.Fence.overlay(&facts)
	for i, id := range subjects {
		if err := domain.CheckHealthSubject(fmt.Sprintf("records[%d]", i), facts.Persons[id]); err != nil {
			return HealthResult{}, err
		}
	}
	appended, err := l.record(ctx, "health records", envs...)
	if err != nil {
		return HealthResult{}, err
	}
	l.Own.noted(appended[len(appended)-1].Position) // a pass decides on the code's colour
	return HealthResult{
		Accepted:      len(envs),
		FirstPosition: appended[0].Position,
		LastPosition:  appended[len(appended)-1].Position,
	}, nil
}
