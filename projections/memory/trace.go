package memory

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
)

// auditRow is one TraceRequested event, as the audit list shows it.
type auditRow struct {
	entry domain.AuditEntry
	at    int64
}

func (s *Store) applyAudit(c *projections.Change, ev *domain.TraceRequested) {
	a := auditRow{
		entry: domain.AuditEntry{
			EventID: c.EventID, TraceID: ev.TraceID, Analyst: ev.Analyst, PersonID: ev.PersonID,
			From: ev.From.UTC(), To: ev.To.UTC(), Depth: ev.Depth, Reason: ev.Reason, Kind: ev.Kind,
			Source: ev.Source, AsOf: ev.AsOf.UTC(), MinOverlapMinutes: ev.MinOverlapMinutes,
			BufferMinutes: ev.BufferMinutes, Contacts: ev.Contacts, At: c.OccurredAt.UTC(), Position: c.Position,
		},
		at: nanos(c.OccurredAt),
	}
	n := len(s.audit)
	if n == 0 || !auditLess(a, s.audit[n-1]) {
		s.audit = append(s.audit, a)
		return
	}
	k := sort.Search(n, func(j int) bool { return auditLess(a, s.audit[j]) })
	s.audit = slices.Insert(s.audit, k, a)
}

func auditLess(a, b auditRow) bool {
	return a.at < b.at || (a.at == b.at && a.entry.Position < b.entry.Position)
}

// Audit implements ledger.AuditReads: oldest first by (at, position).
func (s *Store) Audit(_ context.Context, q domain.AuditQuery) ([]domain.AuditEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	list := s.audit
	lo, hi := 0, len(list)
	if !q.From.IsZero() {
		from := nanos(q.From)
		lo = sort.Search(len(list), func(k int) bool { return list[k].at >= from })
	}
	if !q.To.IsZero() {
		to := nanos(q.To)
		hi = sort.Search(len(list), func(k int) bool { return list[k].at >= to })
	}
	if !q.AfterAt.IsZero() {
		after := nanos(q.AfterAt)
		k := sort.Search(len(list), func(k int) bool {
			r := &list[k]
			return r.at > after || (r.at == after && r.entry.Position > q.AfterPosition)
		})
		lo = max(lo, k)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	out := make([]domain.AuditEntry, 0, min(limit, max(hi-lo, 0)))
	for k := lo; k < hi && len(out) < limit; k++ {
		out = append(out, list[k].entry)
	}
	return out, nil
}

// point returns pass k as contact tracing reads it.
func (s *Store) point(k int32) domain.PassPoint {
	p := s.passes.at(k)
	v := &s.venues[p.venue].view
	return domain.PassPoint{
		EventID: p.id, PersonID: s.people[p.person].id, VenueID: v.ID, VenueType: v.Type,
		At: fromNanos(p.at), Direction: s.str.strs[p.dir], Decision: s.str.strs[p.decision],
		Position: p.pos, RecordedAt: fromNanos(p.rec),
	}
}

// recordedBy reports whether pass k was recorded at or before asOf (zero:
// always). A pass with no recorded time is kept.
func (s *Store) recordedBy(k int32, asOf int64) bool {
	rec := s.passes.at(k).rec
	return asOf == noTime || rec == noTime || rec <= asOf
}

// appendWindow appends to ks the passes of list with at in [from, to) that
// were recorded by asOf (see recordedBy), oldest first.
func (s *Store) appendWindow(ks []int32, list *passList, from, to time.Time, asOf int64) []int32 {
	for e := range list.ascend(list.window(from, to)) {
		if s.recordedBy(e.i, asOf) {
			ks = append(ks, e.i)
		}
	}
	return ks
}

// PassesOfPersons implements ledger.TraceReads.
func (s *Store) PassesOfPersons(_ context.Context, personIDs []uuid.UUID, from, to, asOf time.Time) ([]domain.PassPoint, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cut := nanos(asOf)
	var ks []int32
	done := make(map[int32]bool, len(personIDs))
	for _, id := range personIDs {
		pi, ok := s.personIx[id]
		if !ok || done[pi] {
			continue
		}
		done[pi] = true
		ks = s.appendWindow(ks, &s.people[pi].passes, from, to, cut)
	}
	return s.points(ks), nil
}

// PassesAtVenues implements ledger.TraceReads.
func (s *Store) PassesAtVenues(_ context.Context, windows []domain.VenueWindow, asOf time.Time) ([]domain.PassPoint, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cut := nanos(asOf)
	var ks []int32
	// Merged windows are disjoint, so each pass is taken once.
	for _, w := range domain.MergeWindows(windows) {
		vi, ok := s.venueIdx[w.VenueID]
		if !ok {
			continue
		}
		ks = s.appendWindow(ks, &s.venues[vi].passes, w.From, w.To, cut)
	}
	return s.points(ks), nil
}

// points returns the passes ks, oldest first by (at, position).
func (s *Store) points(ks []int32) []domain.PassPoint {
	slices.SortFunc(ks, func(a, b int32) int {
		switch {
		case s.before(a, b):
			return -1
		case s.before(b, a):
			return 1
		}
		return 0
	})
	out := make([]domain.PassPoint, len(ks))
	for i, k := range ks {
		out[i] = s.point(k)
	}
	return out
}

// PersonNames implements ledger.TraceReads.
func (s *Store) PersonNames(_ context.Context, personIDs []uuid.UUID) (map[uuid.UUID]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[uuid.UUID]string, len(personIDs))
	for _, id := range personIDs {
		if i, ok := s.registered(id); ok {
			out[id] = s.people[i].nameMasked
		}
	}
	return out, nil
}

// VenuesByID implements ledger.TraceReads.
func (s *Store) VenuesByID(_ context.Context, venueIDs []uuid.UUID) (map[uuid.UUID]domain.VenueView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[uuid.UUID]domain.VenueView, len(venueIDs))
	for _, id := range venueIDs {
		if v, ok := s.knownVenue(id); ok {
			out[id] = s.venueView(v)
		}
	}
	return out, nil
}

// applyAuditChain lists an entry of the audit chain, in seq order.
func (s *Store) applyAuditChain(c *projections.Change, ev *domain.AuditRecorded) {
	e := domain.AuditChainEntry{AuditRecorded: *ev, EventID: c.EventID, Position: c.Position}
	e.At, e.From, e.To = e.At.UTC(), e.From.UTC(), e.To.UTC()
	if s.chainSources == nil {
		s.chainSources = make(map[uuid.UUID]uint64)
	}
	s.chainSources[e.SourceEventID] = e.Seq
	n := len(s.chain)
	if n == 0 || s.chain[n-1].Seq <= e.Seq {
		s.chain = append(s.chain, e)
		return
	}
	k := sort.Search(n, func(j int) bool { return s.chain[j].Seq > e.Seq })
	s.chain = slices.Insert(s.chain, k, e)
}

// AuditChain implements ledger.AuditReads: in chain order.
func (s *Store) AuditChain(_ context.Context, q domain.AuditChainQuery) ([]domain.AuditChainEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	out := []domain.AuditChainEntry{}
	k := sort.Search(len(s.chain), func(j int) bool { return s.chain[j].Seq > q.AfterSeq })
	end := len(s.chain)
	if q.Source != uuid.Nil { // the one entry of the source, if any
		seq, ok := s.chainSources[q.Source]
		if !ok || seq <= q.AfterSeq {
			return out, nil
		}
		k = sort.Search(len(s.chain), func(j int) bool { return s.chain[j].Seq >= seq })
		end = min(k+1, len(s.chain))
	}
	for ; k < end && len(out) < limit; k++ {
		e := &s.chain[k]
		if (q.Source != uuid.Nil && e.SourceEventID != q.Source) ||
			(q.PersonID != uuid.Nil && e.PersonID != q.PersonID) || (q.Kind != "" && e.Kind != q.Kind) ||
			(q.Actor != "" && e.Actor != q.Actor) || (!q.Since.IsZero() && e.At.Before(q.Since)) ||
			(!q.Until.IsZero() && !e.At.Before(q.Until)) {
			continue
		}
		out = append(out, *e)
	}
	return out, nil
}
