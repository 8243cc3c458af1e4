package domain

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Reactions: commands run in answer to an event already in the log (by the
// reactions router), each writing its outcome as an event of its own. Each
// is idempotent: its event id is derived from the source event's id, and it
// decides on the aggregate's state, so a redelivered source changes nothing
// twice.

// ReactionsActor is the actor recorded on the events the reactions write.
var ReactionsActor = Actor{Subject: "reactions"}

// maxReactionAttempts bounds how often a reaction reloads an aggregate that
// changed under it (ErrConflict) before giving up.
const maxReactionAttempts = 3

var (
	// queuedNamespace is the UUIDv5 namespace of DeclarationQueued event ids.
	queuedNamespace = uuid.MustParse("b7e2f0a4-1c9d-4e63-8a5f-0d3b6c2e9f17")
	// codeNamespace is the UUIDv5 namespace of VenueCodeIssued event ids.
	codeNamespace = uuid.MustParse("e4a1c7d9-5b20-4f8e-b316-7c9d2a0e5f64")
)

// DeclarationQueuedEventID is the id of the DeclarationQueued event written
// in answer to the declaration event declaredEventID.
func DeclarationQueuedEventID(declaredEventID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(queuedNamespace, declaredEventID[:])
}

// VenueCodeEventID is the id of the VenueCodeIssued event written in answer
// to the approving VenueReviewed event reviewedEventID.
func VenueCodeEventID(reviewedEventID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(codeNamespace, reviewedEventID[:])
}

// PassIsAbnormal reports whether a recorded pass must be reported to its
// venue's district: it was denied, or the screen showed a yellow or red code
// or a positive nucleic-acid test.
func PassIsAbnormal(p PassRecorded) bool {
	return IsAbnormal(p.Decision, &HealthView{CodeColour: p.Screen.CodeColour, NATResult: p.Screen.NATResult})
}

// alertFor builds the alert an abnormal pass raises in district.
func alertFor(p PassRecorded, passEventID uuid.UUID, district string) AlertRaised {
	a := AlertRaised{
		District:    district,
		VenueID:     p.VenueID,
		PersonID:    p.PersonID,
		PassEventID: passEventID,
		CodeColour:  p.Screen.CodeColour,
		Decision:    p.Decision,
		Reason:      p.Reason,
	}
	if a.Reason == "" {
		a.Reason = "abnormal health status"
	}
	return a
}

// RaiseAlerts reports the abnormal passes among events (other events are
// ignored) to their venues' districts: one AlertRaised each, with the id
// AlertEventID(pass id) and the pass's occurred_at, all recorded with one
// group commit. It returns how many alerts it recorded (a duplicate counts:
// it is the same alert). A pass whose venue is unknown is ErrNotFound and
// nothing is recorded.
func (l *Ledger) RaiseAlerts(ctx context.Context, actor Actor, events []Envelope) (int, error) {
	now := l.now()
	districts := map[uuid.UUID]string{}
	var alerts []Envelope
	for _, e := range events {
		if e.Type != TypePassRecorded {
			continue
		}
		ev, err := Decode(e)
		if err != nil {
			return 0, err
		}
		p := ev.(*PassRecorded)
		if !PassIsAbnormal(*p) {
			continue
		}
		district, ok := districts[p.VenueID]
		if !ok {
			v, _, err := l.loadVenue(ctx, p.VenueID)
			if err != nil {
				return 0, err
			}
			if !v.applied {
				return 0, Errorf(ErrNotFound, "venue %s of pass %s is unknown", p.VenueID, e.ID)
			}
			district = v.district
			districts[p.VenueID] = district
		}
		correlation := e.CorrelationID
		if correlation == "" {
			correlation = e.ID.String()
		}
		meta := Meta{ID: AlertEventID(e.ID), OccurredAt: e.OccurredAt, Actor: actor.Subject, CorrelationID: correlation}
		env, err := NewEnvelope(AlertAggregate(district), alertFor(*p, e.ID, district), meta, now)
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
func (l *Ledger) QueueDeclaration(ctx context.Context, actor Actor, declared Envelope) (Result, error) {
	ev, err := Decode(declared)
	if err != nil {
		return Result{}, err
	}
	var id uuid.UUID
	switch ev := ev.(type) {
	case *ArrivalDeclared:
		id = ev.DeclarationID
	case *TruckPassDeclared:
		id = ev.DeclarationID
	default:
		return Result{}, Errorf(ErrInvalid, "event %s is a %s, not a declaration", declared.ID, declared.Type)
	}
	meta := Meta{ID: DeclarationQueuedEventID(declared.ID), Actor: actor.Subject, CorrelationID: declared.ID.String()}
	return l.react(ctx, DeclarationAggregate(id), id, meta, func(ctx context.Context) ([]Event, uint64, error) {
		d, version, err := l.loadDeclaration(ctx, id)
		if err != nil {
			return nil, 0, err
		}
		events, err := decideQueueDeclaration(d)
		return events, version, err
	})
}

// decideIssueVenueCode decides whether an approved venue's code is issued:
// once, and only while it is approved.
func decideIssueVenueCode(v Venue, code string) ([]Event, error) {
	if !v.applied {
		return nil, Errorf(ErrNotFound, "venue not found")
	}
	if v.status != VenueStatusApproved || v.code != "" {
		return nil, nil
	}
	return []Event{VenueCodeIssued{VenueID: v.id, Code: code}}, nil
}

// IssueVenueCode records the issuance of an approved venue's printable code
// in answer to reviewed, the VenueReviewed event that approved it (a
// rejection asks for nothing). code is the venue code the token signer
// issues for the venue. The result's EventID is zero when there was nothing
// to do.
func (l *Ledger) IssueVenueCode(ctx context.Context, actor Actor, reviewed Envelope, code string) (Result, error) {
	ev, err := Decode(reviewed)
	if err != nil {
		return Result{}, err
	}
	r, ok := ev.(*VenueReviewed)
	if !ok {
		return Result{}, Errorf(ErrInvalid, "event %s is a %s, not a venue review", reviewed.ID, reviewed.Type)
	}
	if r.Decision != ReviewApprove {
		return Result{ID: r.VenueID}, nil
	}
	if code == "" {
		return Result{}, Invalid("code", "is required")
	}
	meta := Meta{ID: VenueCodeEventID(reviewed.ID), Actor: actor.Subject, CorrelationID: reviewed.ID.String()}
	return l.react(ctx, VenueAggregate(r.VenueID), r.VenueID, meta, func(ctx context.Context) ([]Event, uint64, error) {
		v, version, err := l.loadVenue(ctx, r.VenueID)
		if err != nil {
			return nil, 0, err
		}
		events, err := decideIssueVenueCode(v, code)
		return events, version, err
	})
}

// react loads, decides and appends a reaction's events to aggregate,
// deciding again when the aggregate changed in between.
func (l *Ledger) react(ctx context.Context, aggregate string, id uuid.UUID, meta Meta,
	decide func(context.Context) ([]Event, uint64, error)) (Result, error) {
	for attempt := 1; ; attempt++ {
		events, version, err := decide(ctx)
		if err != nil {
			return Result{}, err
		}
		if len(events) == 0 {
			return Result{ID: id}, nil
		}
		res, err := l.append(ctx, aggregate, version, meta, l.now(), events)
		if errors.Is(err, ErrConflict) && attempt < maxReactionAttempts {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		res.ID = id
		return res, nil
	}
}
