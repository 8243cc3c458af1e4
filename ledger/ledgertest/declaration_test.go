package ledgertest_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
)

func arrival(family ...uuid.UUID) domain.DeclareArrival {
	return domain.DeclareArrival{
		ArrivalDate: time.Now().Format(time.DateOnly), Origin: "上海市浦东新区", DestinationDistrict: "371302",
		NATResult: domain.NATNegative, NATAt: time.Now().Add(-6 * time.Hour), FamilyMemberIDs: family,
	}
}

func truck() domain.DeclareTruckPass {
	return domain.DeclareTruckPass{
		PlateNumber: "鲁Q1234挂", NATProofAt: time.Now().Add(-2 * time.Hour), ItineraryOK: true,
		HealthCodeColour: domain.ColourGreen, LogisticsPark: "临沂商城国际物流园", District: "371311",
		ContactName: "赵调度", ContactPhone: "13900001111",
	}
}

func TestDeclareArrival(t *testing.T) {
	h := newHarness(t)
	guardian, _ := h.register("孙母")
	stranger, _ := h.register("周某")
	kid, err := h.ledger.AddFamilyMember(h.ctx, person(guardian), guardian, domain.AddFamilyMember{
		Name: "孙小", IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Relation: domain.RelationChild})
	if err != nil {
		t.Fatal(err)
	}

	_, err = h.ledger.DeclareArrival(h.ctx, reviewer, arrival())
	wantKind(t, err, domain.ErrForbidden)
	_, err = h.ledger.DeclareArrival(h.ctx, person(guardian), arrival(stranger))
	wantKind(t, err, domain.ErrForbidden)
	_, err = h.ledger.DeclareArrival(h.ctx, person(guardian), arrival(uuid.New()))
	wantKind(t, err, domain.ErrNotFound)
	_, err = h.ledger.DeclareArrival(h.ctx, person(uuid.New()), arrival())
	wantKind(t, err, domain.ErrNotFound)
	old := arrival()
	old.ArrivalDate = "2020-01-01"
	_, err = h.ledger.DeclareArrival(h.ctx, person(guardian), old)
	wantKind(t, err, domain.ErrInvalid)

	cmd := arrival(kid.ID)
	cmd.EventID = uuid.New()
	res, err := h.ledger.DeclareArrival(h.ctx, person(guardian), cmd)
	if err != nil {
		t.Fatalf("DeclareArrival: %v", err)
	}
	if res.ID != domain.DeclarationIDFor(cmd.EventID) || res.EventID != cmd.EventID || res.Duplicate {
		t.Fatalf("result = %+v", res)
	}
	// A retry with the same event id answers with the original.
	before := h.lastPosition()
	again, err := h.ledger.DeclareArrival(h.ctx, person(guardian), cmd)
	if err != nil || !again.Duplicate || again.ID != res.ID || again.Position != res.Position || h.lastPosition() != before {
		t.Fatalf("retry = %+v, %v", again, err)
	}

	events, _, err := h.store.Load(h.ctx, domain.DeclarationAggregate(res.ID))
	if err != nil || len(events) != 1 {
		t.Fatalf("declaration events = %d, %v", len(events), err)
	}
	if strings.Contains(string(events[0].Payload), "上海") || events[0].SchemaVersion != 2 {
		t.Fatalf("the origin is in the log in clear: %s", events[0].Payload)
	}
	// The same event id with another origin is another declaration: the
	// sealed origin is opened to compare.
	other := cmd
	other.Origin = "北京市"
	_, err = h.ledger.DeclareArrival(h.ctx, person(guardian), other)
	wantKind(t, err, domain.ErrConflict)
	d, err := domain.ReplayDeclaration(events)
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind() != domain.DeclarationArrival || d.DeclarantID() != guardian || !slices.Equal(d.FamilyMemberIDs(), []uuid.UUID{kid.ID}) ||
		d.District() != "371302" || d.Status() != domain.DeclarationPending || d.Queued() {
		t.Fatalf("declaration = %+v", d)
	}
}

func TestTruckPassReviewAndQueue(t *testing.T) {
	h := newHarness(t)
	driver, _ := h.register("钱司机")

	stale := truck()
	stale.NATProofAt = time.Now().Add(-25 * time.Hour)
	_, err := h.ledger.DeclareTruckPass(h.ctx, person(driver), stale)
	wantKind(t, err, domain.ErrInvalid)

	res, err := h.ledger.DeclareTruckPass(h.ctx, person(driver), truck())
	if err != nil {
		t.Fatalf("DeclareTruckPass: %v", err)
	}
	declared, err := h.store.Get(h.ctx, res.Position)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := domain.Decode(declared)
	if err != nil {
		t.Fatal(err)
	}
	tp := ev.(*domain.TruckPassDeclared)
	if tp.PersonID != driver || tp.District != "371311" || tp.ClearPlateNumber != "" ||
		tp.PlateNumber == "" || strings.Contains(string(declared.Payload), "鲁Q1234挂") ||
		tp.ContactName == "" || tp.ContactName == "赵调度" || tp.ContactPhone == "13900001111" {
		t.Fatalf("stored truck pass = %+v (plate and contact must be sealed)", tp)
	}

	// The queue reaction, delivered twice, queues it once.
	q1, err := h.ledger.QueueDeclaration(h.ctx, domain.ReactionsActor, declared)
	if err != nil || q1.EventID != domain.DeclarationQueuedEventID(declared.ID) {
		t.Fatalf("QueueDeclaration = %+v, %v", q1, err)
	}
	q2, err := h.ledger.QueueDeclaration(h.ctx, domain.ReactionsActor, declared)
	if err != nil || q2.EventID != uuid.Nil {
		t.Fatalf("second QueueDeclaration = %+v, %v", q2, err)
	}

	// Concurrent reviews: exactly one wins, the others conflict.
	h.raceOnce(t, 6, domain.DeclarationAggregate(res.ID), 3, func() error {
		_, err := h.ledger.ReviewDeclaration(h.ctx, reviewer, res.ID, domain.ReviewDeclaration{Decision: domain.ReviewApprove})
		return err
	})
	_, err = h.ledger.ReviewDeclaration(h.ctx, reviewer, res.ID, domain.ReviewDeclaration{Decision: domain.ReviewReject, Reason: "again"})
	wantKind(t, err, domain.ErrConflict)
	_, err = h.ledger.ReviewDeclaration(h.ctx, person(driver), res.ID, domain.ReviewDeclaration{Decision: domain.ReviewApprove})
	wantKind(t, err, domain.ErrForbidden)

	h.caughtUp(h.lastPosition())
	v, err := h.reads.Declaration(h.ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != domain.DeclarationApproved || !v.Queued || v.Truck == nil || v.Truck.ContactName != "赵*" ||
		v.Truck.ContactPhone != "139****1111" || len(v.History) != 3 {
		t.Fatalf("declaration view = %+v", v)
	}
}

func TestIssueVenueCodeReaction(t *testing.T) {
	h := newHarness(t)
	vid, _ := h.approvedVenue(domain.ApplyVenue{})
	events, _, err := h.store.Load(h.ctx, domain.VenueAggregate(vid))
	if err != nil || len(events) != 2 {
		t.Fatalf("venue events = %d, %v", len(events), err)
	}
	reviewed := events[1]
	for i := range 2 {
		res, err := h.ledger.IssueVenueCode(h.ctx, domain.ReactionsActor, reviewed, "venue-code")
		if err != nil {
			t.Fatalf("IssueVenueCode: %v", err)
		}
		if want := domain.VenueCodeEventID(reviewed.ID); (i == 0) != (res.EventID == want) {
			t.Fatalf("delivery %d: result %+v", i, res)
		}
	}
	events, _, err = h.store.Load(h.ctx, domain.VenueAggregate(vid))
	if err != nil {
		t.Fatal(err)
	}
	v, err := domain.ReplayVenue(events)
	if err != nil || len(events) != 3 || v.Code() != "venue-code" {
		t.Fatalf("venue after the reaction: %d events, code %q, %v", len(events), v.Code(), err)
	}
	// A reaction to something that is not a review is refused.
	_, err = h.ledger.IssueVenueCode(h.ctx, domain.ReactionsActor, events[0], "x")
	wantKind(t, err, domain.ErrInvalid)
}

// TestCommandsSurviveReactions: a command decided while a reaction appends
// to the same aggregate (a venue's code issuance, a declaration's queueing)
// decides again instead of failing with a conflict.
func TestCommandsSurviveReactions(t *testing.T) {
	h := newHarness(t)
	helper, _ := h.register("李助理")
	driver, _ := h.register("钱司机")
	for i := range 8 {
		vid, manager := h.approvedVenue(domain.ApplyVenue{})
		events, _, err := h.store.Load(h.ctx, domain.VenueAggregate(vid))
		if err != nil {
			t.Fatal(err)
		}
		res, err := h.ledger.DeclareTruckPass(h.ctx, person(driver), truck())
		if err != nil {
			t.Fatal(err)
		}
		declared, err := h.store.Get(h.ctx, res.Position)
		if err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 4)
		var wg sync.WaitGroup
		wg.Add(4)
		go func() {
			defer wg.Done()
			_, errs[0] = h.ledger.IssueVenueCode(h.ctx, domain.ReactionsActor, events[1], "code")
		}()
		go func() { defer wg.Done(); _, errs[1] = h.ledger.AddSubAdmin(h.ctx, person(manager), vid, helper) }()
		go func() {
			defer wg.Done()
			_, errs[2] = h.ledger.QueueDeclaration(h.ctx, domain.ReactionsActor, declared)
		}()
		go func() {
			defer wg.Done()
			_, errs[3] = h.ledger.ReviewDeclaration(h.ctx, reviewer, res.ID, domain.ReviewDeclaration{Decision: domain.ReviewApprove})
		}()
		wg.Wait()
		for j, err := range errs {
			if err != nil {
				t.Fatalf("round %d, command %d: %v", i, j, err)
			}
		}
		venue, _, err := h.store.Load(h.ctx, domain.VenueAggregate(vid))
		if err != nil || len(venue) != 4 {
			t.Fatalf("round %d: venue has %d events (%v), want applied, reviewed, code, sub-admin", i, len(venue), err)
		}
	}
}
