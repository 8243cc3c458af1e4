package ledger

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// The audit chain (see domain/audit.go): every audited event in the log
// gets one AuditRecorded entry, appended at the chain's head version and
// linked to the head's hash; then the new head is anchored outside the
// stream (AuditLog.AnchorAudit). The reactions call RecordAudit for every
// audited event they see, so an entry follows from its source even across
// crashes: a source whose entry was not appended is redelivered, and one
// whose entry was appended but not anchored is anchored when it comes again
// (or by the next entry).

// RecordAudit gives each audited event among events (domain.IsAudited) its
// entry in the audit chain, in order, and then anchors the newest head; other
// events are skipped. It is idempotent: a source whose entry is the chain's
// head already, or anywhere in it (within the event store's duplicate
// window, or listed by the read models), appends nothing. It returns how
// many entries it appended.
func (l *Ledger) RecordAudit(ctx context.Context, actor domain.Actor, events []domain.Envelope) (int, error) {
	appended := 0
	var anchor domain.AuditHead // the newest head this call saw
	// below: a source was recorded before, somewhere below the head (and
	// maybe not anchored): the head as it is now is anchored, read once
	// for the call after the loop.
	below := false
	for _, e := range events {
		entry, ok, err := domain.AuditEntryOf(e)
		if err != nil {
			return appended, fmt.Errorf("audit entry of event %s: %w", e.ID, err)
		}
		if !ok {
			continue
		}
		// A source that comes again after the store's duplicate window
		// (a crash before the reaction's ack, a long outage) and not as
		// the head is found in the read models, which list each entry by
		// its source: it appends nothing. (Within the window the store
		// drops the append itself, and at the head the decision does.)
		// Read models that cannot answer (not ready, their database
		// away) do not hold the entry back: an audit that waited on them
		// would reach the poison queue in a database outage; it is
		// decided as before, and only a redelivery after the window
		// could then be chained twice.
		if listed, err := l.Reads.AuditChain(ctx, domain.AuditChainQuery{Source: e.ID, Limit: 1}); err == nil && len(listed) > 0 {
			below = true
			continue
		}
		var decided *domain.AuditRecorded
		meta := domain.Meta{ID: domain.AuditEventID(e.ID), Actor: actor.Subject, CorrelationID: e.ID.String()}
		head, res, err := update(ctx, l, auditChain, uuid.Nil, meta, retryUntilLinked, func(c domain.AuditChain) ([]domain.Event, error) {
			evs, err := domain.DecideAuditEntry(c, entry)
			decided = nil
			if len(evs) == 1 {
				decided = evs[0].(*domain.AuditRecorded)
			}
			return evs, err
		})
		if err != nil {
			return appended, fmt.Errorf("audit entry of event %s: %w", e.ID, err)
		}
		seen := domain.AuditHead{Seq: head.Seq(), Hash: head.Hash()}
		switch {
		case decided != nil && !res.Duplicate:
			appended++
			seen = domain.AuditHead{Seq: decided.Seq, Hash: decided.Hash}
		case decided != nil:
			below = true // stored before (a redelivery within the duplicate window)
		}
		if seen.Seq > anchor.Seq {
			anchor = seen
		}
	}
	if below {
		c, _, err := load(ctx, l, auditChain, uuid.Nil)
		if err != nil {
			return appended, err
		}
		if c.Seq() > anchor.Seq {
			anchor = domain.AuditHead{Seq: c.Seq(), Hash: c.Hash()}
		}
	}
	// One anchor update for the call (a pack of looks is one call): a
	// crash before it leaves the anchor behind, which the next call mends.
	if anchor.Seq == 0 {
		return appended, nil
	}
	if err := l.Audit.AnchorAudit(ctx, anchor); err != nil {
		return appended, fmt.Errorf("anchor the audit head at seq %d: %w", anchor.Seq, err)
	}
	return appended, nil
}

// ReanchorAudit checks the chain's entries (not the anchor) and, when they
// hold, writes the chain's head as its anchor: the operator's repair once a
// deleted or altered anchor (ErrAuditAnchorRemoved) was looked into. A chain
// whose entries are broken is not anchored: the report says where.
func (l *Ledger) ReanchorAudit(ctx context.Context) (domain.AuditReport, error) {
	v := domain.NewAuditVerifier(domain.AuditHead{}, domain.AnchorNone)
	if err := l.readAuditChain(ctx, v); err != nil {
		return domain.AuditReport{}, fmt.Errorf("reanchor audit: %w", err)
	}
	if v.EntriesBroken() != nil || v.Head().Seq == 0 {
		return v.Report(), nil
	}
	if err := l.Audit.ResetAuditAnchor(ctx, v.Head()); err != nil {
		return domain.AuditReport{}, fmt.Errorf("reanchor audit: %w", err)
	}
	return l.VerifyAudit(ctx)
}

// readAuditChain adds every entry of the chain to v.
func (l *Ledger) readAuditChain(ctx context.Context, v *domain.AuditVerifier) error {
	return l.Audit.ReadAuditChain(ctx, func(envs []domain.Envelope) error {
		for _, e := range envs {
			v.Add(e)
		}
		return nil
	})
}

// VerifyAudit checks the audit chain and its anchor (on the API, for
// domain.AuditReaders):
// every entry's hash over its content, every link to the entry before, the
// numbering, and the anchored head against the chain. The report names the
// first broken link; a chain that holds with entries past the anchor
// reports them as AnchorLag, not as a break. The anchor is read before the
// chain, so entries appended while it runs are lag, never a truncation.
func (l *Ledger) VerifyAudit(ctx context.Context) (domain.AuditReport, error) {
	anchor, state, err := l.Audit.AuditAnchor(ctx)
	if err != nil {
		return domain.AuditReport{}, fmt.Errorf("verify audit: %w", err)
	}
	v := domain.NewAuditVerifier(anchor, state)
	if err := l.readAuditChain(ctx, v); err != nil {
		return domain.AuditReport{}, fmt.Errorf("verify audit: %w", err)
	}
	return v.Report(), nil
}
