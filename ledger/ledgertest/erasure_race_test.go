package ledgertest_test

import (
	"sync"
	"testing"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
)

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
