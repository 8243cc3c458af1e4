package storetest

// What the read models forget: passes past their retention (RetirePasses),
// and an erased person's personal data (PersonErased).

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// testRetention: RetirePasses drops every pass before its cut-off, however
// late it was applied, and the alerts raised for them, from every read
// (entry list, trace, window reads, lookups by id, the command side's
// facts, alerts); registrations, venues, declarations, health records and
// the audit trail stay. It is idempotent, passes older than the cut-off
// applied again (a replay) stay out, and a pass still within its retention
// for a day never seen before is stored.
func testRetention(t *testing.T, f *feeder) {
	v, zhang, li := setupVenue(f)
	// Day boundaries in UTC: the PostgreSQL store keeps a partition a day.
	y, m, d := Base.UTC().Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 2)
	hour := func(days, hours int) time.Time { return day.AddDate(0, 0, days).Add(time.Duration(hours) * time.Hour) }
	before := hour(1, 12) // the cut-off: a day and a half in

	p1 := f.pass(v, zhang, "in", "deny", hour(0, 10))
	p2 := f.pass(v, zhang, "out", "pass", hour(0, 11))
	p3 := f.pass(v, li, "in", "pass", hour(1, 9)) // the partial day, before the cut-off
	p4 := f.pass(v, li, "out", "deny", hour(1, 13))
	p5 := f.pass(v, zhang, "in", "pass", hour(3, 8))
	alert := func(p domain.Envelope) domain.Envelope {
		ev, _ := domain.Decode(p)
		pr := ev.(*domain.PassRecorded)
		// An alert carries its pass's occurred_at (ledger.RaiseAlerts).
		return f.env(domain.AlertAggregate("371302"), &domain.AlertRaised{District: "371302", VenueID: pr.VenueID,
			PersonID: pr.PersonID, PassEventID: p.ID, CodeColour: "red", Decision: pr.Decision}, p.OccurredAt)
	}
	a1, a4 := alert(p1), alert(p4)
	look := f.env(domain.AuditAggregate("analyst"), &domain.TraceRequested{TraceID: uuid.New(), Analyst: "analyst",
		PersonID: zhang, From: hour(0, 0), To: hour(1, 0), Depth: 1, Reason: "cluster", Kind: domain.LookContacts,
		Source: domain.SourceReadModel, Contacts: 1}, hour(0, 12))
	declID := uuid.New()
	decl := f.env(domain.DeclarationAggregate(declID), &domain.ArrivalDeclared{DeclarationID: declID, PersonID: li,
		ArrivalDate: "2022-03-02", Origin: "上海市浦东新区", DestinationDistrict: "371302", NATResult: "none"}, hour(0, 9))
	health := f.env(domain.HealthAggregate("hash-"+zhang.String()), &domain.HealthStatusRecorded{IDHash: "hash-" + zhang.String(),
		CodeColour: "green", NATResult: "negative"}, hour(0, 8))
	applied := f.apply(decl, health, p1, p2, p3, p4, p5, a1, a4, look)
	p1, p2, p3, p4, p5 = applied[2], applied[3], applied[4], applied[5], applied[6]
	// A late upload: applied after the others, at an old occurred_at.
	late := f.apply(f.pass(v, li, "in", "pass", hour(0, 7)))[0]

	entries := func() []uuid.UUID {
		t.Helper()
		return entryIDs(Must(f.s.Entries(ctx, domain.EntryQuery{VenueID: v}))(t))
	}
	if got := entries(); len(got) != 6 {
		t.Fatalf("before retirement: %d entries, want 6", len(got))
	}

	// The dashboard's counts: the passes held drop with retirement, the
	// hourly counts stay (anonymous aggregates). A store that keeps no
	// dashboard (the command-side facts) counts nothing.
	dashQ := domain.DashboardQuery{From: hour(-1, 0), To: hour(5, 0), Now: hour(5, 0)}
	dash0 := Must(f.s.Dashboard(ctx, dashQ))(t)
	keepsDashboard := dash0.PassesHeld != 0
	counted := int64(6) // every pass applied, expired or not
	if keepsDashboard && (dash0.PassesHeld != 6 || dash0.Total.Passes != 6) {
		t.Fatalf("dashboard before retirement: %d held, %d counted, want 6 and 6", dash0.PassesHeld, dash0.Total.Passes)
	}

	st := Must(f.s.RetirePasses(ctx, before))(t)
	// A store that drops whole days counts them by estimate: at least
	// the partial day's pass (deleted one by one), at most the four.
	if st.Passes < 1 || st.Passes > 4 || st.Alerts > 1 {
		t.Fatalf("retire stats: %+v", st)
	}

	check := func(t *testing.T, kept ...domain.Envelope) {
		t.Helper()
		if keepsDashboard {
			d := Must(f.s.Dashboard(ctx, dashQ))(t)
			if d.PassesHeld != int64(len(kept)) || d.Total.Passes != counted {
				t.Fatalf("dashboard after retirement: %d held, %d counted, want %d and %d (the hours stay)", d.PassesHeld, d.Total.Passes, len(kept), counted)
			}
		}
		want := ids(kept, func(e domain.Envelope) uuid.UUID { return e.ID })
		slices.Reverse(want)
		if got := entries(); !slices.Equal(got, want) {
			t.Fatalf("entries: got %v, want %v (newest first)", got, want)
		}
		var visits []uuid.UUID
		for _, p := range []uuid.UUID{zhang, li} {
			for _, vi := range Must(f.s.Trace(ctx, p, time.Time{}, time.Time{}))(t) {
				visits = append(visits, vi.EventID)
			}
		}
		if !sameSet(visits, want) {
			t.Fatalf("trace: got %v, want %v", visits, want)
		}
		win := Must(f.s.PassesAtVenues(ctx, []domain.VenueWindow{{VenueID: v, From: hour(-1, 0), To: hour(5, 0)}}, time.Time{}))(t)
		if got := ids(win, func(p domain.PassPoint) uuid.UUID { return p.EventID }); !sameSet(got, want) {
			t.Fatalf("venue window: got %v, want %v", got, want)
		}
		pp := Must(f.s.PassesOfPersons(ctx, []uuid.UUID{zhang, li}, hour(-1, 0), hour(5, 0), time.Time{}))(t)
		if got := ids(pp, func(p domain.PassPoint) uuid.UUID { return p.EventID }); !sameSet(got, want) {
			t.Fatalf("person windows: got %v, want %v", got, want)
		}
		gone := []uuid.UUID{p1.ID, p2.ID, p3.ID, late.ID}
		if _, ok, err := f.s.Pass(ctx, p1.ID); ok || err != nil {
			t.Fatalf("expired pass by id: ok=%v err=%v", ok, err)
		}
		byID := Must(f.s.Passes(ctx, append(slices.Clone(gone), p4.ID)))(t)
		if _, ok := byID[p4.ID]; !ok || len(byID) != 1 {
			t.Fatalf("passes by id: %d answered, want only the kept one", len(byID))
		}
		facts := Must(f.s.PassFacts(ctx, ledger.PassFactsQuery{EventIDs: gone}))(t)
		if len(facts.Stored) != 0 {
			t.Fatalf("pass facts hold %d expired passes", len(facts.Stored))
		}
		al := Must(f.s.Alerts(ctx, "371302", 0))(t)
		if len(al) != 1 || al[0].EventID != a4.ID || al[0].PassEventID != p4.ID {
			t.Fatalf("alerts: %+v, want only the kept pass's", al)
		}
		// What does not expire stays.
		if pv := Must(f.s.Person(ctx, zhang))(t); pv.ID != zhang || pv.IDMasked == "" {
			t.Fatalf("person after retirement: %+v", pv)
		}
		if vv := Must(f.s.Venue(ctx, v))(t); vv.ID != v || vv.Status != "approved" {
			t.Fatalf("venue after retirement: %+v", vv)
		}
		if dv := Must(f.s.Declaration(ctx, declID))(t); dv.ID != declID {
			t.Fatalf("declaration after retirement: %+v", dv)
		}
		if _, ok := must2(t)(f.s.Health(ctx, "hash-"+zhang.String())); !ok {
			t.Fatal("health record gone with the passes")
		}
		if au := Must(f.s.Audit(ctx, domain.AuditQuery{}))(t); len(au) != 1 || au[0].EventID != look.ID {
			t.Fatalf("audit after retirement: %+v", au)
		}
	}
	t.Run("expired passes and alerts gone, the rest kept", func(t *testing.T) { check(t, p4, p5) })

	t.Run("idempotent", func(t *testing.T) {
		if st := Must(f.s.RetirePasses(ctx, before))(t); st != (ledger.RetireStats{}) {
			t.Fatalf("second retirement removed %+v", st)
		}
		// An older cut-off changes nothing either.
		if st := Must(f.s.RetirePasses(ctx, hour(0, 0)))(t); st != (ledger.RetireStats{}) {
			t.Fatalf("older retirement removed %+v", st)
		}
		check(t, p4, p5)
	})

	t.Run("a replay keeps expired passes out, a new day is stored", func(t *testing.T) {
		old := f.pass(v, zhang, "out", "pass", hour(1, 11))
		oldAlert := alert(old)
		fresh := f.pass(v, li, "in", "pass", hour(4, 1)) // a day nothing was stored for
		applied := f.apply(old, oldAlert, fresh)
		counted++ // the fresh one; the expired one is kept out of the counts too
		check(t, p4, p5, applied[2])
	})
}

// sameSet reports whether a and b hold the same ids, in any order.
func sameSet(a, b []uuid.UUID) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	cmp := func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) }
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

// testPersonErased: a PersonErased event makes the read models forget the
// person at once, even while their key still opens (the erasure stopped
// between its event and its key): no name or ID masks, no lookup by
// document, their declarations without origin, plate and contact; their
// passes stay as anonymous facts under their id, so contact tracing still
// counts them. A guardian's dependants have events of their own; others
// are untouched. A redelivered erasure changes nothing, and a replay into
// a fresh store (the key destroyed by then) answers the same.
func testPersonErased(t *testing.T, f *feeder) {
	gid, ghash, greg := f.person("欧阳娜娜", "110101199003075555")
	kid, khash, kreg := f.person("欧阳小娜", "110101201503076666")
	kreg.Payload = mustPayload(t, kreg, func(p *domain.PersonRegistered) { p.GuardianID = gid; p.Relation = "child" })
	other, ohash, oreg := f.person("钱七", "110101199003078888")
	v, va := f.venue("371302", Base)
	approve := f.env(domain.VenueAggregate(v), &domain.VenueReviewed{VenueID: v, Decision: "approve"}, Base)
	t0 := Base.Add(time.Hour)
	passes := []domain.Envelope{
		f.pass(v, gid, "in", "pass", t0), f.pass(v, kid, "in", "pass", t0),
		f.pass(v, other, "in", "pass", t0.Add(time.Minute)), f.pass(v, gid, "out", "pass", t0.Add(time.Hour)),
	}
	arrivalID, truckID := uuid.New(), uuid.New()
	decls := []domain.Envelope{
		f.env(domain.DeclarationAggregate(arrivalID), &domain.ArrivalDeclared{DeclarationID: arrivalID, PersonID: gid,
			FamilyMemberIDs: []uuid.UUID{kid}, ArrivalDate: "2022-03-02", Origin: f.keys.Seal(gid, "上海市浦东新区"),
			DestinationDistrict: "371302", NATResult: "none"}, Base),
		f.env(domain.DeclarationAggregate(truckID), &domain.TruckPassDeclared{DeclarationID: truckID, PersonID: gid,
			PlateNumber: f.keys.Seal(gid, "鲁Q1234挂"), NATProofAt: Base, HealthCodeColour: "green", LogisticsPark: "园",
			District: "371311", ContactName: f.keys.Seal(gid, "赵调度"), ContactPhone: f.keys.Seal(gid, "13900001111")}, Base),
	}
	before := slices.Concat([]domain.Envelope{greg, kreg, oreg, va, approve}, passes, decls)
	f.apply(before...)
	if p := Must(f.s.Person(ctx, gid))(t); p.NameMasked != "欧*" || p.Erased {
		t.Fatalf("before the erasure: %+v", p)
	}

	erasure := []domain.Envelope{
		f.env(domain.PersonAggregate(kid), &domain.PersonErased{PersonID: kid, By: "admin:root", Reason: "asked", Guardian: gid}, t0.Add(2*time.Hour)),
		f.env(domain.PersonAggregate(gid), &domain.PersonErased{PersonID: gid, By: "admin:root", Reason: "asked", Dependants: []uuid.UUID{kid}}, t0.Add(2*time.Hour)),
	}
	f.apply(erasure...) // the keys still open: the event alone is enough

	check := func(t *testing.T, s projections.Store) {
		t.Helper()
		for _, c := range []struct {
			id   uuid.UUID
			hash string
		}{{gid, ghash}, {kid, khash}} {
			p := Must(s.Person(ctx, c.id))(t)
			if !p.Erased || p.NameMasked != projections.ErasedMasks.Name || p.IDMasked != projections.ErasedMasks.IDNumber || p.IDHash != "" {
				t.Fatalf("erased person %s: %+v", c.id, p)
			}
			if _, err := s.PersonByIDHash(ctx, c.hash); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("erased person found by their document: %v", err)
			}
		}
		facts := Must(s.PassFacts(ctx, ledger.PassFactsQuery{Persons: []uuid.UUID{gid, other}, IDHashes: []string{ghash, khash, ohash}}))(t)
		if _, ok := facts.ByIDHash[ghash]; ok || len(facts.ByIDHash) != 1 || facts.ByIDHash[ohash] != other {
			t.Fatalf("pass facts by document hash: %v", facts.ByIDHash)
		}
		if p := facts.Persons[gid]; !p.Erased || p.NameMasked != "" {
			t.Fatalf("pass facts of the erased person: %+v", p)
		}
		if p := Must(s.Person(ctx, other))(t); p.Erased || p.NameMasked != "钱*" || p.IDMasked != "110***********8888" {
			t.Fatalf("another person: %+v", p)
		}
		// The passes stay, anonymous.
		es := Must(s.Entries(ctx, domain.EntryQuery{VenueID: v}))(t)
		if len(es) != 4 {
			t.Fatalf("entries after the erasure: %d, want 4", len(es))
		}
		for _, e := range es {
			erased := e.PersonID == gid || e.PersonID == kid
			if erased && (e.NameMasked != "" || e.IDMasked != "***") || !erased && e.NameMasked != "钱*" {
				t.Fatalf("entry %+v", e)
			}
		}
		if vs := Must(s.Trace(ctx, gid, time.Time{}, time.Time{}))(t); len(vs) != 2 {
			t.Fatalf("the erased person's passes as anonymous facts: %d, want 2", len(vs))
		}
		names := Must(s.PersonNames(ctx, []uuid.UUID{gid, kid, other}))(t)
		if want := map[uuid.UUID]string{gid: "", kid: "", other: "钱*"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("names %v, want %v", names, want)
		}
		pts := Must(s.PassesAtVenues(ctx, []domain.VenueWindow{{VenueID: v, From: Base, To: t0.Add(3 * time.Hour)}}, time.Time{}))(t)
		if len(pts) != 4 {
			t.Fatalf("co-presence facts: %d passes, want 4", len(pts))
		}
		a := Must(s.Declaration(ctx, arrivalID))(t)
		if a.Arrival == nil || a.Arrival.Origin != "" || a.Arrival.ArrivalDate != "2022-03-02" {
			t.Fatalf("arrival of an erased declarant: %+v", a.Arrival)
		}
		tr := Must(s.Declaration(ctx, truckID))(t)
		if tr.Truck == nil || tr.Truck.PlateNumber != "" || tr.Truck.ContactName != "" || tr.Truck.ContactPhone != "***" || tr.Truck.LogisticsPark != "园" {
			t.Fatalf("truck pass of an erased driver: %+v", tr.Truck)
		}
	}
	check(t, f.s)

	// Redelivered: nothing changes.
	f.apply(slices.Clone(erasure)...)
	check(t, f.s)

	// The keys are destroyed, as the erasure does next; a rebuild replays
	// everything into a fresh store.
	for _, id := range []uuid.UUID{gid, kid} {
		if err := f.keys.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("replayed", func(t *testing.T) {
		// The same store kind, empty, fed the whole log from position 0.
		fresh := &feeder{t: t, s: f.fresh(t), keys: f.keys}
		log := slices.Concat(before, erasure)
		for i := range log {
			log[i].Position = 0
		}
		fresh.apply(log...)
		check(t, fresh.s)
	})
}
