package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// DenseCity describes a generated dense city for benchmarks, the city issue
// 11 measured on: every person has a handful of usual venues and returns to
// them, so that a venue's regulars meet again and again and a depth-2 trace
// reaches thousands of people. Its passes are made on demand, in log order,
// batch by batch (Batches), so that ten million of them need not be held.
type DenseCity struct {
	People int
	Venues int
	Days   int
	// StaysEach is the number of stays of every person, among Usual venues.
	StaysEach int
	Usual     int
	Seed      uint64
}

// Stays of the dense city: 10 to 180 minutes each, one in the morning
// (starting 07:00-10:00) or in the afternoon (13:00-19:00) of a day, so
// that one person's stays never overlap.
const (
	denseMinStay = 10 * time.Minute
	denseMaxStay = 180 * time.Minute
)

// denseTypes are the dense city's venue types: everyday places whose
// maximum stay is a day or less.
var denseTypes = []string{domain.VenueSupermarket, domain.VenueRestaurant, domain.VenueMall,
	domain.VenueFarmersMarket, domain.VenuePharmacy, domain.VenuePublicTransport}

// NewDenseCity returns the dense city with about passes passes: 50 passes
// (25 stays, each an entry and an exit) per person over 14 days, among six
// usual venues each, and 400 venues per 20,000 people.
func NewDenseCity(passes int, seed uint64) DenseCity {
	people := max(1, passes/50)
	return DenseCity{People: people, Venues: max(6, people/50), Days: 14, StaysEach: 25, Usual: 6, Seed: seed}
}

// Passes is the number of passes the city has.
func (c DenseCity) Passes() int { return c.People * c.StaysEach * 2 }

// Events is the number of events its log has: registrations, venue
// applications and reviews, passes.
func (c DenseCity) Events() int { return c.People + 2*c.Venues + c.Passes() }

// Name names the city by its parameters (a schema or file name).
func (c DenseCity) Name() string {
	return fmt.Sprintf("dense_p%d_v%d_d%d_s%d_u%d_r%d", c.People, c.Venues, c.Days, c.StaysEach, c.Usual, c.Seed)
}

// PersonID is the id of the city's i-th person.
func (c DenseCity) PersonID(i int) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "dense-person-%d-%d", c.Seed, i))
}

// VenueID is the id of the city's i-th venue.
func (c DenseCity) VenueID(i int) uuid.UUID {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "dense-venue-%d-%d", c.Seed, i))
}

// VenueType is the type of the city's i-th venue.
func (c DenseCity) VenueType(i int) string { return denseTypes[i%len(denseTypes)] }

// denseStay is one generated stay: seconds from Base.
type denseStay struct {
	person, venue int32
	start, end    int32
}

// usualVenues draws person p's usual venues from r (the first draws of
// their generator).
func (c DenseCity) usualVenues(r *rand.Rand, usual []int32) {
	for k := range usual {
		usual[k] = int32(r.IntN(c.Venues))
	}
}

// stays draws every stay of the city, person by person (deterministic).
func (c DenseCity) stays() []denseStay {
	out := make([]denseStay, 0, c.People*c.StaysEach)
	halfDays := make([]int, 2*c.Days)
	usual := make([]int32, c.Usual)
	for p := range c.People {
		r := rand.New(rand.NewPCG(c.Seed, uint64(p)))
		c.usualVenues(r, usual)
		for k := range halfDays {
			halfDays[k] = k
		}
		r.Shuffle(len(halfDays), func(i, j int) { halfDays[i], halfDays[j] = halfDays[j], halfDays[i] })
		for _, hd := range halfDays[:min(c.StaysEach, len(halfDays))] {
			day := time.Duration(hd/2) * 24 * time.Hour
			// Base is 08:00; a morning starts at 07:00-10:00, an afternoon at 13:00-19:00.
			start := day - time.Hour + time.Duration(r.IntN(3*3600))*time.Second
			if hd%2 == 1 {
				start = day + 5*time.Hour + time.Duration(r.IntN(6*3600))*time.Second
			}
			length := denseMinStay + time.Duration(r.IntN(int((denseMaxStay-denseMinStay)/time.Second)+1))*time.Second
			out = append(out, denseStay{person: int32(p), venue: usual[r.IntN(len(usual))],
				start: int32(start / time.Second), end: int32((start + length) / time.Second)})
		}
	}
	return out
}

// Batches makes the city's log (registrations, venues, then the passes in
// time order, each recorded when it happened) and hands it to fn in
// batches of size events, prepared as the projector prepares them (sealed
// and masked through a keyring), with positions from 1. It is
// deterministic.
func (c DenseCity) Batches(ctx context.Context, size int, fn func(projections.Batch) error) error {
	r := rand.New(rand.NewPCG(c.Seed, c.Seed^0x2545f4914f6cdd1d))
	keys := NewKeyring()
	add, flush := denseBatcher(ctx, r, projections.KeyringOpener(keys), 0, size, fn)
	at0 := Base.Add(-24 * time.Hour)
	for i := range c.People {
		id := c.PersonID(i)
		err := add(domain.PersonAggregate(id), &domain.PersonRegistered{
			PersonID: id, IDType: "passport", IDHash: fmt.Sprintf("dense-hash-%d-%d", c.Seed, i),
			Name: keys.Seal(id, string(surnames[i%len(surnames)])+"某"), IDNumber: keys.Seal(id, fmt.Sprintf("E%08d", i)),
		}, at0)
		if err != nil {
			return err
		}
	}
	for i := range c.Venues {
		id := c.VenueID(i)
		if err := add(domain.VenueAggregate(id), &domain.VenueApplied{
			VenueID: id, Name: fmt.Sprintf("场所%d", i), Type: c.VenueType(i), District: Districts[i%len(Districts)],
			Address: fmt.Sprintf("某路%d号", i), Lat: 35.1, Lng: 118.3, ManagerID: c.PersonID(i % c.People),
		}, at0.Add(time.Hour)); err != nil {
			return err
		}
		if err := add(domain.VenueAggregate(id), &domain.VenueReviewed{VenueID: id, Decision: "approve"}, at0.Add(2*time.Hour)); err != nil {
			return err
		}
	}
	return c.emitStays(c.stays(), add, flush)
}

// DayAfter makes the log of the day after the city's days: people of the
// city (the first ones) each stay once in the morning at one of their usual
// venues, an entry and an exit, with positions after the city's last
// (after) and ids of their own. Applied to a store holding the city, it is
// the projection of a live day's passes into a full table.
func (c DenseCity) DayAfter(ctx context.Context, people int, after uint64, size int, fn func(projections.Batch) error) error {
	r := rand.New(rand.NewPCG(c.Seed, c.Seed^0x7f4a7c159e3779b9))
	add, flush := denseBatcher(ctx, r, projections.KeyringOpener(NewKeyring()), after, size, fn)
	day := time.Duration(c.Days) * 24 * time.Hour
	usual := make([]int32, c.Usual)
	stays := make([]denseStay, 0, people)
	for p := range min(people, c.People) {
		c.usualVenues(rand.New(rand.NewPCG(c.Seed, uint64(p))), usual)
		start := day - time.Hour + time.Duration(r.IntN(3*3600))*time.Second
		length := denseMinStay + time.Duration(r.IntN(int((denseMaxStay-denseMinStay)/time.Second)+1))*time.Second
		stays = append(stays, denseStay{person: int32(p), venue: usual[r.IntN(len(usual))],
			start: int32(start / time.Second), end: int32((start + length) / time.Second)})
	}
	return c.emitStays(stays, add, flush)
}

// denseBatcher returns add, which makes an envelope of an event at a
// position after after (recorded when it happened), and flush, which hands
// the envelopes made since the last flush to fn as one prepared batch; add
// flushes every size envelopes.
func denseBatcher(ctx context.Context, r *rand.Rand, open projections.Opener, after uint64, size int,
	fn func(projections.Batch) error) (add func(string, domain.Event, time.Time) error, flush func() error) {
	pos, last := after, after
	var envs []domain.Envelope
	flush = func() error {
		if len(envs) == 0 {
			return nil
		}
		changes, err := projections.Prepare(ctx, envs, open)
		if err != nil {
			return err
		}
		e := envs[len(envs)-1]
		b := projections.Batch{After: last, Changes: changes, Last: e.Position, LastRecordedAt: e.RecordedAt}
		last = e.Position
		envs = envs[:0]
		return fn(b)
	}
	add = func(agg string, ev domain.Event, at time.Time) error {
		pos++
		e := generatedEnvelope(r, agg, ev, at)
		e.Position, e.RecordedAt = pos, at.UTC()
		envs = append(envs, e)
		if len(envs) >= size {
			return flush()
		}
		return nil
	}
	return add, flush
}

// emitStays adds the stays' passes in time order, then flushes.
func (c DenseCity) emitStays(stays []denseStay, add func(string, domain.Event, time.Time) error, flush func() error) error {
	// Every pass in time order: its stay and whether it is the exit.
	type ref struct {
		at  int32
		out bool
		i   int32
	}
	refs := make([]ref, 0, 2*len(stays))
	for i, s := range stays {
		refs = append(refs, ref{s.start, false, int32(i)}, ref{s.end, true, int32(i)})
	}
	slices.SortFunc(refs, func(a, b ref) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return int(a.i - b.i)
	})
	persons := make([]uuid.UUID, c.People)
	for i := range persons {
		persons[i] = c.PersonID(i)
	}
	venues := make([]uuid.UUID, c.Venues)
	for i := range venues {
		venues[i] = c.VenueID(i)
	}
	for _, rf := range refs {
		s := stays[rf.i]
		v, p := venues[s.venue], persons[s.person]
		at := Base.Add(time.Duration(rf.at) * time.Second)
		dir := domain.DirectionIn
		if rf.out {
			dir = domain.DirectionOut
		}
		ev := &domain.PassRecorded{VenueID: v, PersonID: p, Direction: dir, Method: domain.MethodSelfScan, Decision: domain.DecisionPass,
			Screen: domain.Screen{NameMasked: string(surnames[int(s.person)%len(surnames)]) + "*", CodeColour: "green",
				NATResult: "negative", NATAt: at.Add(-20 * time.Hour).Truncate(time.Second), VaccineDoses: 3,
				VenueID: v, VenueName: fmt.Sprintf("场所%d", s.venue), At: at, Direction: dir, Decision: domain.DecisionPass}}
		if err := add(domain.PassAggregate(v, p), ev, at); err != nil {
			return err
		}
	}
	return flush()
}
