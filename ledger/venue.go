package ledger

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// ApplyVenue applies for a venue code. The applicant (a registered person)
// becomes the venue's manager; the venue starts pending review.
func (l *Ledger) ApplyVenue(ctx context.Context, actor domain.Actor, cmd domain.ApplyVenue) (Result, error) {
	if err := domain.MayApply(actor, "apply for a venue code"); err != nil {
		return Result{}, err
	}
	if _, err := domain.ValidateApplyVenue(cmd); err != nil {
		return Result{}, err // before any read: bad input costs nothing
	}
	applicant, _, err := load(ctx, l, persons, actor.PersonID)
	if err != nil {
		return Result{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Result{}, fmt.Errorf("apply venue: new id: %w", err)
	}
	_, res, err := update(ctx, l, venues, id, domain.Meta{Actor: actor.Subject}, failOnConflict, func(v domain.Venue) ([]domain.Event, error) {
		return domain.DecideApplyVenue(v, id, applicant, cmd)
	})
	return res, err
}

// ReviewVenue approves or rejects a pending venue application (reviewers
// of its district, and admins). A venue reviewed twice is a conflict. When
// the venue changed in between (the reactions record its code issuance in
// the background) the review is decided again on the new state.
func (l *Ledger) ReviewVenue(ctx context.Context, actor domain.Actor, venueID uuid.UUID, cmd domain.ReviewVenue) (Result, error) {
	if _, err := domain.ValidateReview(cmd.Decision, cmd.Reason); err != nil {
		return Result{}, err // before any read: bad input costs nothing
	}
	_, res, err := update(ctx, l, venues, venueID, domain.Meta{Actor: actor.Subject}, retryOnConflict, func(v domain.Venue) ([]domain.Event, error) {
		manager, _, err := load(ctx, l, persons, v.ManagerID())
		if err != nil {
			return nil, err
		}
		return domain.DecideReviewVenue(v, actor, cmd, manager)
	})
	return res, err
}

// AddSubAdmin adds a registered person as a sub-admin of a venue (its
// manager, or an admin).
func (l *Ledger) AddSubAdmin(ctx context.Context, actor domain.Actor, venueID, personID uuid.UUID) (Result, error) {
	v, _, err := load(ctx, l, venues, venueID)
	if err != nil {
		return Result{}, err
	}
	// Authorise before looking at the person, so an outsider learns nothing about them.
	if v.Exists() {
		if err := domain.MayManageSubAdmins(actor, v); err != nil {
			return Result{}, err
		}
	}
	p, _, err := load(ctx, l, persons, personID)
	if err != nil {
		return Result{}, err
	}
	_, res, err := update(ctx, l, venues, venueID, domain.Meta{Actor: actor.Subject}, retryOnConflict, func(v domain.Venue) ([]domain.Event, error) {
		return domain.DecideAddSubAdmin(v, actor, p)
	})
	return res, err
}

// RemoveSubAdmin removes a sub-admin from a venue (its manager, or an
// admin). Removing someone who is not a sub-admin is ErrNotFound.
func (l *Ledger) RemoveSubAdmin(ctx context.Context, actor domain.Actor, venueID, personID uuid.UUID) (Result, error) {
	_, res, err := update(ctx, l, venues, venueID, domain.Meta{Actor: actor.Subject}, retryOnConflict, func(v domain.Venue) ([]domain.Event, error) {
		return domain.DecideRemoveSubAdmin(v, actor, personID)
	})
	return res, err
}
