package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// ErasureResult is the answer to an erasure: the person's PersonErased
// event (Duplicate when it was already stored: the erasure is idempotent)
// and the family members erased with them.
type ErasureResult struct {
	Result
	Dependants []uuid.UUID
}

// ErasePerson erases a person (admins only, with a reason): a PersonErased
// event goes in the log through the one command path, then the person's
// data key is destroyed, so every sealed field of theirs (name, ID number,
// phone, a declaration's origin, plate and contact) is unreadable for good,
// and the read models forget them when they apply the event.
//
// A guardian's erasure erases the family members registered under them
// (the read models' family list, which the caller brings up to date first:
// the HTTP route waits for the log's position), each with a PersonErased of
// their own naming the guardian, before the guardian's own event, which
// lists them. A family member is erased alone when asked for themself.
//
// Crash safety: the event is stored before the key is destroyed. A crash in
// between leaves the key to the erasure reaction (reactions, on a durable
// consumer: it destroys the key of every PersonErased, at every restart
// until acknowledged), and the read models have forgotten the person
// anyway. Calling ErasePerson again answers the stored erasure (Duplicate)
// and destroys the keys again, appending nothing.
func (l *Ledger) ErasePerson(ctx context.Context, actor domain.Actor, id uuid.UUID, cmd domain.ErasePerson) (ErasureResult, error) {
	p, _, err := load(ctx, l, persons, id)
	if err != nil {
		return ErasureResult{}, err
	}
	// Decided first on the loaded state, so that a refusal (who, why,
	// whom) comes before any family member is touched.
	if _, err := domain.DecideErasePerson(p, actor, cmd, nil, uuid.Nil); err != nil {
		return ErasureResult{}, err
	}
	// Held while the erasure appends: the writes that check the person
	// wait, and after it see them erased (ErasureFence).
	erased := l.Fence.erase()
	var dependants []uuid.UUID
	if p.Registered() && !p.Dependant() && !p.Erased() {
		if dependants, err = l.eraseDependants(ctx, actor, id, cmd); err != nil {
			erased(dependants...)
			return ErasureResult{}, err
		}
	}
	// On a conflict (a concurrent erasure, or another change of the person)
	// it decides again: an erasure that won the race is then answered.
	p, res, err := update(ctx, l, persons, id, domain.Meta{Actor: actor.Subject}, retryOnConflict, func(p domain.Person) ([]domain.Event, error) {
		return domain.DecideErasePerson(p, actor, cmd, dependants, uuid.Nil)
	})
	if err != nil {
		erased(dependants...)
		return ErasureResult{}, err
	}
	erased(append(dependants, id)...)
	if res.EventID == uuid.Nil { // already erased: nothing was appended
		by, at := p.ErasedBy()
		res = Result{ID: id, EventID: by, Position: at, Duplicate: true}
		dependants = p.ErasedDependants()
	}
	// The audit reaction records the erasure (PersonErased holds who and
	// why). The keys go last, outside the fence: a crash before them is
	// finished by the erasure reaction (CompleteErasure).
	for _, subject := range slices.Concat(dependants, []uuid.UUID{id}) {
		if err := l.Keys.Destroy(ctx, subject); err != nil {
			return ErasureResult{}, fmt.Errorf("erase %s: event stored, key not destroyed yet (the erasure reaction will): %w", subject, err)
		}
	}
	return ErasureResult{Result: res, Dependants: dependants}, nil
}

// eraseDependants erases the family members registered under guardian and
// returns their ids (also those erased before). A member released since
// the read models listed them is no longer the guardian's and is skipped.
func (l *Ledger) eraseDependants(ctx context.Context, actor domain.Actor, guardian uuid.UUID, cmd domain.ErasePerson) ([]uuid.UUID, error) {
	gv, err := l.Reads.Person(ctx, guardian)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("family of %s: %w", guardian, err)
	}
	var erased []uuid.UUID
	for _, member := range gv.FamilyMembers {
		m, _, err := update(ctx, l, persons, member, domain.Meta{Actor: actor.Subject}, retryOnConflict, func(m domain.Person) ([]domain.Event, error) {
			if !m.Registered() || m.GuardianID() != guardian {
				return nil, nil
			}
			return domain.DecideErasePerson(m, actor, cmd, nil, guardian)
		})
		if err != nil {
			return nil, fmt.Errorf("erase family member %s: %w", member, err)
		}
		if m.Erased() || (m.Registered() && m.GuardianID() == guardian) {
			erased = append(erased, member) // their keys go with the guardian's (ErasePerson)
		}
	}
	return erased, nil
}

// CompleteErasure is the erasure reaction's step, given a PersonErased or a
// family member's PersonRegistered (env). For an erasure it destroys the
// person's data key (finishing an erasure that stopped between its event
// and its key) and erases the family members the read models list under
// them that are not erased yet; for a family member's registration whose
// guardian is erased (it landed while the erasure ran) it erases the
// member. Either way what is already done changes nothing.
func (l *Ledger) CompleteErasure(ctx context.Context, env domain.Envelope) error {
	ev, err := domain.Decode(env)
	if err != nil {
		return err
	}
	switch e := ev.(type) {
	case *domain.PersonErased:
		if err := l.Keys.Destroy(ctx, e.PersonID); err != nil {
			return fmt.Errorf("destroy the key of erased person %s: %w", e.PersonID, err)
		}
		if e.Guardian != uuid.Nil {
			return nil // a family member's: they have no family of their own
		}
		g, _, err := load(ctx, l, persons, e.PersonID)
		if err != nil {
			return err
		}
		gv, err := l.Reads.Person(ctx, e.PersonID)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("family of %s: %w", e.PersonID, err)
		}
		for _, member := range gv.FamilyMembers {
			if err := l.eraseWithGuardian(ctx, member, g); err != nil {
				return err
			}
		}
		return nil
	case *domain.PersonRegistered:
		if e.GuardianID == uuid.Nil {
			return nil
		}
		g, _, err := load(ctx, l, persons, e.GuardianID)
		if err != nil {
			return err
		}
		return l.eraseWithGuardian(ctx, e.PersonID, g)
	}
	return domain.Errorf(domain.ErrInvalid, "event %s is a %s, not an erasure or a registration", env.ID, env.Type)
}

// eraseWithGuardian erases member, a family member of guardian, when
// guardian is erased (domain.DecideEraseWithGuardian), and destroys their key.
func (l *Ledger) eraseWithGuardian(ctx context.Context, member uuid.UUID, guardian domain.Person) error {
	if !guardian.Erased() {
		return nil
	}
	erased := l.Fence.erase()
	// m is the state decided on: before the erasure when one was appended.
	m, res, err := update(ctx, l, persons, member, domain.Meta{Actor: domain.ReactionsActor.Subject}, retryOnConflict, func(m domain.Person) ([]domain.Event, error) {
		return domain.DecideEraseWithGuardian(m, guardian)
	})
	if err == nil && (m.Erased() || res.EventID != uuid.Nil) {
		erased(member)
	} else {
		erased()
	}
	if err != nil {
		return fmt.Errorf("erase family member %s with their guardian %s: %w", member, guardian.ID(), err)
	}
	if !m.Registered() || m.GuardianID() != guardian.ID() {
		return nil
	}
	if err := l.Keys.Destroy(ctx, member); err != nil {
		return fmt.Errorf("destroy the key of family member %s: %w", member, err)
	}
	return nil
}
