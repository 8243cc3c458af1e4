package domain

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// The dashboard's counts are anonymous aggregates of passes: per UTC hour,
// district and venue type, how many passes were recorded, how many were
// denied and how many were abnormal (PassIsAbnormal). The read models keep
// them as the projector applies passes (never by scanning passes at read
// time), in tables of their own that outlive the passes themselves.

// PassCounts counts passes: every pass, the denied ones, the abnormal ones
// (denied, or a yellow or red code, or a positive test: PassIsAbnormal).
type PassCounts struct {
	Passes   int64
	Denied   int64
	Abnormal int64
}

// Add adds o to c.
func (c *PassCounts) Add(o PassCounts) {
	c.Passes += o.Passes
	c.Denied += o.Denied
	c.Abnormal += o.Abnormal
}

// CountPass returns what one recorded pass adds to the counts.
func CountPass(p PassRecorded) PassCounts {
	c := PassCounts{Passes: 1}
	if p.Decision == DecisionDeny {
		c.Denied = 1
	}
	if PassIsAbnormal(p) {
		c.Abnormal = 1
	}
	return c
}

// PassHour is the hour bucket a pass at t counts in: t truncated to the
// hour in UTC. A day in any zone whose offset is whole hours is a run of
// these buckets.
func PassHour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// CheckDashboardZone refuses a city time zone whose offset from UTC is not
// whole hours in the year either side of now (Asia/Kolkata's +05:30): the
// dashboard's days are runs of PassHour buckets, which such a zone's
// midnight would cut in two.
func CheckDashboardZone(loc *time.Location, now time.Time) error {
	for t := now.AddDate(-1, 0, 0); t.Before(now.AddDate(1, 0, 0)); t = t.Add(time.Hour) {
		if name, off := t.In(loc).Zone(); off%3600 != 0 {
			return fmt.Errorf("%s is UTC%s on %s, not a whole number of hours: the dashboard counts passes by the hour",
				name, t.In(loc).Format("-07:00"), t.In(loc).Format(time.DateOnly))
		}
	}
	return nil
}

// Day returns the calendar day of now in loc as [start, end): midnight to
// the next midnight (23 or 25 hours long across a daylight-saving change).
func Day(now time.Time, loc *time.Location) (start, end time.Time) {
	n := now.In(loc)
	start = time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, loc)
	return start, start.AddDate(0, 0, 1)
}

// DashboardQuery asks the read models for the dashboard's numbers.
type DashboardQuery struct {
	// District narrows every count to one district; "" is the whole city.
	District string
	// From and To bound the hours counted, [From, To); both are whole UTC
	// hours (PassHour).
	From, To time.Time
	// Now is the instant occupancy is taken at.
	Now time.Time
	// Dwell is how long a person with no exit stays at a venue of a type
	// (occupancy's rule, as for one venue); nil: DefaultDwell.
	Dwell func(venueType string) time.Duration
	// Top is how many venues OccupancyTop holds (the busiest first).
	Top int
}

// HourCounts are one hour's counts.
type HourCounts struct {
	Hour time.Time // UTC, whole hour
	PassCounts
}

// VenueOccupancy is one venue's current occupancy.
type VenueOccupancy struct {
	VenueID   uuid.UUID
	Name      string
	Type      string
	District  string
	Occupancy int
}

// Dashboard is what the read models answer a DashboardQuery with.
type Dashboard struct {
	// Hours has one entry per hour in [From, To), oldest first, zeros
	// included.
	Hours []HourCounts
	// Total sums Hours.
	Total PassCounts
	// ByDistrict and ByVenueType split Total; absent keys count zero.
	ByDistrict  map[string]PassCounts
	ByVenueType map[string]PassCounts
	// PassesHeld is how many passes the read models hold now (in the
	// district, when one is asked): it drops as retention deletes passes,
	// while the hourly counts stay.
	PassesHeld int64
	// OccupancyTop are the venues with the most people inside at Now, the
	// busiest first (ties by venue id), venues with nobody inside left out.
	OccupancyTop []VenueOccupancy
	// PendingVenues and PendingDeclarations are the review queues' lengths.
	PendingVenues       int
	PendingDeclarations int
}
