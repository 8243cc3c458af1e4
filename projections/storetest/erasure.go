package storetest

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
