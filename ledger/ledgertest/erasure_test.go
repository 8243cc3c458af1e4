package ledgertest_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/ledger"
)

var admin = domain.Actor{Role: domain.RoleAdmin, Subject: "admin:root"}

// keyErased reports whether id's data key is destroyed (not merely missing).
func (h *harness) keyErased(id uuid.UUID) bool {
	h.tb.Helper()
	_, err := h.Store.Key(h.ctx, id, false)
	if err == nil {
		return false
	}
	if !errors.Is(err, domain.ErrNotFound) || errors.As(err, new(interface{ KeyMissing() bool })) {
		h.tb.Fatalf("key of %s: %v, want destroyed", id, err)
	}
	return true
}

func (h *harness) erasures(id uuid.UUID) []domain.PersonErased {
	h.tb.Helper()
	events, _, err := h.Store.Load(h.ctx, domain.PersonAggregate(id))
	if err != nil {
		h.tb.Fatal(err)
	}
	var out []domain.PersonErased
	for _, e := range events {
		if e.Type == domain.TypePersonErased {
			ev, err := domain.Decode(e)
			if err != nil {
				h.tb.Fatal(err)
			}
			out = append(out, *ev.(*domain.PersonErased))
		}
	}
	return out
}

func TestErasePerson(t *testing.T) {
	h := newHarness(t)
	vid, _ := h.approvedVenue(domain.ApplyVenue{})
	guardian, number := h.register("欧阳娜娜")
	kid := h.addChild(guardian, "欧阳小娜")
	other, _ := h.register("钱七")
	h.caughtUp(h.lastPosition())
	pass, err := h.Ledger.RecordPass(h.ctx, person(guardian), domain.RecordPass{EventID: uuid.New(), Method: domain.MethodSelfScan,
		VenueID: vid, Direction: domain.DirectionIn, FamilyMemberIDs: []uuid.UUID{kid}})
	if err != nil {
		t.Fatal(err)
	}
	h.caughtUp(h.lastPosition())

	t.Run("refused, nothing appended", func(t *testing.T) {
		before := h.lastPosition()
		for _, tt := range []struct {
			name  string
			actor domain.Actor
			id    uuid.UUID
			cmd   domain.ErasePerson
			kind  error
		}{
			{"reviewer", reviewer, guardian, domain.ErasePerson{Reason: "x"}, domain.ErrForbidden},
			{"the person themself", person(guardian), guardian, domain.ErasePerson{Reason: "x"}, domain.ErrForbidden},
			{"analyst", domain.Actor{Role: domain.RoleAnalyst, Subject: "analyst:a"}, guardian, domain.ErasePerson{Reason: "x"}, domain.ErrForbidden},
			{"no reason", admin, guardian, domain.ErasePerson{}, domain.ErrInvalid},
			{"control character", admin, guardian, domain.ErasePerson{Reason: "asked\x07"}, domain.ErrInvalid},
			{"unknown person", admin, uuid.New(), domain.ErasePerson{Reason: "x"}, domain.ErrNotFound},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := h.Ledger.ErasePerson(h.ctx, tt.actor, tt.id, tt.cmd)
				wantKind(t, err, tt.kind)
			})
		}
		if h.lastPosition() != before || h.keyErased(guardian) || h.keyErased(kid) {
			t.Fatal("a refused erasure changed something")
		}
	})

	res, err := h.Ledger.ErasePerson(h.ctx, admin, guardian, domain.ErasePerson{Reason: "the person asked (case 11)"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != guardian || res.EventID == uuid.Nil || res.Duplicate || !slices.Equal(res.Dependants, []uuid.UUID{kid}) {
		t.Fatalf("erasure = %+v", res)
	}
	ge := h.erasures(guardian)
	ke := h.erasures(kid)
	if len(ge) != 1 || ge[0].By != "admin:root" || ge[0].Reason != "the person asked (case 11)" || !slices.Equal(ge[0].Dependants, []uuid.UUID{kid}) {
		t.Fatalf("guardian's erasure events: %+v", ge)
	}
	if len(ke) != 1 || ke[0].Guardian != guardian || ke[0].By != "admin:root" {
		t.Fatalf("dependant's erasure events: %+v", ke)
	}
	if !h.keyErased(guardian) || !h.keyErased(kid) || h.keyErased(other) {
		t.Fatal("keys: the erased ones must be destroyed, the other kept")
	}
	h.caughtUp(res.Position)
	if p, err := h.Reads.Person(h.ctx, guardian); err != nil || !p.Erased || p.NameMasked != "" || p.IDMasked != "***" {
		t.Fatalf("read model after the erasure: %+v %v", p, err)
	}

	t.Run("again: the same answer, nothing appended", func(t *testing.T) {
		before := h.lastPosition()
		again, err := h.Ledger.ErasePerson(h.ctx, admin, guardian, domain.ErasePerson{Reason: "again"})
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.EventID != res.EventID || again.Position != res.Position || !slices.Equal(again.Dependants, res.Dependants) ||
			h.lastPosition() != before {
			t.Fatalf("second erasure = %+v, want the first %+v", again, res)
		}
		kidAgain, err := h.Ledger.ErasePerson(h.ctx, admin, kid, domain.ErasePerson{Reason: "again"})
		if err != nil || !kidAgain.Duplicate || h.lastPosition() != before {
			t.Fatalf("the dependant again: %+v %v", kidAgain, err)
		}
	})

	t.Run("nothing more in their name", func(t *testing.T) {
		before := h.lastPosition()
		_, err := h.Ledger.RecordPass(h.ctx, person(guardian), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: vid, Direction: domain.DirectionIn})
		wantKind(t, err, domain.ErrConflict)
		_, err = h.Ledger.RecordPass(h.ctx, person(other), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: vid,
			Direction: domain.DirectionIn, FamilyMemberIDs: []uuid.UUID{kid}})
		if err == nil {
			t.Fatal("a pass with an erased family member was taken")
		}
		_, err = h.Ledger.RecordPass(h.ctx, domain.Actor{Role: domain.RoleScanner, VenueID: vid, Subject: "scanner:x"},
			domain.RecordPass{Method: domain.MethodManual, VenueID: vid, Direction: domain.DirectionIn, IDType: idcard.ResidentID, IDNumber: number})
		wantKind(t, err, domain.ErrNotFound) // the document is no lookup key any more
		_, err = h.Ledger.DeclareArrival(h.ctx, person(guardian), arrival())
		wantKind(t, err, domain.ErrConflict)
		_, err = h.Ledger.VerifyPerson(h.ctx, reviewer, guardian, domain.VerifyPerson{Method: domain.VerifyManual, Result: domain.VerifyApproved})
		wantKind(t, err, domain.ErrConflict)
		// The same document registering again is refused (README, "Erasure").
		_, err = h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, domain.RegisterPerson{Name: "欧阳娜娜", IDType: idcard.ResidentID, IDNumber: number, Phone: "13800138000"})
		wantKind(t, err, domain.ErrConflict)
		h.wantNothingAppended(t, before, "a refused command appended")
	})

	t.Run("a retried pass answers with the erased marker", func(t *testing.T) {
		again, err := h.Ledger.RecordPass(h.ctx, person(guardian), domain.RecordPass{EventID: pass.EventID, Method: domain.MethodSelfScan,
			VenueID: vid, Direction: domain.DirectionIn, FamilyMemberIDs: []uuid.UUID{kid}})
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.Screen.NameMasked != domain.ErasedName || again.Position != pass.Position ||
			len(again.Family) != 1 || again.Family[0].Screen.NameMasked != domain.ErasedName {
			t.Fatalf("retried pass of an erased person: %+v", again)
		}
		if pass.Screen.NameMasked != "欧*" {
			t.Fatalf("the original answer: %+v", pass.Screen)
		}
	})
}

func TestErasePersonConcurrently(t *testing.T) {
	h := newHarness(t)
	id, _ := h.register("孙悟空")
	h.caughtUp(h.lastPosition())
	const n = 8
	results := make([]ledger.ErasureResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = h.Ledger.ErasePerson(h.ctx, admin, id, domain.ErasePerson{Reason: "asked"})
		})
	}
	wg.Wait()
	fresh := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("erasure %d: %v", i, err)
		}
		if results[i].EventID != results[0].EventID || results[i].Position != results[0].Position {
			t.Fatalf("erasure %d answered %+v, erasure 0 %+v", i, results[i], results[0])
		}
		if !results[i].Duplicate {
			fresh++
		}
	}
	if got := h.erasures(id); len(got) != 1 || fresh != 1 || !h.keyErased(id) {
		t.Fatalf("%d erasure events, %d answered as new; want 1 and 1", len(got), fresh)
	}
}

// failingKeys is the event store's keyring whose Destroy fails: a crash
// between the erasure's event and its key destruction.
type failingKeys struct {
	ledger.Keyring
}

func (failingKeys) Destroy(context.Context, uuid.UUID) error { return errors.New("process killed") }

func TestErasureStoppedBeforeItsKey(t *testing.T) {
	h := newHarness(t)
	id, _ := h.register("猪八戒")
	h.caughtUp(h.lastPosition())
	crashing := *h.Ledger
	crashing.Keys = failingKeys{h.Store}
	if _, err := crashing.ErasePerson(h.ctx, admin, id, domain.ErasePerson{Reason: "asked"}); err == nil {
		t.Fatal("the erasure answered success without destroying the key")
	}
	events := h.erasures(id)
	if len(events) != 1 || h.keyErased(id) {
		t.Fatalf("after the crash: %d erasure events, key erased %v; want the event and the key", len(events), h.keyErased(id))
	}
	// The read models forget the person on the event alone.
	h.caughtUp(h.lastPosition())
	if p, err := h.Reads.Person(h.ctx, id); err != nil || !p.Erased || p.NameMasked != "" {
		t.Fatalf("read model with the key still there: %+v %v", p, err)
	}
	// The erasure reaction's step finishes it (at the next start, from its
	// durable consumer), as does the admin's retry.
	all, _, err := h.Store.Load(h.ctx, domain.PersonAggregate(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ledger.CompleteErasure(h.ctx, all[len(all)-1]); err != nil {
		t.Fatal(err)
	}
	if !h.keyErased(id) {
		t.Fatal("the key survived the erasure reaction")
	}
	if err := h.Ledger.CompleteErasure(h.ctx, all[len(all)-1]); err != nil { // redelivered
		t.Fatal(err)
	}
	if err := h.Ledger.CompleteErasure(h.ctx, all[0]); err != nil { // a registration without a guardian: nothing to do
		t.Fatalf("the reaction given a registration: %v", err)
	}
	venue, err := domain.NewEnvelope(domain.VenueAggregate(uuid.New()), domain.VenueReviewed{VenueID: uuid.New(), Decision: "approve"}, domain.Meta{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ledger.CompleteErasure(h.ctx, venue); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("the reaction given a venue review: %v, want ErrInvalid", err)
	}
	again, err := h.Ledger.ErasePerson(h.ctx, admin, id, domain.ErasePerson{Reason: "retry"})
	if err != nil || !again.Duplicate || len(h.erasures(id)) != 1 {
		t.Fatalf("the admin's retry: %+v %v", again, err)
	}
}

// TestFamilyMemberRegisteredDuringTheErasure: a family member whose
// registration lands while their guardian's erasure runs (the guardian was
// loaded before the erasure's event, the member appended after it) is
// erased by the erasure reaction's step, on the guardian's erasure's
// authority, with their key; a member of a guardian not erased is left alone.
func TestFamilyMemberRegisteredDuringTheErasure(t *testing.T) {
	h := newHarness(t)
	guardian, _ := h.register("唐三藏")
	other, _ := h.register("白龙马")
	h.caughtUp(h.lastPosition())
	if _, err := h.Ledger.ErasePerson(h.ctx, admin, guardian, domain.ErasePerson{Reason: "asked at the hall"}); err != nil {
		t.Fatal(err)
	}
	kid, lateKid := h.LateFamilyMember(t, guardian, "唐小宝")
	kept, otherKid := h.LateFamilyMember(t, other, "唐小宝")
	for _, env := range []domain.Envelope{lateKid, otherKid, lateKid} { // the first delivered twice
		if err := h.Ledger.CompleteErasure(h.ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	got := h.erasures(kid)
	if len(got) != 1 || got[0].Guardian != guardian || got[0].By != "admin:root" || got[0].Reason != "asked at the hall" || !h.keyErased(kid) {
		t.Fatalf("the late family member: %+v, key erased %v", got, h.keyErased(kid))
	}
	if len(h.erasures(kept)) != 0 || h.keyErased(kept) {
		t.Fatal("a family member of a guardian not erased was erased")
	}
}
