package ledger

import (
	"context"
	"fmt"

	"github.com/checkin-ledger/ledger/domain"
)

// RecordHealth stores a batch of the health data feed (health-feed role
// only), up to MaxHealthRecords records. Any invalid record refuses the
// whole batch, naming the record ("records[7].code_colour"), and nothing is
// stored. Each record becomes a HealthStatusRecorded event on the document's
// health aggregate, known by the document's keyed hash, so records for
// people who have not registered yet are kept until they do. All records
// are stored with one group commit.
func (l *Ledger) RecordHealth(ctx context.Context, actor domain.Actor, records []domain.HealthRecord) (HealthResult, error) {
	if actor.Role != domain.RoleHealthFeed {
		return HealthResult{}, domain.Errorf(domain.ErrForbidden, "only the health data feed may record health status")
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
	}
	appended, err := l.Events.Record(ctx, envs...)
	if err != nil {
		return HealthResult{}, fmt.Errorf("record %d health records: %w", len(envs), err)
	}
	if len(appended) != len(envs) {
		return HealthResult{}, fmt.Errorf("record health records: store answered %d results for %d events", len(appended), len(envs))
	}
	return HealthResult{
		Accepted:      len(envs),
		FirstPosition: appended[0].Position,
		LastPosition:  appended[len(appended)-1].Position,
	}, nil
}
