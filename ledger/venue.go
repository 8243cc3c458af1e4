package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// ApplyVenue applies for a venue code. The applicant (a registered person)
// becomes the venue's manager; the venue starts pending review.
func (l *Ledger) ApplyVenue(ctx context.Context, actor domain.Actor, cmd domain.ApplyVenue) (Result, error) {
	if actor.Role != domain.RolePerson || actor.PersonID == uuid.Nil {
		return Result{}, domain.Errorf(domain.ErrForbidden, "only a registered person may apply for a venue code")
	}
	if _, err := domain.ValidateApplyVenue(cmd); err != nil {
		return Result{}, err
	}
	applicant, _, err := l.loadPerson(ctx, actor.PersonID)
	if err != nil {
		return Result{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Result{}, fmt.Errorf("apply venue: new id: %w", err)
	}
	// A new id has no events: the expected version is 0.
	events, err := domain.DecideApplyVenue(domain.Venue{}, id, applicant, cmd)
	if err != nil {
		return Result{}, err
	}
	res, err := l.append(ctx, domain.VenueAggregate(id), 0, domain.Meta{Actor: actor.Subject}, l.now(), events)
	if err != nil {
		return Result{}, err
	}
	res.ID = id
	return res, nil
}

// ReviewVenue approves or rejects a pending venue application (reviewer or
// admin). A venue reviewed twice is a conflict.
func (l *Ledger) ReviewVenue(ctx context.Context, actor domain.Actor, venueID uuid.UUID, cmd domain.ReviewVenue) (Result, error) {
	if actor.Role != domain.RoleReviewer && actor.Role != domain.RoleAdmin {
		return Result{}, domain.Errorf(domain.ErrForbidden, "only a reviewer or an admin may review a venue")
	}
	if _, err := domain.ValidateReview(cmd.Decision, cmd.Reason); err != nil {
		return Result{}, err
	}
	return l.updateVenue(ctx, actor, venueID, func(v domain.Venue) ([]domain.Event, error) {
		return domain.DecideReviewVenue(v, cmd)
	})
}

// AddSubAdmin adds a registered person as a sub-admin of a venue (its
// manager, or an admin).
func (l *Ledger) AddSubAdmin(ctx context.Context, actor domain.Actor, venueID, personID uuid.UUID) (Result, error) {
	v, _, err := l.loadVenue(ctx, venueID)
	if err != nil {
		return Result{}, err
	}
	// Authorise before looking at the person, so an outsider learns nothing about them.
	if v.Exists() && !v.CanManage(actor) {
		return Result{}, domain.Errorf(domain.ErrForbidden, "only the venue's manager or an admin may add sub-admins")
	}
	p, _, err := l.loadPerson(ctx, personID)
	if err != nil {
		return Result{}, err
	}
	return l.updateVenue(ctx, actor, venueID, func(v domain.Venue) ([]domain.Event, error) {
		return domain.DecideAddSubAdmin(v, actor, p)
	})
}

// RemoveSubAdmin removes a sub-admin from a venue (its manager, or an
// admin). Removing someone who is not a sub-admin is ErrNotFound.
func (l *Ledger) RemoveSubAdmin(ctx context.Context, actor domain.Actor, venueID, personID uuid.UUID) (Result, error) {
	return l.updateVenue(ctx, actor, venueID, func(v domain.Venue) ([]domain.Event, error) {
		return domain.DecideRemoveSubAdmin(v, actor, personID)
	})
}

// updateVenue loads a venue, decides, and appends at the loaded version.
// When the venue changed in between (the reactions record its code issuance
// in the background) it decides again on the new state, a few times.
func (l *Ledger) updateVenue(ctx context.Context, actor domain.Actor, venueID uuid.UUID, decide func(domain.Venue) ([]domain.Event, error)) (Result, error) {
	for attempt := 1; ; attempt++ {
		v, version, err := l.loadVenue(ctx, venueID)
		if err != nil {
			return Result{}, err
		}
		events, err := decide(v)
		if err != nil {
			return Result{}, err
		}
		res, err := l.append(ctx, domain.VenueAggregate(venueID), version, domain.Meta{Actor: actor.Subject}, l.now(), events)
		if errors.Is(err, domain.ErrConflict) && attempt < maxReactionAttempts {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		res.ID = venueID
		return res, nil
	}
}
