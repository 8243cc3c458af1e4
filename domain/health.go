package domain

import (
	"context"
	"fmt"
	"time"
)

// Limits on the health data feed.
const (
	// MaxHealthRecords is the most records one RecordHealth call takes.
	MaxHealthRecords = 10000
	// MaxVaccineDoses bounds a record's vaccine dose count.
	MaxVaccineDoses = 10
)

// validateHealthRecord checks one feed record; field names in errors start
// with prefix (e.g. "records[7]"). It returns the event without its ID hash
// and the document's canonical number.
func validateHealthRecord(prefix string, r HealthRecord, now time.Time, skew time.Duration) (HealthStatusRecorded, string, error) {
	number, err := validateDocument(prefix+".id_type", prefix+".id_number", r.IDType, r.IDNumber, now)
	if err != nil {
		return HealthStatusRecorded{}, "", err
	}
	switch r.CodeColour {
	case ColourGreen, ColourYellow, ColourRed:
	default:
		return HealthStatusRecorded{}, "", Invalid(prefix+".code_colour", "must be green, yellow or red")
	}
	ev := HealthStatusRecorded{IDType: r.IDType, CodeColour: r.CodeColour, NATResult: r.NATResult, VaccineDoses: r.VaccineDoses}
	switch r.NATResult {
	case NATNegative, NATPositive:
		if r.NATAt.IsZero() {
			return HealthStatusRecorded{}, "", Invalid(prefix+".nat_at", "is required with a %s result", r.NATResult)
		}
		if r.NATAt.After(now.Add(skew)) {
			return HealthStatusRecorded{}, "", Invalid(prefix+".nat_at", "is in the future")
		}
		ev.NATAt = r.NATAt.UTC()
	case NATNone:
		// No test: a time sent with it means nothing and is not kept.
	default:
		return HealthStatusRecorded{}, "", Invalid(prefix+".nat_result", "must be negative, positive or none")
	}
	if r.VaccineDoses < 0 || r.VaccineDoses > MaxVaccineDoses {
		return HealthStatusRecorded{}, "", Invalid(prefix+".vaccine_doses", "must be between 0 and %d", MaxVaccineDoses)
	}
	return ev, number, nil
}

// RecordHealth stores a batch of the health data feed (health-feed role
// only), up to MaxHealthRecords records. Any invalid record refuses the
// whole batch, naming the record ("records[7].code_colour"), and nothing is
// stored. Each record becomes a HealthStatusRecorded event on the document's
// health aggregate, known by the document's keyed hash, so records for
// people who have not registered yet are kept until they do. All records
// are stored with one group commit.
func (l *Ledger) RecordHealth(ctx context.Context, actor Actor, records []HealthRecord) (HealthResult, error) {
	if actor.Role != RoleHealthFeed {
		return HealthResult{}, Errorf(ErrForbidden, "only the health data feed may record health status")
	}
	if len(records) == 0 {
		return HealthResult{}, Invalid("records", "is empty")
	}
	if len(records) > MaxHealthRecords {
		return HealthResult{}, Invalid("records", "has %d records, at most %d allowed", len(records), MaxHealthRecords)
	}
	now := l.now()
	skew := l.clockSkew()
	envs := make([]Envelope, 0, len(records))
	for i, r := range records {
		ev, number, err := validateHealthRecord(fmt.Sprintf("records[%d]", i), r, now, skew)
		if err != nil {
			return HealthResult{}, err
		}
		ev.IDHash = l.Hasher.IDHash(r.IDType, number)
		env, err := NewEnvelope(HealthAggregate(ev.IDHash), ev, Meta{Actor: actor.Subject}, now)
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
