package domain

import (
	"sort"
	"time"

	"github.com/google/uuid"
)

// PassPoint is the part of a pass that contact tracing needs.
type PassPoint struct {
	EventID   uuid.UUID `json:"event_id"`
	PersonID  uuid.UUID `json:"person_id"`
	VenueID   uuid.UUID `json:"venue_id"`
	VenueType string    `json:"venue_type"`
	At        time.Time `json:"at"`
	Direction string    `json:"direction"`
	Decision  string    `json:"decision"`
}

// Presence is one person's stay at one venue: from an entry to the matching
// exit. An entry with no exit ends after the venue type's dwell; an exit with
// no entry starts that long before it.
type Presence struct {
	PersonID uuid.UUID
	VenueID  uuid.UUID
	Start    time.Time
	End      time.Time
}

// Presences turns passes into stays. Only passes with decision "pass" count:
// a person who was refused did not go in. Passes may come in any order.
func Presences(passes []PassPoint, dwell func(venueType string) time.Duration) []Presence {
	ps := make([]PassPoint, 0, len(passes))
	for _, p := range passes {
		if p.Decision == "pass" {
			ps = append(ps, p)
		}
	}
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.PersonID != b.PersonID {
			return lessUUID(a.PersonID, b.PersonID)
		}
		if a.VenueID != b.VenueID {
			return lessUUID(a.VenueID, b.VenueID)
		}
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		return a.Direction == "in" && b.Direction == "out"
	})
	var out []Presence
	var open *PassPoint
	flush := func(next *PassPoint) {
		if open == nil {
			return
		}
		end := open.At.Add(dwell(open.VenueType))
		if next != nil && next.At.Before(end) {
			end = next.At // a second entry before the dwell ran out ends the first stay
		}
		out = append(out, Presence{PersonID: open.PersonID, VenueID: open.VenueID, Start: open.At, End: end})
		open = nil
	}
	for i := range ps {
		p := &ps[i]
		if open != nil && (open.PersonID != p.PersonID || open.VenueID != p.VenueID) {
			flush(nil)
		}
		switch p.Direction {
		case "in":
			flush(p)
			open = p
		case "out":
			if open != nil {
				out = append(out, Presence{PersonID: p.PersonID, VenueID: p.VenueID, Start: open.At, End: p.At})
				open = nil
			} else {
				out = append(out, Presence{PersonID: p.PersonID, VenueID: p.VenueID, Start: p.At.Add(-dwell(p.VenueType)), End: p.At})
			}
		}
	}
	flush(nil)
	return out
}

// Overlap returns the common part of a and b with each widened by buffer on
// both sides; ok is false when they do not meet.
func Overlap(a, b Presence, buffer time.Duration) (start, end time.Time, ok bool) {
	start = maxTime(a.Start.Add(-buffer), b.Start.Add(-buffer))
	end = minTime(a.End.Add(buffer), b.End.Add(buffer))
	return start, end, end.After(start)
}

// Contact is one co-presence of a contact with a traced person at a venue.
type Contact struct {
	PersonID     uuid.UUID `json:"person_id"`
	Depth        int       `json:"depth"`
	ViaPersonID  uuid.UUID `json:"via_person_id"`
	VenueID      uuid.UUID `json:"venue_id"`
	OverlapStart time.Time `json:"overlap_start"`
	OverlapEnd   time.Time `json:"overlap_end"`
	// OverlapMinutes is the overlap's length in whole minutes.
	OverlapMinutes int `json:"overlap_minutes"`
}

// TraceWindow is what a contact search looks at.
type TraceWindow struct {
	From, To   time.Time
	MinOverlap time.Duration
	Buffer     time.Duration
}

// ContactsOf returns every co-presence between the stays of via (the traced
// person at some depth) and others' stays at the same venues: overlaps of at
// least w.MinOverlap after widening both by w.Buffer, clipped to the window.
// Stays of people in skip are ignored. Results are ordered by person, then
// overlap start.
func ContactsOf(via uuid.UUID, viaStays, others []Presence, depth int, w TraceWindow, skip map[uuid.UUID]bool) []Contact {
	byVenue := map[uuid.UUID][]Presence{}
	for _, s := range others {
		if s.PersonID == via || skip[s.PersonID] {
			continue
		}
		byVenue[s.VenueID] = append(byVenue[s.VenueID], s)
	}
	var out []Contact
	for _, mine := range viaStays {
		for _, theirs := range byVenue[mine.VenueID] {
			start, end, ok := Overlap(mine, theirs, w.Buffer)
			if !ok {
				continue
			}
			if !w.From.IsZero() && start.Before(w.From) {
				start = w.From
			}
			if !w.To.IsZero() && end.After(w.To) {
				end = w.To
			}
			if !end.After(start) || end.Sub(start) < w.MinOverlap {
				continue
			}
			out = append(out, Contact{
				PersonID: theirs.PersonID, Depth: depth, ViaPersonID: via, VenueID: mine.VenueID,
				OverlapStart: start, OverlapEnd: end, OverlapMinutes: int(end.Sub(start) / time.Minute),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PersonID != out[j].PersonID {
			return lessUUID(out[i].PersonID, out[j].PersonID)
		}
		return out[i].OverlapStart.Before(out[j].OverlapStart)
	})
	return out
}

func lessUUID(a, b uuid.UUID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
