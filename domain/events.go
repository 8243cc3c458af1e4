package domain

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/google/uuid"
)

// Event type names. They are stored in the log: never rename one.
const (
	TypePersonRegistered     = "PersonRegistered"
	TypePersonVerified       = "PersonVerified"
	TypePersonReleased       = "PersonReleased"
	TypeVenueApplied         = "VenueApplied"
	TypeVenueReviewed        = "VenueReviewed"
	TypeVenueCodeIssued      = "VenueCodeIssued"
	TypeSubAdminAdded        = "SubAdminAdded"
	TypeSubAdminRemoved      = "SubAdminRemoved"
	TypePassRecorded         = "PassRecorded"
	TypeHealthStatusRecorded = "HealthStatusRecorded"
	TypeAlertRaised          = "AlertRaised"
	TypeArrivalDeclared      = "ArrivalDeclared"
	TypeTruckPassDeclared    = "TruckPassDeclared"
	TypeDeclarationReviewed  = "DeclarationReviewed"
	TypeTraceRequested       = "TraceRequested"
	TypeDeclarationQueued    = "DeclarationQueued"
	TypePersonErased         = "PersonErased"
)

// Sealed is personal data encrypted with the person's data key (AES-256-GCM,
// base64 of nonce‖ciphertext). Destroying the key erases the data without
// rewriting the log.
type Sealed string

// PersonRegistered: a person registered with a real name and an ID document,
// or a guardian registered a family member (GuardianID set, no phone).
type PersonRegistered struct {
	PersonID uuid.UUID `json:"person_id"`
	IDType   string    `json:"id_type"`
	// IDHash is the keyed hash (HMAC-SHA256, hex) of id_type and the
	// normalised ID number: the only lookup key for the document.
	IDHash   string `json:"id_hash"`
	Name     Sealed `json:"name"`
	IDNumber Sealed `json:"id_number"`
	Phone    Sealed `json:"phone,omitempty"`
	// GuardianID and Relation are set for a family member (a dependant).
	GuardianID uuid.UUID `json:"guardian_id,omitempty"`
	Relation   string    `json:"relation,omitempty"`
}

// PersonVerified: a person's identity check finished (face or manual review).
type PersonVerified struct {
	PersonID uuid.UUID `json:"person_id"`
	Method   string    `json:"method"` // face | manual
	Result   string    `json:"result"` // approved | rejected
}

// PersonReleased: a reviewer, having checked the document's owner in
// person, voided a family member's registration of their document (someone
// registered a stranger's document as "family"): the document is free, and
// its owner registers it as their own.
type PersonReleased struct {
	PersonID   uuid.UUID `json:"person_id"`
	GuardianID uuid.UUID `json:"guardian_id"` // the guardian it was registered under
	Reason     string    `json:"reason"`
}

// PersonErased: an admin erased a person (their data key is destroyed right
// after this event is stored, so everything sealed with it is unreadable).
// It is also the audit record of the erasure: who (By, the admin token's
// subject) and why (Reason). A guardian's erasure lists the family members
// erased with them (Dependants, each with a PersonErased of their own whose
// Guardian names the guardian).
type PersonErased struct {
	PersonID uuid.UUID `json:"person_id"`
	By       string    `json:"by"`
	Reason   string    `json:"reason"`
	// Dependants are the family members erased with this person (a guardian).
	Dependants []uuid.UUID `json:"dependants,omitempty"`
	// Guardian is set on a dependant's erasure implied by their guardian's.
	Guardian uuid.UUID `json:"guardian,omitzero"`
}

// VenueApplied: a registered person applied for a venue code and became its manager.
type VenueApplied struct {
	VenueID   uuid.UUID `json:"venue_id"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	District  string    `json:"district"`
	Address   string    `json:"address"`
	Lat       float64   `json:"lat"`
	Lng       float64   `json:"lng"`
	ManagerID uuid.UUID `json:"manager_id"`
	// RequireGreen: only a known green code passes (unknown colour is denied).
	RequireGreen bool `json:"require_green,omitempty"`
	// NATWithinHours > 0: a negative nucleic-acid test within that many hours is required.
	NATWithinHours int `json:"nat_within_hours,omitempty"`
}

// VenueReviewed: a reviewer approved or rejected a venue application.
type VenueReviewed struct {
	VenueID  uuid.UUID `json:"venue_id"`
	Decision string    `json:"decision"` // approve | reject
	Reason   string    `json:"reason,omitempty"`
}

// VenueCodeIssued: the printable venue code was issued for an approved venue.
type VenueCodeIssued struct {
	VenueID uuid.UUID `json:"venue_id"`
	Code    string    `json:"code"`
}

// SubAdminAdded: the venue manager added a registered person as sub-admin.
type SubAdminAdded struct {
	VenueID  uuid.UUID `json:"venue_id"`
	PersonID uuid.UUID `json:"person_id"`
}

// SubAdminRemoved: the venue manager removed a sub-admin.
type SubAdminRemoved struct {
	VenueID  uuid.UUID `json:"venue_id"`
	PersonID uuid.UUID `json:"person_id"`
}

// Screen is the "one screen" shown at a pass, kept in the event so a retry
// returns the original answer. Since PassRecorded v2 the event's screen has
// no name (NameMasked is empty in the log): the answer to a pass, and to its
// retry, puts in the masked name the read models hold at answer time
// (PassFacts.AnswerScreen), ErasedName once the person was erased.
type Screen struct {
	NameMasked   string    `json:"name,omitempty"`
	CodeColour   string    `json:"code_colour"` // green | yellow | red | unknown
	NATResult    string    `json:"nat_result,omitempty"`
	NATAt        time.Time `json:"nat_at,omitzero"`
	VaccineDoses int       `json:"vaccine_doses"`
	VenueID      uuid.UUID `json:"venue_id"`
	VenueName    string    `json:"venue_name"`
	At           time.Time `json:"at"`
	Direction    string    `json:"direction"`
	Decision     string    `json:"decision"`
	Reason       string    `json:"reason,omitempty"`
}

// PassRecorded: a person crossed a venue boundary (or was refused).
type PassRecorded struct {
	VenueID   uuid.UUID `json:"venue_id"`
	PersonID  uuid.UUID `json:"person_id"`
	Direction string    `json:"direction"` // in | out
	Method    string    `json:"method"`    // self_scan | staff_scan | manual
	Decision  string    `json:"decision"`  // pass | deny
	Reason    string    `json:"reason,omitempty"`
	// Operator is the staff member or scanner who recorded it (empty for self scan).
	Operator string `json:"operator,omitempty"`
	// GuardianID is set when a guardian passed with this dependant.
	GuardianID uuid.UUID `json:"guardian_id,omitzero"`
	Screen     Screen    `json:"screen"`
}

// HealthStatusRecorded: the health data feed reported a person's status, by
// ID document hash (the person may not have registered yet).
type HealthStatusRecorded struct {
	IDHash       string    `json:"id_hash"`
	IDType       string    `json:"id_type"`
	CodeColour   string    `json:"code_colour"` // green | yellow | red
	NATResult    string    `json:"nat_result"`  // negative | positive | none
	NATAt        time.Time `json:"nat_at,omitzero"`
	VaccineDoses int       `json:"vaccine_doses"`
}

// AlertRaised: a denied or abnormal pass was reported to the district.
type AlertRaised struct {
	District    string    `json:"district"`
	VenueID     uuid.UUID `json:"venue_id"`
	PersonID    uuid.UUID `json:"person_id"`
	PassEventID uuid.UUID `json:"pass_event_id"`
	CodeColour  string    `json:"code_colour"`
	Decision    string    `json:"decision"`
	Reason      string    `json:"reason"`
}

// ArrivalDeclared: a person declared an arrival (入临申报) for themselves and family members.
type ArrivalDeclared struct {
	DeclarationID   uuid.UUID   `json:"declaration_id"`
	PersonID        uuid.UUID   `json:"person_id"`
	FamilyMemberIDs []uuid.UUID `json:"family_member_ids,omitempty"`
	ArrivalDate     string      `json:"arrival_date"` // YYYY-MM-DD
	// Origin is sealed with the declarant's data key (v2).
	Origin Sealed `json:"sealed_origin,omitempty"`
	// ClearOrigin is the origin in clear, as v1 events held it: only a v1
	// event read through its upcaster has it, a v2 event never.
	ClearOrigin         string    `json:"origin,omitempty"`
	DestinationDistrict string    `json:"destination_district"`
	NATResult           string    `json:"nat_result"`
	NATAt               time.Time `json:"nat_at,omitzero"`
}

// TruckPassDeclared: a driver filed a truck pass (货车畅行).
type TruckPassDeclared struct {
	DeclarationID uuid.UUID `json:"declaration_id"`
	PersonID      uuid.UUID `json:"person_id"`
	// PlateNumber is sealed with the driver's data key (v2).
	PlateNumber Sealed `json:"sealed_plate_number,omitempty"`
	// ClearPlateNumber is the plate in clear, as v1 events held it: only a
	// v1 event read through its upcaster has it, a v2 event never.
	ClearPlateNumber string    `json:"plate_number,omitempty"`
	NATProofAt       time.Time `json:"nat_proof_at"`
	ItineraryOK      bool      `json:"itinerary_ok"`
	HealthCodeColour string    `json:"health_code_colour"`
	LogisticsPark    string    `json:"logistics_park"`
	District         string    `json:"district"`
	ContactName      Sealed    `json:"contact_name"`
	ContactPhone     Sealed    `json:"contact_phone"`
}

// DeclarationReviewed: a reviewer approved or rejected a declaration.
type DeclarationReviewed struct {
	DeclarationID uuid.UUID `json:"declaration_id"`
	Decision      string    `json:"decision"` // approve | reject
	Reason        string    `json:"reason,omitempty"`
}

// DeclarationQueued: a submitted declaration joined its district's review
// queue (written by the reactions, in answer to ArrivalDeclared or
// TruckPassDeclared).
type DeclarationQueued struct {
	DeclarationID uuid.UUID `json:"declaration_id"`
	Kind          string    `json:"kind"` // arrival | truck
	District      string    `json:"district"`
}

// TraceRequested: an analyst looked at a person's history (audit).
type TraceRequested struct {
	TraceID  uuid.UUID `json:"trace_id"`
	Analyst  string    `json:"analyst"`
	PersonID uuid.UUID `json:"person_id"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Depth    int       `json:"depth"`
	Reason   string    `json:"reason"`
	// Kind is "contacts" (a contact trace, POST /v1/traces) or "history"
	// (a person's passes read by an analyst); empty in events written
	// before it existed.
	Kind string `json:"kind,omitempty"`
	// Source is where the answer came from: "read_model" or "log".
	Source string `json:"source,omitempty"`
	// AsOf is the moment the answer was given as of: passes recorded after
	// it were ignored. Replaying the trace with it gives the same answer.
	AsOf              time.Time `json:"as_of,omitzero"`
	MinOverlapMinutes int       `json:"min_overlap_minutes,omitempty"`
	BufferMinutes     int       `json:"buffer_minutes,omitempty"`
	// Contacts is how many distinct people the answer named (every depth).
	Contacts int `json:"contacts,omitempty"`
	// ReadPosition is the read models' position the answer reflects.
	ReadPosition uint64 `json:"read_position,omitempty"`
}

func (PersonRegistered) EventType() string     { return TypePersonRegistered }
func (PersonVerified) EventType() string       { return TypePersonVerified }
func (PersonReleased) EventType() string       { return TypePersonReleased }
func (VenueApplied) EventType() string         { return TypeVenueApplied }
func (VenueReviewed) EventType() string        { return TypeVenueReviewed }
func (VenueCodeIssued) EventType() string      { return TypeVenueCodeIssued }
func (SubAdminAdded) EventType() string        { return TypeSubAdminAdded }
func (SubAdminRemoved) EventType() string      { return TypeSubAdminRemoved }
func (PassRecorded) EventType() string         { return TypePassRecorded }
func (HealthStatusRecorded) EventType() string { return TypeHealthStatusRecorded }
func (AlertRaised) EventType() string          { return TypeAlertRaised }
func (ArrivalDeclared) EventType() string      { return TypeArrivalDeclared }
func (TruckPassDeclared) EventType() string    { return TypeTruckPassDeclared }
func (DeclarationReviewed) EventType() string  { return TypeDeclarationReviewed }
func (TraceRequested) EventType() string       { return TypeTraceRequested }
func (DeclarationQueued) EventType() string    { return TypeDeclarationQueued }
func (PersonErased) EventType() string         { return TypePersonErased }

func (PersonRegistered) SchemaVersion() int     { return 1 }
func (PersonVerified) SchemaVersion() int       { return 1 }
func (PersonReleased) SchemaVersion() int       { return 1 }
func (VenueApplied) SchemaVersion() int         { return 1 }
func (VenueReviewed) SchemaVersion() int        { return 1 }
func (VenueCodeIssued) SchemaVersion() int      { return 1 }
func (SubAdminAdded) SchemaVersion() int        { return 1 }
func (SubAdminRemoved) SchemaVersion() int      { return 1 }
func (PassRecorded) SchemaVersion() int         { return 2 }
func (HealthStatusRecorded) SchemaVersion() int { return 1 }
func (AlertRaised) SchemaVersion() int          { return 1 }
func (ArrivalDeclared) SchemaVersion() int      { return 2 }
func (TruckPassDeclared) SchemaVersion() int    { return 2 }
func (DeclarationReviewed) SchemaVersion() int  { return 1 }
func (TraceRequested) SchemaVersion() int       { return 1 }
func (DeclarationQueued) SchemaVersion() int    { return 1 }
func (PersonErased) SchemaVersion() int         { return 1 }

// registry maps an event type to a constructor of its current payload type.
var registry = map[string]func() Event{
	TypePersonRegistered:     func() Event { return &PersonRegistered{} },
	TypePersonVerified:       func() Event { return &PersonVerified{} },
	TypePersonReleased:       func() Event { return &PersonReleased{} },
	TypeVenueApplied:         func() Event { return &VenueApplied{} },
	TypeVenueReviewed:        func() Event { return &VenueReviewed{} },
	TypeVenueCodeIssued:      func() Event { return &VenueCodeIssued{} },
	TypeSubAdminAdded:        func() Event { return &SubAdminAdded{} },
	TypeSubAdminRemoved:      func() Event { return &SubAdminRemoved{} },
	TypePassRecorded:         func() Event { return &PassRecorded{} },
	TypeHealthStatusRecorded: func() Event { return &HealthStatusRecorded{} },
	TypeAlertRaised:          func() Event { return &AlertRaised{} },
	TypeArrivalDeclared:      func() Event { return &ArrivalDeclared{} },
	TypeTruckPassDeclared:    func() Event { return &TruckPassDeclared{} },
	TypeDeclarationReviewed:  func() Event { return &DeclarationReviewed{} },
	TypeTraceRequested:       func() Event { return &TraceRequested{} },
	TypeDeclarationQueued:    func() Event { return &DeclarationQueued{} },
	TypePersonErased:         func() Event { return &PersonErased{} },
	TypeAuditRecorded:        func() Event { return &AuditRecorded{} },
}

// upcasters turn an older schema version's payload into the next version's:
// upcasters[type][v] maps version v to v+1. When a payload changes shape,
// bump its SchemaVersion and add one here; never rewrite a stored event.
//
// Version 2 of PassRecorded, ArrivalDeclared and TruckPassDeclared keeps
// nothing personal outside sealed fields (issue 11):
//   - PassRecorded v2 has no masked name in its screen: v1's is dropped.
//   - ArrivalDeclared v2 seals the origin and TruckPassDeclared v2 the plate
//     number with the declarant's data key. An upcaster cannot seal (it has
//     no key), so a v1 event's clear value stays in the v2 field that only
//     upcast events fill (ClearOrigin, ClearPlateNumber: v1's own JSON name),
//     and readers take the sealed field, or that one. The v1 payload is
//     therefore already the v2 payload.
var upcasters = map[string]map[int]func(json.RawMessage) (json.RawMessage, error){
	TypePassRecorded:      {1: upcastPassV1},
	TypeArrivalDeclared:   {1: sameShape},
	TypeTruckPassDeclared: {1: sameShape},
}

// upcastPassV1 drops the masked name from a v1 pass's screen.
func upcastPassV1(v1 json.RawMessage) (json.RawMessage, error) {
	var p PassRecorded
	if err := p.UnmarshalJSON(v1); err != nil {
		return nil, err
	}
	if p.Screen.NameMasked == "" {
		return v1, nil
	}
	p.Screen.NameMasked = ""
	return p.MarshalJSON()
}

// sameShape is the upcaster of a version whose payload the next version
// reads as it is (see upcasters).
func sameShape(v json.RawMessage) (json.RawMessage, error) { return v, nil }

// Decode returns the envelope's payload as its current Go type (a pointer,
// e.g. *PersonRegistered), upcasting older schema versions. An unknown type,
// or a version newer than this build knows, is ErrUnknownEvent: never skipped.
func Decode(e Envelope) (Event, error) {
	mk, ok := registry[e.Type]
	if !ok {
		return nil, fmt.Errorf("decode event %s at %d: type %q: %w", e.ID, e.Position, e.Type, ErrUnknownEvent)
	}
	ev := mk()
	current := ev.SchemaVersion()
	if e.SchemaVersion > current || e.SchemaVersion < 1 {
		return nil, fmt.Errorf("decode event %s at %d: %s schema version %d (this build knows up to %d): %w",
			e.ID, e.Position, e.Type, e.SchemaVersion, current, ErrUnknownEvent)
	}
	payload := e.Payload
	for v := e.SchemaVersion; v < current; v++ {
		up, ok := upcasters[e.Type][v]
		if !ok {
			return nil, fmt.Errorf("decode event %s: no upcaster for %s v%d: %w", e.ID, e.Type, v, ErrUnknownEvent)
		}
		var err error
		if payload, err = up(payload); err != nil {
			return nil, fmt.Errorf("upcast %s v%d: %w", e.Type, v, err)
		}
	}
	if err := unmarshalEvent(payload, ev); err != nil {
		return nil, fmt.Errorf("decode event %s (%s): %w", e.ID, e.Type, err)
	}
	return ev, nil
}

// unmarshalEvent is json.Unmarshal(payload, ev); an event that reads its
// own JSON (PassRecorded) is asked directly, which spares encoding/json's
// check of the whole payload before it (the event's reader checks as it
// goes, and hands anything unusual to encoding/json).
func unmarshalEvent(payload []byte, ev Event) error {
	if u, ok := ev.(json.Unmarshaler); ok {
		return u.UnmarshalJSON(payload)
	}
	return json.Unmarshal(payload, ev)
}

// marshalEvent is json.Marshal(ev); an event that writes its own JSON
// (PassRecorded) is asked directly, which spares encoding/json's check of
// what it wrote.
func marshalEvent(ev Event) ([]byte, error) {
	if m, ok := ev.(json.Marshaler); ok {
		if v := reflect.ValueOf(ev); v.Kind() != reflect.Pointer || !v.IsNil() {
			return m.MarshalJSON()
		}
	}
	return json.Marshal(ev)
}
