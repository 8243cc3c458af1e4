package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Statements of the declarations read model; {s}. is the store's schema.
const (
	sqlArrivalDeclared = `INSERT INTO {s}.declarations AS d
		(declaration_id, kind, person_id, family_member_ids, district, status, submitted_at,
		 arrival_date, origin, nat_result, nat_at)
		VALUES ($1, 'arrival', $2, $3, $4, 'pending', $5, $6, $7, $8, $9)
		ON CONFLICT (declaration_id) DO UPDATE SET kind = EXCLUDED.kind, person_id = EXCLUDED.person_id,
			family_member_ids = EXCLUDED.family_member_ids, district = EXCLUDED.district,
			status = CASE WHEN d.status = '' THEN 'pending' ELSE d.status END, submitted_at = EXCLUDED.submitted_at,
			arrival_date = EXCLUDED.arrival_date, origin = EXCLUDED.origin, nat_result = EXCLUDED.nat_result,
			nat_at = EXCLUDED.nat_at`
	sqlTruckDeclared = `INSERT INTO {s}.declarations AS d
		(declaration_id, kind, person_id, district, status, submitted_at, plate_number, nat_proof_at,
		 itinerary_ok, health_code_colour, logistics_park, contact_name, contact_phone)
		VALUES ($1, 'truck', $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (declaration_id) DO UPDATE SET kind = EXCLUDED.kind, person_id = EXCLUDED.person_id,
			district = EXCLUDED.district, status = CASE WHEN d.status = '' THEN 'pending' ELSE d.status END,
			submitted_at = EXCLUDED.submitted_at, plate_number = EXCLUDED.plate_number,
			nat_proof_at = EXCLUDED.nat_proof_at, itinerary_ok = EXCLUDED.itinerary_ok,
			health_code_colour = EXCLUDED.health_code_colour, logistics_park = EXCLUDED.logistics_park,
			contact_name = EXCLUDED.contact_name, contact_phone = EXCLUDED.contact_phone`
	sqlDeclarationQueued = `INSERT INTO {s}.declarations (declaration_id, queued, queued_at, queue_position)
		VALUES ($1, true, $2, $3)
		ON CONFLICT (declaration_id) DO UPDATE SET queued = true, queued_at = EXCLUDED.queued_at,
			queue_position = EXCLUDED.queue_position`
	sqlDeclarationReviewed = `INSERT INTO {s}.declarations (declaration_id, status, reason, reviewed_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (declaration_id) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason,
			reviewed_at = EXCLUDED.reviewed_at`
	sqlDeclarationStep = `INSERT INTO {s}.declaration_steps
		(event_id, declaration_id, position, type, at, actor, decision, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING`

	declarationCols = `d.declaration_id, d.kind, d.person_id, d.family_member_ids, d.district, d.status, d.reason,
		d.queued, d.submitted_at, d.queued_at, d.queue_position, d.reviewed_at, d.arrival_date, d.origin,
		d.nat_result, d.nat_at, d.plate_number, d.nat_proof_at, d.itinerary_ok, d.health_code_colour,
		d.logistics_park, d.contact_name, d.contact_phone`
	sqlDeclarationSteps = `SELECT declaration_id, event_id, type, at, actor, decision, reason, position
		FROM {s}.declaration_steps WHERE declaration_id = ANY($1::uuid[]) ORDER BY declaration_id, position`
)

// isDeclarationEvent reports whether ev shapes the declarations read model.
func isDeclarationEvent(ev domain.Event) bool {
	switch ev.(type) {
	case *domain.ArrivalDeclared, *domain.TruckPassDeclared, *domain.DeclarationQueued, *domain.DeclarationReviewed:
		return true
	}
	return false
}

// queueDeclaration queues the statements that apply a declaration event
// (already marked applied) and add it to the declaration's history.
func (s *Store) queueDeclaration(b *pgx.Batch, c *projections.Change) {
	pos := int64(c.Position)
	var id uuid.UUID
	var decision, reason string
	switch ev := c.Event.(type) {
	case *domain.ArrivalDeclared:
		id = ev.DeclarationID
		b.Queue(s.sql(sqlArrivalDeclared), id, ev.PersonID, orEmpty(ev.FamilyMemberIDs), ev.DestinationDistrict, c.OccurredAt,
			ev.ArrivalDate, c.Declared.Origin, ev.NATResult, nullTime(ev.NATAt))
	case *domain.TruckPassDeclared:
		id = ev.DeclarationID
		b.Queue(s.sql(sqlTruckDeclared), id, ev.PersonID, ev.District, c.OccurredAt, c.Declared.PlateNumber,
			nullTime(ev.NATProofAt), ev.ItineraryOK, ev.HealthCodeColour, ev.LogisticsPark, c.Contact.Name, c.Contact.Phone)
	case *domain.DeclarationQueued:
		id = ev.DeclarationID
		b.Queue(s.sql(sqlDeclarationQueued), id, c.OccurredAt, pos)
	case *domain.DeclarationReviewed:
		id = ev.DeclarationID
		status := domain.ReviewedStatus(ev.Decision, domain.DeclarationApproved, domain.DeclarationRejected)
		decision, reason = ev.Decision, ev.Reason
		b.Queue(s.sql(sqlDeclarationReviewed), id, status, ev.Reason, c.OccurredAt)
	default:
		return
	}
	b.Queue(s.sql(sqlDeclarationStep), c.EventID, id, pos, c.Type, c.OccurredAt, c.Actor, decision, reason)
}

func scanDeclaration(row pgx.Row) (domain.DeclarationView, error) {
	var (
		v                                             domain.DeclarationView
		person                                        *uuid.UUID
		submitted, queuedAt, reviewed, natAt, proofAt *time.Time
		queuePos                                      int64
		arrivalDate, origin, natResult                string
		plate, colour, park, contactName, phone       string
		itinerary                                     bool
	)
	err := row.Scan(&v.ID, &v.Kind, &person, &v.FamilyMemberIDs, &v.District, &v.Status, &v.Reason,
		&v.Queued, &submitted, &queuedAt, &queuePos, &reviewed, &arrivalDate, &origin,
		&natResult, &natAt, &plate, &proofAt, &itinerary, &colour, &park, &contactName, &phone)
	if err != nil {
		return v, err
	}
	v.PersonID, v.FamilyMemberIDs = orZero(person), orEmpty(v.FamilyMemberIDs)
	v.SubmittedAt, v.QueuedAt, v.ReviewedAt, v.QueuePosition = utc(submitted), utc(queuedAt), utc(reviewed), uint64(queuePos)
	switch v.Kind {
	case domain.DeclarationArrival:
		v.Arrival = &domain.ArrivalDetails{ArrivalDate: arrivalDate, Origin: origin, DestinationDistrict: v.District,
			NATResult: natResult, NATAt: utc(natAt)}
	case domain.DeclarationTruck:
		v.Truck = &domain.TruckDetails{PlateNumber: plate, NATProofAt: utc(proofAt), ItineraryOK: itinerary,
			HealthCodeColour: colour, LogisticsPark: park, ContactName: contactName, ContactPhone: phone}
	}
	v.History = []domain.DeclarationStep{}
	return v, nil
}

// withSteps fills the history of vs from declaration_steps, in one query.
func (s *Store) withSteps(ctx context.Context, vs []domain.DeclarationView) error {
	if len(vs) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(vs))
	at := make(map[uuid.UUID]int, len(vs))
	for i, v := range vs {
		ids[i], at[v.ID] = v.ID, i
	}
	rows, err := s.pool.Query(ctx, s.sql(sqlDeclarationSteps), ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id  uuid.UUID
			st  domain.DeclarationStep
			pos int64
		)
		if err := rows.Scan(&id, &st.EventID, &st.Type, &st.At, &st.Actor, &st.Decision, &st.Reason, &pos); err != nil {
			return err
		}
		st.At, st.Position = st.At.UTC(), uint64(pos)
		v := &vs[at[id]]
		v.History = append(v.History, st)
	}
	return rows.Err()
}

// Declaration implements ledger.DeclarationReads.
func (s *Store) Declaration(ctx context.Context, id uuid.UUID) (domain.DeclarationView, error) {
	v, err := scanDeclaration(s.pool.QueryRow(ctx,
		s.sql(`SELECT `+declarationCols+` FROM {s}.declarations d WHERE d.declaration_id = $1 AND d.kind <> ''`), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.DeclarationView{}, domain.Errorf(domain.ErrNotFound, "declaration %s", id)
	}
	if err != nil {
		return domain.DeclarationView{}, readErr("declaration %s: %w", id, err)
	}
	vs := []domain.DeclarationView{v}
	if err := s.withSteps(ctx, vs); err != nil {
		return domain.DeclarationView{}, readErr("history of declaration %s: %w", id, err)
	}
	return vs[0], nil
}

// Declarations implements ledger.DeclarationReads: the queued declarations
// that match f, in the order they joined the queue.
func (s *Store) Declarations(ctx context.Context, f domain.DeclarationFilter) ([]domain.DeclarationView, error) {
	var c conds
	c.add("d.queued")
	c.add("d.kind <> ''")
	c.equal("d.district", f.District)
	c.equal("d.status", f.Status)
	c.equal("d.kind", f.Kind)
	text := `SELECT ` + declarationCols + ` FROM {s}.declarations d` + c.where() + ` ORDER BY d.queue_position`
	if f.Limit > 0 {
		text += " LIMIT " + c.arg(f.Limit)
	}
	out, err := appendRows(ctx, s, []domain.DeclarationView{}, "declarations", scanDeclaration, s.sql(text), c.args...)
	if err != nil {
		return nil, err
	}
	if err := s.withSteps(ctx, out); err != nil {
		return nil, readErr("declarations' history: %w", err)
	}
	return out, nil
}
