package http

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

type applyVenueRequest struct {
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	District       string   `json:"district"`
	Address        string   `json:"address"`
	Lat            *float64 `json:"lat"`
	Lng            *float64 `json:"lng"`
	RequireGreen   bool     `json:"require_green"`
	NATWithinHours int      `json:"nat_within_hours"`
}

type venueWriteResponse struct {
	VenueID uuid.UUID `json:"venue_id"`
	Status  string    `json:"status,omitempty"`
	writeResult
}

// applyVenue is POST /v1/venues: a person applies and becomes the manager.
func (s *Server) applyVenue(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	var req applyVenueRequest
	if err := decode(w, r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	var errs fieldErrs
	if req.Lat == nil {
		errs.add(domain.Invalid("lat", "is required"))
	}
	if req.Lng == nil {
		errs.add(domain.Invalid("lng", "is required"))
	}
	if err := errs.err(); err != nil {
		return err
	}
	res, err := s.ledger.ApplyVenue(r.Context(), a, domain.ApplyVenue{
		Name: req.Name, Type: req.Type, District: req.District, Address: req.Address,
		Lat: *req.Lat, Lng: *req.Lng, RequireGreen: req.RequireGreen, NATWithinHours: req.NATWithinHours,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, venueWriteResponse{VenueID: res.ID, Status: "pending", writeResult: resultOf(res)})
}

type venueListResponse struct {
	Venues   []venueJSON `json:"venues"`
	Position uint64      `json:"position"`
}

// listVenues is GET /v1/venues?district=&status=: the registry and the
// review queue (reviewers, admins, dashboards, analysts). A reviewer bound
// to a district lists only that district (domain.DistrictScope).
func (s *Server) listVenues(w http.ResponseWriter, r *http.Request) error {
	return list(s, w, r, venueFilter, s.reads.Venues, func(_ domain.VenueFilter, vs []domain.VenueView, pos uint64) any {
		return venueListResponse{Venues: mapSlice(vs, venueOf), Position: pos}
	})
}

// venueFilter reads GET /v1/venues' query.
func venueFilter(r *http.Request) (domain.VenueFilter, error) {
	f := domain.VenueFilter{Status: r.URL.Query().Get("status")}
	var err error
	if f.District, err = districtScope(r, false); err != nil {
		return f, err
	}
	if err := oneOf("status", f.Status, "must be pending, approved or rejected", "pending", "approved", "rejected"); err != nil {
		return f, err
	}
	f.Limit, err = queryLimit(r, 100, 1000)
	return f, err
}

// venueResponse is a venue as its staff, reviewers, admins, dashboards and
// analysts see it.
type venueResponse struct {
	venueJSON
	// Code is the venue code, for staff, reviewers and admins once approved.
	Code     string `json:"code,omitempty"`
	Position uint64 `json:"position"`
}

// publicVenueResponse is a venue as anyone else sees it.
type publicVenueResponse struct {
	publicVenueJSON
	Position uint64 `json:"position"`
}

// getVenue is GET /v1/venues/{id}: the full record for those who may read
// it (domain.MayReadVenueRecord), with the code for those who may print it
// (domain.MayPrintVenueCode: not a scanner, not a reviewer of another
// district); the public face for anyone else.
func (s *Server) getVenue(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	v, pos, err := readByID(s, r, s.reads.Venue)
	if err != nil {
		return err
	}
	if !domain.MayReadVenueRecord(a, v) && !domain.MayPrintVenueCode(a, v) {
		return writeJSON(w, http.StatusOK, publicVenueResponse{publicVenueJSON: publicVenueOf(v), Position: pos})
	}
	resp := venueResponse{venueJSON: venueOf(v), Position: pos}
	if resp.Admins == nil {
		resp.Admins = []uuid.UUID{}
	}
	if v.Status == domain.VenueStatusApproved && domain.MayPrintVenueCode(a, v) {
		resp.Code = s.signer.IssueVenueCode(v.ID)
	}
	return writeJSON(w, http.StatusOK, resp)
}

// venueCodePNG is GET /v1/venues/{id}/code.png: the printable QR image of
// an approved venue's code.
func (s *Server) venueCodePNG(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	v, _, err := readByID(s, r, s.reads.Venue)
	if err != nil {
		return err
	}
	if !domain.MayPrintVenueCode(a, v) {
		return forbidden("only the venue's manager and sub-admins, reviewers of its district and admins may print its code")
	}
	if v.Status != domain.VenueStatusApproved {
		return domain.Errorf(domain.ErrConflict, "venue is %s: a code is issued only once it is approved", v.Status)
	}
	w.Header().Set("Cache-Control", "private, max-age=3600")
	return writePNG(w, s.signer.IssueVenueCode(v.ID), 1024)
}

// reviewRequest is a review of a venue or a declaration.
type reviewRequest struct {
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
}

// reviewVenue is POST /v1/venues/{id}/review (reviewer or admin).
func (s *Server) reviewVenue(w http.ResponseWriter, r *http.Request) error {
	return writeOn(s, w, r, func(ctx context.Context, a domain.Actor, id uuid.UUID, req reviewRequest) (any, error) {
		res, err := s.ledger.ReviewVenue(ctx, a, id, domain.ReviewVenue(req))
		status := domain.ReviewedStatus(req.Decision, domain.VenueStatusApproved, domain.VenueStatusRejected)
		return venueWriteResponse{VenueID: id, Status: status, writeResult: resultOf(res)}, err
	})
}

type subAdminRequest struct {
	PersonID string `json:"person_id"`
}

type subAdminResponse struct {
	VenueID  uuid.UUID `json:"venue_id"`
	PersonID uuid.UUID `json:"person_id"`
	writeResult
}

// addSubAdmin is POST /v1/venues/{id}/admins: the manager adds a registered
// person as sub-admin.
func (s *Server) addSubAdmin(w http.ResponseWriter, r *http.Request) error {
	var req subAdminRequest
	a := actorOf(r)
	venueID, err := s.startWrite(w, r, &req)
	if err != nil {
		return err
	}
	personID, err := parseID("person_id", req.PersonID)
	if err != nil {
		return err
	}
	res, err := s.ledger.AddSubAdmin(r.Context(), a, venueID, personID)
	if err != nil {
		return err
	}
	return writeJSON(w, createdOr(res.Duplicate), subAdminResponse{VenueID: venueID, PersonID: personID, writeResult: resultOf(res)})
}

// removeSubAdmin is DELETE /v1/venues/{id}/admins/{person_id}.
func (s *Server) removeSubAdmin(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	venueID, err := pathID(r, "id")
	if err != nil {
		return err
	}
	personID, err := pathID(r, "person_id")
	if err != nil {
		return err
	}
	res, err := s.ledger.RemoveSubAdmin(r.Context(), a, venueID, personID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, subAdminResponse{VenueID: venueID, PersonID: personID, writeResult: resultOf(res)})
}

// staffVenue loads venue {id} for a staff read by a: its staff and
// scanners, admins, and the roles in also (domain.MayReadVenueStaffView).
// A scanner of another venue is refused before the read.
func (s *Server) staffVenue(r *http.Request, a domain.Actor, also domain.Roles) (domain.VenueView, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return domain.VenueView{}, err
	}
	if a.Role == domain.RoleScanner && a.VenueID != id {
		return domain.VenueView{}, forbidden("a scanner reads only its own venue")
	}
	v, err := s.reads.Venue(r.Context(), id)
	if err != nil {
		return domain.VenueView{}, err
	}
	if !domain.MayReadVenueStaffView(a, v, also) {
		return domain.VenueView{}, forbidden("only the venue's own staff may read it")
	}
	return v, nil
}

type entriesResponse struct {
	VenueID    uuid.UUID   `json:"venue_id"`
	Entries    []entryJSON `json:"entries"`
	NextCursor string      `json:"next_cursor,omitempty"`
	Position   uint64      `json:"position"`
}

// venueEntries is GET /v1/venues/{id}/entries: the venue's entry and exit
// list, newest first, for its own staff and scanners (and admins).
func (s *Server) venueEntries(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	var err error
	q := r.URL.Query()
	eq := domain.EntryQuery{Direction: q.Get("direction"), Decision: q.Get("decision")}
	if eq.From, err = parseTime("from", q.Get("from")); err != nil {
		return err
	}
	if eq.To, err = parseTime("to", q.Get("to")); err != nil {
		return err
	}
	if !eq.From.IsZero() && !eq.To.IsZero() && eq.To.Before(eq.From) {
		return domain.Invalid("to", "must not be before from")
	}
	if err := oneOf("direction", eq.Direction, "must be in or out", "in", "out"); err != nil {
		return err
	}
	if err := oneOf("decision", eq.Decision, "must be pass or deny", "pass", "deny"); err != nil {
		return err
	}
	limit, err := queryLimit(r, 50, 500)
	if err != nil {
		return err
	}
	cur, err := queryCursor(r)
	if err != nil {
		return err
	}
	eq.AfterAt, eq.AfterPosition = cur.at, cur.position
	pos, err := s.readPosition(r)
	if err != nil {
		return err
	}
	v, err := s.staffVenue(r, a, nil)
	if err != nil {
		return err
	}
	eq.VenueID = v.ID
	eq.Limit = limit + 1 // one more tells whether another page follows
	entries, err := s.reads.Entries(r.Context(), eq)
	if err != nil {
		return err
	}
	resp := entriesResponse{VenueID: v.ID, Position: pos}
	if len(entries) > limit {
		entries = entries[:limit]
		last := entries[limit-1]
		resp.NextCursor = cursor{at: last.At, position: last.Position, scope: scopeOf(r)}.String()
	}
	resp.Entries = make([]entryJSON, len(entries))
	for i, e := range entries {
		resp.Entries[i] = entryOf(e)
	}
	return writeJSON(w, http.StatusOK, resp)
}

type occupancyResponse struct {
	VenueID      uuid.UUID `json:"venue_id"`
	Occupancy    int       `json:"occupancy"`
	At           time.Time `json:"at"`
	DwellSeconds int64     `json:"dwell_seconds"`
	Position     uint64    `json:"position"`
}

// venueOccupancy is GET /v1/venues/{id}/occupancy: people inside now
// (entries minus exits; an entry with no exit ends after the venue type's
// dwell). For the venue's staff, admins and dashboards.
func (s *Server) venueOccupancy(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	pos, err := s.readPosition(r)
	if err != nil {
		return err
	}
	v, err := s.staffVenue(r, a, domain.Dashboards)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	dwell := s.dwell(v.Type)
	n, err := s.reads.Occupancy(r.Context(), v.ID, now, dwell)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, occupancyResponse{VenueID: v.ID, Occupancy: n, At: now,
		DwellSeconds: int64(dwell / time.Second), Position: pos})
}
