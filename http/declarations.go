package http

import (
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// arrivalRequest is an arrival declaration (入临申报) on the wire. Ids and
// times are strings so that a bad one is reported with its field name.
type arrivalRequest struct {
	ArrivalDate         string   `json:"arrival_date"`
	Origin              string   `json:"origin"`
	DestinationDistrict string   `json:"destination_district"`
	NATResult           string   `json:"nat_result"`
	NATAt               string   `json:"nat_at"`
	FamilyMemberIDs     []string `json:"family_member_ids"`
	EventID             string   `json:"event_id"`
}

// truckRequest is a truck pass (货车畅行) on the wire.
type truckRequest struct {
	PlateNumber      string `json:"plate_number"`
	NATProofAt       string `json:"nat_proof_at"`
	ItineraryOK      *bool  `json:"itinerary_ok"`
	HealthCodeColour string `json:"health_code_colour"`
	LogisticsPark    string `json:"logistics_park"`
	District         string `json:"district"`
	ContactName      string `json:"contact_name"`
	ContactPhone     string `json:"contact_phone"`
	EventID          string `json:"event_id"`
}

// declarationWriteResponse answers a submission or a review.
type declarationWriteResponse struct {
	DeclarationID uuid.UUID `json:"declaration_id"`
	Status        string    `json:"status"`
	writeResult
}

// declareArrival is POST /v1/declarations/arrival: a person declares an
// arrival for themself and the family members they are guardian of.
func (s *Server) declareArrival(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	var err error
	var req arrivalRequest
	if err := decode(w, r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	cmd := domain.DeclareArrival{ArrivalDate: req.ArrivalDate, Origin: req.Origin,
		DestinationDistrict: req.DestinationDistrict, NATResult: req.NATResult}
	var errs fieldErrs
	cmd.EventID = errs.id(parseOptionalID("event_id", req.EventID))
	cmd.NATAt = errs.at(parseTime("nat_at", req.NATAt))
	for i, id := range req.FamilyMemberIDs {
		cmd.FamilyMemberIDs = append(cmd.FamilyMemberIDs, errs.id(parseID("family_member_ids["+strconv.Itoa(i)+"]", id)))
	}
	if err := errs.err(); err != nil {
		return err
	}
	res, err := s.ledger.DeclareArrival(r.Context(), a, cmd)
	if err != nil {
		return err
	}
	return writeJSON(w, createdOr(res.Duplicate), declarationWriteResponse{DeclarationID: res.ID,
		Status: domain.DeclarationPending, writeResult: resultOf(res)})
}

// declareTruck is POST /v1/declarations/truck: a driver files a truck pass.
func (s *Server) declareTruck(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	var err error
	var req truckRequest
	if err := decode(w, r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	var errs fieldErrs
	if req.ItineraryOK == nil {
		errs.add(domain.Invalid("itinerary_ok", "is required"))
	}
	cmd := domain.DeclareTruckPass{PlateNumber: req.PlateNumber, ItineraryOK: req.ItineraryOK != nil && *req.ItineraryOK,
		HealthCodeColour: req.HealthCodeColour, LogisticsPark: req.LogisticsPark, District: req.District,
		ContactName: req.ContactName, ContactPhone: req.ContactPhone}
	cmd.EventID = errs.id(parseOptionalID("event_id", req.EventID))
	cmd.NATProofAt = errs.at(parseTime("nat_proof_at", req.NATProofAt))
	if err := errs.err(); err != nil {
		return err
	}
	res, err := s.ledger.DeclareTruckPass(r.Context(), a, cmd)
	if err != nil {
		return err
	}
	return writeJSON(w, createdOr(res.Duplicate), declarationWriteResponse{DeclarationID: res.ID,
		Status: domain.DeclarationPending, writeResult: resultOf(res)})
}

type declarationListResponse struct {
	Declarations []declarationJSON `json:"declarations"`
	Position     uint64            `json:"position"`
}

// listDeclarations is GET /v1/declarations?district=&status=&kind=: the
// review queue (reviewers and admins), first come first served.
func (s *Server) listDeclarations(w http.ResponseWriter, r *http.Request) error {
	return list(s, w, r, declarationFilter, s.reads.Declarations, func(_ domain.DeclarationFilter, ds []domain.DeclarationView, pos uint64) any {
		return declarationListResponse{Declarations: mapSlice(ds, declarationOf), Position: pos}
	})
}

// declarationFilter reads GET /v1/declarations' query. A district's
// reviewer sees that district's queue.
func declarationFilter(r *http.Request) (domain.DeclarationFilter, error) {
	q := r.URL.Query()
	f := domain.DeclarationFilter{Status: q.Get("status"), Kind: q.Get("kind")}
	var err error
	if f.District, err = districtScope(r, false); err != nil {
		return f, err
	}
	if err := oneOf("status", f.Status, "must be pending, approved or rejected",
		domain.DeclarationPending, domain.DeclarationApproved, domain.DeclarationRejected); err != nil {
		return f, err
	}
	if err := oneOf("kind", f.Kind, "must be arrival or truck", domain.DeclarationArrival, domain.DeclarationTruck); err != nil {
		return f, err
	}
	f.Limit, err = queryLimit(r, 100, 1000)
	return f, err
}

type declarationResponse struct {
	declarationJSON
	Position uint64 `json:"position"`
}

// declarationReaders is why a caller may not read a declaration.
const declarationReaders = "a declaration is for its declarant, reviewers and admins"

// getDeclaration is GET /v1/declarations/{id}: a declaration with its full
// history, for its declarant, reviewers and admins.
func (s *Server) getDeclaration(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	d, pos, err := readByID(s, r, s.reads.Declaration)
	if err != nil {
		return err
	}
	if !domain.MayReadDeclaration(a, d) {
		return forbidden(declarationReaders)
	}
	return writeJSON(w, http.StatusOK, declarationResponse{declarationJSON: declarationOf(d), Position: pos})
}

// reviewDeclaration is POST /v1/declarations/{id}/review (reviewer or
// admin). A declaration reviewed twice is a conflict.
func (s *Server) reviewDeclaration(w http.ResponseWriter, r *http.Request) error {
	var req reviewRequest
	a := actorOf(r)
	id, err := s.startWrite(w, r, &req)
	if err != nil {
		return err
	}
	res, err := s.ledger.ReviewDeclaration(r.Context(), a, id, domain.ReviewDeclaration{Decision: req.Decision, Reason: req.Reason})
	if err != nil {
		return err
	}
	status := domain.DeclarationRejected
	if req.Decision == domain.ReviewApprove {
		status = domain.DeclarationApproved
	}
	return writeJSON(w, http.StatusOK, declarationWriteResponse{DeclarationID: id, Status: status, writeResult: resultOf(res)})
}
