package http

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/skip2/go-qrcode"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// writeResult is the answer to a write: the event it appended and where.
type writeResult struct {
	EventID   uuid.UUID `json:"event_id"`
	Position  uint64    `json:"position"`
	Duplicate bool      `json:"duplicate,omitempty"`
}

func resultOf(r ledger.Result) writeResult {
	return writeResult{EventID: r.EventID, Position: r.Position, Duplicate: r.Duplicate}
}

// createdOr is 201 for a new event and 200 for a retry answered with the
// original result.
func createdOr(duplicate bool) int {
	if duplicate {
		return http.StatusOK
	}
	return http.StatusCreated
}

type registerRequest struct {
	Name     string `json:"name"`
	IDType   string `json:"id_type"`
	IDNumber string `json:"id_number"`
	Phone    string `json:"phone"`
	// EventID makes a retry idempotent.
	EventID string `json:"event_id"`
}

type registerResponse struct {
	PersonID uuid.UUID `json:"person_id"`
	Token    string    `json:"token"`
	writeResult
}

// registerPerson is POST /v1/persons: public and rate-limited. It answers
// with a person bearer token for the new person.
func (s *Server) registerPerson(w http.ResponseWriter, r *http.Request) error {
	var req registerRequest
	if err := decode(w, r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	eventID, err := parseOptionalID("event_id", req.EventID)
	if err != nil {
		return err
	}
	res, err := s.ledger.RegisterPerson(r.Context(), domain.Actor{Subject: "public"}, domain.RegisterPerson{
		EventID: eventID, Name: req.Name, IDType: req.IDType, IDNumber: req.IDNumber, Phone: req.Phone,
	})
	if err != nil {
		return err
	}
	tok, err := s.signer.IssueBearer(domain.Actor{Role: domain.RolePerson, PersonID: res.ID}, s.opts.BearerTTL)
	if err != nil {
		return err
	}
	return writeJSON(w, createdOr(res.Duplicate), registerResponse{PersonID: res.ID, Token: tok, writeResult: resultOf(res)})
}

type verifyRequest struct {
	Method string `json:"method"`
	Result string `json:"result"`
}

type personWriteResponse struct {
	PersonID uuid.UUID `json:"person_id"`
	writeResult
}

// verifyPerson is POST /v1/persons/{id}/verification (reviewer or admin).
func (s *Server) verifyPerson(w http.ResponseWriter, r *http.Request) error {
	return writeOn(s, w, r, func(ctx context.Context, a domain.Actor, id uuid.UUID, req verifyRequest) (any, error) {
		res, err := s.ledger.VerifyPerson(ctx, a, id, domain.VerifyPerson(req))
		return personWriteResponse{PersonID: id, writeResult: resultOf(res)}, err
	})
}

// reasonRequest is the body of a write that gives only its reason (a
// release, an erasure).
type reasonRequest struct {
	Reason string `json:"reason"`
}

// releasePerson is POST /v1/persons/{id}/release: a reviewer who checked
// the document's owner in person voids a family member's registration of
// it, so the owner can register (a stranger had registered their document as
// "family").
func (s *Server) releasePerson(w http.ResponseWriter, r *http.Request) error {
	return writeOn(s, w, r, func(ctx context.Context, a domain.Actor, id uuid.UUID, req reasonRequest) (any, error) {
		res, err := s.ledger.ReleasePerson(ctx, a, id, domain.ReleasePerson(req))
		return personWriteResponse{PersonID: id, writeResult: resultOf(res)}, err
	})
}

type erasureResponse struct {
	PersonID uuid.UUID `json:"person_id"`
	writeResult
	// Dependants are the family members erased with the person.
	Dependants []uuid.UUID `json:"dependants"`
}

// erasePerson is POST /v1/persons/{id}/erasure (admin): the person (and the
// family members registered under them) is erased. It waits for the read
// models to hold the whole log first, so the family list is complete, and
// for them to apply the erasure before it answers, so a read after the
// answer no longer finds the person's data. Calling it again answers the
// same erasure with duplicate set.
func (s *Server) erasePerson(w http.ResponseWriter, r *http.Request) error {
	var req reasonRequest
	id, err := s.startWrite(w, r, &req)
	if err != nil {
		return err
	}
	if err := s.waitForLog(r.Context()); err != nil {
		return err
	}
	res, err := s.ledger.ErasePerson(r.Context(), actorOf(r), id, domain.ErasePerson{Reason: req.Reason})
	if err != nil {
		return err
	}
	if err := s.waitFor(r.Context(), res.Position); err != nil {
		// The erasure is stored and its keys destroyed; the read models
		// apply it in a moment (min_position waits for it).
		s.log.Warn("erasure answered before the read models applied it", "position", res.Position, "err", err)
	}
	dependants := res.Dependants
	if dependants == nil {
		dependants = []uuid.UUID{}
	}
	return writeJSON(w, http.StatusOK, erasureResponse{PersonID: id, writeResult: resultOf(res.Result), Dependants: dependants})
}

type familyMemberRequest struct {
	Name     string `json:"name"`
	IDType   string `json:"id_type"`
	IDNumber string `json:"id_number"`
	Relation string `json:"relation"`
}

// familyOnly is why a caller may not add family members to a person.
const familyOnly = "only the guardian may add their family members"

// addFamilyMember is POST /v1/persons/{id}/family-members: the guardian
// registers a dependant without a phone.
func (s *Server) addFamilyMember(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if a.PersonID != id {
		return forbidden(familyOnly)
	}
	var req familyMemberRequest
	if err := decode(w, r, s.opts.MaxBodyBytes, &req); err != nil {
		return err
	}
	res, err := s.ledger.AddFamilyMember(r.Context(), a, id, domain.AddFamilyMember{
		Name: req.Name, IDType: req.IDType, IDNumber: req.IDNumber, Relation: req.Relation,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, personWriteResponse{PersonID: res.ID, writeResult: resultOf(res)})
}

type personResponse struct {
	personJSON
	Verified bool        `json:"verified"`
	Health   *healthJSON `json:"health"`
	Position uint64      `json:"position"`
}

// personFor parses {id} and loads the person for a read by a: only when a
// may see them. A person that does not exist and one a may not see are told
// apart only for admins and reviewers; other callers get 403 for both, so
// ids cannot be probed.
func (s *Server) personFor(r *http.Request, a domain.Actor) (domain.PersonView, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return domain.PersonView{}, err
	}
	p, err := s.reads.Person(r.Context(), id)
	if err != nil {
		if a.Role == domain.RolePerson && a.PersonID != id && errors.Is(err, domain.ErrNotFound) {
			return domain.PersonView{}, forbidden("a person may read only themself and their family members")
		}
		return domain.PersonView{}, err
	}
	if !domain.MayReadPerson(a, p) {
		return domain.PersonView{}, forbidden("a person may read only themself and their family members")
	}
	return p, nil
}

// getPerson is GET /v1/persons/{id}.
func (s *Server) getPerson(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	pos, err := s.readPosition(r)
	if err != nil {
		return err
	}
	p, err := s.personFor(r, a)
	if err != nil {
		return err
	}
	resp := personResponse{personJSON: personOf(p), Verified: p.Verification == domain.VerificationApproved, Position: pos}
	if resp.FamilyMembers == nil {
		resp.FamilyMembers = []uuid.UUID{}
	}
	if h, ok, err := s.reads.Health(r.Context(), p.IDHash); err != nil {
		return err
	} else if ok {
		hj := healthOf(h)
		resp.Health = &hj
	}
	return writeJSON(w, http.StatusOK, resp)
}

type codeResponse struct {
	PersonID  uuid.UUID `json:"person_id"`
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// personalCode checks that the caller may show the person's code (themself,
// or their guardian: 亲属码) and issues one.
func (s *Server) personalCode(r *http.Request) (codeResponse, error) {
	a := actorOf(r)
	if _, err := s.readPosition(r); err != nil {
		return codeResponse{}, err
	}
	p, err := s.personFor(r, a)
	if err != nil {
		return codeResponse{}, err
	}
	if err := domain.MayShowPersonalCode(p); err != nil {
		return codeResponse{}, err
	}
	code, exp := s.signer.IssuePersonalCode(p.ID)
	return codeResponse{PersonID: p.ID, Code: code, ExpiresAt: exp}, nil
}

// personCode is GET /v1/persons/{id}/code.
func (s *Server) personCode(w http.ResponseWriter, r *http.Request) error {
	c, err := s.personalCode(r)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, c)
}

// personCodePNG is GET /v1/persons/{id}/code.png: the code as a QR image.
func (s *Server) personCodePNG(w http.ResponseWriter, r *http.Request) error {
	c, err := s.personalCode(r)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Expires", c.ExpiresAt.UTC().Format(http.TimeFormat))
	return writePNG(w, c.Code, 384)
}

// writePNG answers with content as a QR code image of size pixels.
func writePNG(w http.ResponseWriter, content string, size int) error {
	png, err := qrcode.Encode(content, qrcode.Medium, size)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "image/png")
	w.WriteHeader(http.StatusOK)
	w.Write(png)
	return nil
}
