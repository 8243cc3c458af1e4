package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// testTraceReads checks the window reads of ledger.TraceReads: recorded_at
// carried and filtered by asOf, batches of persons and of venue windows
// (overlapping windows give each pass once), venue types, names.
func testTraceReads(t *testing.T, f *feeder) {
	v, zhang, li := setupVenue(f)
	t0 := Base.Add(24 * time.Hour)
	late := f.pass(v, li, "out", "pass", t0.Add(50*time.Minute))
	late.RecordedAt = t0.Add(30 * time.Hour).UTC() // an offline scanner's batch, a day later
	envs := f.apply(
		f.pass(v, zhang, "in", "pass", t0),
		f.pass(v, li, "in", "pass", t0.Add(10*time.Minute)),
		f.pass(v, zhang, "out", "deny", t0.Add(40*time.Minute)),
		late,
	)
	all := []uuid.UUID{envs[0].ID, envs[1].ID, envs[2].ID, envs[3].ID}

	pp := Must(f.s.PassesOfPersons(ctx, []uuid.UUID{li}, time.Time{}, time.Time{}, time.Time{}))(t)
	slices.SortFunc(pp, func(a, b domain.PassPoint) int { return a.At.Compare(b.At) })
	if len(pp) != 2 || !pp[0].RecordedAt.Equal(t0.Add(10*time.Minute)) || !pp[1].RecordedAt.Equal(late.RecordedAt) {
		t.Fatalf("person passes carry recorded_at: %+v", pp)
	}
	// Window reads come in no particular order: compare them by (at, position).
	pointIDs := func(ps []domain.PassPoint) []uuid.UUID {
		slices.SortFunc(ps, func(a, b domain.PassPoint) int {
			if c := a.At.Compare(b.At); c != 0 {
				return c
			}
			return int(a.Position) - int(b.Position)
		})
		return ids(ps, func(p domain.PassPoint) uuid.UUID { return p.EventID })
	}
	got := Must(f.s.PassesOfPersons(ctx, []uuid.UUID{li, zhang, uuid.New(), li}, time.Time{}, time.Time{}, time.Time{}))(t)
	if !slices.Equal(pointIDs(got), all) {
		t.Fatalf("passes of persons: %v, want %v", pointIDs(got), all)
	}
	p := got[2]
	if p.PersonID != zhang || p.VenueID != v || p.VenueType != "library" || p.Direction != "out" || p.Decision != "deny" ||
		!p.At.Equal(t0.Add(40*time.Minute)) || p.Position != envs[2].Position || !p.RecordedAt.Equal(t0.Add(40*time.Minute)) {
		t.Fatalf("pass point: %+v", p)
	}
	asOf := t0.Add(2 * time.Hour)
	got = Must(f.s.PassesOfPersons(ctx, []uuid.UUID{li}, t0, t0.Add(time.Hour), asOf))(t)
	if !slices.Equal(pointIDs(got), []uuid.UUID{envs[1].ID}) {
		t.Fatalf("as of %v, li's passes: %v (the pass recorded later must be left out)", asOf, pointIDs(got))
	}
	got = Must(f.s.PassesOfPersons(ctx, []uuid.UUID{zhang}, t0.Add(time.Minute), t0.Add(40*time.Minute), time.Time{}))(t)
	if len(got) != 0 {
		t.Fatalf("window [from, to) of zhang: %v", pointIDs(got))
	}

	windows := []domain.VenueWindow{
		{VenueID: v, From: t0.Add(5 * time.Minute), To: t0.Add(45 * time.Minute)},
		{VenueID: v, From: t0.Add(30 * time.Minute), To: t0.Add(55 * time.Minute)}, // overlaps the first
		{VenueID: uuid.New(), From: t0, To: t0.Add(time.Hour)},
	}
	got = Must(f.s.PassesAtVenues(ctx, windows, time.Time{}))(t)
	if !slices.Equal(pointIDs(got), all[1:]) {
		t.Fatalf("passes at venues: %v, want %v", pointIDs(got), all[1:])
	}
	got = Must(f.s.PassesAtVenues(ctx, windows, asOf))(t)
	if !slices.Equal(pointIDs(got), all[1:3]) {
		t.Fatalf("passes at venues as of %v: %v", asOf, pointIDs(got))
	}
	if got := Must(f.s.PassesAtVenues(ctx, nil, time.Time{}))(t); len(got) != 0 {
		t.Fatalf("no windows: %v", got)
	}

	names := Must(f.s.PersonNames(ctx, []uuid.UUID{zhang, li, uuid.New()}))(t)
	if len(names) != 2 || names[zhang] != "张*" || names[li] != "李*" {
		t.Fatalf("names: %v", names)
	}
	venues := Must(f.s.VenuesByID(ctx, []uuid.UUID{v, uuid.New()}))(t)
	if len(venues) != 1 || venues[v].Name != "临沂大学图书馆" || venues[v].Type != "library" || venues[v].District != "371302" {
		t.Fatalf("venues: %+v", venues)
	}
}

// testAudit checks the audit list: one row per TraceRequested event id,
// oldest first, windows and the cursor.
func testAudit(t *testing.T, f *feeder) {
	person := uuid.New()
	var envs []domain.Envelope
	for i := range 5 {
		ev := &domain.TraceRequested{
			TraceID: uuid.New(), Analyst: "analyst", PersonID: person, From: Base, To: Base.Add(24 * time.Hour),
			Depth: 1 + i%2, Reason: fmt.Sprintf("cluster %d", i), Kind: domain.LookContacts, Source: domain.SourceReadModel,
			AsOf: Base.Add(48 * time.Hour), MinOverlapMinutes: 15, BufferMinutes: 5, Contacts: i, ReadPosition: 9,
		}
		envs = append(envs, f.env(domain.AuditAggregate("analyst"), ev, Base.Add(time.Duration(i)*time.Hour)))
	}
	// The third look recorded again (a redelivery): listed once.
	first := f.apply(envs[0], envs[1], envs[2])
	again := envs[2]
	again.Position = 0
	rest := f.apply(again, envs[3], envs[4])
	envs = append(first, rest[1:]...)
	all := Must(f.s.Audit(ctx, domain.AuditQuery{}))(t)
	if len(all) != 5 {
		t.Fatalf("audit has %d entries, want 5", len(all))
	}
	e := all[1]
	if e.EventID != envs[1].ID || e.Analyst != "analyst" || e.PersonID != person || e.Depth != 2 || e.Reason != "cluster 1" ||
		e.Kind != "contacts" || e.Source != "read_model" || !e.From.Equal(Base) || !e.To.Equal(Base.Add(24*time.Hour)) ||
		!e.AsOf.Equal(Base.Add(48*time.Hour)) || e.MinOverlapMinutes != 15 || e.BufferMinutes != 5 || e.Contacts != 1 ||
		!e.At.Equal(Base.Add(time.Hour)) || e.Position != envs[1].Position {
		t.Fatalf("audit entry: %+v", e)
	}
	win := Must(f.s.Audit(ctx, domain.AuditQuery{From: Base.Add(time.Hour), To: Base.Add(4 * time.Hour), Limit: 2}))(t)
	if got := ids(win, func(e domain.AuditEntry) uuid.UUID { return e.EventID }); !slices.Equal(got, []uuid.UUID{envs[1].ID, envs[2].ID}) {
		t.Fatalf("audit window: %v", got)
	}
	next := Must(f.s.Audit(ctx, domain.AuditQuery{From: Base.Add(time.Hour), To: Base.Add(4 * time.Hour), Limit: 2,
		AfterAt: win[1].At, AfterPosition: win[1].Position}))(t)
	if got := ids(next, func(e domain.AuditEntry) uuid.UUID { return e.EventID }); !slices.Equal(got, []uuid.UUID{envs[3].ID}) {
		t.Fatalf("audit next page: %v", got)
	}
}

// TraceCity is a generated city for contact tracing: people moving between
// venues of several types over a few days, with missing exits, missing
// entries, refused passes, repeated entries, stays longer than the dwell,
// companions passing at the same instant and offline passes recorded hours
// after they happened.
type TraceCity struct {
	Log
	// Passes are the city's passes, decoded, with their RecordedAt.
	Passes []CityPass
	// Busy are the people with the most passes, most first.
	Busy []uuid.UUID
}

// CityPass is one generated pass.
type CityPass struct {
	domain.PassRecorded
	VenueType  string
	At         time.Time
	RecordedAt time.Time
}

// cityTypes are the venue types of a generated city, with different dwells.
var cityTypes = []string{domain.VenueRestaurant, domain.VenueSupermarket, domain.VenueHotel,
	domain.VenuePublicTransport, domain.VenueMall, domain.VenueSchool, domain.VenueHospital}

// GenerateTraceCity makes a city of people and venues with visits over
// days days, deterministic for a seed. Times are whole seconds.
func GenerateTraceCity(people, venues, visits, days int, rules domain.StayRules, seed uint64) TraceCity {
	r := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	c := TraceCity{Log: Log{Keys: NewKeyring()}}
	var pre []domain.Envelope
	add := func(list *[]domain.Envelope, agg string, ev domain.Event, at, recorded time.Time) {
		e := generatedEnvelope(r, agg, ev, at)
		e.RecordedAt = recorded.UTC()
		*list = append(*list, e)
	}
	at0 := Base.Add(-24 * time.Hour)
	for i := range people {
		id := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "trace-person-%d-%d", seed, i))
		c.People = append(c.People, id)
		add(&pre, domain.PersonAggregate(id), &domain.PersonRegistered{
			PersonID: id, IDType: "passport", IDHash: fmt.Sprintf("trace-hash-%d-%d", seed, i),
			Name: c.Keys.Seal(id, string(surnames[i%len(surnames)])+"某"), IDNumber: c.Keys.Seal(id, fmt.Sprintf("E%08d", i)),
		}, at0, at0)
	}
	types := make(map[uuid.UUID]string)
	for i := range venues {
		id := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "trace-venue-%d-%d", seed, i))
		c.Venues = append(c.Venues, id)
		types[id] = cityTypes[i%len(cityTypes)]
		add(&pre, domain.VenueAggregate(id), &domain.VenueApplied{
			VenueID: id, Name: fmt.Sprintf("场所%d", i), Type: types[id], District: Districts[i%len(Districts)],
			Address: fmt.Sprintf("某路%d号", i), ManagerID: c.People[i%people],
		}, at0.Add(time.Hour), at0.Add(time.Hour))
	}
	var passes []domain.Envelope
	pass := func(v, p uuid.UUID, dir, decision string, at time.Time) {
		at = at.Truncate(time.Second)
		recorded := at
		if r.IntN(16) == 0 { // an offline scanner uploads hours later
			recorded = at.Add(time.Duration(1+r.IntN(36*60)) * time.Minute)
		}
		ev := &domain.PassRecorded{VenueID: v, PersonID: p, Direction: dir, Method: domain.MethodSelfScan, Decision: decision,
			Screen: domain.Screen{CodeColour: "green", VenueID: v, At: at, Direction: dir, Decision: decision}}
		add(&passes, domain.PassAggregate(v, p), ev, at, recorded)
		c.Passes = append(c.Passes, CityPass{PassRecorded: *ev, VenueType: types[v], At: at.UTC(), RecordedAt: recorded.UTC()})
	}
	span := int64(days) * 24 * 3600
	for range visits {
		// Popular venues and busy people: contacts cluster.
		v := c.Venues[int(float64(venues)*r.Float64()*r.Float64())]
		p := c.People[int(float64(people)*r.Float64()*r.Float64())]
		d := rules.DwellOf(types[v])
		start := Base.Add(time.Duration(r.Int64N(span)) * time.Second)
		length := time.Duration(60+r.Int64N(int64(d/time.Second)*3/2)) * time.Second // up to 1.5 dwells
		// A long stay: up to 1.2 maximum stays, so some exits close no entry.
		if r.IntN(8) == 0 {
			length = time.Duration(60+r.Int64N(int64(rules.MaxStayOf(types[v])/time.Second)*6/5)) * time.Second
		}
		who := []uuid.UUID{p}
		if r.IntN(20) == 0 { // a companion passes at the same instants
			who = append(who, c.People[r.IntN(people)])
		}
		kind := r.IntN(100)
		for _, p := range who {
			switch {
			case kind < 72: // entry and exit
				pass(v, p, "in", "pass", start)
				pass(v, p, "out", "pass", start.Add(length))
			case kind < 82: // no exit
				pass(v, p, "in", "pass", start)
			case kind < 90: // no entry
				pass(v, p, "out", "pass", start.Add(length))
			case kind < 95: // refused at the door
				pass(v, p, "in", "deny", start)
				if kind%2 == 0 {
					pass(v, p, "out", "deny", start.Add(length))
				}
			default: // scanned in twice, then out
				pass(v, p, "in", "pass", start)
				pass(v, p, "in", "pass", start.Add(length/3))
				pass(v, p, "out", "pass", start.Add(length))
			}
		}
	}
	// The log is in the order the ledger recorded the passes.
	order := make([]int, len(passes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return passes[order[i]].RecordedAt.Before(passes[order[j]].RecordedAt) })
	c.Envelopes = pre
	sortedPasses := make([]CityPass, len(order))
	for k, i := range order {
		c.Envelopes = append(c.Envelopes, passes[i])
		sortedPasses[k] = c.Passes[i]
	}
	c.Passes = sortedPasses
	for i := range c.Envelopes {
		c.Envelopes[i].Position = uint64(i + 1)
	}
	count := make(map[uuid.UUID]int)
	for _, p := range c.Passes {
		count[p.PersonID]++
	}
	c.Busy = slices.Clone(c.People)
	slices.SortStableFunc(c.Busy, func(a, b uuid.UUID) int { return count[b] - count[a] })
	return c
}

// bruteStay is one stay as the brute force builds it.
type bruteStay struct {
	person, venue uuid.UUID
	start, end    time.Time
}

// BruteStays builds every stay of the city from all its passes recorded at
// or before asOf (zero: all), without windows: a second, independent
// statement of the rule in domain.Presences. A refused entry is no pass at
// all; an exit counts whatever its decision. A pass looks only at its
// neighbours in its person's passes at its venue: an entry ends at the next
// pass when that is an entry within the dwell or an exit no later than the
// maximum stay, else after the dwell; an exit no entry claimed starts the
// dwell before it.
func (c TraceCity) bruteStays(asOf time.Time, rules domain.StayRules) []bruteStay {
	type key struct{ person, venue uuid.UUID }
	groups := make(map[key][]CityPass)
	for _, p := range c.Passes {
		if (p.Direction == "in" && p.Decision != "pass") || (!asOf.IsZero() && p.RecordedAt.After(asOf)) {
			continue
		}
		k := key{p.PersonID, p.VenueID}
		groups[k] = append(groups[k], p)
	}
	var out []bruteStay
	for k, g := range groups {
		sort.SliceStable(g, func(i, j int) bool {
			if !g[i].At.Equal(g[j].At) {
				return g[i].At.Before(g[j].At)
			}
			return g[i].Direction == "in" && g[j].Direction == "out"
		})
		claimed := make([]bool, len(g))
		for i, p := range g {
			d := rules.DwellOf(p.VenueType)
			if p.Direction == "in" {
				end := p.At.Add(d)
				if i+1 < len(g) {
					n := g[i+1]
					switch {
					case n.Direction == "in" && n.At.Before(end):
						end = n.At
					case n.Direction == "out" && !n.At.After(p.At.Add(rules.MaxStayOf(p.VenueType))):
						end = n.At
						claimed[i+1] = true
					}
				}
				out = append(out, bruteStay{k.person, k.venue, p.At, end})
			} else if !claimed[i] {
				out = append(out, bruteStay{k.person, k.venue, p.At.Add(-d), p.At})
			}
		}
	}
	return out
}

// BruteContacts computes a trace by brute force: every stay of the traced
// people against every stay in the city.
func (c TraceCity) BruteContacts(index uuid.UUID, w domain.TraceWindow, depth int, asOf time.Time, rules domain.StayRules) (stays []domain.Presence, contacts []domain.Contact) {
	return bruteContacts(c.bruteStays(asOf, rules), index, w, depth)
}

func bruteContacts(all []bruteStay, index uuid.UUID, w domain.TraceWindow, depth int) (stays []domain.Presence, contacts []domain.Contact) {
	copresence := func(x, y bruteStay, depth int) (domain.Contact, bool) {
		if x.venue != y.venue {
			return domain.Contact{}, false
		}
		start, end := x.start, x.end
		if y.start.After(start) {
			start = y.start
		}
		if y.end.Before(end) {
			end = y.end
		}
		start, end = start.Add(-w.Buffer), end.Add(w.Buffer)
		if start.Before(w.From) {
			start = w.From
		}
		if end.After(w.To) {
			end = w.To
		}
		if !end.After(start) || end.Sub(start) < w.MinOverlap {
			return domain.Contact{}, false
		}
		return domain.Contact{PersonID: y.person, Depth: depth, ViaPersonID: x.person, VenueID: x.venue,
			OverlapStart: start, OverlapEnd: end, OverlapMinutes: int(end.Sub(start) / time.Minute)}, true
	}
	for _, x := range all {
		if x.person == index && x.start.Before(w.To.Add(w.Buffer)) && x.end.After(w.From.Add(-w.Buffer)) {
			stays = append(stays, domain.Presence{PersonID: x.person, VenueID: x.venue, Start: x.start, End: x.end})
		}
	}
	sort.Slice(stays, func(i, j int) bool {
		a, b := stays[i], stays[j]
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		if a.VenueID != b.VenueID {
			return bytes.Compare(a.VenueID[:], b.VenueID[:]) < 0
		}
		return a.End.Before(b.End)
	})
	level := map[uuid.UUID]bool{index: true}
	excluded := map[uuid.UUID]bool{index: true}
	for d := 1; d <= depth; d++ {
		found := map[uuid.UUID]bool{}
		for _, x := range all {
			if !level[x.person] {
				continue
			}
			for _, y := range all {
				if excluded[y.person] {
					continue
				}
				if ct, ok := copresence(x, y, d); ok {
					contacts = append(contacts, ct)
					found[y.person] = true
				}
			}
		}
		for p := range found {
			excluded[p] = true
		}
		level = found
	}
	domain.SortContacts(contacts)
	return stays, contacts
}

// TraceCityRules are the stay rules testTraceCity traces under (shorter
// than the defaults, so that its four days hold stays longer than the dwell
// and exits too late for their entry): a store that keeps stays is opened
// with them for the contract suite.
var TraceCityRules = domain.StayRules{Dwell: traceCityDwell, MaxStay: func(t string) time.Duration { return 3 * traceCityDwell(t) }}

var traceCityDwell = domain.Dwell{domain.VenueRestaurant: 90 * time.Minute, domain.VenueHotel: 10 * time.Hour}.For

// testTraceCity runs contact searches on the store for several people of a
// generated city, at depth 1 and 2, with and without buffers and as of a
// past moment, and compares them with the brute force over all stays.
func testTraceCity(t *testing.T, f *feeder) {
	rules := TraceCityRules
	city := GenerateTraceCity(2500, 300, 9000, 4, rules, 11)
	if err := Feed(ctx, f.s, city.Envelopes, projections.KeyringOpener(city.Keys), 2000); err != nil {
		t.Fatal(err)
	}
	from := Base.Add(20 * time.Hour)
	to := Base.Add(3*24*time.Hour + 2*time.Hour)
	cases := []struct {
		name  string
		w     domain.TraceWindow
		depth int
		asOf  time.Time
	}{
		{"depth 1, no buffer", domain.TraceWindow{From: from, To: to}, 1, time.Time{}},
		{"depth 2, 30 min overlap, no buffer", domain.TraceWindow{From: from, To: to, MinOverlap: 30 * time.Minute}, 2, time.Time{}},
		{"depth 2, 10 min overlap, 5 min buffer", domain.TraceWindow{From: from, To: to, MinOverlap: 10 * time.Minute, Buffer: 5 * time.Minute}, 2, time.Time{}},
		{"depth 2, 30 min overlap, 20 min buffer, as of day 2", domain.TraceWindow{From: from, To: to, MinOverlap: 30 * time.Minute, Buffer: 20 * time.Minute}, 2, Base.Add(2*24*time.Hour + 7*time.Hour)},
	}
	index := []uuid.UUID{city.Busy[0], city.Busy[1], city.Busy[2], city.Busy[100], city.Busy[1000]}
	var sawDepth2, sawAsOf bool
	allStays := city.bruteStays(time.Time{}, rules)
	// The city has recorded stays longer than their dwell (closed whole by
	// their exit) and exits too late for their entry (two stays).
	long := 0
	for _, st := range allStays {
		if st.end.Sub(st.start) > 90*time.Minute {
			long++
		}
	}
	if long < 100 {
		t.Fatalf("only %d stays longer than the shortest dwell: the city does not test long stays", long)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stays := city.bruteStays(tc.asOf, rules)
			for _, p := range index {
				got, err := domain.FindContacts(ledger.BindTraceReads(context.Background(), f.s, rules), domain.ContactSearch{PersonID: p, Window: tc.w, Depth: tc.depth, AsOf: tc.asOf}, rules)
				if err != nil {
					t.Fatal(err)
				}
				wantStays, want := bruteContacts(stays, p, tc.w, tc.depth)
				if err := sameStays(got.Stays, wantStays); err != nil {
					t.Fatalf("person %v: stays: %v", p, err)
				}
				if err := sameContacts(got.Contacts(), want); err != nil {
					t.Fatalf("person %v: %d contacts, brute force %d: %v", p, got.Len(), len(want), err)
				}
				if got.Persons[2] > 0 {
					sawDepth2 = true
				}
				t.Logf("person %v: %d stays, %d contacts, %d people at depth 1, %d at depth 2",
					p, len(got.Stays), got.Len(), got.Persons[1], got.Persons[2])
				if !tc.asOf.IsZero() {
					_, all := bruteContacts(allStays, p, tc.w, tc.depth)
					if len(all) != len(want) {
						sawAsOf = true
					}
				}
			}
		})
	}
	if !sawDepth2 {
		t.Error("no trace found anyone at depth 2: the city is too sparse to test")
	}
	if !sawAsOf {
		t.Error("as_of changed no answer: the city's late passes do not test it")
	}
}

func sameStays(got, want []domain.Presence) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d stays, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.PersonID != w.PersonID || g.VenueID != w.VenueID || !g.Start.Equal(w.Start) || !g.End.Equal(w.End) {
			return fmt.Errorf("stay %d: %+v, want %+v", i, g, w)
		}
	}
	return nil
}

func sameContacts(got, want []domain.Contact) error {
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.PersonID != w.PersonID || g.Depth != w.Depth || g.ViaPersonID != w.ViaPersonID || g.VenueID != w.VenueID ||
			!g.OverlapStart.Equal(w.OverlapStart) || !g.OverlapEnd.Equal(w.OverlapEnd) || g.OverlapMinutes != w.OverlapMinutes {
			return fmt.Errorf("contact %d: %+v, want %+v", i, g, w)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d contacts, want %d", len(got), len(want))
	}
	return nil
}

// testAuditChain checks the audit chain's list: every entry with its chain
// fields, in chain order, an entry applied twice listed once, the filters
// (person, kind, actor, a time window) and paging after a seq.
func testAuditChain(t *testing.T, f *feeder) {
	person, venue := uuid.New(), uuid.New()
	var chain domain.AuditChain
	var envs []domain.Envelope
	for i := range 6 {
		var src domain.Envelope
		switch i % 3 {
		case 0:
			// Times finer than a microsecond, as a request and the
			// server's clock give them: the entry keeps what a read
			// model gives back, so its listing hashes to its hash.
			src = f.env(domain.AuditAggregate("analyst"), &domain.TraceRequested{TraceID: uuid.New(), Analyst: "analyst:li",
				PersonID: person, From: Base.Add(123456789), To: Base.Add(24*time.Hour + 987654321), Depth: 2,
				Reason: fmt.Sprintf("cluster %d", i), Kind: domain.LookContacts}, Base.Add(time.Duration(i)*time.Hour))
			src.Actor = "analyst:li"
			src.RecordedAt = src.RecordedAt.Add(789)
		case 1:
			src = f.env(domain.VenueAggregate(venue), &domain.VenueReviewed{VenueID: venue, Decision: domain.ReviewReject,
				Reason: "address"}, Base.Add(time.Duration(i)*time.Hour))
			src.Actor = "reviewer:371302:wang"
		case 2:
			src = f.env(domain.VenueAggregate(venue), &domain.SubAdminAdded{VenueID: venue, PersonID: person},
				Base.Add(time.Duration(i)*time.Hour))
			src.Actor = "admin:root"
		}
		entry, _, err := domain.AuditEntryOf(src)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := domain.DecideAuditEntry(chain, entry)
		if err != nil {
			t.Fatal(err)
		}
		e := f.env(domain.AuditChainAggregate, evs[0], Base.Add(time.Duration(i)*time.Hour))
		e.ID = domain.AuditEventID(src.ID)
		envs = append(envs, e)
		if chain, err = domain.ReplayAuditChain(envs[i:]); err != nil {
			t.Fatal(err)
		}
	}
	first := f.apply(envs[0], envs[1], envs[2])
	again := envs[2]
	again.Position = 0
	rest := f.apply(again, envs[3], envs[4], envs[5])
	envs = append(first, rest[1:]...)

	all := Must(f.s.AuditChain(ctx, domain.AuditChainQuery{}))(t)
	if len(all) != 6 {
		t.Fatalf("audit chain lists %d entries, want 6", len(all))
	}
	prev := domain.AuditGenesis
	for i, e := range all {
		if e.Seq != uint64(i+1) || e.PrevHash != prev || e.Hash != e.ChainHash() || e.EventID != envs[i].ID || e.Position != envs[i].Position {
			t.Fatalf("entry %d: %+v", i, e)
		}
		prev = e.Hash
	}
	if e := all[0]; e.Kind != domain.AuditContacts || e.Actor != "analyst:li" || e.Role != "analyst" || e.PersonID != person ||
		e.Depth != 2 || e.Reason != "cluster 0" || !e.From.Equal(Base.Add(123456*time.Microsecond)) ||
		!e.To.Equal(Base.Add(24*time.Hour+987654*time.Microsecond)) ||
		e.SourceType != domain.TypeTraceRequested || !e.At.Equal(Base) || e.VenueID != uuid.Nil {
		t.Fatalf("a trace's entry: %+v", e)
	}
	if e := all[1]; e.Kind != domain.AuditVenueReview || e.VenueID != venue || e.Outcome != "reject" || e.Reason != "address" ||
		e.Role != "reviewer" || e.PersonID != uuid.Nil || !e.From.IsZero() {
		t.Fatalf("a review's entry: %+v", e)
	}
	seqs := func(es []domain.AuditChainEntry) []uint64 {
		out := []uint64{}
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	for _, c := range []struct {
		name string
		q    domain.AuditChainQuery
		want []uint64
	}{
		{"person", domain.AuditChainQuery{PersonID: person}, []uint64{1, 3, 4, 6}},
		{"kind", domain.AuditChainQuery{Kind: domain.AuditVenueReview}, []uint64{2, 5}},
		{"actor", domain.AuditChainQuery{Actor: "admin:root"}, []uint64{3, 6}},
		{"window", domain.AuditChainQuery{Since: Base.Add(time.Hour), Until: Base.Add(4 * time.Hour)}, []uint64{2, 3, 4}},
		{"page", domain.AuditChainQuery{Limit: 2}, []uint64{1, 2}},
		{"next page", domain.AuditChainQuery{Limit: 2, AfterSeq: 2}, []uint64{3, 4}},
		{"person, next page", domain.AuditChainQuery{PersonID: person, Limit: 2, AfterSeq: 3}, []uint64{4, 6}},
		{"nobody", domain.AuditChainQuery{PersonID: uuid.New()}, []uint64{}},
		{"past the end", domain.AuditChainQuery{AfterSeq: 6}, []uint64{}},
		{"source", domain.AuditChainQuery{Source: all[3].SourceEventID}, []uint64{4}},
		{"source and person", domain.AuditChainQuery{Source: all[3].SourceEventID, PersonID: person}, []uint64{4}},
		{"source, another person", domain.AuditChainQuery{Source: all[3].SourceEventID, PersonID: uuid.New()}, []uint64{}},
		{"source, after it", domain.AuditChainQuery{Source: all[3].SourceEventID, AfterSeq: 4}, []uint64{}},
		{"source, before it", domain.AuditChainQuery{Source: all[3].SourceEventID, AfterSeq: 3}, []uint64{4}},
		{"unknown source", domain.AuditChainQuery{Source: uuid.New()}, []uint64{}},
	} {
		if got := seqs(Must(f.s.AuditChain(ctx, c.q))(t)); !slices.Equal(got, c.want) {
			t.Errorf("%s: seqs %v, want %v", c.name, got, c.want)
		}
	}
}
