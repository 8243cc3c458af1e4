package ledger

import (
	"sync"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/google/uuid"
)

// ErasureFence orders an erasure against the writes that check that a
// person is not erased: a pass, a health record, a declaration and its
// review read the person (from the log or the read models), decide, and
// append to their own subject, which an erasure does not touch, so an
// erasure between the check and the append went unseen (an outside tester
// saw approvals, health records and passes land after PersonErased).
//
// Those writes hold the fence's read side from before their check until
// their append is answered; an erasure holds the write side while it
// appends (erasures are rare: every write waits for the few milliseconds
// of one), and leaves the ids it erased in a set the writes consult, since
// the read models learn of the erasure only when they apply it. The fence
// is this process's: a write through another replica in the same moment is
// not held by it (the window there is the read models' lag, milliseconds).
// A nil fence holds nothing (a Ledger that only reads).
type ErasureFence struct {
	mu     sync.RWMutex
	erased map[uuid.UUID]struct{} // written under mu's write side
}

// write holds the read side for a write that checks its persons; call the
// function it returns when the write's append is answered.
func (f *ErasureFence) write() (done func()) {
	if f == nil {
		return func() {}
	}
	f.mu.RLock()
	return f.mu.RUnlock
}

// erase holds the write side for an erasure; done records ids (those the
// erasure appended PersonErased for) and lets the writes go on.
func (f *ErasureFence) erase() (done func(ids ...uuid.UUID)) {
	if f == nil {
		return func(...uuid.UUID) {}
	}
	f.mu.Lock()
	return func(ids ...uuid.UUID) {
		if len(ids) > 0 && f.erased == nil {
			f.erased = make(map[uuid.UUID]struct{})
		}
		for _, id := range ids {
			f.erased[id] = struct{}{}
		}
		f.mu.Unlock()
	}
}

// overlay marks erased the persons of facts this process erased, whatever
// the read models say yet. The caller holds the read side (write).
func (f *ErasureFence) overlay(facts *domain.PassFacts) {
	if f == nil || len(f.erased) == 0 {
		return
	}
	for id, p := range facts.Persons {
		if _, ok := f.erased[id]; ok && !p.Erased {
			p.Erased = true
			facts.Persons[id] = p
		}
	}
}
