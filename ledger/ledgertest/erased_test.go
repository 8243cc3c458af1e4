package ledgertest_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
)

// TestNothingMoreAboutAnErasedPerson: once a person is erased, the
// declaration they made before is approved no more, nor is one covering
// them as a family member (a rejection closes either, once), and the
// health feed's records for their document are refused; nothing is
// appended by a refusal.
func TestNothingMoreAboutAnErasedPerson(t *testing.T) {
	h := newHarness(t)
	declarant, number := h.register("冯五")
	guardian, _ := h.register("陈母")
	kid := h.addChild(guardian, "陈小")
	own, err := h.Ledger.DeclareArrival(h.ctx, person(declarant), arrival())
	if err != nil {
		t.Fatal(err)
	}
	family, err := h.Ledger.DeclareArrival(h.ctx, person(guardian), arrival(kid))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uuid.UUID{declarant, kid} {
		res, err := h.Ledger.ErasePerson(h.ctx, admin, id, domain.ErasePerson{Reason: "the person asked"})
		if err != nil {
			t.Fatal(err)
		}
		h.caughtUp(res.Position)
	}

	before := h.lastPosition()
	for _, d := range []uuid.UUID{own.ID, family.ID} {
		_, err := h.Ledger.ReviewDeclaration(h.ctx, reviewer, d, domain.ReviewDeclaration{Decision: domain.ReviewApprove})
		wantKind(t, err, domain.ErrConflict)
		if !strings.Contains(err.Error(), "was erased") {
			t.Fatalf("approval of an erased person's declaration: %v, want refused as erased", err)
		}
	}
	h.wantNothingAppended(t, before, "a refused approval appended")
	for _, d := range []uuid.UUID{own.ID, family.ID} {
		if _, err := h.Ledger.ReviewDeclaration(h.ctx, reviewer, d, domain.ReviewDeclaration{Decision: domain.ReviewReject, Reason: "erased"}); err != nil {
			t.Fatalf("rejection of an erased person's declaration: %v", err)
		}
		_, err := h.Ledger.ReviewDeclaration(h.ctx, reviewer, d, domain.ReviewDeclaration{Decision: domain.ReviewReject, Reason: "erased"})
		wantKind(t, err, domain.ErrConflict)
	}
	before = h.lastPosition()
	feed := domain.Actor{Role: domain.RoleHealthFeed, Subject: "health-feed:f"}
	_, err = h.Ledger.RecordHealth(h.ctx, feed, []domain.HealthRecord{
		{IDType: idcard.ResidentID, IDNumber: h.newResidentID(), CodeColour: domain.ColourGreen, NATResult: domain.NATNone},
		{IDType: idcard.ResidentID, IDNumber: number, CodeColour: domain.ColourRed, NATResult: domain.NATNone},
	})
	wantKind(t, err, domain.ErrConflict)
	if msg := err.Error(); !strings.Contains(msg, "records[1]") || !strings.Contains(msg, "erased") {
		t.Fatalf("the refusal names no record: %v", err)
	}
	h.wantNothingAppended(t, before, "a refused command appended")
}

// TestErasureRacesTheWritesThatCheckIt: an erasure sent at the same moment
// as an approval of the person's declaration, a health record for their
// document and a pass of theirs: whichever wins, nothing of them is
// appended after their PersonErased (ErasureFence; an outside tester saw
// each land after it through HTTP).
func TestErasureRacesTheWritesThatCheckIt(t *testing.T) {
	h := newHarness(t)
	vid, _ := h.approvedVenue(domain.ApplyVenue{})
	feed := domain.Actor{Role: domain.RoleHealthFeed, Subject: "health-feed:f"}
	before := 0
	for round := range 12 {
		id, number := h.register("卫" + string(rune('一'+round)))
		d, err := h.Ledger.DeclareArrival(h.ctx, person(id), arrival())
		if err != nil {
			t.Fatal(err)
		}
		h.caughtUp(h.lastPosition())
		var (
			wg                   sync.WaitGroup
			start                = make(chan struct{})
			erasedAt             uint64
			approved, rec, passd uint64
		)
		wg.Go(func() {
			<-start
			res, err := h.Ledger.ErasePerson(h.ctx, admin, id, domain.ErasePerson{Reason: "asked"})
			if err != nil {
				t.Error(err)
				return
			}
			erasedAt = res.Position
		})
		wg.Go(func() {
			<-start
			if res, err := h.Ledger.ReviewDeclaration(h.ctx, reviewer, d.ID, domain.ReviewDeclaration{Decision: domain.ReviewApprove}); err == nil {
				approved = res.Position
			}
		})
		wg.Go(func() {
			<-start
			if res, err := h.Ledger.RecordHealth(h.ctx, feed, []domain.HealthRecord{
				{IDType: idcard.ResidentID, IDNumber: number, CodeColour: domain.ColourGreen, NATResult: domain.NATNone}}); err == nil {
				rec = res.FirstPosition
			}
		})
		wg.Go(func() {
			<-start
			if res, err := h.Ledger.RecordPass(h.ctx, person(id), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: vid, Direction: domain.DirectionIn}); err == nil {
				passd = res.Position
			}
		})
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		for what, at := range map[string]uint64{"approval": approved, "health record": rec, "pass": passd} {
			if at > erasedAt {
				t.Errorf("round %d: the %s at %d landed after the erasure at %d", round, what, at, erasedAt)
			}
			if at != 0 {
				before++
			}
		}
	}
	t.Logf("%d of 36 writes landed before their erasure, the rest were refused", before)
}
