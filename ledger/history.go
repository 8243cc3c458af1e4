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
// look cannot be recorded there is no answer. The window defaults and is
// checked as domain.HistoryWindow says.
func (l *Ledger) History(ctx context.Context, actor domain.Actor, q HistoryQuery) (_ HistoryResult, err error) {
	if err := domain.HistoryReaders.Require(actor, "a trace history is for the person themself, their guardian, an admin or an analyst"); err != nil {
		return HistoryResult{}, err
	}
	if q.From, q.To, err = domain.HistoryWindow(q.From, q.To, l.now()); err != nil {
		return HistoryResult{}, err
	}
	switch q.Source {
	case "":
		q.Source = domain.SourceReadModel
	case domain.SourceReadModel, domain.SourceLog:
	default:
		return HistoryResult{}, domain.Invalid("source", "must be read_model or log")
	}
	if domain.LookNeedsReason(actor) && strings.TrimSpace(q.Reason) == "" {
		return HistoryResult{}, domain.Invalid("reason", "is required: an analyst says why they look at this person's history")
	}
	p, err := l.Reads.Person(ctx, q.PersonID)
	if errors.Is(err, domain.ErrNotFound) && !domain.MayProbePersons(actor) {
		// Whether a person exists is nobody else's business.
		return HistoryResult{}, domain.Errorf(domain.ErrForbidden, "a person may read only themself and their family members")
	}
	if err != nil {
		return HistoryResult{}, err
	}
	if !domain.MayReadHistory(actor, p) {
		return HistoryResult{}, domain.Errorf(domain.ErrForbidden, "a person may read only themself and their family members")
	}
	var visits []domain.Visit
	position := q.ReadPosition
	if q.Source == domain.SourceLog {
		visits, position, err = l.replayHistory(ctx, p.ID, q.From, q.To)
	} else {
		visits, err = l.Reads.Trace(ctx, p.ID, q.From, q.To)
	}
	if err != nil {
		return HistoryResult{}, err
	}
	look := Look{PersonID: p.ID, From: q.From, To: q.To, Reason: q.Reason, Source: q.Source, ReadPosition: position}
	if _, err := l.recordLook(ctx, actor, look); err != nil {
		return HistoryResult{}, err
	}
	return HistoryResult{Visits: visits, Position: position, From: q.From, To: q.To, Source: q.Source}, nil
}

// HistoryResult is a history look's answer: the passes, the position they
// reflect, and the window and source they were read with.
type HistoryResult struct {
	Visits   []domain.Visit
	Position uint64
	From, To time.Time
	Source   string
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
