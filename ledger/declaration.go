package ledger

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// DeclareArrival submits an arrival declaration (入临申报) for the calling
// person and the family members they are guardian of. It starts pending;
// the reactions put it in the destination district's review queue.
func (l *Ledger) DeclareArrival(ctx context.Context, actor domain.Actor, cmd domain.DeclareArrival) (Result, error) {
	defer l.Fence.write()()
	cmd, err := domain.ValidateArrival(cmd, l.now(), l.clockSkew())
	declarant, err := l.declarant(ctx, actor, "declare an arrival", err)
	if err != nil {
		return Result{}, err
	}
	members := make([]domain.Person, 0, len(cmd.FamilyMemberIDs))
	for _, mid := range cmd.FamilyMemberIDs {
		m, _, err := load(ctx, l, persons, mid)
		if err != nil {
			return Result{}, err
		}
		if !m.Registered() {
			return Result{}, domain.Errorf(domain.ErrNotFound, "family member %s is not a registered person", mid)
		}
		members = append(members, m)
	}
	return l.declare(ctx, actor, cmd.EventID, func(d domain.Declaration, id uuid.UUID) ([]domain.Event, error) {
		return domain.DecideDeclareArrival(d, id, declarant, members, cmd, l.sealer(ctx, declarant.ID()), l.opener(ctx, declarant.ID()))
	})
}

// DeclareTruckPass files a truck pass (货车畅行) for the calling driver. The
// contact's name and phone are sealed with the driver's data key, like
// their own personal data. A nucleic-acid proof older than 24 hours is
// refused.
func (l *Ledger) DeclareTruckPass(ctx context.Context, actor domain.Actor, cmd domain.DeclareTruckPass) (Result, error) {
	defer l.Fence.write()()
	cmd, err := domain.ValidateTruckPass(cmd, l.now(), l.clockSkew())
	driver, err := l.declarant(ctx, actor, "file a truck pass (as its driver)", err)
	if err != nil {
		return Result{}, err
	}
	return l.declare(ctx, actor, cmd.EventID, func(d domain.Declaration, id uuid.UUID) ([]domain.Event, error) {
		return domain.DecideDeclareTruck(d, id, driver, cmd, l.sealer(ctx, driver.ID()), l.opener(ctx, driver.ID()))
	})
}

// declarant checks that actor may declare (what) — before the command's
// validation error invalid, if any — and loads them.
func (l *Ledger) declarant(ctx context.Context, actor domain.Actor, what string, invalid error) (domain.Person, error) {
	if err := domain.MayApply(actor, what); err != nil {
		return domain.Person{}, err
	}
	if invalid != nil {
		return domain.Person{}, invalid
	}
	p, _, err := load(ctx, l, persons, actor.PersonID)
	return p, err
}

// declare appends a new declaration. Its id is derived from the client's
// event id when there is one, so a retry meets the declaration it made
// before and answers with it.
func (l *Ledger) declare(ctx context.Context, actor domain.Actor, eventID uuid.UUID,
	decide func(domain.Declaration, uuid.UUID) ([]domain.Event, error)) (Result, error) {
	id := domain.DeclarationIDFor(eventID)
	if eventID == uuid.Nil {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return Result{}, fmt.Errorf("new declaration id: %w", err)
		}
	}
	meta := domain.Meta{ID: eventID, Actor: actor.Subject}
	d, res, err := update(ctx, l, declarations, id, meta, failOnConflict, func(d domain.Declaration) ([]domain.Event, error) {
		return decide(d, id)
	})
	if err == nil && res.EventID == uuid.Nil { // a retry: nothing was appended
		by, at := d.DeclaredBy()
		return Result{ID: id, EventID: by, Position: at, Duplicate: true}, nil
	}
	return res, err
}

// ReviewDeclaration approves or rejects a pending declaration (reviewers
// of its district, and admins). It is appended at the version it was
// decided on; a declaration changed in between (its queueing, written by
// the reactions, or another review) is decided again on its new state, so
// of two concurrent reviews one wins and the other meets it and conflicts,
// as does a second review after the first. The declaration of a person
// erased since (the declarant or a family member it covers) is not
// reviewed.
func (l *Ledger) ReviewDeclaration(ctx context.Context, actor domain.Actor, id uuid.UUID, cmd domain.ReviewDeclaration) (Result, error) {
	defer l.Fence.write()()
	_, res, err := update(ctx, l, declarations, id, domain.Meta{Actor: actor.Subject}, retryOnConflict, func(d domain.Declaration) ([]domain.Event, error) {
		covered := make([]domain.Person, 0, len(d.PersonIDs()))
		for _, pid := range d.PersonIDs() {
			p, _, err := load(ctx, l, persons, pid)
			if err != nil {
				return nil, err
			}
			covered = append(covered, p)
		}
		return domain.DecideReviewDeclaration(d, covered, actor, cmd)
	})
	return res, err
}
