// Package storetest is the contract test suite that every read-model store
// (projections/memory, projections/postgres) must pass, with the fixtures
// its tests and benchmarks share: a keyring held in memory and a generator
// of realistic event logs.
package storetest

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// Keyring is a ledger.Keyring held in a map, for tests and benchmarks.
type Keyring struct {
	mu   sync.Mutex
	keys map[uuid.UUID][]byte
}

// NewKeyring returns an empty keyring.
func NewKeyring() *Keyring { return &Keyring{keys: make(map[uuid.UUID][]byte)} }

// Key implements ledger.Keyring.
func (k *Keyring) Key(_ context.Context, subject uuid.UUID, create bool) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[subject]; ok {
		return key, nil
	}
	if !create {
		return nil, domain.Errorf(domain.ErrNotFound, "key of %s", subject)
	}
	key, err := pii.NewKey()
	if err != nil {
		return nil, err
	}
	k.keys[subject] = key
	return key, nil
}

// Destroy implements ledger.Keyring.
func (k *Keyring) Destroy(_ context.Context, subject uuid.UUID) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.keys, subject)
	return nil
}

// Seal seals v with subject's key, creating the key.
func (k *Keyring) Seal(subject uuid.UUID, v string) domain.Sealed {
	key, err := k.Key(context.Background(), subject, true)
	if err != nil {
		panic(err)
	}
	s, err := pii.Seal(key, v)
	if err != nil {
		panic(err)
	}
	return domain.Sealed(s)
}

// Base is the first moment of generated logs: 2022-03-01 08:00 in Linyi.
var Base = time.Date(2022, 3, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))

// Districts are Linyi's district codes, used by generated venues.
var Districts = []string{"371302", "371311", "371312", "371321", "371322", "371323",
	"371324", "371325", "371326", "371327", "371328", "371329"}

var surnames = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗")

// Log is a generated log: registrations, venues and passes.
type Log struct {
	Envelopes []domain.Envelope
	Venues    []uuid.UUID
	People    []uuid.UUID
	Keys      *Keyring
}

// Generate makes a log of people registered persons, venues approved
// venues and passes passes spread over days days (about 2 passes, an entry
// and usually an exit, per visit), with positions from 1 and RecordedAt set.
// It is deterministic for a seed. Sealing uses real AES-GCM keys in Keys.
func Generate(people, venues, passes, days int, seed uint64) Log {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	l := Log{Keys: NewKeyring()}
	var pos uint64
	add := func(agg string, ev domain.Event, at time.Time) {
		pos++
		e := generatedEnvelope(r, agg, ev, at)
		e.Position = pos
		e.RecordedAt = at.UTC()
		if at.Before(Base) {
			e.RecordedAt = Base.UTC()
		}
		l.Envelopes = append(l.Envelopes, e)
	}
	at := Base.Add(-24 * time.Hour)
	for i := range people {
		id := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "person-%d-%d", seed, i))
		l.People = append(l.People, id)
		idNo := fmt.Sprintf("3713%02d19%02d0101%04d", i%30, 50+i%50, i%10000)
		name := string(surnames[i%len(surnames)]) + "某某"
		add(domain.PersonAggregate(id), &domain.PersonRegistered{
			PersonID: id, IDType: "resident_id", IDHash: fmt.Sprintf("hash-%d-%d", seed, i),
			Name: l.Keys.Seal(id, name), IDNumber: l.Keys.Seal(id, idNo),
		}, at.Add(time.Duration(i)*time.Millisecond))
	}
	for i := range venues {
		id := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "venue-%d-%d", seed, i))
		l.Venues = append(l.Venues, id)
		add(domain.VenueAggregate(id), &domain.VenueApplied{
			VenueID: id, Name: fmt.Sprintf("临沂第%d超市", i), Type: "supermarket", District: Districts[i%len(Districts)],
			Address: fmt.Sprintf("兰山区某路%d号", i), Lat: 35.1, Lng: 118.3, ManagerID: l.People[i%len(l.People)],
		}, at.Add(time.Hour))
		add(domain.VenueAggregate(id), &domain.VenueReviewed{VenueID: id, Decision: "approve"}, at.Add(2*time.Hour))
	}
	span := time.Duration(days) * 24 * time.Hour
	step := span / time.Duration(max(passes, 1))
	t := Base
	// Exits wait in a queue ordered by time, so the log is in time order as
	// a live city's would be.
	var exits outQueue
	for n := 0; n < passes; {
		for len(exits) > 0 && n < passes && !exits[0].at.After(t) {
			o := heap.Pop(&exits).(pendingOut)
			add(o.agg, o.ev, o.at)
			n++
		}
		if n >= passes {
			break
		}
		v := l.Venues[r.IntN(len(l.Venues))]
		p := l.People[r.IntN(len(l.People))]
		colour := "green"
		if r.IntN(200) == 0 {
			colour = "yellow"
		}
		decision := "pass"
		if colour != "green" {
			decision = "deny"
		}
		mk := func(dir string, at time.Time) *domain.PassRecorded {
			return &domain.PassRecorded{
				VenueID: v, PersonID: p, Direction: dir, Method: "self_scan", Decision: decision,
				Screen: domain.Screen{
					NameMasked: string(surnames[r.IntN(len(surnames))]) + "*", CodeColour: colour,
					NATResult: "negative", NATAt: at.Add(-20 * time.Hour).Truncate(time.Second), VaccineDoses: 3,
					VenueID: v, VenueName: "临沂超市", At: at, Direction: dir, Decision: decision,
				},
			}
		}
		add(domain.PassAggregate(v, p), mk("in", t), t)
		n++
		if decision == "pass" && r.IntN(10) > 0 {
			out := t.Add(time.Duration(10+r.IntN(80)) * time.Minute)
			heap.Push(&exits, pendingOut{at: out, agg: domain.PassAggregate(v, p), ev: mk("out", out)})
		}
		t = t.Add(step * 2)
	}
	return l
}

// generatedEnvelope is ev's envelope occurred at at, for a generated log:
// its id is drawn from r, so that the log is reproducible.
func generatedEnvelope(r *rand.Rand, agg string, ev domain.Event, at time.Time) domain.Envelope {
	var id uuid.UUID
	binaryID(&id, r, at)
	e, err := domain.NewEnvelope(agg, ev, domain.Meta{ID: id, OccurredAt: at, Actor: "test"}, at)
	if err != nil {
		panic(err)
	}
	return e
}

// binaryID fills id as a UUIDv7 of at with random bits drawn from r:
// deterministic UUIDv7-shaped ids keep generated logs reproducible.
func binaryID(id *uuid.UUID, r *rand.Rand, at time.Time) {
	ms := uint64(at.UnixMilli())
	for i := range 6 {
		id[i] = byte(ms >> (40 - 8*i))
	}
	lo, hi := r.Uint64(), r.Uint64()
	for i := 6; i < 16; i++ {
		if i < 14 {
			id[i] = byte(lo >> (8 * (i - 6)))
		} else {
			id[i] = byte(hi >> (8 * (i - 14)))
		}
	}
	id[6] = id[6]&0x0f | 0x70
	id[8] = id[8]&0x3f | 0x80
}

// Feed prepares envs with open and applies them to w in batches of size,
// continuing from w's position.
func Feed(ctx context.Context, w projections.Writer, envs []domain.Envelope, open projections.Opener, size int) error {
	cp, err := w.Checkpoint(ctx)
	if err != nil {
		return err
	}
	return Batches(ctx, envs, open, cp.Position, size, func(b projections.Batch) error {
		_, err := w.Apply(ctx, b)
		return err
	})
}

// Batches prepares envs with open into batches of size events, as the
// projector hands them to a store, the first after position after, and
// gives each to fn in log order.
func Batches(ctx context.Context, envs []domain.Envelope, open projections.Opener, after uint64, size int, fn func(projections.Batch) error) error {
	for len(envs) > 0 {
		n := min(size, len(envs))
		changes, err := projections.Prepare(ctx, envs[:n], open)
		if err != nil {
			return err
		}
		last := envs[n-1]
		if err := fn(projections.Batch{After: after, Changes: changes, Last: last.Position, LastRecordedAt: last.RecordedAt}); err != nil {
			return err
		}
		after = last.Position
		envs = envs[n:]
	}
	return nil
}

type pendingOut struct {
	at  time.Time
	agg string
	ev  *domain.PassRecorded
}

type outQueue []pendingOut

func (q outQueue) Len() int           { return len(q) }
func (q outQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q outQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *outQueue) Push(x any)        { *q = append(*q, x.(pendingOut)) }
func (q *outQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
