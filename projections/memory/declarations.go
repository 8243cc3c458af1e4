package memory

import (
	"cmp"
	"context"
	"slices"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// declaration returns the row of declaration id, making an empty one.
func (s *Store) declaration(id uuid.UUID) *domain.DeclarationView {
	d := s.decls[id]
	if d == nil {
		d = &domain.DeclarationView{ID: id, FamilyMemberIDs: []uuid.UUID{}}
		s.decls[id] = d
	}
	return d
}

// applyDeclaration applies a declaration's submission, queueing or review,
// and adds it to the declaration's history. The caller has checked that
// the event was not applied before.
func (s *Store) applyDeclaration(c *projections.Change) {
	step := domain.DeclarationStep{EventID: c.EventID, Type: c.Type, At: c.OccurredAt, Actor: c.Actor, Position: c.Position}
	var d *domain.DeclarationView
	switch ev := c.Event.(type) {
	case *domain.ArrivalDeclared:
		d = s.declaration(ev.DeclarationID)
		d.Kind, d.PersonID, d.District = domain.DeclarationArrival, ev.PersonID, ev.DestinationDistrict
		d.FamilyMemberIDs = append([]uuid.UUID{}, ev.FamilyMemberIDs...)
		d.Status, d.SubmittedAt = domain.DeclarationPending, c.OccurredAt
		d.Arrival = &domain.ArrivalDetails{ArrivalDate: ev.ArrivalDate, Origin: c.Declared.Origin,
			DestinationDistrict: ev.DestinationDistrict, NATResult: ev.NATResult, NATAt: ev.NATAt}
	case *domain.TruckPassDeclared:
		d = s.declaration(ev.DeclarationID)
		d.Kind, d.PersonID, d.District = domain.DeclarationTruck, ev.PersonID, ev.District
		d.Status, d.SubmittedAt = domain.DeclarationPending, c.OccurredAt
		d.Truck = &domain.TruckDetails{PlateNumber: c.Declared.PlateNumber, NATProofAt: ev.NATProofAt, ItineraryOK: ev.ItineraryOK,
			HealthCodeColour: ev.HealthCodeColour, LogisticsPark: ev.LogisticsPark,
			ContactName: c.Contact.Name, ContactPhone: c.Contact.Phone}
	case *domain.DeclarationQueued:
		d = s.declaration(ev.DeclarationID)
		d.Queued, d.QueuedAt, d.QueuePosition = true, c.OccurredAt, c.Position
	case *domain.DeclarationReviewed:
		d = s.declaration(ev.DeclarationID)
		d.Status = domain.ReviewedStatus(ev.Decision, domain.DeclarationApproved, domain.DeclarationRejected)
		d.Reason, d.ReviewedAt = ev.Reason, c.OccurredAt
		step.Decision, step.Reason = ev.Decision, ev.Reason
	default:
		return
	}
	if c.Type == domain.TypeArrivalDeclared || c.Type == domain.TypeTruckPassDeclared {
		if !slices.Contains(s.declsOf[d.PersonID], d) {
			s.declsOf[d.PersonID] = append(s.declsOf[d.PersonID], d)
		}
	}
	d.History = append(d.History, step)
}

// declarationView copies a row so the caller may keep it.
func declarationView(d *domain.DeclarationView) domain.DeclarationView {
	out := *d
	out.FamilyMemberIDs = slices.Clone(d.FamilyMemberIDs)
	out.History = slices.Clone(d.History)
	if out.History == nil {
		out.History = []domain.DeclarationStep{}
	}
	if d.Arrival != nil {
		a := *d.Arrival
		out.Arrival = &a
	}
	if d.Truck != nil {
		t := *d.Truck
		out.Truck = &t
	}
	return out
}

// Declaration implements ledger.DeclarationReads.
func (s *Store) Declaration(_ context.Context, id uuid.UUID) (domain.DeclarationView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.decls[id]
	if !ok || d.Kind == "" {
		return domain.DeclarationView{}, domain.Errorf(domain.ErrNotFound, "declaration %s", id)
	}
	return declarationView(d), nil
}

// Declarations implements ledger.DeclarationReads: the queued declarations
// that match f, in the order they joined the queue.
func (s *Store) Declarations(_ context.Context, f domain.DeclarationFilter) ([]domain.DeclarationView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var rows []*domain.DeclarationView
	for _, d := range s.decls {
		if !d.Queued || d.Kind == "" || (f.District != "" && d.District != f.District) ||
			(f.Status != "" && d.Status != f.Status) || (f.Kind != "" && d.Kind != f.Kind) {
			continue
		}
		rows = append(rows, d)
	}
	slices.SortFunc(rows, func(a, b *domain.DeclarationView) int {
		return cmp.Compare(a.QueuePosition, b.QueuePosition)
	})
	if f.Limit > 0 && len(rows) > f.Limit {
		rows = rows[:f.Limit]
	}
	out := make([]domain.DeclarationView, 0, len(rows))
	for _, d := range rows {
		out = append(out, declarationView(d))
	}
	return out, nil
}
