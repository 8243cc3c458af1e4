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
	if err := oneOf(prefix+".code_colour", r.CodeColour, ColourGreen, ColourYellow, ColourRed); err != nil {
		return HealthStatusRecorded{}, "", err
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

// CheckHealthSubject refuses the feed record at prefix when the person its
// document names (subject, found by the id the document derives; the zero
// view when none registered it) was erased: nothing more is stored about an
// erased person.
func CheckHealthSubject(prefix string, subject PersonView) error {
	if subject.Erased {
		return Errorf(ErrConflict, "%s: the person this document names was erased: nothing more is stored about them", prefix)
	}
	return nil
}

// HealthRecordFact is one record of the health feed as the read models keep
// it: what HealthAsOf folds.
type HealthRecordFact struct {
	OccurredAt   time.Time
	Position     uint64
	CodeColour   string
	NATResult    string
	NATAt        time.Time // zero: the record carries no test
	VaccineDoses int
}

// HealthAsOf folds a document's health records into the status the ledger
// knew at at (zero: now, all of them): only records that occurred no later
// than at count; the colour and doses come from the newest of them (by
// occurred_at, then position), the nucleic-acid result and time from the one
// with the newest test time (the newest record's result when none carries a
// test). ok is false when no record counts. This is what an online scanner
// would have shown at at, so a pass uploaded later by a scanner that was
// offline is decided on it.
func HealthAsOf(records []HealthRecordFact, at time.Time) (h HealthView, ok bool) {
	var newest, newestNAT *HealthRecordFact
	later := func(a, b *HealthRecordFact, at func(*HealthRecordFact) time.Time) bool {
		if c := at(a).Compare(at(b)); c != 0 {
			return c > 0
		}
		return a.Position > b.Position
	}
	occurred := func(r *HealthRecordFact) time.Time { return r.OccurredAt }
	tested := func(r *HealthRecordFact) time.Time { return r.NATAt }
	for i := range records {
		r := &records[i]
		if !at.IsZero() && r.OccurredAt.After(at) {
			continue
		}
		if newest == nil || later(r, newest, occurred) {
			newest = r
		}
		if !r.NATAt.IsZero() && (newestNAT == nil || later(r, newestNAT, tested)) {
			newestNAT = r
		}
	}
	if newest == nil {
		return HealthView{}, false
	}
	h = HealthView{CodeColour: newest.CodeColour, NATResult: newest.NATResult, VaccineDoses: newest.VaccineDoses, RecordedAt: newest.OccurredAt}
	if newestNAT != nil {
		h.NATResult, h.NATAt = newestNAT.NATResult, newestNAT.NATAt.UTC()
	}
	return h, true
}
