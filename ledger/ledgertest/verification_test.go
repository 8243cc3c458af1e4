package ledgertest_test

import (
	"errors"
	"testing"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
)

// TestRejectedIdentity: a person whose identity check was rejected is
// refused whatever they would do in their own name (an exit still passes),
// until a new check approves them.
func TestRejectedIdentity(t *testing.T) {
	h := newHarness(t)
	vid, manager := h.approvedVenue(domain.ApplyVenue{})
	p, _ := h.register("张三")
	applied, err := h.ledger.ApplyVenue(h.ctx, person(p), domain.ApplyVenue{Name: "张三小卖部", Type: domain.VenueSupermarket,
		District: "371302", Address: "兰山区一路1号", Lat: 35, Lng: 118})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.ledger.VerifyPerson(h.ctx, reviewer, p, domain.VerifyPerson{Method: domain.VerifyManual, Result: domain.VerifyRejected}); err != nil {
		t.Fatal(err)
	}
	h.caughtUp(h.lastPosition())

	pass := func(dir string) (string, error) {
		res, err := h.ledger.RecordPass(h.ctx, person(p), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: vid, Direction: dir})
		return res.Decision, err
	}
	if d, err := pass(domain.DirectionIn); err != nil || d != domain.DecisionDeny {
		t.Fatalf("entry of a rejected person: %s %v, want deny", d, err)
	}
	if d, err := pass(domain.DirectionOut); err != nil || d != domain.DecisionPass {
		t.Fatalf("exit of a rejected person: %s %v, want pass", d, err)
	}
	refused := map[string]error{}
	_, refused["apply for a venue code"] = h.ledger.ApplyVenue(h.ctx, person(p), domain.ApplyVenue{Name: "又一店", Type: domain.VenueSupermarket,
		District: "371302", Address: "兰山区一路2号", Lat: 35, Lng: 118})
	_, refused["be a sub-admin"] = h.ledger.AddSubAdmin(h.ctx, person(manager), vid, p)
	_, refused["declare"] = h.ledger.DeclareArrival(h.ctx, person(p), arrival())
	_, refused["file a truck pass"] = h.ledger.DeclareTruckPass(h.ctx, person(p), truck())
	_, refused["register family"] = h.ledger.AddFamilyMember(h.ctx, person(p), p, domain.AddFamilyMember{Name: "张小三",
		IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Relation: domain.RelationChild})
	for what, err := range refused {
		if !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("a rejected person may %s: %v, want forbidden", what, err)
		}
	}
	if _, err := h.ledger.ReviewVenue(h.ctx, reviewer, applied.ID, domain.ReviewVenue{Decision: domain.ReviewApprove}); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("approving a rejected applicant's venue: %v, want a conflict", err)
	}

	// A new check approves them: all of it works again.
	if _, err := h.ledger.VerifyPerson(h.ctx, reviewer, p, domain.VerifyPerson{Method: domain.VerifyFace, Result: domain.VerifyApproved}); err != nil {
		t.Fatal(err)
	}
	h.caughtUp(h.lastPosition())
	if d, err := pass(domain.DirectionIn); err != nil || d != domain.DecisionPass {
		t.Fatalf("entry after approval: %s %v, want pass", d, err)
	}
	if _, err := h.ledger.ReviewVenue(h.ctx, reviewer, applied.ID, domain.ReviewVenue{Decision: domain.ReviewApprove}); err != nil {
		t.Fatalf("approving after a new check: %v", err)
	}
	if _, err := h.ledger.AddSubAdmin(h.ctx, person(manager), vid, p); err != nil {
		t.Fatalf("sub-admin after a new check: %v", err)
	}
}

// TestFamilyCap: a guardian registers at most domain.MaxFamilyMembers.
func TestFamilyCap(t *testing.T) {
	h := newHarness(t)
	g, _ := h.register("张三")
	h.caughtUp(h.lastPosition())
	add := func() error {
		_, err := h.ledger.AddFamilyMember(h.ctx, person(g), g, domain.AddFamilyMember{Name: "张小三",
			IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Relation: domain.RelationChild})
		return err
	}
	for i := range domain.MaxFamilyMembers {
		if err := add(); err != nil {
			t.Fatalf("member %d: %v", i+1, err)
		}
		h.caughtUp(h.lastPosition())
	}
	before := h.lastPosition()
	if err := add(); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("one member too many: %v, want a conflict", err)
	}
	if h.lastPosition() != before {
		t.Fatal("a refused member was appended")
	}
}
