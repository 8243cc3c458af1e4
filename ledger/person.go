package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/google/uuid"
)

// RegisterPerson registers a citizen with a real name, an ID document and a
// phone. Anyone may call it. The person id is derived from the document's
// keyed hash, so the same document registering twice meets the same
// aggregate and is a conflict. A retry with the same EventID returns the
// original result with Duplicate set.
func (l *Ledger) RegisterPerson(ctx context.Context, actor domain.Actor, cmd domain.RegisterPerson) (Result, error) {
	r, err := domain.ValidateRegistration(cmd, l.now())
	if err != nil {
		return Result{}, err
	}
	r.IDHash = l.Hasher.IDHash(r.IDType, r.IDNumber)
	r.PersonID = pii.PersonID(r.IDHash)
	// Registration is public: an anonymous caller is recorded as the new person.
	subject := actor.Subject
	if subject == "" {
		subject = "person:" + r.PersonID.String()
	}
	return l.register(ctx, r, domain.Meta{ID: cmd.EventID, Actor: subject}, func(p domain.Person) ([]domain.Event, error) {
		return domain.DecideRegisterPerson(p, r, l.sealer(ctx, r.PersonID), l.opener(ctx, r.PersonID))
	})
}

// AddFamilyMember registers a dependant (no phone) under a guardian. Only
// the guardian themself may do it, and a family member cannot be a
// guardian. The member becomes a person of their own, whose id is derived
// from their document like any other person's.
func (l *Ledger) AddFamilyMember(ctx context.Context, actor domain.Actor, guardianID uuid.UUID, cmd domain.AddFamilyMember) (Result, error) {
	if err := domain.MayAddFamilyMember(actor, guardianID); err != nil {
		return Result{}, err
	}
	r, err := domain.ValidateFamilyMember(guardianID, cmd, l.now())
	if err != nil {
		return Result{}, err
	}
	guardian, _, err := load(ctx, l, persons, guardianID)
	if err != nil {
		return Result{}, err
	}
	// How many family members the guardian has: the read models know (the
	// members are aggregates of their own). A burst faster than the
	// projector is bounded by the HTTP route's rate limit.
	family := 0
	if gv, err := l.Reads.Person(ctx, guardianID); err == nil {
		family = len(gv.FamilyMembers)
	} else if !errors.Is(err, domain.ErrNotFound) {
		return Result{}, fmt.Errorf("family of %s: %w", guardianID, err)
	}
	r.IDHash = l.Hasher.IDHash(r.IDType, r.IDNumber)
	r.PersonID = pii.PersonID(r.IDHash)
	return l.register(ctx, r, domain.Meta{Actor: actor.Subject}, func(member domain.Person) ([]domain.Event, error) {
		return domain.DecideAddFamilyMember(guardian, member, family, r, l.sealer(ctx, r.PersonID), l.opener(ctx, r.PersonID))
	})
}

// register appends a registration decided on the person aggregate of
// r.PersonID. A retry answers the original registration; a registration
// that lost a race for the same document is "already registered".
func (l *Ledger) register(ctx context.Context, r domain.Registration, meta domain.Meta, decide func(domain.Person) ([]domain.Event, error)) (Result, error) {
	p, res, err := update(ctx, l, persons, r.PersonID, meta, failOnConflict, decide)
	if errors.Is(err, domain.ErrConflict) {
		// Lost a race for the document, or the event id is another
		// event's: the person as the log holds them now tells which.
		now, _, lerr := load(ctx, l, persons, r.PersonID)
		switch {
		case lerr != nil:
			return Result{}, lerr
		case p.Erased() || now.Erased():
			return Result{}, domain.ErasedDocument(r.IDType)
		case now.Registered():
			return Result{}, domain.AlreadyRegistered(r.IDType)
		}
		return Result{}, err // not the document: the store's conflict names the event id
	}
	if err != nil {
		return Result{}, err
	}
	if res.EventID == uuid.Nil { // a retry: nothing was appended
		by, at := p.RegisteredBy()
		return Result{ID: r.PersonID, EventID: by, Position: at, Duplicate: true}, nil
	}
	return res, nil
}

// VerifyPerson records the outcome of a face check or a manual review of a
// person's identity. Reviewers and admins only; a person already approved
// cannot be verified again (conflict), a rejected one can.
func (l *Ledger) VerifyPerson(ctx context.Context, actor domain.Actor, personID uuid.UUID, cmd domain.VerifyPerson) (Result, error) {
	_, res, err := update(ctx, l, persons, personID, domain.Meta{Actor: actor.Subject}, failOnConflict, func(p domain.Person) ([]domain.Event, error) {
		return domain.DecideVerifyPerson(p, actor, cmd)
	})
	return res, err
}

// ReleasePerson voids a family member's registration of a document whose
// owner a reviewer has checked in person (a stranger registered it as their
// "family"): the document is free again, and its owner registers it as their
// own. Reviewers and admins only; the reason is recorded.
func (l *Ledger) ReleasePerson(ctx context.Context, actor domain.Actor, personID uuid.UUID, cmd domain.ReleasePerson) (Result, error) {
	_, res, err := update(ctx, l, persons, personID, domain.Meta{Actor: actor.Subject}, failOnConflict, func(p domain.Person) ([]domain.Event, error) {
		return domain.DecideReleasePerson(p, actor, cmd)
	})
	return res, err
}
