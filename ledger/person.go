package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
)

// RegisterPerson registers a citizen with a real name, an ID document and a
// phone. Anyone may call it. The person id is derived from the document's
// keyed hash, so the same document registering twice meets the same
// aggregate and is a conflict. A retry with the same EventID returns the
// original result with Duplicate set.
func (l *Ledger) RegisterPerson(ctx context.Context, actor domain.Actor, cmd domain.RegisterPerson) (Result, error) {
	now := l.now()
	name, err := domain.ValidateName("name", cmd.Name)
	if err != nil {
		return Result{}, err
	}
	number, err := domain.ValidateDocument("id_type", "id_number", cmd.IDType, cmd.IDNumber, now)
	if err != nil {
		return Result{}, err
	}
	phone, err := domain.ValidatePhone(cmd.Phone)
	if err != nil {
		return Result{}, err
	}
	hash := l.Hasher.IDHash(cmd.IDType, number)
	id := pii.PersonID(hash)
	agg := domain.PersonAggregate(id)
	p, version, err := l.loadPerson(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if by, at := p.RegisteredBy(); cmd.EventID != uuid.Nil && p.Registered() && by == cmd.EventID {
		return Result{ID: id, EventID: cmd.EventID, Position: at, Duplicate: true}, nil
	}
	if p.Registered() {
		return Result{}, domain.AlreadyRegistered(cmd.IDType)
	}
	key, err := l.Keys.Key(ctx, id, true)
	if err != nil {
		return Result{}, fmt.Errorf("register person: data key: %w", err)
	}
	reg := domain.PersonRegistered{PersonID: id, IDType: cmd.IDType, IDHash: hash}
	if reg.Name, err = domain.SealField(key, name); err != nil {
		return Result{}, err
	}
	if reg.IDNumber, err = domain.SealField(key, number); err != nil {
		return Result{}, err
	}
	if reg.Phone, err = domain.SealField(key, phone); err != nil {
		return Result{}, err
	}
	events, err := domain.DecideRegisterPerson(p, reg)
	if err != nil {
		return Result{}, err
	}
	// Registration is public: an anonymous caller is recorded as the new person.
	subject := actor.Subject
	if subject == "" {
		subject = "person:" + id.String()
	}
	res, err := l.append(ctx, agg, version, domain.Meta{ID: cmd.EventID, Actor: subject}, now, events)
	if errors.Is(err, domain.ErrConflict) {
		return Result{}, domain.AlreadyRegistered(cmd.IDType)
	}
	if err != nil {
		return Result{}, err
	}
	res.ID = id
	return res, nil
}

// VerifyPerson records the outcome of a face check or a manual review of a
// person's identity. Reviewers and admins only; a person already approved
// cannot be verified again (conflict), a rejected one can.
func (l *Ledger) VerifyPerson(ctx context.Context, actor domain.Actor, personID uuid.UUID, cmd domain.VerifyPerson) (Result, error) {
	if actor.Role != domain.RoleReviewer && actor.Role != domain.RoleAdmin {
		return Result{}, domain.Errorf(domain.ErrForbidden, "only a reviewer or an admin may verify a person")
	}
	if err := domain.ValidateVerify(cmd); err != nil {
		return Result{}, err
	}
	p, version, err := l.loadPerson(ctx, personID)
	if err != nil {
		return Result{}, err
	}
	if !p.Registered() {
		return Result{}, domain.Errorf(domain.ErrNotFound, "person %s not registered", personID)
	}
	events, err := domain.DecideVerifyPerson(p, cmd)
	if err != nil {
		return Result{}, err
	}
	res, err := l.append(ctx, domain.PersonAggregate(personID), version, domain.Meta{Actor: actor.Subject}, l.now(), events)
	if err != nil {
		return Result{}, err
	}
	res.ID = personID
	return res, nil
}

// AddFamilyMember registers a dependant (no phone) under a guardian. Only
// the guardian themself may do it, and a family member cannot be a
// guardian. The member becomes a person of their own, whose id is derived
// from their document like any other person's.
func (l *Ledger) AddFamilyMember(ctx context.Context, actor domain.Actor, guardianID uuid.UUID, cmd domain.AddFamilyMember) (Result, error) {
	if actor.Role != domain.RolePerson || actor.PersonID != guardianID {
		return Result{}, domain.Errorf(domain.ErrForbidden, "only the guardian may add their family members")
	}
	now := l.now()
	name, err := domain.ValidateName("name", cmd.Name)
	if err != nil {
		return Result{}, err
	}
	number, err := domain.ValidateDocument("id_type", "id_number", cmd.IDType, cmd.IDNumber, now)
	if err != nil {
		return Result{}, err
	}
	if !domain.ValidRelation(cmd.Relation) {
		return Result{}, domain.Invalid("relation", "must be one of %s", strings.Join(domain.Relations(), ", "))
	}
	guardian, _, err := l.loadPerson(ctx, guardianID)
	if err != nil {
		return Result{}, err
	}
	hash := l.Hasher.IDHash(cmd.IDType, number)
	id := pii.PersonID(hash)
	member, version, err := l.loadPerson(ctx, id)
	if err != nil {
		return Result{}, err
	}
	// Decide once before sealing, so no data key is made for a refused member.
	probe := domain.PersonRegistered{PersonID: id, IDType: cmd.IDType, GuardianID: guardianID}
	if _, err := domain.DecideAddFamilyMember(guardian, member, probe); err != nil {
		return Result{}, err
	}
	key, err := l.Keys.Key(ctx, id, true)
	if err != nil {
		return Result{}, fmt.Errorf("add family member: data key: %w", err)
	}
	reg := domain.PersonRegistered{PersonID: id, IDType: cmd.IDType, IDHash: hash, GuardianID: guardianID, Relation: cmd.Relation}
	if reg.Name, err = domain.SealField(key, name); err != nil {
		return Result{}, err
	}
	if reg.IDNumber, err = domain.SealField(key, number); err != nil {
		return Result{}, err
	}
	events, err := domain.DecideAddFamilyMember(guardian, member, reg)
	if err != nil {
		return Result{}, err
	}
	res, err := l.append(ctx, domain.PersonAggregate(id), version, domain.Meta{Actor: actor.Subject}, now, events)
	if errors.Is(err, domain.ErrConflict) {
		return Result{}, domain.AlreadyRegistered(cmd.IDType)
	}
	if err != nil {
		return Result{}, err
	}
	res.ID = id
	return res, nil
}
