package http

import (
	"context"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
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
	return declare(s, w, r, arrivalRequest.command, s.ledger.DeclareArrival)
}

// command is the arrival as a command; a field that does not parse goes to
// errs.
func (req arrivalRequest) command(errs *fieldErrs) domain.DeclareArrival {
	cmd := domain.DeclareArrival{ArrivalDate: req.ArrivalDate, Origin: req.Origin,
		DestinationDistrict: req.DestinationDistrict, NATResult: req.NATResult}
	cmd.EventID = errs.id(parseOptionalID("event_id", req.EventID))
	cmd.NATAt = errs.at(parseTime("nat_at", req.NATAt))
	for i, id := range req.FamilyMemberIDs {
		cmd.FamilyMemberIDs = append(cmd.FamilyMemberIDs, errs.id(parseID("family_member_ids["+strconv.Itoa(i)+"]", id)))
	}
	return cmd
}

// declareTruck is POST /v1/declarations/truck: a driver files a truck pass.
func (s *Server) declareTruck(w http.ResponseWriter, r *http.Request) error {
	return declare(s, w, r, truckRequest.command, s.ledger.DeclareTruckPass)
}

// command is the truck pass as a command; a field missing or not parsing
// goes to errs.
func (req truckRequest) command(errs *fieldErrs) domain.DeclareTruckPass {
	if req.ItineraryOK == nil {
		errs.add(domain.Invalid("itinerary_ok", "is required"))
	}
	cmd := domain.DeclareTruckPass{PlateNumber: req.PlateNumber, ItineraryOK: req.ItineraryOK != nil && *req.ItineraryOK,
		HealthCodeColour: req.HealthCodeColour, LogisticsPark: req.LogisticsPark, District: req.District,
		ContactName: req.ContactName, ContactPhone: req.ContactPhone}
	cmd.EventID = errs.id(parseOptionalID("event_id", req.EventID))
	cmd.NATProofAt = errs.at(parseTime("nat_proof_at", req.NATProofAt))
	return cmd
}

// declare answers a declaration's submission: the body decodes into Req,
// command turns it into Cmd (every bad field into errs, all refused at
// once), submit runs it as the caller; the answer is the pending
// declaration, 201 (200 for a retry answered with the original).
func declare[Req, Cmd any](s *Server, w http.ResponseWriter, r *http.Request, command func(Req, *fieldErrs) Cmd,
	submit func(context.Context, domain.Actor, Cmd) (ledger.Result, error)) error {
	var req Req
	if err := decode(w, r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	var errs fieldErrs
	cmd := command(req, &errs)
	if err := errs.err(); err != nil {
		return err
	}
	res, err := submit(r.Context(), actorOf(r), cmd)
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
	return writeOn(s, w, r, func(ctx context.Context, a domain.Actor, id uuid.UUID, req reviewRequest) (any, error) {
		res, err := s.ledger.ReviewDeclaration(ctx, a, id, domain.ReviewDeclaration(req))
		status := domain.ReviewedStatus(req.Decision, domain.DeclarationApproved, domain.DeclarationRejected)
		return declarationWriteResponse{DeclarationID: id, Status: status, writeResult: resultOf(res)}, err
	})
}
