package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// Run runs the contract suite against stores made by newStore. Each subtest
// gets a fresh, empty store at position 0.
func Run(t *testing.T, newStore func(t *testing.T) projections.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *feeder)
	}{
		{"PersonsAndFamily", testPersons},
		{"ReleasedFamilyRegistration", testRelease},
		{"Erasure", testErasure},
		{"PersonErased", testPersonErased},
		{"HealthBeforeRegistration", testHealth},
		{"VenuesAndReviewQueue", testVenues},
		{"EntriesNewestFirstWithFilters", testEntries},
		{"EntriesCursorStable", testCursor},
		{"RedeliveredEventsCountOnce", testRedelivery},
		{"OutOfOrderPasses", testOutOfOrder},
		{"Trace", testTrace},
		{"Occupancy", testOccupancy},
		{"Alerts", testAlerts},
		{"PassLookup", testPassLookup},
		{"PassFacts", testPassFacts},
		{"FarTimes", testFarTimes},
		{"WindowReads", testWindows},
		{"PositionGapAndOverlap", testPositions},
		{"GeneratedCity", testGenerated},
		{"TraceReads", testTraceReads},
		{"Audit", testAudit},
		{"AuditChain", testAuditChain},
		{"TraceCity", testTraceCity},
		{"Declarations", testDeclarations},
		{"Retention", testRetention},
		{"Dashboard", testDashboard},
		{"DashboardGeneratedCity", testDashboardGenerated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tc.fn(t, &feeder{t: t, s: s, keys: NewKeyring(), fresh: newStore})
		})
	}
}

// feeder builds envelopes, gives them positions and applies them.
type feeder struct {
	t    *testing.T
	s    projections.Store
	keys *Keyring
	pos  uint64
	// fresh makes another empty store of the same kind (a rebuild's).
	fresh func(t *testing.T) projections.Store
}

var ctx = context.Background()

// env makes an envelope for ev that occurred at at (truncated to the
// microsecond, PostgreSQL's precision).
func (f *feeder) env(agg string, ev domain.Event, at time.Time) domain.Envelope {
	f.t.Helper()
	at = at.Truncate(time.Microsecond)
	e, err := domain.NewEnvelope(agg, ev, domain.Meta{OccurredAt: at, Actor: "test"}, at)
	if err != nil {
		f.t.Fatalf("new envelope: %v", err)
	}
	e.RecordedAt = at.UTC()
	return e
}

// apply gives envs the next positions and applies them as one batch. It
// returns envs with their positions.
func (f *feeder) apply(envs ...domain.Envelope) []domain.Envelope {
	f.t.Helper()
	for i := range envs {
		f.pos++
		envs[i].Position = f.pos
	}
	if err := Feed(ctx, f.s, envs, projections.KeyringOpener(f.keys), len(envs)+1); err != nil {
		f.t.Fatalf("apply %d events: %v", len(envs), err)
	}
	return envs
}

func (f *feeder) person(name, idNumber string) (uuid.UUID, string, domain.Envelope) {
	id := uuid.New()
	hash := "hash-" + id.String()
	return id, hash, f.env(domain.PersonAggregate(id), &domain.PersonRegistered{
		PersonID: id, IDType: "resident_id", IDHash: hash,
		Name: f.keys.Seal(id, name), IDNumber: f.keys.Seal(id, idNumber), Phone: f.keys.Seal(id, "13800000000"),
	}, Base)
}

func (f *feeder) venue(district string, at time.Time) (uuid.UUID, domain.Envelope) {
	id := uuid.New()
	return id, f.env(domain.VenueAggregate(id), &domain.VenueApplied{
		VenueID: id, Name: "临沂大学图书馆", Type: "library", District: district, Address: "兰山区双岭路",
		Lat: 35.1, Lng: 118.3, ManagerID: uuid.New(), NATWithinHours: 48,
	}, at)
}

func (f *feeder) pass(venue, person uuid.UUID, dir, decision string, at time.Time) domain.Envelope {
	return f.env(domain.PassAggregate(venue, person), &domain.PassRecorded{
		VenueID: venue, PersonID: person, Direction: dir, Method: "staff_scan", Decision: decision,
		Operator: "scanner:" + venue.String()[:8],
		Screen: domain.Screen{CodeColour: "green", NATResult: "negative",
			NATAt: at.Add(-time.Hour).Truncate(time.Second).UTC(), VaccineDoses: 2, VenueID: venue,
			VenueName: "临沂大学图书馆", At: at.Truncate(time.Microsecond).UTC(), Direction: dir, Decision: decision},
	}, at)
}

// Must returns v, failing the test given to the returned function when err
// is set: `es := Must(s.Entries(ctx, q))(t)`.
func Must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func ids[T any](xs []T, id func(T) uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(xs))
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

func entryIDs(es []domain.Entry) []uuid.UUID {
	return ids(es, func(e domain.Entry) uuid.UUID { return e.EventID })
}

func testPersons(t *testing.T, f *feeder) {
	pid, hash, reg := f.person("张三丰", "110101199003077777")
	kid, khash, kreg := f.person("张小宝", "110101201503071234")
	kreg.Payload = mustPayload(t, kreg, func(p *domain.PersonRegistered) { p.GuardianID = pid; p.Relation = "child" })
	verify := f.env(domain.PersonAggregate(pid), &domain.PersonVerified{PersonID: pid, Method: "face", Result: "approved"}, Base.Add(time.Minute))
	f.apply(reg)
	f.apply(kreg, verify)

	p := Must(f.s.Person(ctx, pid))(t)
	want := domain.PersonView{
		ID: pid, NameMasked: "张*", IDType: "resident_id", IDMasked: "110***********7777", IDHash: hash,
		Verification: "approved", FamilyMembers: []uuid.UUID{kid}, Position: 3,
	}
	p.RegisteredAt = time.Time{}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("person:\n got %+v\nwant %+v", p, want)
	}
	k := Must(f.s.PersonByIDHash(ctx, khash))(t)
	if k.ID != kid || k.GuardianID != pid || k.Relation != "child" || k.Verification != "pending" ||
		k.IDMasked != "110***********1234" || len(k.FamilyMembers) != 0 || !k.RegisteredAt.Equal(Base) {
		t.Fatalf("family member: %+v", k)
	}
	if _, err := f.s.Person(ctx, uuid.New()); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown person: err %v, want ErrNotFound", err)
	}
	if _, err := f.s.PersonByIDHash(ctx, "nope"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown hash: err %v, want ErrNotFound", err)
	}
	if pos := Must(f.s.Position(ctx))(t); pos != 3 {
		t.Fatalf("position %d, want 3", pos)
	}
}

func mustPayload(t *testing.T, e domain.Envelope, edit func(*domain.PersonRegistered)) []byte {
	t.Helper()
	ev, err := domain.Decode(e)
	if err != nil {
		t.Fatal(err)
	}
	pr := ev.(*domain.PersonRegistered)
	edit(pr)
	e2, err := domain.NewEnvelope(e.Aggregate, pr, domain.Meta{ID: e.ID}, e.OccurredAt)
	if err != nil {
		t.Fatal(err)
	}
	return e2.Payload
}

func testErasure(t *testing.T, f *feeder) {
	pid, _, reg := f.person("李四", "110101199003071111")
	if err := f.keys.Destroy(ctx, pid); err != nil {
		t.Fatal(err)
	}
	v, venueApplied := f.venue("371302", Base)
	f.apply(reg, venueApplied, f.pass(v, pid, "in", "pass", Base.Add(time.Hour)))
	p := Must(f.s.Person(ctx, pid))(t)
	if p.NameMasked != projections.ErasedMasks.Name || p.IDMasked != projections.ErasedMasks.IDNumber {
		t.Fatalf("erased person masks: %q %q", p.NameMasked, p.IDMasked)
	}
	es := Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: v}))(t)
	if len(es) != 1 || es[0].NameMasked != "" || es[0].IDMasked != "***" {
		t.Fatalf("erased person's entry: %+v", es)
	}
	// An opener that fails for another reason stops the batch: nothing is
	// masked wrongly and nothing is applied.
	_, _, reg2 := f.person("王五", "110101199003072222")
	reg2.Position = f.pos + 1
	broken := func(context.Context, uuid.UUID, domain.Sealed) (string, error) {
		return "", errors.New("keyring unreachable")
	}
	if _, err := projections.Prepare(ctx, []domain.Envelope{reg2}, broken); err == nil {
		t.Fatal("prepare with a failing keyring: no error")
	}
}

func testHealth(t *testing.T, f *feeder) {
	hash := "hash-before-registration"
	rec := func(colour, nat string, natAt time.Time, doses int, at time.Time) domain.Envelope {
		return f.env(domain.HealthAggregate(hash), &domain.HealthStatusRecorded{
			IDHash: hash, IDType: "resident_id", CodeColour: colour, NATResult: nat, NATAt: natAt, VaccineDoses: doses,
		}, at)
	}
	t0 := Base.Add(48 * time.Hour)
	f.apply(rec("green", "negative", t0.Add(-10*time.Hour), 2, t0))
	if _, ok := must2(t)(f.s.Health(ctx, "other")); ok {
		t.Fatal("health of an unknown hash: ok")
	}
	h, ok, err := f.s.Health(ctx, hash)
	if err != nil || !ok || h.CodeColour != "green" || h.NATResult != "negative" || h.VaccineDoses != 2 ||
		!h.NATAt.Equal(t0.Add(-10*time.Hour)) || !h.RecordedAt.Equal(t0) {
		t.Fatalf("health before registration: %+v %v %v", h, ok, err)
	}
	// A newer record without a test keeps the earlier test; an older record
	// delivered late changes nothing.
	f.apply(rec("yellow", "none", time.Time{}, 3, t0.Add(time.Hour)), rec("red", "positive", t0.Add(-30*time.Hour), 1, t0.Add(-time.Hour)))
	pid := uuid.New()
	reg := f.env(domain.PersonAggregate(pid), &domain.PersonRegistered{
		PersonID: pid, IDType: "resident_id", IDHash: hash, Name: f.keys.Seal(pid, "赵六"), IDNumber: f.keys.Seal(pid, "110101199003073333"),
	}, t0.Add(2*time.Hour))
	f.apply(reg)
	h, ok, err = f.s.Health(ctx, hash)
	if err != nil || !ok || h.CodeColour != "yellow" || h.NATResult != "negative" || h.VaccineDoses != 3 ||
		!h.NATAt.Equal(t0.Add(-10*time.Hour)) || !h.RecordedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("health after more records: %+v", h)
	}
	if p := Must(f.s.PersonByIDHash(ctx, hash))(t); p.ID != pid {
		t.Fatalf("person by hash after health records: %v", p.ID)
	}
	// A newer test replaces the result.
	f.apply(rec("green", "positive", t0.Add(3*time.Hour), 3, t0.Add(4*time.Hour)))
	h, _, _ = f.s.Health(ctx, hash)
	if h.NATResult != "positive" || !h.NATAt.Equal(t0.Add(3*time.Hour)) || h.CodeColour != "green" {
		t.Fatalf("health after a newer test: %+v", h)
	}
}

func must2(t *testing.T) func(domain.HealthView, bool, error) (domain.HealthView, bool) {
	return func(h domain.HealthView, ok bool, err error) (domain.HealthView, bool) {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return h, ok
	}
}

func testVenues(t *testing.T, f *feeder) {
	var lanshan []uuid.UUID
	var envs []domain.Envelope
	for i := range 4 {
		id, e := f.venue("371302", Base.Add(time.Duration(i)*time.Minute))
		lanshan = append(lanshan, id)
		envs = append(envs, e)
	}
	other, oe := f.venue("371311", Base)
	envs = append(envs, oe)
	f.apply(envs...)
	admin1, admin2 := uuid.New(), uuid.New()
	f.apply(
		f.env(domain.VenueAggregate(lanshan[1]), &domain.VenueReviewed{VenueID: lanshan[1], Decision: "approve"}, Base.Add(time.Hour)),
		f.env(domain.VenueAggregate(lanshan[2]), &domain.VenueReviewed{VenueID: lanshan[2], Decision: "reject", Reason: "地址不符"}, Base.Add(time.Hour)),
		f.env(domain.VenueAggregate(lanshan[1]), &domain.SubAdminAdded{VenueID: lanshan[1], PersonID: admin1}, Base.Add(2*time.Hour)),
		f.env(domain.VenueAggregate(lanshan[1]), &domain.SubAdminAdded{VenueID: lanshan[1], PersonID: admin2}, Base.Add(3*time.Hour)),
	)
	f.apply(f.env(domain.VenueAggregate(lanshan[1]), &domain.SubAdminRemoved{VenueID: lanshan[1], PersonID: admin1}, Base.Add(4*time.Hour)))

	tests := []struct {
		name   string
		filter domain.VenueFilter
		want   []uuid.UUID
	}{
		{"review queue of a district", domain.VenueFilter{District: "371302", Status: "pending"}, []uuid.UUID{lanshan[0], lanshan[3]}},
		{"queue with limit", domain.VenueFilter{District: "371302", Status: "pending", Limit: 1}, []uuid.UUID{lanshan[0]}},
		{"approved", domain.VenueFilter{Status: "approved"}, []uuid.UUID{lanshan[1]}},
		{"district", domain.VenueFilter{District: "371311"}, []uuid.UUID{other}},
		{"all", domain.VenueFilter{}, append(slices.Clone(lanshan), other)},
		{"none", domain.VenueFilter{District: "999999"}, []uuid.UUID{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(Must(f.s.Venues(ctx, tc.filter))(t), func(v domain.VenueView) uuid.UUID { return v.ID })
			if !slices.Equal(got, tc.want) {
				t.Fatalf("venues %+v: got %v, want %v", tc.filter, got, tc.want)
			}
		})
	}
	v := Must(f.s.Venue(ctx, lanshan[1]))(t)
	if v.Status != "approved" || !slices.Equal(v.Admins, []uuid.UUID{admin2}) || v.Name != "临沂大学图书馆" ||
		v.Type != "library" || v.District != "371302" || v.NATWithinHours != 48 || v.Lat != 35.1 ||
		!v.AppliedAt.Equal(Base.Add(time.Minute)) || !v.ReviewedAt.Equal(Base.Add(time.Hour)) {
		t.Fatalf("approved venue: %+v", v)
	}
	if r := Must(f.s.Venue(ctx, lanshan[2]))(t); r.Status != "rejected" || r.Reason != "地址不符" || r.Admins == nil {
		t.Fatalf("rejected venue: %+v", r)
	}
	if _, err := f.s.Venue(ctx, uuid.New()); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown venue: %v", err)
	}
}

// setupVenue registers two people and a venue, returning their ids.
func setupVenue(f *feeder) (venue, zhang, li uuid.UUID) {
	zhang, _, r1 := f.person("张三", "371302199001011234")
	li, _, r2 := f.person("李四", "P12345678")
	venue, va := f.venue("371302", Base)
	f.apply(r1, r2, va, f.env(domain.VenueAggregate(venue), &domain.VenueReviewed{VenueID: venue, Decision: "approve"}, Base))
	return venue, zhang, li
}

func testEntries(t *testing.T, f *feeder) {
	v, zhang, li := setupVenue(f)
	t0 := Base.Add(24 * time.Hour)
	var envs []domain.Envelope
	for i := range 10 {
		who, dir, dec := zhang, "in", "pass"
		if i%2 == 1 {
			who, dir = li, "out"
		}
		if i == 4 {
			dec = "deny"
		}
		envs = append(envs, f.pass(v, who, dir, dec, t0.Add(time.Duration(i)*time.Minute)))
	}
	f.apply(envs...)
	want := func(idx ...int) []uuid.UUID {
		out := []uuid.UUID{}
		for _, i := range idx {
			out = append(out, envs[i].ID)
		}
		return out
	}
	tests := []struct {
		name string
		q    domain.EntryQuery
		want []uuid.UUID
	}{
		{"newest first", domain.EntryQuery{Limit: 3}, want(9, 8, 7)},
		{"all", domain.EntryQuery{}, want(9, 8, 7, 6, 5, 4, 3, 2, 1, 0)},
		{"from inclusive to exclusive", domain.EntryQuery{From: t0.Add(2 * time.Minute), To: t0.Add(5 * time.Minute)}, want(4, 3, 2)},
		{"direction", domain.EntryQuery{Direction: "out", Limit: 2}, want(9, 7)},
		{"decision", domain.EntryQuery{Decision: "deny"}, want(4)},
		{"direction and decision", domain.EntryQuery{Direction: "in", Decision: "pass", To: t0.Add(5 * time.Minute)}, want(2, 0)},
		{"unknown direction", domain.EntryQuery{Direction: "sideways"}, want()},
		{"after cursor", domain.EntryQuery{AfterAt: t0.Add(5 * time.Minute), AfterPosition: envs[5].Position, Limit: 2}, want(4, 3)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.VenueID = v
			got := entryIDs(Must(f.s.Entries(ctx, tc.q))(t))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("entries: got %v, want %v", got, tc.want)
			}
		})
	}
	es := Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: v, Limit: 2}))(t)
	if e := es[1]; e.NameMasked != "张*" || e.IDMasked != "371***********1234" || e.PersonID != zhang ||
		e.Direction != "in" || e.Decision != "pass" || e.Method != "staff_scan" || e.Operator == "" ||
		!e.At.Equal(t0.Add(8*time.Minute)) || e.Position != envs[8].Position {
		t.Fatalf("entry row: %+v", e)
	}
	if e := es[0]; e.NameMasked != "李*" || e.IDMasked != "*****5678" {
		t.Fatalf("entry row of a passport holder: %+v", e)
	}
	if got := Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: uuid.New()}))(t); len(got) != 0 {
		t.Fatalf("entries of an unknown venue: %v", got)
	}
}

func testCursor(t *testing.T, f *feeder) {
	v, zhang, _ := setupVenue(f)
	t0 := Base.Add(24 * time.Hour)
	var envs []domain.Envelope
	// Several passes share a timestamp: the position breaks the tie.
	for i := range 25 {
		envs = append(envs, f.pass(v, zhang, "in", "pass", t0.Add(time.Duration(i/3)*time.Minute)))
	}
	f.apply(envs...)
	var seen []uuid.UUID
	q := domain.EntryQuery{VenueID: v, Limit: 4}
	for page := 0; ; page++ {
		es := Must(f.s.Entries(ctx, q))(t)
		if len(es) == 0 {
			break
		}
		seen = append(seen, entryIDs(es)...)
		last := es[len(es)-1]
		q.AfterAt, q.AfterPosition = last.At, last.Position
		if page == 1 {
			// New passes, newer than every page and older than the
			// cursor, arrive between pages: the pages already served
			// neither repeat nor skip rows.
			f.apply(f.pass(v, zhang, "out", "pass", t0.Add(time.Hour)))
		}
		if page > 20 {
			t.Fatal("paging does not end")
		}
	}
	want := []uuid.UUID{}
	for i := len(envs) - 1; i >= 0; i-- {
		want = append(want, envs[i].ID)
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("paged entries:\n got %v\nwant %v", seen, want)
	}
}

func testRedelivery(t *testing.T, f *feeder) {
	v, zhang, li := setupVenue(f)
	p1 := f.pass(v, zhang, "in", "pass", Base.Add(time.Hour))
	add := f.env(domain.VenueAggregate(v), &domain.SubAdminAdded{VenueID: v, PersonID: li}, Base.Add(time.Hour))
	alert := f.env(domain.AlertAggregate("371302"), &domain.AlertRaised{District: "371302", VenueID: v, PersonID: zhang, PassEventID: p1.ID, CodeColour: "red", Decision: "deny"}, Base.Add(time.Hour))
	firstPos := f.apply(p1, add, alert)[0].Position
	remove := f.env(domain.VenueAggregate(v), &domain.SubAdminRemoved{VenueID: v, PersonID: li}, Base.Add(2*time.Hour))
	f.apply(remove)
	// The same events appended again after the duplicate window: new
	// positions, same ids. In one batch twice, and in a later batch.
	f.apply(p1, p1, add, alert)
	f.apply(p1)

	if es := Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: v}))(t); len(es) != 1 || es[0].Position != firstPos {
		t.Fatalf("redelivered pass counted %d times: %+v", len(es), es)
	}
	if n := Must(f.s.Occupancy(ctx, v, Base.Add(90*time.Minute), time.Hour))(t); n != 1 {
		t.Fatalf("occupancy after redelivery: %d, want 1", n)
	}
	if pv, ok, err := f.s.Pass(ctx, p1.ID); err != nil || !ok || pv.Position != firstPos {
		t.Fatalf("pass lookup after redelivery: %+v %v %v", pv, ok, err)
	}
	if venue := Must(f.s.Venue(ctx, v))(t); len(venue.Admins) != 0 {
		t.Fatalf("a redelivered SubAdminAdded re-added a removed admin: %v", venue.Admins)
	}
	if as := Must(f.s.Alerts(ctx, "371302", 10))(t); len(as) != 1 {
		t.Fatalf("redelivered alert counted %d times", len(as))
	}
	if tr := Must(f.s.Trace(ctx, zhang, time.Time{}, time.Time{}))(t); len(tr) != 1 {
		t.Fatalf("redelivered pass in trace %d times", len(tr))
	}
	if pos := Must(f.s.Position(ctx))(t); pos != f.pos {
		t.Fatalf("position %d, want %d", pos, f.pos)
	}
}

func testOutOfOrder(t *testing.T, f *feeder) {
	v, zhang, li := setupVenue(f)
	t0 := Base.Add(72 * time.Hour)
	live := []domain.Envelope{
		f.pass(v, zhang, "in", "pass", t0),
		f.pass(v, zhang, "out", "pass", t0.Add(30*time.Minute)),
	}
	f.apply(live...)
	// A scanner that was offline for two days posts its batch now.
	offline := []domain.Envelope{
		f.pass(v, li, "in", "pass", t0.Add(-48*time.Hour)),
		f.pass(v, li, "out", "pass", t0.Add(-47*time.Hour)),
		f.pass(v, zhang, "in", "pass", t0.Add(10*time.Minute)),
	}
	f.apply(offline...)
	got := entryIDs(Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: v}))(t))
	want := []uuid.UUID{live[1].ID, offline[2].ID, live[0].ID, offline[1].ID, offline[0].ID}
	if !slices.Equal(got, want) {
		t.Fatalf("entries with an offline batch:\n got %v\nwant %v", got, want)
	}
	tr := ids(Must(f.s.Trace(ctx, zhang, time.Time{}, time.Time{}))(t), func(v domain.Visit) uuid.UUID { return v.EventID })
	if !slices.Equal(tr, []uuid.UUID{live[0].ID, offline[2].ID, live[1].ID}) {
		t.Fatalf("trace with an offline pass: %v", tr)
	}
}

func testTrace(t *testing.T, f *feeder) {
	v1, zhang, li := setupVenue(f)
	v2, va := f.venue("371311", Base)
	f.apply(va)
	t0 := Base.Add(24 * time.Hour)
	envs := []domain.Envelope{
		f.pass(v1, zhang, "in", "pass", t0),
		f.pass(v2, li, "in", "pass", t0.Add(time.Minute)),
		f.pass(v2, zhang, "in", "deny", t0.Add(24*time.Hour)),
		f.pass(v1, zhang, "out", "pass", t0.Add(15*24*time.Hour)),
	}
	f.apply(envs...)
	got := Must(f.s.Trace(ctx, zhang, t0, t0.Add(14*24*time.Hour)))(t)
	if len(got) != 2 {
		t.Fatalf("14-day trace: %d visits, want 2: %+v", len(got), got)
	}
	want := domain.Visit{EventID: envs[2].ID, VenueID: v2, VenueName: "临沂大学图书馆", VenueType: "library",
		District: "371311", Address: "兰山区双岭路", At: t0.Add(24 * time.Hour), Direction: "in", Decision: "deny"}
	g := got[1]
	if !g.At.Equal(want.At) {
		t.Fatalf("visit time %v, want %v", g.At, want.At)
	}
	g.At = want.At
	if g != want || got[0].EventID != envs[0].ID {
		t.Fatalf("visit:\n got %+v\nwant %+v", g, want)
	}
	if all := Must(f.s.Trace(ctx, zhang, time.Time{}, time.Time{}))(t); len(all) != 3 {
		t.Fatalf("unbounded trace: %d visits", len(all))
	}
	if none := Must(f.s.Trace(ctx, uuid.New(), time.Time{}, time.Time{}))(t); none == nil || len(none) != 0 {
		t.Fatalf("trace of an unknown person: %#v", none)
	}
}

func testOccupancy(t *testing.T, f *feeder) {
	v, zhang, li := setupVenue(f)
	wang, _, r := f.person("王五", "371302199001015678")
	zhao, _, r2 := f.person("赵六", "371302199001019999")
	qian, _, r3 := f.person("钱七", "371302199001012222")
	sun, _, r4 := f.person("孙八", "371302199001013333")
	f.apply(r, r2, r3, r4)
	t0 := Base.Add(24 * time.Hour)
	f.apply(
		f.pass(v, zhang, "in", "pass", t0),                   // still in
		f.pass(v, li, "in", "pass", t0),                      // leaves
		f.pass(v, li, "out", "pass", t0.Add(time.Minute)),    //
		f.pass(v, wang, "in", "deny", t0.Add(time.Minute)),   // refused
		f.pass(v, zhao, "in", "pass", t0.Add(-3*time.Hour)),  // dwell ran out
		f.pass(v, zhang, "out", "pass", t0.Add(5*time.Hour)), // exits later
		// A refused second entry changes no stay: still inside.
		f.pass(v, qian, "in", "pass", t0.Add(-time.Hour)),
		f.pass(v, qian, "in", "deny", t0.Add(time.Minute)),
		f.pass(v, qian, "out", "pass", t0.Add(3*time.Minute)),
		// An exit an older log recorded as denied still closes the stay.
		f.pass(v, sun, "in", "pass", t0.Add(-time.Hour)),
		f.pass(v, sun, "out", "deny", t0.Add(time.Minute)),
	)
	dwell := 2 * time.Hour
	tests := []struct {
		name string
		now  time.Time
		want int
	}{
		{"before anyone", t0.Add(-4 * time.Hour), 0},
		{"only the early visitor", t0.Add(-2 * time.Hour), 1},
		{"entries count at their own instant", t0, 4},
		{"after two exits; a refused entry leaves its person inside", t0.Add(2 * time.Minute), 2},
		{"after three exits", t0.Add(4 * time.Minute), 1},
		{"dwell elapsed", t0.Add(dwell + time.Minute), 0},
		{"after the last exit", t0.Add(6 * time.Hour), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Must(f.s.Occupancy(ctx, v, tc.now, dwell))(t); got != tc.want {
				t.Fatalf("occupancy at %v: %d, want %d", tc.now, got, tc.want)
			}
		})
	}
	if got := Must(f.s.Occupancy(ctx, uuid.New(), t0, dwell))(t); got != 0 {
		t.Fatalf("occupancy of an unknown venue: %d", got)
	}
}

func testAlerts(t *testing.T, f *feeder) {
	var envs []domain.Envelope
	for i := range 5 {
		d := "371302"
		if i == 2 {
			d = "371311"
		}
		envs = append(envs, f.env(domain.AlertAggregate(d), &domain.AlertRaised{
			District: d, VenueID: uuid.New(), PersonID: uuid.New(), PassEventID: uuid.New(),
			CodeColour: "red", Decision: "deny", Reason: fmt.Sprintf("red code %d", i),
		}, Base.Add(time.Duration(i)*time.Minute)))
	}
	// One alert arrives late with an older time.
	envs[0], envs[4] = envs[4], envs[0]
	f.apply(envs...)
	got := Must(f.s.Alerts(ctx, "371302", 2))(t)
	if len(got) != 2 || got[0].Reason != "red code 4" || got[1].Reason != "red code 3" {
		t.Fatalf("alerts newest first: %+v", got)
	}
	a := got[0]
	if a.EventID != envs[0].ID || a.District != "371302" || a.CodeColour != "red" || a.Decision != "deny" ||
		!a.At.Equal(Base.Add(4*time.Minute)) || a.PassEventID == uuid.Nil {
		t.Fatalf("alert row: %+v", a)
	}
	if all := Must(f.s.Alerts(ctx, "371302", 0))(t); len(all) != 4 || all[3].Reason != "red code 0" {
		t.Fatalf("all alerts: %+v", all)
	}
	if other := Must(f.s.Alerts(ctx, "371399", 10))(t); len(other) != 0 {
		t.Fatalf("alerts of a quiet district: %+v", other)
	}
}

func testPassLookup(t *testing.T, f *feeder) {
	v, zhang, li := setupVenue(f)
	at := Base.Add(time.Hour)
	e := f.env(domain.PassAggregate(v, li), &domain.PassRecorded{
		VenueID: v, PersonID: li, Direction: "in", Method: "self_scan", Decision: "deny", Reason: "nucleic-acid test older than 48 h",
		GuardianID: zhang,
		Screen: domain.Screen{CodeColour: "green", NATResult: "negative", NATAt: at.Add(-72 * time.Hour).UTC(),
			VaccineDoses: 3, VenueID: v, VenueName: "临沂大学图书馆", At: at.UTC(), Direction: "in", Decision: "deny",
			Reason: "nucleic-acid test older than 48 h"},
	}, at)
	noScreen := f.pass(v, zhang, "out", "pass", at)
	applied := f.apply(e, noScreen)
	e, noScreen = applied[0], applied[1]
	pv, ok, err := f.s.Pass(ctx, e.ID)
	if err != nil || !ok {
		t.Fatalf("pass lookup: %v %v", ok, err)
	}
	ev, _ := domain.Decode(e)
	want := *ev.(*domain.PassRecorded)
	if pv.EventID != e.ID || pv.Position != e.Position || !reflect.DeepEqual(pv.Pass, want) {
		t.Fatalf("pass lookup:\n got %+v\nwant %+v", pv, want)
	}
	if _, ok, err := f.s.Pass(ctx, uuid.New()); ok || err != nil {
		t.Fatalf("unknown pass: %v %v", ok, err)
	}
	unknown := uuid.New()
	many, err := f.s.Passes(ctx, []uuid.UUID{e.ID, unknown, noScreen.ID})
	if err != nil {
		t.Fatalf("passes lookup: %v", err)
	}
	if len(many) != 2 || !reflect.DeepEqual(many[e.ID], pv) {
		t.Fatalf("passes lookup: got %d passes, %+v for %s; want 2, the same as Pass", len(many), many[e.ID], e.ID)
	}
	if _, ok := many[unknown]; ok {
		t.Fatal("passes lookup answered an unknown id")
	}
	if nv, ok := many[noScreen.ID]; !ok || nv.Position != noScreen.Position {
		t.Fatalf("passes lookup of %s: %+v %v", noScreen.ID, nv, ok)
	}
}

func testWindows(t *testing.T, f *feeder) {
	v, zhang, li := setupVenue(f)
	t0 := Base.Add(24 * time.Hour)
	envs := []domain.Envelope{
		f.pass(v, zhang, "in", "pass", t0),
		f.pass(v, li, "in", "pass", t0.Add(10*time.Minute)),
		f.pass(v, zhang, "out", "pass", t0.Add(40*time.Minute)),
		f.pass(v, li, "out", "pass", t0.Add(2*time.Hour)),
	}
	f.apply(envs...)
	byPosition := func(ps []domain.PassPoint) []domain.PassPoint {
		slices.SortFunc(ps, func(a, b domain.PassPoint) int { return cmp.Compare(a.Position, b.Position) })
		return ps
	}
	vp := byPosition(Must(f.s.PassesAtVenues(ctx, []domain.VenueWindow{{VenueID: v, From: t0.Add(time.Minute), To: t0.Add(2 * time.Hour)}}, time.Time{}))(t))
	if got := ids(vp, func(p domain.PassPoint) uuid.UUID { return p.EventID }); !slices.Equal(got, []uuid.UUID{envs[1].ID, envs[2].ID}) {
		t.Fatalf("venue window: %v", got)
	}
	if p := vp[1]; p.PersonID != zhang || p.VenueID != v || p.Direction != "out" || p.Decision != "pass" ||
		!p.At.Equal(t0.Add(40*time.Minute)) || p.Position != envs[2].Position {
		t.Fatalf("pass row: %+v", p)
	}
	pp := byPosition(Must(f.s.PassesOfPersons(ctx, []uuid.UUID{li}, t0.Add(-time.Hour), t0.Add(3*time.Hour), time.Time{}))(t))
	if got := ids(pp, func(p domain.PassPoint) uuid.UUID { return p.EventID }); !slices.Equal(got, []uuid.UUID{envs[1].ID, envs[3].ID}) {
		t.Fatalf("person window: %v", got)
	}
	if none := Must(f.s.PassesOfPersons(ctx, []uuid.UUID{uuid.New()}, t0.Add(-time.Hour), t0.Add(3*time.Hour), time.Time{}))(t); len(none) != 0 {
		t.Fatalf("unknown person's passes: %v", none)
	}
}

func testPositions(t *testing.T, f *feeder) {
	v, zhang, _ := setupVenue(f)
	pos := f.pos
	p := f.pass(v, zhang, "in", "pass", Base.Add(time.Hour))
	p.Position = pos + 10
	changes, err := projections.Prepare(ctx, []domain.Envelope{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A batch that claims to continue from beyond the store's position.
	_, err = f.s.Apply(ctx, projections.Batch{After: pos + 5, Changes: changes, Last: pos + 10})
	if !errors.Is(err, projections.ErrGap) {
		t.Fatalf("batch past a gap: err %v, want ErrGap", err)
	}
	if got := Must(f.s.Position(ctx))(t); got != pos {
		t.Fatalf("position after a refused batch: %d, want %d", got, pos)
	}
	// An overlapping batch: its events at or below the position are skipped.
	old := f.pass(v, zhang, "out", "pass", Base.Add(2*time.Hour))
	old.Position = pos
	oldChanges, _ := projections.Prepare(ctx, []domain.Envelope{old}, nil)
	cp, err := f.s.Apply(ctx, projections.Batch{After: pos - 1, Changes: append(oldChanges, changes...), Last: pos + 10, LastRecordedAt: Base})
	if err != nil || cp.Position != pos+10 || !cp.RecordedAt.Equal(Base) {
		t.Fatalf("overlapping batch: %+v %v", cp, err)
	}
	if es := Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: v}))(t); len(es) != 1 || es[0].EventID != p.ID {
		t.Fatalf("entries after an overlapping batch: %+v", es)
	}
	// A batch of events the read models ignore still moves the position.
	f.pos = pos + 10
	f.apply(f.env(domain.AuditAggregate("analyst:1"), &domain.TraceRequested{TraceID: uuid.New(), Analyst: "analyst:1", PersonID: zhang, Reason: "cluster"}, Base))
	got, err := f.s.Checkpoint(ctx)
	if err != nil || got.Position != pos+11 {
		t.Fatalf("checkpoint after an ignored event: %+v %v", got, err)
	}
}

// testGenerated feeds a small generated city and checks the stores agree
// with a straightforward count over the log.
func testGenerated(t *testing.T, f *feeder) {
	l := Generate(50, 8, 2000, 3, 7)
	if err := Feed(ctx, f.s, l.Envelopes, projections.KeyringOpener(l.Keys), 333); err != nil {
		t.Fatal(err)
	}
	perVenue := map[uuid.UUID]int{}
	perPerson := map[uuid.UUID]int{}
	for _, e := range l.Envelopes {
		if e.Type == domain.TypePassRecorded {
			ev, _ := domain.Decode(e)
			p := ev.(*domain.PassRecorded)
			perVenue[p.VenueID]++
			perPerson[p.PersonID]++
		}
	}
	total := 0
	for _, v := range l.Venues {
		var all []domain.Entry
		q := domain.EntryQuery{VenueID: v, Limit: 100}
		for {
			es := Must(f.s.Entries(ctx, q))(t)
			all = append(all, es...)
			if len(es) < q.Limit {
				break
			}
			q.AfterAt, q.AfterPosition = es[len(es)-1].At, es[len(es)-1].Position
		}
		if len(all) != perVenue[v] {
			t.Fatalf("venue %v: %d entries, want %d", v, len(all), perVenue[v])
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if a.At.Before(b.At) || (a.At.Equal(b.At) && a.Position < b.Position) {
				t.Fatalf("entries out of order at %d", i)
			}
		}
		total += len(all)
	}
	for _, p := range l.People[:10] {
		if tr := Must(f.s.Trace(ctx, p, time.Time{}, time.Time{}))(t); len(tr) != perPerson[p] {
			t.Fatalf("person %v: %d visits, want %d", p, len(tr), perPerson[p])
		}
	}
	if total != 2000 {
		t.Fatalf("total entries %d, want 2000", total)
	}
	if pos := Must(f.s.Position(ctx))(t); pos != l.Envelopes[len(l.Envelopes)-1].Position {
		t.Fatalf("position %d", pos)
	}
}

// testPassFacts checks the pass command's one read against the single
// reads it stands for: every fact equal, unknown names absent.
func testPassFacts(t *testing.T, f *feeder) {
	v, zhang, li := setupVenue(f)
	zv := Must(f.s.Person(ctx, zhang))(t)
	lv := Must(f.s.Person(ctx, li))(t)
	at := Base.Add(2 * time.Hour)
	f.apply(f.env(domain.HealthAggregate(zv.IDHash), &domain.HealthStatusRecorded{
		IDHash: zv.IDHash, IDType: "resident_id", CodeColour: "yellow", NATResult: "negative", NATAt: at.Add(-time.Hour), VaccineDoses: 2,
	}, at))
	stored := f.apply(f.pass(v, zhang, "in", "pass", at))[0]
	unknown := uuid.New()
	got, err := f.s.PassFacts(ctx, ledger.PassFactsQuery{
		Venues:   []uuid.UUID{v, unknown, v},
		Persons:  []uuid.UUID{zhang, unknown, uuid.Nil},
		IDHashes: []string{lv.IDHash, "no-such-hash"},
		EventIDs: []uuid.UUID{stored.ID, unknown},
	})
	if err != nil {
		t.Fatalf("pass facts: %v", err)
	}
	// The health records fold (domain.HealthAsOf) into what Health reads.
	for _, p := range []domain.PersonView{zv, lv} {
		h, ok := must2(t)(f.s.Health(ctx, p.IDHash))
		folded, fok := domain.HealthAsOf(got.Health[p.IDHash], time.Time{})
		if ok != fok || !reflect.DeepEqual(h, folded) {
			t.Fatalf("health of %s: the facts' records fold into %+v %v, Health reads %+v %v", p.ID, folded, fok, h, ok)
		}
	}
	if len(got.Health) != 1 || len(got.Health[zv.IDHash]) != 1 {
		t.Fatalf("health records in the facts: %+v, want zhang's one record", got.Health)
	}
	want := domain.PassFacts{
		Venues:   map[uuid.UUID]domain.VenueView{v: Must(f.s.Venue(ctx, v))(t)},
		Persons:  map[uuid.UUID]domain.PersonView{zhang: zv, li: lv},
		ByIDHash: map[string]uuid.UUID{lv.IDHash: li},
		Health:   got.Health,
		Stored:   Must(f.s.Passes(ctx, []uuid.UUID{stored.ID}))(t),
	}
	if len(want.Stored) != 1 {
		t.Fatalf("fixture: %d stored passes, want 1", len(want.Stored))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pass facts:\n got %+v\nwant %+v", got, want)
	}
	empty, err := f.s.PassFacts(ctx, ledger.PassFactsQuery{})
	if err != nil || len(empty.Venues)+len(empty.Persons)+len(empty.Health)+len(empty.Stored) != 0 {
		t.Fatalf("empty pass facts: %+v %v", empty, err)
	}
}

// testRelease: a released family registration leaves the person
// unregistered and out of the guardian's family; the document's owner then
// registers it as their own, pending verification, in no one's family.
func testRelease(t *testing.T, f *feeder) {
	gid, _, greg := f.person("吴甲", "110101199003078888")
	kid, khash, kreg := f.person("冒名", "110101199003079999")
	kreg.Payload = mustPayload(t, kreg, func(p *domain.PersonRegistered) { p.GuardianID = gid; p.Relation = "child" })
	verify := f.env(domain.PersonAggregate(kid), &domain.PersonVerified{PersonID: kid, Method: "face", Result: "approved"}, Base.Add(time.Minute))
	release := f.env(domain.PersonAggregate(kid), &domain.PersonReleased{PersonID: kid, GuardianID: gid, Reason: "owner checked"}, Base.Add(2*time.Minute))
	f.apply(greg, kreg, verify)
	v, _, _ := setupVenue(f)
	f.apply(f.pass(v, kid, "in", "pass", Base.Add(90*time.Second)))
	f.apply(release)
	if _, err := f.s.Person(ctx, kid); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("a released person: %v, want ErrNotFound", err)
	}
	// The pass stays in the venue's list, with no masks of a registration
	// that is void.
	if es := Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: v}))(t); len(es) != 1 || es[0].PersonID != kid ||
		es[0].NameMasked != "" || es[0].IDMasked != "" {
		t.Fatalf("the venue's entries after the release: %+v", es)
	}
	if _, err := f.s.PersonByIDHash(ctx, khash); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("a released document by hash: %v, want ErrNotFound", err)
	}
	if g := Must(f.s.Person(ctx, gid))(t); len(g.FamilyMembers) != 0 {
		t.Fatalf("the guardian's family after the release: %v", g.FamilyMembers)
	}
	f.apply(f.env(domain.PersonAggregate(kid), &domain.PersonRegistered{PersonID: kid, IDType: "resident_id", IDHash: khash,
		Name: f.keys.Seal(kid, "郑乙"), IDNumber: f.keys.Seal(kid, "110101199003079999"), Phone: f.keys.Seal(kid, "13800000000")},
		Base.Add(3*time.Minute)))
	k := Must(f.s.PersonByIDHash(ctx, khash))(t)
	if k.ID != kid || k.GuardianID != uuid.Nil || k.Relation != "" || k.Verification != "pending" || k.NameMasked != "郑*" {
		t.Fatalf("the owner's registration: %+v", k)
	}
	if g := Must(f.s.Person(ctx, gid))(t); len(g.FamilyMembers) != 0 {
		t.Fatalf("the guardian's family after the owner registered: %v", g.FamilyMembers)
	}
}

// testFarTimes: a time filter beyond what int64 nanoseconds hold (before
// 1678, after 2261) still means before or after every row, never all rows.
func testFarTimes(t *testing.T, f *feeder) {
	v, zhang, _ := setupVenue(f)
	f.apply(f.pass(v, zhang, "in", "pass", Base.Add(time.Hour)))
	far, early := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: v, From: far}))(t); len(got) != 0 {
		t.Fatalf("entries from 2300: %d, want none", len(got))
	}
	if got := Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: v, To: early}))(t); len(got) != 0 {
		t.Fatalf("entries to 1600: %d, want none", len(got))
	}
	if got := Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: v, From: early, To: far}))(t); len(got) != 1 {
		t.Fatalf("entries from 1600 to 2300: %d, want 1", len(got))
	}
	if got := Must(f.s.Audit(ctx, domain.AuditQuery{From: far}))(t); len(got) != 0 {
		t.Fatalf("audit from 2300: %d, want none", len(got))
	}
}
