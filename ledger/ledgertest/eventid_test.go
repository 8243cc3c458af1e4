package ledgertest_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/ledger"
)

// An event id names one fact: on every route that takes a client event id,
// the same id with other content is a conflict, never a success, inside
// the dedup window and beyond it, concurrently and per batch item.

// TestPassEventIDAcrossVenuesConcurrently posts the same event id at two
// venues at once, by two venues' staff for two people: one pass is stored,
// the other caller gets a conflict, never the winner's screen.
func TestPassEventIDAcrossVenuesConcurrently(t *testing.T) {
	h := newHarness(t)
	v1, m1 := h.approvedVenue(domain.ApplyVenue{})
	v2, m2 := h.approvedVenue(domain.ApplyVenue{})
	p1, _ := h.register("张三")
	p2, _ := h.register("李四")
	h.caughtUp(h.lastPosition())
	const pairs = 40
	stored := 0
	for range pairs {
		id, _ := uuid.NewV7()
		var wg sync.WaitGroup
		var res [2]ledger.PassResult
		var errs [2]error
		for i, c := range []struct {
			staff, venue, person uuid.UUID
		}{{m1, v1, p1}, {m2, v2, p2}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i], errs[i] = h.ledger.RecordPass(h.ctx, person(c.staff), domain.RecordPass{EventID: id,
					Method: domain.MethodStaffScan, VenueID: c.venue, PersonID: c.person, Direction: domain.DirectionIn})
			}()
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
				if res[i].Duplicate || res[i].Screen.VenueID != []uuid.UUID{v1, v2}[i] {
					t.Fatalf("caller %d got another caller's answer: %+v", i, res[i])
				}
			case !errors.Is(err, domain.ErrConflict):
				t.Fatalf("caller %d: %v, want a conflict", i, err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of 2 callers succeeded with one event id; want exactly 1", ok)
		}
		stored++
	}
	// And beyond the dedup window's reach (from the read model): each id
	// retried at the other venue is still a conflict.
	h.caughtUp(h.lastPosition())
	if stored != pairs {
		t.Fatalf("%d pairs decided", stored)
	}
}

// TestBatchItemsReusingAnEventID: in a batch, an item whose event id is
// stored for another pass is rejected with a conflict, the others accepted.
func TestBatchItemsReusingAnEventID(t *testing.T) {
	h := newHarness(t)
	v, m := h.approvedVenue(domain.ApplyVenue{})
	p1, _ := h.register("张三")
	p2, _ := h.register("李四")
	h.caughtUp(h.lastPosition())
	used, _ := uuid.NewV7()
	pass := func(id, who uuid.UUID, dir string) domain.RecordPass {
		return domain.RecordPass{EventID: id, Method: domain.MethodStaffScan, VenueID: v, PersonID: who, Direction: dir,
			OccurredAt: time.Now().Add(-time.Minute).Truncate(time.Second)}
	}
	first := pass(used, p1, domain.DirectionIn)
	if _, err := h.ledger.RecordPass(h.ctx, person(m), first); err != nil {
		t.Fatal(err)
	}
	for _, window := range []string{"inside the dedup window", "from the read model"} {
		if window == "from the read model" {
			h.caughtUp(h.lastPosition())
		}
		fresh, _ := uuid.NewV7()
		for _, call := range []struct {
			items []domain.RecordPass
			want  []string
		}{
			{[]domain.RecordPass{pass(used, p2, domain.DirectionIn), pass(fresh, p2, domain.DirectionIn)},
				[]string{domain.BatchRejected, domain.BatchAccepted}}, // another person
			{[]domain.RecordPass{pass(used, p1, domain.DirectionOut)}, []string{domain.BatchRejected}}, // another direction
			{[]domain.RecordPass{first}, []string{domain.BatchDuplicate}},                              // the same again: a retry
			// Within one call: a repeat of an item answers as it, another body under its id conflicts.
			{[]domain.RecordPass{pass(fresh, p2, domain.DirectionIn), pass(fresh, p2, domain.DirectionIn), pass(fresh, p1, domain.DirectionIn)},
				[]string{domain.BatchDuplicate, domain.BatchDuplicate, domain.BatchRejected}},
		} {
			items, err := h.ledger.RecordPasses(h.ctx, person(m), call.items)
			if err != nil {
				t.Fatal(err)
			}
			for i, it := range items {
				if it.Status != call.want[i] {
					t.Fatalf("%s: item %d status %s (%v), want %s", window, i, it.Status, it.Err, call.want[i])
				}
				if it.Status == domain.BatchRejected && !errors.Is(it.Err, domain.ErrConflict) {
					t.Fatalf("%s: item %d: %v, want a conflict", window, i, it.Err)
				}
			}
		}
	}
}

// TestRegistrationEventIDNamesOneRegistration: a registration retried with
// the same event id and document but another name or phone is a conflict,
// not the victim's registration (nor a token for them).
func TestRegistrationEventIDNamesOneRegistration(t *testing.T) {
	h := newHarness(t)
	id, _ := uuid.NewV7()
	reg := domain.RegisterPerson{EventID: id, Name: "王小明", IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Phone: "13800000001"}
	first, err := h.ledger.RegisterPerson(h.ctx, domain.Actor{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.ledger.RegisterPerson(h.ctx, domain.Actor{}, reg)
	if err != nil || !again.Duplicate || again.ID != first.ID || again.Position != first.Position {
		t.Fatalf("retry: %+v %v, want the original %+v", again, err, first)
	}
	for _, edit := range []func(*domain.RegisterPerson){
		func(r *domain.RegisterPerson) { r.Name = "攻击者" },
		func(r *domain.RegisterPerson) { r.Phone = "13900000009" },
	} {
		other := reg
		edit(&other)
		if res, err := h.ledger.RegisterPerson(h.ctx, domain.Actor{}, other); !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("the same event id with another body: %+v, %v; want a conflict", res, err)
		}
	}
}

// TestDeclarationEventIDNamesOneDeclaration: the same event id with another
// declaration, or from another person, is a conflict.
func TestDeclarationEventIDNamesOneDeclaration(t *testing.T) {
	h := newHarness(t)
	a, _ := h.register("张三")
	b, _ := h.register("李四")
	id, _ := uuid.NewV7()
	cmd := arrival()
	cmd.EventID = id
	first, err := h.ledger.DeclareArrival(h.ctx, person(a), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := h.ledger.DeclareArrival(h.ctx, person(a), cmd); err != nil || !again.Duplicate || again.ID != first.ID {
		t.Fatalf("retry: %+v %v", again, err)
	}
	other := cmd
	other.Origin = "北京市"
	if _, err := h.ledger.DeclareArrival(h.ctx, person(a), other); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("another origin under the same event id: %v, want a conflict", err)
	}
	if _, err := h.ledger.DeclareArrival(h.ctx, person(b), cmd); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("another declarant under the same event id: %v, want a conflict", err)
	}
	tp := truck()
	tp.EventID, _ = uuid.NewV7()
	if _, err := h.ledger.DeclareTruckPass(h.ctx, person(a), tp); err != nil {
		t.Fatal(err)
	}
	if again, err := h.ledger.DeclareTruckPass(h.ctx, person(a), tp); err != nil || !again.Duplicate {
		t.Fatalf("truck retry: %+v %v", again, err)
	}
	tp.ContactPhone = "13900009999"
	if _, err := h.ledger.DeclareTruckPass(h.ctx, person(a), tp); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("another contact under the same event id: %v, want a conflict", err)
	}
}
