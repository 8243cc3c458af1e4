package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/token"
)

// passRequest is one pass on the wire: a self scan (venue_code), a staff
// scan (venue_id, personal_code) or a manual entry (venue_id, id_type,
// id_number). Ids and times are kept as strings so that a bad one is
// reported with its field name.
type passRequest struct {
	Method          string   `json:"method"`
	Direction       string   `json:"direction"`
	VenueCode       string   `json:"venue_code"`
	VenueID         string   `json:"venue_id"`
	PersonalCode    string   `json:"personal_code"`
	IDType          string   `json:"id_type"`
	IDNumber        string   `json:"id_number"`
	FamilyMemberIDs []string `json:"family_member_ids"`
	EventID         string   `json:"event_id"`
	OccurredAt      string   `json:"occurred_at"`
}

// passResponse is the answer to a pass: the "one screen".
type passResponse struct {
	EventID  uuid.UUID     `json:"event_id"`
	Position uint64        `json:"position"`
	Decision string        `json:"decision"`
	Screen   domain.Screen `json:"screen"`
	// HealthAsOf is the moment whose health status the screen shows and
	// the decision was made on: the pass's time, so a pass a scanner
	// uploads later is decided on what the ledger knew then.
	HealthAsOf time.Time `json:"health_as_of"`
	Duplicate  bool      `json:"duplicate,omitempty"`
	// Family holds the passes of the dependants who passed with a guardian.
	Family []passResponse `json:"family,omitempty"`
}

func passResponseOf(r ledger.PassResult) passResponse {
	out := passResponse{EventID: r.EventID, Position: r.Position, Decision: r.Decision, Screen: r.Screen, HealthAsOf: r.Screen.At, Duplicate: r.Duplicate}
	for _, f := range r.Family {
		out.Family = append(out.Family, passResponseOf(f))
	}
	return out
}

// passCommand turns a pass request into a command for actor a, checking the
// codes it carries; every field that does not parse is reported at once.
// Whether a may record it at that venue is the ledger's rule
// (domain.IsVenueStaff).
func (s *Server) passCommand(a domain.Actor, req *passRequest) (domain.RecordPass, error) {
	cmd := domain.RecordPass{Method: req.Method, Direction: req.Direction}
	var errs fieldErrs
	cmd.EventID = errs.id(parseOptionalID("event_id", req.EventID))
	cmd.OccurredAt = errs.at(parseTime("occurred_at", req.OccurredAt))
	switch req.Method {
	case domain.MethodSelfScan:
		errs.add(unused(req.Method, "personal_code", req.PersonalCode, "id_type", req.IDType, "id_number", req.IDNumber))
		if req.VenueCode == "" {
			errs.add(domain.Invalid("venue_code", "is required for a self scan"))
		} else if id, err := s.signer.ParseVenueCode(req.VenueCode); err != nil {
			errs.add(codeError("venue_code", err))
		} else {
			cmd.VenueID = id
		}
		if req.VenueID != "" {
			if id := errs.id(parseID("venue_id", req.VenueID)); id != uuid.Nil && cmd.VenueID != uuid.Nil && id != cmd.VenueID {
				errs.add(domain.Invalid("venue_id", "does not match venue_code"))
			}
		}
		cmd.PersonID = a.PersonID
	case domain.MethodStaffScan:
		errs.add(unused(req.Method, "venue_code", req.VenueCode, "id_type", req.IDType, "id_number", req.IDNumber))
		cmd.VenueID = errs.id(parseID("venue_id", req.VenueID))
		if req.PersonalCode == "" {
			errs.add(domain.Invalid("personal_code", "is required for a staff scan"))
		} else {
			// The code is checked as the scanner saw it: at the pass's
			// time, within the clock skew when a device's clock says when.
			skew := s.opts.ClockSkew
			if cmd.OccurredAt.IsZero() {
				skew = 0 // now, by the signer's clock
			}
			if pc, err := s.signer.ParsePersonalCodeAt(req.PersonalCode, cmd.OccurredAt, skew); err != nil {
				errs.add(codeError("personal_code", err))
			} else {
				cmd.PersonID, cmd.CodeID = pc.PersonID, pc.ID
			}
		}
	case domain.MethodManual:
		errs.add(unused(req.Method, "venue_code", req.VenueCode, "personal_code", req.PersonalCode))
		cmd.VenueID = errs.id(parseID("venue_id", req.VenueID))
		if req.IDType == "" {
			errs.add(domain.Invalid("id_type", "is required for a manual entry"))
		}
		if req.IDNumber == "" {
			errs.add(domain.Invalid("id_number", "is required for a manual entry"))
		}
		cmd.IDType, cmd.IDNumber = req.IDType, req.IDNumber
	default:
		errs.add(domain.Invalid("method", "must be self_scan, staff_scan or manual"))
	}
	if len(req.FamilyMemberIDs) > 0 {
		if len(req.FamilyMemberIDs) > domain.MaxFamilyPerPass {
			errs.add(domain.Invalid("family_member_ids", "has %d members, at most %d allowed", len(req.FamilyMemberIDs), domain.MaxFamilyPerPass))
		} else {
			cmd.FamilyMemberIDs = make([]uuid.UUID, len(req.FamilyMemberIDs))
			for i, s := range req.FamilyMemberIDs {
				cmd.FamilyMemberIDs[i] = errs.id(parseID("family_member_ids["+strconv.Itoa(i)+"]", s))
			}
		}
	}
	return cmd, errs.err()
}

// unused refuses fields (name, value pairs) that method does not take, so a
// client that mixes up methods hears about it; every such field at once.
func unused(method string, pairs ...string) error {
	var errs []error
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			errs = append(errs, domain.Invalid(pairs[i], "is not used with method %s", method))
		}
	}
	return errors.Join(errs...)
}

// codeError is the validation error for a personal or venue code that was
// refused: expired, altered, forged or of another kind.
func codeError(field string, err error) error {
	if errors.Is(err, token.ErrExpired) {
		return domain.Invalid(field, "has expired; show a fresh code")
	}
	return domain.Invalid(field, "is not a valid code")
}

// recordPass is POST /v1/passes: 201 with the one screen for a new pass,
// 200 with the original answer (duplicate: true) when the event id was
// already recorded.
func (s *Server) recordPass(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	req, err := s.readPassRequest(w, r)
	if err != nil {
		return err
	}
	cmd, err := s.passCommand(a, &req)
	if err != nil {
		return err
	}
	res, err := s.ledger.RecordPass(r.Context(), a, cmd)
	if err != nil {
		return err
	}
	return writePass(w, res)
}

// decodeBatch reads a batch body. Most batches are well formed: every item
// is read in one go, by hand in the plain shape, else with encoding/json.
// Only when that fails is each item decoded on its own, so that a bad item
// is rejected alone with its own error (itemErr[i], when itemErr is set);
// err is for a body that is not a batch at all.
func decodeBatch(body []byte) (items []passRequest, itemErr []error, err error) {
	if items, ok := decodeBatchRequest(body); ok {
		return items, nil, nil
	}
	if err := decodeOne(body, &struct {
		Passes *[]passRequest `json:"passes"`
	}{&items}); err == nil {
		return items, nil, nil
	}
	raws, ok := batchItems(body)
	if !ok {
		var req batchRequest
		if err := decodeOne(body, &req); err != nil {
			return nil, nil, err
		}
		raws = req.Passes
	}
	items, itemErr = make([]passRequest, len(raws)), make([]error, len(raws))
	for i, raw := range raws {
		itemErr[i] = decodeBytes(raw, &items[i])
	}
	return items, itemErr, nil
}

// batchItems splits a batch body into its raw items when the body itself
// is right (an object whose only member, passes, appears once), whatever
// the items hold: a name repeated inside an item is that item's problem,
// which decodeBytes names, not the batch's (the strict decoder refused the
// whole body for it, and an offline scanner's 1,000 passes with it).
func batchItems(body []byte) ([]json.RawMessage, bool) {
	var req batchRequest
	if jsonv2.Unmarshal(body, &req, strictJSON, jsontext.AllowDuplicateNames(true)) != nil {
		return nil, false
	}
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, false
	}
	seen := map[string]bool{}
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil || seen[tok.String()] {
			return nil, false
		}
		seen[tok.String()] = true
		if dec.SkipValue() != nil {
			return nil, false
		}
	}
	return req.Passes, true
}

// readPassRequest reads the body of a single pass: by hand in its plain
// shape, by encoding/json otherwise (which also names what is wrong).
func (s *Server) readPassRequest(w http.ResponseWriter, r *http.Request) (passRequest, error) {
	var req passRequest
	body, err := readBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		return req, err
	}
	return passRequestOf(body)
}

// passRequestOf decodes a single pass's body: by hand in its plain shape,
// by the strict decoder otherwise. It takes and refuses exactly what
// decodeOne does (the fast path takes only bodies decodeOne takes, with
// the same result; the tests hold it to that).
func passRequestOf(body []byte) (passRequest, error) {
	var req passRequest
	if decodePassRequest(body, &req) {
		return req, nil
	}
	req = passRequest{}
	return req, decodeOne(body, &req)
}

// writePass answers a pass with its one screen: 201, or 200 for a retry.
func writePass(w http.ResponseWriter, res ledger.PassResult) error {
	resp := passResponseOf(res)
	b, ok := appendPassResponse(make([]byte, 0, 512), &resp)
	if !ok {
		return writeJSON(w, createdOr(res.Duplicate), resp)
	}
	noteAnswer(w, resp)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(createdOr(res.Duplicate))
	w.Write(append(b, '\n'))
	return nil
}

type batchRequest struct {
	Passes []json.RawMessage `json:"passes"`
}

type batchResult struct {
	EventID  uuid.UUID `json:"event_id,omitzero"`
	Status   string    `json:"status"`
	Position uint64    `json:"position,omitempty"`
	Decision string    `json:"decision,omitempty"`
	Error    *Problem  `json:"error,omitempty"`
}

type batchResponse struct {
	Results []batchResult `json:"results"`
	// Position is the highest position among the results.
	Position uint64 `json:"position"`
}

// recordPassBatch is POST /v1/passes/batch: up to 1,000 passes from a
// scanner that was offline, one result per item in order. A bad item is
// rejected on its own; the rest are recorded with one group commit.
func (s *Server) recordPassBatch(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	body, err := readBody(w, r, s.opts.MaxBatchBodyBytes)
	if err != nil {
		return err
	}
	items, itemErr, err := decodeBatch(body)
	if err != nil {
		return err
	}
	switch n := len(items); {
	case n == 0:
		return domain.Invalid("passes", "is required and must not be empty")
	case n > domain.MaxBatchPasses:
		return domain.Invalid("passes", "has %d items, at most %d allowed", n, domain.MaxBatchPasses)
	}
	results := make([]batchResult, len(items))
	cmds := make([]domain.RecordPass, 0, len(items))
	index := make([]int, 0, len(items)) // cmds[k] is item index[k]
	for i := range items {
		item := &items[i]
		var err error
		if itemErr != nil {
			err = itemErr[i]
		}
		var cmd domain.RecordPass
		if err == nil {
			cmd, err = s.passCommand(a, item)
		}
		if err != nil {
			results[i] = s.rejected(r, item.EventID, err)
			continue
		}
		cmds = append(cmds, cmd)
		index = append(index, i)
	}
	if len(cmds) > 0 {
		items, err := s.ledger.RecordPasses(r.Context(), a, cmds)
		if err != nil {
			return err
		}
		if len(items) != len(cmds) {
			return fmt.Errorf("record passes: ledger answered %d items for %d passes", len(items), len(cmds))
		}
		for k, it := range items {
			i := index[k]
			if it.Err != nil {
				results[i] = s.rejected(r, "", it.Err)
				results[i].EventID = it.EventID
				continue
			}
			results[i] = batchResult{EventID: it.Result.EventID, Status: it.Status,
				Position: it.Result.Position, Decision: it.Result.Decision}
			if results[i].EventID == uuid.Nil {
				results[i].EventID = it.EventID
			}
		}
	}
	resp := batchResponse{Results: results}
	for _, res := range results {
		resp.Position = max(resp.Position, res.Position)
	}
	return writeJSON(w, http.StatusOK, resp)
}

// rejected is a batch item's result for err, with its event id when the
// client sent a readable one.
func (s *Server) rejected(r *http.Request, eventID string, err error) batchResult {
	p, internal := problemFor(err)
	if internal {
		s.logInternal(r, err)
	}
	res := batchResult{Status: domain.BatchRejected, Error: &p}
	if id, perr := uuid.Parse(eventID); perr == nil {
		res.EventID = id
	}
	return res
}

type healthRequest struct {
	Records []healthRecord `json:"records"`
}

type healthRecord struct {
	IDType       string `json:"id_type"`
	IDNumber     string `json:"id_number"`
	CodeColour   string `json:"code_colour"`
	NATResult    string `json:"nat_result"`
	NATAt        string `json:"nat_at"`
	VaccineDoses int    `json:"vaccine_doses"`
}

type healthResponse struct {
	Accepted      int    `json:"accepted"`
	FirstPosition uint64 `json:"first_position"`
	LastPosition  uint64 `json:"last_position"`
	Position      uint64 `json:"position"`
}

// recordHealth is POST /v1/health-status (health feed): up to 10,000
// records, each an event on the document's health aggregate. One bad record
// refuses the whole request and nothing is stored.
func (s *Server) recordHealth(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	var req healthRequest
	if err := decode(w, r, s.opts.MaxBatchBodyBytes, &req); err != nil {
		return err
	}
	switch n := len(req.Records); {
	case n == 0:
		return domain.Invalid("records", "is required and must not be empty")
	case n > domain.MaxHealthRecords:
		return domain.Invalid("records", "has %d records, at most %d allowed", n, domain.MaxHealthRecords)
	}
	recs := make([]domain.HealthRecord, len(req.Records))
	var errs fieldErrs
	for i, in := range req.Records {
		at := errs.at(parseTime("records["+strconv.Itoa(i)+"].nat_at", in.NATAt))
		recs[i] = domain.HealthRecord{IDType: in.IDType, IDNumber: in.IDNumber, CodeColour: in.CodeColour,
			NATResult: in.NATResult, NATAt: at, VaccineDoses: in.VaccineDoses}
	}
	if err := errs.err(); err != nil {
		return err
	}
	res, err := s.ledger.RecordHealth(r.Context(), a, recs)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, healthResponse{Accepted: res.Accepted, FirstPosition: res.FirstPosition,
		LastPosition: res.LastPosition, Position: res.LastPosition})
}
