package http

import (
	"net/http"
	"strings"

	"github.com/checkin-ledger/ledger/domain"
)

// The audit trail: GET /v1/audit lists the hash chain's entries (who, what,
// when, why and the chain fields), GET /v1/audit/verify checks the chain
// and its anchor, GET /v1/audit/looks lists the looks at persons' histories
// with every parameter of each (the TraceRequested events the chain's look
// entries come from). All for domain.AuditReaders.

// listAuditChain is GET /v1/audit?person=&kind=&actor=&since=&until=&limit=&cursor=:
// the audit chain's entries in chain order.
func (s *Server) listAuditChain(w http.ResponseWriter, r *http.Request) error {
	return list(s, w, r, auditChainQuery, s.reads.AuditChain, func(q domain.AuditChainQuery, entries []domain.AuditChainEntry, pos uint64) any {
		return pageOf(entries, q.Limit, pos, auditChainEntryOf, func(e domain.AuditChainEntry) cursor { return cursor{position: e.Seq, scope: scopeOf(r)} })
	})
}

// auditChainQuery reads GET /v1/audit's query; every bad parameter is
// reported at once.
func auditChainQuery(r *http.Request) (domain.AuditChainQuery, error) {
	qs := r.URL.Query()
	var q domain.AuditChainQuery
	var errs fieldErrs
	q.PersonID = errs.id(parseOptionalID("person", qs.Get("person")))
	if k := qs.Get("kind"); k != "" {
		errs.add(oneOf("kind", k, "must be one of "+strings.Join(domain.AuditKinds, ", "), domain.AuditKinds...))
		q.Kind = k
	}
	if a := qs.Get("actor"); a != "" {
		actor, err := domain.Text("actor", a, 200, false)
		errs.add(err)
		q.Actor = actor
	}
	q.Since = errs.at(parseTime("since", qs.Get("since")))
	q.Until = errs.at(parseTime("until", qs.Get("until")))
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		errs.add(domain.Invalid("until", "must be after since"))
	}
	var err error
	if q.Limit, err = queryLimit(r, 100, 1000); err != nil {
		errs.add(err)
	}
	cur, err := queryCursor(r) // the last listed entry's seq
	errs.add(err)
	q.AfterSeq = cur.position
	return q, errs.err()
}

// verifyAudit is GET /v1/audit/verify: the chain checked entry by entry
// against its anchor, as `ledger audit verify --url` shows it. A broken
// chain is an answer (200, "ok": false, the first broken link), not an
// error.
func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) error {
	report, err := s.ledger.VerifyAudit(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, auditReportOf(report))
}
