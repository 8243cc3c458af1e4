package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// maxReactionAttempts bounds how often a reaction reloads an aggregate that
// changed under it (ErrConflict) before giving up.
const maxReactionAttempts = 3

// RaiseAlerts reports the abnormal passes among events (other events are
// ignored) to their venues' districts: one AlertRaised each, with the id
// AlertEventID(pass id) and the pass's occurred_at, all recorded with one
// group commit. It returns how many alerts it recorded (a duplicate counts:
// it is the same alert). A pass whose venue is unknown is ErrNotFound and
// nothing is recorded.
func (l *Ledger) RaiseAlerts(ctx context.Context, actor domain.Actor, events []domain.Envelope) (int, error) {
	now := l.now()
	districts := map[uuid.UUID]string{}
	var alerts []domain.Envelope
	for _, e := range events {
		if e.Type != domain.TypePassRecorded {
			continue
		}
		ev, err := domain.Decode(e)
		if err != nil {
			return 0, err
		}
		p := ev.(*domain.PassRecorded)
		if !domain.PassIsAbnormal(*p) {
			continue
		}
		district, ok := districts[p.VenueID]
		if !ok {
			v, _, err := l.loadVenue(ctx, p.VenueID)
			if err != nil {
				return 0, err
			}
			if !v.Exists() {
				return 0, domain.Errorf(domain.ErrNotFound, "venue %s of pass %s is unknown", p.VenueID, e.ID)
			}
			district = v.District()
			districts[p.VenueID] = district
		}
		correlation := e.CorrelationID
		if correlation == "" {
			correlation = e.ID.String()
		}
		meta := domain.Meta{ID: domain.AlertEventID(e.ID), OccurredAt: e.OccurredAt, Actor: actor.Subject, CorrelationID: correlation}
		env, err := domain.NewEnvelope(domain.AlertAggregate(district), domain.AlertFor(*p, e.ID, district), meta, now)
		if err != nil {
			return 0, err
		}
		alerts = append(alerts, env)
	}
	if len(alerts) == 0 {
		return 0, nil
	}
	appended, err := l.Events.Record(ctx, alerts...)
	if err != nil {
		return 0, fmt.Errorf("record %d alerts: %w", len(alerts), err)
	}
	if len(appended) != len(alerts) {
		return 0, fmt.Errorf("record alerts: store answered %d results for %d events", len(appended), len(alerts))
	}
	return len(alerts), nil
}

// QueueDeclaration puts the declaration that declared (an ArrivalDeclared or
// TruckPassDeclared event) submitted into its district's review queue. The
// result's EventID is zero when there was nothing to do: it is already
// queued, or was reviewed before the reaction ran.
func (l *Ledger) QueueDeclaration(ctx context.Context, actor domain.Actor, declared domain.Envelope) (Result, error) {
	ev, err := domain.Decode(declared)
	if err != nil {
		return Result{}, err
	}
	var id uuid.UUID
	switch ev := ev.(type) {
	case *domain.ArrivalDeclared:
		id = ev.DeclarationID
	case *domain.TruckPassDeclared:
		id = ev.DeclarationID
	default:
		return Result{}, domain.Errorf(domain.ErrInvalid, "event %s is a %s, not a declaration", declared.ID, declared.Type)
	}
	meta := domain.Meta{ID: domain.DeclarationQueuedEventID(declared.ID), Actor: actor.Subject, CorrelationID: declared.ID.String()}
	return l.react(ctx, domain.DeclarationAggregate(id), id, meta, func(ctx context.Context) ([]domain.Event, uint64, error) {
		d, version, err := l.loadDeclaration(ctx, id)
		if err != nil {
			return nil, 0, err
		}
		events, err := domain.DecideQueueDeclaration(d)
		return events, version, err
	})
}

// IssueVenueCode records the issuance of an approved venue's printable code
// in answer to reviewed, the VenueReviewed event that approved it (a
// rejection asks for nothing). code is the venue code the token signer
// issues for the venue. The result's EventID is zero when there was nothing
// to do.
func (l *Ledger) IssueVenueCode(ctx context.Context, actor domain.Actor, reviewed domain.Envelope, code string) (Result, error) {
	ev, err := domain.Decode(reviewed)
	if err != nil {
		return Result{}, err
	}
	r, ok := ev.(*domain.VenueReviewed)
	if !ok {
		return Result{}, domain.Errorf(domain.ErrInvalid, "event %s is a %s, not a venue review", reviewed.ID, reviewed.Type)
	}
	if r.Decision != domain.ReviewApprove {
		return Result{ID: r.VenueID}, nil
	}
	if code == "" {
		return Result{}, domain.Invalid("code", "is required")
	}
	meta := domain.Meta{ID: domain.VenueCodeEventID(reviewed.ID), Actor: actor.Subject, CorrelationID: reviewed.ID.String()}
	return l.react(ctx, domain.VenueAggregate(r.VenueID), r.VenueID, meta, func(ctx context.Context) ([]domain.Event, uint64, error) {
		v, version, err := l.loadVenue(ctx, r.VenueID)
		if err != nil {
			return nil, 0, err
		}
		events, err := domain.DecideIssueVenueCode(v, code)
		return events, version, err
	})
}

// react loads, decides and appends a reaction's events to aggregate,
// deciding again when the aggregate changed in between.
func (l *Ledger) react(ctx context.Context, aggregate string, id uuid.UUID, meta domain.Meta,
	decide func(context.Context) ([]domain.Event, uint64, error)) (Result, error) {
	for attempt := 1; ; attempt++ {
		events, version, err := decide(ctx)
		if err != nil {
			return Result{}, err
		}
		if len(events) == 0 {
			return Result{ID: id}, nil
		}
		res, err := l.append(ctx, aggregate, version, meta, l.now(), events)
		if errors.Is(err, domain.ErrConflict) && attempt < maxReactionAttempts {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		res.ID = id
		return res, nil
	}
}
