package http

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// traceRequest is the body of POST /v1/traces.
type traceRequest struct {
	PersonID          string `json:"person_id"`
	IDType            string `json:"id_type"`
	IDNumber          string `json:"id_number"`
	From              string `json:"from"`
	To                string `json:"to"`
	Depth             int    `json:"depth"`
	MinOverlapMinutes int    `json:"min_overlap_minutes"`
	BufferMinutes     int    `json:"buffer_minutes"`
	Reason            string `json:"reason"`
	AsOf              string `json:"as_of"`
}

// contactTraceResponse is the answer to POST /v1/traces.
type contactTraceResponse struct {
	TraceID uuid.UUID `json:"trace_id"`
	// EventID and Position name the audit event recorded for the trace.
	EventID           uuid.UUID          `json:"event_id"`
	Position          uint64             `json:"position"`
	ReadPosition      uint64             `json:"read_position"`
	AsOf              time.Time          `json:"as_of"`
	From              time.Time          `json:"from"`
	To                time.Time          `json:"to"`
	Depth             int                `json:"depth"`
	MinOverlapMinutes int                `json:"min_overlap_minutes"`
	BufferMinutes     int                `json:"buffer_minutes"`
	Index             traceIndexJSON     `json:"index"`
	Visits            []traceVisitJSON   `json:"visits"`
	Contacts          []traceContactJSON `json:"contacts"`
}

// maxMinutes bounds the minute fields before they become durations.
const maxMinutes = 1 << 20

// createTrace is POST /v1/traces (analyst or admin): the contacts of a
// person in a window, at depth 1 or 2, as JSON or (Accept: text/csv) as
// CSV. The trace is recorded in the analyst's audit trail before the answer
// is written; bad input records nothing.
//
// The read models are first brought up to the log's position at the time of
// the request, so the answer holds every pass recorded before it (and an
// as_of answer every pass recorded up to as_of).
func (s *Server) createTrace(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	var req traceRequest
	if err := decode(w, r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	q, err := req.query()
	if err != nil {
		return err
	}
	if err := s.waitForLog(r.Context()); err != nil {
		return err
	}
	res, err := s.ledger.Trace(r.Context(), a, q)
	if err != nil {
		return err
	}
	if wantsCSV(r) {
		s.writeTraceCSV(w, r, res)
		return nil
	}
	return s.writeTraceJSON(w, r, res)
}

// contactTraceResponseOf renders a trace's answer.
func contactTraceResponseOf(res ledger.TraceResult) contactTraceResponse {
	out := traceHeadOf(res)
	out.Contacts = mapSlice(res.Contacts, traceContactOf)
	return out
}

// traceHeadOf renders a trace's answer but its contacts.
func traceHeadOf(res ledger.TraceResult) contactTraceResponse {
	return contactTraceResponse{
		TraceID: res.TraceID, EventID: res.EventID, Position: res.Position, ReadPosition: res.ReadPosition,
		AsOf: res.AsOf, From: res.From, To: res.To, Depth: res.Depth,
		MinOverlapMinutes: int(res.MinOverlap / time.Minute), BufferMinutes: int(res.Buffer / time.Minute),
		Index: traceIndexOf(res.Index), Visits: mapSlice(res.Visits, traceVisitOf),
	}
}

// writeTraceJSON writes a trace's answer, the bytes writeJSON would write
// for contactTraceResponseOf(res), with its contacts (the last field) encoded
// one at a time into a buffered stream: a depth-2 answer over a dense city
// (hundreds of thousands of overlaps) is never held whole, as render types or
// as JSON. An error is returned only before the answer is committed (201);
// one after it (the client gone) is logged.
func (s *Server) writeTraceJSON(w http.ResponseWriter, r *http.Request, res ledger.TraceResult) error {
	head := traceHeadOf(res)
	if res.Contacts == nil {
		return writeJSON(w, http.StatusCreated, head)
	}
	head.Contacts = []traceContactJSON{}
	b, err := json.Marshal(head)
	if err != nil {
		return fmt.Errorf("encode trace: %w", err)
	}
	noteAnswer(w, head)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusCreated)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(b[:len(b)-len("]}")]) // b ends with the empty contacts and the close: []}
	for i, c := range res.Contacts {
		if i > 0 {
			bw.WriteByte(',')
		}
		cb, err := json.Marshal(traceContactOf(c))
		if err != nil {
			s.logInternal(r, fmt.Errorf("encode trace contact: %w", err))
			return nil
		}
		if _, err := bw.Write(cb); err != nil { // the client left: stop making the rest
			s.logAnswerBroke(r, fmt.Errorf("write trace: %w", err))
			return nil
		}
	}
	bw.WriteString("]}\n")
	if err := bw.Flush(); err != nil {
		s.logAnswerBroke(r, fmt.Errorf("write trace: %w", err))
	}
	return nil
}

// query turns the request into a domain query; every field that does not
// parse is reported at once.
func (req traceRequest) query() (domain.TraceQuery, error) {
	var errs []error
	q := domain.TraceQuery{IDType: req.IDType, IDNumber: req.IDNumber, Depth: req.Depth, Reason: req.Reason}
	var err error
	if q.PersonID, err = parseOptionalID("person_id", req.PersonID); err != nil {
		errs = append(errs, err)
	}
	if q.From, err = parseTime("from", req.From); err != nil {
		errs = append(errs, err)
	}
	if q.To, err = parseTime("to", req.To); err != nil {
		errs = append(errs, err)
	}
	if q.AsOf, err = parseTime("as_of", req.AsOf); err != nil {
		errs = append(errs, err)
	}
	minutes := func(field string, n int) time.Duration {
		if n < 0 || n > maxMinutes {
			errs = append(errs, domain.Invalid(field, "must be a whole number of minutes from 0"))
			return 0
		}
		return time.Duration(n) * time.Minute
	}
	q.MinOverlap = minutes("min_overlap_minutes", req.MinOverlapMinutes)
	q.Buffer = minutes("buffer_minutes", req.BufferMinutes)
	if len(errs) > 0 {
		return domain.TraceQuery{}, errors.Join(errs...)
	}
	return q, nil
}

// wantsCSV reports whether the client asks for text/csv (RFC 9110,
// 12.5.1): Accept names it (text/csv or text/*) with a quality above zero
// and no lower than what it gives JSON (through application/json,
// application/* or */*). No Accept, */* alone, text/csv;q=0 or
// "text/csv;q=0.4, */*" is JSON.
func wantsCSV(r *http.Request) bool {
	accept := strings.Join(r.Header.Values("Accept"), ",")
	cq, named := acceptQuality(accept, "text", "csv")
	jq, _ := acceptQuality(accept, "application", "json")
	return named && cq > 0 && cq >= jq
}

// acceptQuality is the quality Accept gives typ/sub through its most
// specific range (typ/sub, then typ/*, then */*), and whether that range
// names typ (not */*).
func acceptQuality(accept, typ, sub string) (q float64, named bool) {
	best, specific := 0.0, -1 // specific: 2 typ/sub, 1 typ/*, 0 */*
	for _, part := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		t, st, _ := strings.Cut(strings.ToLower(strings.TrimSpace(mt)), "/")
		level := -1
		switch {
		case t == typ && st == sub:
			level = 2
		case t == typ && st == "*":
			level = 1
		case t == "*" && st == "*":
			level = 0
		}
		if level < 0 || level < specific {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				q = 0 // a quality that is not one (NaN, 1.5) accepts nothing
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
					q = f
				}
			}
		}
		if level > specific || q > best {
			best, specific = q, level
		}
	}
	return best, specific >= 1
}

// csvCell keeps a cell from being read as a formula by a spreadsheet.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// traceCSVHeader is the header row of a trace's CSV.
var traceCSVHeader = []string{"person_id", "name", "depth", "via_person_id", "venue_id", "venue_name",
	"overlap_start", "overlap_end", "overlap_minutes"}

// writeTraceCSV writes a trace's contacts as CSV, one row per co-presence,
// names masked. The trace id and the audit event's position are headers.
func (s *Server) writeTraceCSV(w http.ResponseWriter, r *http.Request, res ledger.TraceResult) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="trace-`+res.TraceID.String()+`.csv"`)
	h.Set("X-Trace-ID", res.TraceID.String())
	h.Set("X-Position", strconv.FormatUint(res.Position, 10))
	w.WriteHeader(http.StatusCreated)
	cw := csv.NewWriter(w)
	cw.Write(traceCSVHeader)
	for _, c := range res.Contacts {
		cw.Write([]string{
			c.PersonID.String(), csvCell(c.NameMasked), strconv.Itoa(c.Depth), c.ViaPersonID.String(),
			c.VenueID.String(), csvCell(c.VenueName), c.OverlapStart.Format(time.RFC3339), c.OverlapEnd.Format(time.RFC3339),
			strconv.Itoa(c.OverlapMinutes),
		})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		s.logAnswerBroke(r, fmt.Errorf("write trace csv: %w", err))
	}
}

// listAudit is GET /v1/audit/looks?from=&to=&limit=&cursor= (admins and
// auditors): the recorded looks at persons' histories with every parameter
// of each, oldest first.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	return list(s, w, r, auditQuery, s.reads.Audit, func(q domain.AuditQuery, entries []domain.AuditEntry, pos uint64) any {
		return pageOf(entries, q.Limit, pos, auditEntryOf, func(e domain.AuditEntry) cursor { return cursor{at: e.At, position: e.Position, scope: scopeOf(r)} })
	})
}

// auditQuery reads GET /v1/audit/looks' query.
func auditQuery(r *http.Request) (domain.AuditQuery, error) {
	qs := r.URL.Query()
	var q domain.AuditQuery
	var err error
	if q.From, err = parseTime("from", qs.Get("from")); err != nil {
		return q, err
	}
	if q.To, err = parseTime("to", qs.Get("to")); err != nil {
		return q, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return q, domain.Invalid("to", "must be after from")
	}
	if q.Limit, err = queryLimit(r, 100, 1000); err != nil {
		return q, err
	}
	cur, err := queryCursor(r)
	q.AfterAt, q.AfterPosition = cur.at, cur.position
	return q, err
}

type traceResponse struct {
	PersonID uuid.UUID `json:"person_id"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	// Source is read_model or log.
	Source   string      `json:"source"`
	Passes   []visitJSON `json:"passes"`
	Position uint64      `json:"position"`
}

// personTrace is GET /v1/persons/{id}/trace?from=&to=&source=&reason=: a
// person's passes, for themself, their guardian, an admin or an analyst.
// source=read_model (the default) reads the read models; source=log replays
// the person's passes straight from the log, with each venue replayed from
// its own events, and gives the same answer (position is then the log's).
// An analyst must give a reason, and the look is recorded in their audit
// trail before the answer is written.
func (s *Server) personTrace(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from, err := parseTime("from", q.Get("from"))
	if err != nil {
		return err
	}
	to, err := parseTime("to", q.Get("to"))
	if err != nil {
		return err
	}
	pos, err := s.readPosition(r)
	if err != nil {
		return err
	}
	hq := ledger.HistoryQuery{PersonID: id, From: from, To: to, Source: q.Get("source"), Reason: q.Get("reason"), ReadPosition: pos}
	res, err := s.ledger.History(r.Context(), actorOf(r), hq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, traceResponse{PersonID: id, From: res.From, To: res.To, Source: res.Source,
		Passes: mapSlice(res.Visits, visitOf), Position: res.Position})
}
