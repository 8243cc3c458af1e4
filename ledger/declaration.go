package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// loadDeclaration loads and replays a declaration, with its version.
func (l *Ledger) loadDeclaration(ctx context.Context, id uuid.UUID) (domain.Declaration, uint64, error) {
	agg := domain.DeclarationAggregate(id)
	events, version, err := l.Events.Load(ctx, agg)
	if err != nil {
		return domain.Declaration{}, 0, fmt.Errorf("load %s: %w", agg, err)
	}
	d, err := domain.ReplayDeclaration(events)
	if err != nil {
		return domain.Declaration{}, 0, err
	}
	return d, version, nil
}

// newDeclaration picks the id of a new declaration and loads its aggregate.
// A retry (same client event id) meets the declaration it made before: done
// is then true and res its original result.
func (l *Ledger) newDeclaration(ctx context.Context, eventID uuid.UUID) (id uuid.UUID, d domain.Declaration, version uint64, res Result, done bool, err error) {
	if eventID == uuid.Nil {
		if id, err = uuid.NewV7(); err != nil {
			return uuid.Nil, domain.Declaration{}, 0, Result{}, false, fmt.Errorf("new declaration id: %w", err)
		}
		return id, domain.Declaration{}, 0, Result{}, false, nil
	}
	id = domain.DeclarationIDFor(eventID)
	if d, version, err = l.loadDeclaration(ctx, id); err != nil {
		return uuid.Nil, domain.Declaration{}, 0, Result{}, false, err
	}
	if by, at := d.DeclaredBy(); d.Exists() && by == eventID {
		return id, d, version, Result{ID: id, EventID: eventID, Position: at, Duplicate: true}, true, nil
	}
	return id, d, version, Result{}, false, nil
}

// DeclareArrival submits an arrival declaration (入临申报) for the calling
// person and the family members they are guardian of. It starts pending;
// the reactions put it in the destination district's review queue.
func (l *Ledger) DeclareArrival(ctx context.Context, actor domain.Actor, cmd domain.DeclareArrival) (Result, error) {
	if actor.Role != domain.RolePerson || actor.PersonID == uuid.Nil {
		return Result{}, domain.Errorf(domain.ErrForbidden, "only a registered person may declare an arrival")
	}
	now := l.now()
	cmd, err := domain.ValidateArrival(cmd, now, l.clockSkew())
	if err != nil {
		return Result{}, err
	}
	declarant, _, err := l.loadPerson(ctx, actor.PersonID)
	if err != nil {
		return Result{}, err
	}
	members := make([]domain.Person, 0, len(cmd.FamilyMemberIDs))
	for _, mid := range cmd.FamilyMemberIDs {
		m, _, err := l.loadPerson(ctx, mid)
		if err != nil {
			return Result{}, err
		}
		if !m.Registered() {
			return Result{}, domain.Errorf(domain.ErrNotFound, "family member %s is not a registered person", mid)
		}
		members = append(members, m)
	}
	id, d, version, res, done, err := l.newDeclaration(ctx, cmd.EventID)
	if err != nil || done {
		return res, err
	}
	events, err := domain.DecideDeclareArrival(d, id, declarant, members, cmd)
	if err != nil {
		return Result{}, err
	}
	res, err = l.append(ctx, domain.DeclarationAggregate(id), version, domain.Meta{ID: cmd.EventID, Actor: actor.Subject}, now, events)
	if err != nil {
		return Result{}, err
	}
	res.ID = id
	return res, nil
}

// DeclareTruckPass files a truck pass (货车畅行) for the calling driver. The
// contact's name and phone are sealed with the driver's data key, like
// their own personal data. A nucleic-acid proof older than 24 hours is
// refused.
func (l *Ledger) DeclareTruckPass(ctx context.Context, actor domain.Actor, cmd domain.DeclareTruckPass) (Result, error) {
	if actor.Role != domain.RolePerson || actor.PersonID == uuid.Nil {
		return Result{}, domain.Errorf(domain.ErrForbidden, "only a registered person (the driver) may file a truck pass")
	}
	now := l.now()
	cmd, err := domain.ValidateTruckPass(cmd, now, l.clockSkew())
	if err != nil {
		return Result{}, err
	}
	driver, _, err := l.loadPerson(ctx, actor.PersonID)
	if err != nil {
		return Result{}, err
	}
	id, d, version, res, done, err := l.newDeclaration(ctx, cmd.EventID)
	if err != nil || done {
		return res, err
	}
	ev := domain.TruckPassDeclared{
		DeclarationID: id, PlateNumber: cmd.PlateNumber, NATProofAt: cmd.NATProofAt, ItineraryOK: cmd.ItineraryOK,
		HealthCodeColour: cmd.HealthCodeColour, LogisticsPark: cmd.LogisticsPark, District: cmd.District,
	}
	// Decide once before sealing, so no data key is made for a refused driver.
	if _, err := domain.DecideDeclareTruck(d, driver, ev); err != nil {
		return Result{}, err
	}
	key, err := l.Keys.Key(ctx, driver.ID(), true)
	if err != nil {
		return Result{}, fmt.Errorf("truck pass: data key: %w", err)
	}
	if ev.ContactName, err = domain.SealField(key, cmd.ContactName); err != nil {
		return Result{}, err
	}
	if ev.ContactPhone, err = domain.SealField(key, cmd.ContactPhone); err != nil {
		return Result{}, err
	}
	events, err := domain.DecideDeclareTruck(d, driver, ev)
	if err != nil {
		return Result{}, err
	}
	res, err = l.append(ctx, domain.DeclarationAggregate(id), version, domain.Meta{ID: cmd.EventID, Actor: actor.Subject}, now, events)
	if err != nil {
		return Result{}, err
	}
	res.ID = id
	return res, nil
}

// ReviewDeclaration approves or rejects a pending declaration (reviewer or
// admin). It is appended at the version it was decided on, so of two
// concurrent reviews one wins and the other is a conflict, as is a second
// review after the first.
func (l *Ledger) ReviewDeclaration(ctx context.Context, actor domain.Actor, id uuid.UUID, cmd domain.ReviewDeclaration) (Result, error) {
	if actor.Role != domain.RoleReviewer && actor.Role != domain.RoleAdmin {
		return Result{}, domain.Errorf(domain.ErrForbidden, "only a reviewer or an admin may review a declaration")
	}
	if _, err := domain.ValidateReview(cmd.Decision, cmd.Reason); err != nil {
		return Result{}, err
	}
	// A declaration changed in between (its queueing, written by the
	// reactions, or another review) is decided again on its new state: a
	// review that lost the race then meets the first one and conflicts.
	for attempt := 1; ; attempt++ {
		d, version, err := l.loadDeclaration(ctx, id)
		if err != nil {
			return Result{}, err
		}
		events, err := domain.DecideReviewDeclaration(d, actor, cmd)
		if err != nil {
			return Result{}, err
		}
		res, err := l.append(ctx, domain.DeclarationAggregate(id), version, domain.Meta{Actor: actor.Subject}, l.now(), events)
		if errors.Is(err, domain.ErrConflict) {
			if attempt < maxReactionAttempts {
				continue
			}
			return Result{}, domain.Errorf(domain.ErrConflict, "declaration %s was changed concurrently", id)
		}
		if err != nil {
			return Result{}, err
		}
		res.ID = id
		return res, nil
	}
}
