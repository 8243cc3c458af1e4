package domain

// Stubs replaced by the real rules (person.go, venue.go, pass.go, health.go).

import (
	"context"
	"errors"

	"github.com/google/uuid"
)

var errTODO = errors.New("domain: not implemented yet")

func (l *Ledger) RegisterPerson(context.Context, Actor, RegisterPerson) (Result, error) {
	return Result{}, errTODO
}
func (l *Ledger) VerifyPerson(context.Context, Actor, uuid.UUID, VerifyPerson) (Result, error) {
	return Result{}, errTODO
}
func (l *Ledger) AddFamilyMember(context.Context, Actor, uuid.UUID, AddFamilyMember) (Result, error) {
	return Result{}, errTODO
}
func (l *Ledger) ApplyVenue(context.Context, Actor, ApplyVenue) (Result, error) {
	return Result{}, errTODO
}
func (l *Ledger) ReviewVenue(context.Context, Actor, uuid.UUID, ReviewVenue) (Result, error) {
	return Result{}, errTODO
}
func (l *Ledger) AddSubAdmin(context.Context, Actor, uuid.UUID, uuid.UUID) (Result, error) {
	return Result{}, errTODO
}
func (l *Ledger) RemoveSubAdmin(context.Context, Actor, uuid.UUID, uuid.UUID) (Result, error) {
	return Result{}, errTODO
}
func (l *Ledger) RecordPass(context.Context, Actor, RecordPass) (PassResult, error) {
	return PassResult{}, errTODO
}
func (l *Ledger) RecordPasses(context.Context, Actor, []RecordPass) ([]BatchItem, error) {
	return nil, errTODO
}
func (l *Ledger) RecordHealth(context.Context, Actor, []HealthRecord) (HealthResult, error) {
	return HealthResult{}, errTODO
}
