package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// HistoryQuery asks for one person's passes with at in [From, To).
type HistoryQuery struct {
	PersonID uuid.UUID
	From, To time.Time
	// Source is domain.SourceReadModel (empty: the same) or
	// domain.SourceLog (replayed straight from the log).
	Source string
	// Reason says why the reader looks; required of an analyst.
	Reason string
	// ReadPosition is the read models' position the caller read at.
	ReadPosition uint64
}

// History answers a read of a person's pass history (GET
// /v1/persons/{id}/trace): analysts and admins may read anyone's, a person
// their own and their family members'. Every read, by any role, is
// recorded in the reader's audit trail before the answer is given: when the
// look cannot be recorded there is no answer. position is the position the
// answer reflects.
func (l *Ledger) History(ctx context.Context, actor domain.Actor, q HistoryQuery) (visits []domain.Visit, position uint64, err error) {
	if err := domain.HistoryReaders.Require(actor, "a trace history is for the person themself, their guardian, an admin or an analyst"); err != nil {
		return nil, 0, err
	}
	// The window to the microsecond, as the read models keep times (and as
	// a trace's window is).
	q.From, q.To = domain.Micros(q.From), domain.Micros(q.To)
	switch q.Source {
	case "":
		q.Source = domain.SourceReadModel
	case domain.SourceReadModel, domain.SourceLog:
	default:
		return nil, 0, domain.Invalid("source", "must be read_model or log")
	}
	if domain.LookNeedsReason(actor) && strings.TrimSpace(q.Reason) == "" {
		return nil, 0, domain.Invalid("reason", "is required: an analyst says why they look at this person's history")
	}
	p, err := l.Reads.Person(ctx, q.PersonID)
	if errors.Is(err, domain.ErrNotFound) && !domain.MayProbePersons(actor) {
		// Whether a person exists is nobody else's business.
		return nil, 0, domain.Errorf(domain.ErrForbidden, "a person may read only themself and their family members")
	}
	if err != nil {
		return nil, 0, err
	}
	if !domain.MayReadHistory(actor, p) {
		return nil, 0, domain.Errorf(domain.ErrForbidden, "a person may read only themself and their family members")
	}
	position = q.ReadPosition
	if q.Source == domain.SourceLog {
		visits, position, err = l.replayHistory(ctx, p.ID, q.From, q.To)
	} else {
		visits, err = l.Reads.Trace(ctx, p.ID, q.From, q.To)
	}
	if err != nil {
		return nil, 0, err
	}
	look := Look{PersonID: p.ID, From: q.From, To: q.To, Reason: q.Reason, Source: q.Source, ReadPosition: position}
	if _, err := l.recordLook(ctx, actor, look); err != nil {
		return nil, 0, err
	}
	return visits, position, nil
}

// Look is a read of a person's passes (GET /v1/persons/{id}/trace),
// recorded by recordLook.
type Look struct {
	PersonID uuid.UUID
	From, To time.Time
	Reason   string
	// Source is SourceReadModel or SourceLog.
	Source string
	// ReadPosition is the position the answer reflects.
	ReadPosition uint64
}

// recordLook records a look at a person's passes in the reader's audit
// trail, as a TraceRequested event of kind "history", naming the reader
// (their token's subject). The caller gives the answer only once this
// returned without error. The reason is required of an analyst; another
// reader's empty reason is recorded as such.
func (l *Ledger) recordLook(ctx context.Context, actor domain.Actor, look Look) (Result, error) {
	reason := strings.TrimSpace(look.Reason)
	if domain.LookNeedsReason(actor) || reason != "" {
		var err error
		if reason, err = domain.ValidateReason(look.Reason); err != nil {
			return Result{}, err
		}
	}
	if look.PersonID == uuid.Nil {
		return Result{}, domain.Invalid("person_id", "is required")
	}
	now := l.now()
	traceID, err := uuid.NewV7()
	if err != nil {
		return Result{}, fmt.Errorf("record look: new trace id: %w", err)
	}
	ev := domain.TraceRequested{
		TraceID: traceID, Analyst: domain.AuditSubject(actor), PersonID: look.PersonID,
		From: look.From.UTC(), To: look.To.UTC(), Reason: reason, Kind: domain.LookHistory, Source: look.Source,
		AsOf: now.UTC(), ReadPosition: look.ReadPosition,
	}
	id, pos, err := l.recordAudit(ctx, actor, ev, now)
	if err != nil {
		return Result{}, err
	}
	return Result{ID: traceID, EventID: id, Position: pos}, nil
}
