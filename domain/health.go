package domain

import (
	"time"
)

// Limits on the health data feed.
const (
	// MaxHealthRecords is the most records one RecordHealth call takes.
	MaxHealthRecords = 10000
	// MaxVaccineDoses bounds a record's vaccine dose count.
	MaxVaccineDoses = 10
)

// ValidateHealthRecord checks one feed record; field names in errors start
// with prefix (e.g. "records[7]"). It returns the event without its ID hash
// and the document's canonical number.
func ValidateHealthRecord(prefix string, r HealthRecord, now time.Time, skew time.Duration) (HealthStatusRecorded, string, error) {
	number, err := ValidateDocument(prefix+".id_type", prefix+".id_number", r.IDType, r.IDNumber, now)
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
