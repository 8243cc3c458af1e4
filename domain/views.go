package domain

import (
	"time"

	"github.com/google/uuid"
)

// PersonView is a person as the read models know them.
type PersonView struct {
	ID            uuid.UUID   `json:"person_id"`
	NameMasked    string      `json:"name"`
	IDType        string      `json:"id_type"`
	IDMasked      string      `json:"id_number"`
	IDHash        string      `json:"-"`
	Verification  string      `json:"verification"` // pending | approved | rejected
	GuardianID    uuid.UUID   `json:"guardian_id,omitzero"`
	Relation      string      `json:"relation,omitempty"`
	FamilyMembers []uuid.UUID `json:"family_members"`
	RegisteredAt  time.Time   `json:"registered_at"`
	Position      uint64      `json:"-"` // version of the person aggregate
}

// HealthView is the latest health status known for an ID document.
type HealthView struct {
	CodeColour   string    `json:"code_colour"`
	NATResult    string    `json:"nat_result"`
	NATAt        time.Time `json:"nat_at,omitzero"`
	VaccineDoses int       `json:"vaccine_doses"`
	RecordedAt   time.Time `json:"recorded_at"`
}

// VenueView is a venue as the read models know it.
type VenueView struct {
	ID             uuid.UUID   `json:"venue_id"`
	Name           string      `json:"name"`
	Type           string      `json:"type"`
	District       string      `json:"district"`
	Address        string      `json:"address"`
	Lat            float64     `json:"lat"`
	Lng            float64     `json:"lng"`
	Status         string      `json:"status"` // pending | approved | rejected
	Reason         string      `json:"reason,omitempty"`
	ManagerID      uuid.UUID   `json:"manager_id"`
	Admins         []uuid.UUID `json:"admins"`
	RequireGreen   bool        `json:"require_green"`
	NATWithinHours int         `json:"nat_within_hours"`
	AppliedAt      time.Time   `json:"applied_at"`
	ReviewedAt     time.Time   `json:"reviewed_at,omitzero"`
}

// VenueFilter selects venues; empty fields match all.
type VenueFilter struct {
	District string
	Status   string
	Limit    int
}

// Entry is one row of a venue's entry list.
type Entry struct {
	EventID    uuid.UUID `json:"event_id"`
	PersonID   uuid.UUID `json:"person_id"`
	NameMasked string    `json:"name"`
	IDMasked   string    `json:"id_number"`
	At         time.Time `json:"at"`
	Direction  string    `json:"direction"`
	Decision   string    `json:"decision"`
	Method     string    `json:"method"`
	Operator   string    `json:"operator,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Position   uint64    `json:"-"`
}

// EntryQuery asks for a page of a venue's entry list, newest first.
type EntryQuery struct {
	VenueID   uuid.UUID
	From, To  time.Time // zero: unbounded
	Direction string    // "" | in | out
	Decision  string    // "" | pass | deny
	Limit     int
	// After continues a page: entries strictly older than (At, Position) in
	// the list's order. Zero: from the newest.
	AfterAt       time.Time
	AfterPosition uint64
}

// Visit is one pass in a person's trace history.
type Visit struct {
	EventID   uuid.UUID `json:"event_id"`
	VenueID   uuid.UUID `json:"venue_id"`
	VenueName string    `json:"venue_name"`
	VenueType string    `json:"venue_type"`
	District  string    `json:"district"`
	Address   string    `json:"address"`
	At        time.Time `json:"at"`
	Direction string    `json:"direction"`
	Decision  string    `json:"decision"`
}

// Alert is a district alert raised by a denied or abnormal pass.
type Alert struct {
	EventID     uuid.UUID `json:"event_id"`
	District    string    `json:"district"`
	VenueID     uuid.UUID `json:"venue_id"`
	PersonID    uuid.UUID `json:"person_id"`
	PassEventID uuid.UUID `json:"pass_event_id"`
	CodeColour  string    `json:"code_colour"`
	Decision    string    `json:"decision"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
}

// PassView is a stored pass, found by its event id (retries older than
// JetStream's duplicate window are answered from here).
type PassView struct {
	EventID  uuid.UUID
	Position uint64
	Pass     PassRecorded
}

// ArrivalDetails are what an arrival declaration (入临申报) says.
type ArrivalDetails struct {
	ArrivalDate         string    `json:"arrival_date"`
	Origin              string    `json:"origin"`
	DestinationDistrict string    `json:"destination_district"`
	NATResult           string    `json:"nat_result"`
	NATAt               time.Time `json:"nat_at,omitzero"`
}

// TruckDetails are what a truck pass (货车畅行) says; the contact's name and
// phone are masked.
type TruckDetails struct {
	PlateNumber      string    `json:"plate_number"`
	NATProofAt       time.Time `json:"nat_proof_at"`
	ItineraryOK      bool      `json:"itinerary_ok"`
	HealthCodeColour string    `json:"health_code_colour"`
	LogisticsPark    string    `json:"logistics_park"`
	ContactName      string    `json:"contact_name"`
	ContactPhone     string    `json:"contact_phone"`
}

// DeclarationStep is one event in a declaration's history: its submission,
// its joining the review queue, its review.
type DeclarationStep struct {
	EventID  uuid.UUID `json:"event_id"`
	Type     string    `json:"type"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor,omitempty"`
	Decision string    `json:"decision,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Position uint64    `json:"position"`
}

// DeclarationView is a declaration as the read models know it.
type DeclarationView struct {
	ID              uuid.UUID         `json:"declaration_id"`
	Kind            string            `json:"kind"` // arrival | truck
	PersonID        uuid.UUID         `json:"person_id"`
	FamilyMemberIDs []uuid.UUID       `json:"family_member_ids"`
	District        string            `json:"district"`
	Status          string            `json:"status"` // pending | approved | rejected
	Reason          string            `json:"reason,omitempty"`
	Queued          bool              `json:"queued"`
	SubmittedAt     time.Time         `json:"submitted_at"`
	QueuedAt        time.Time         `json:"queued_at,omitzero"`
	ReviewedAt      time.Time         `json:"reviewed_at,omitzero"`
	Arrival         *ArrivalDetails   `json:"arrival,omitempty"`
	Truck           *TruckDetails     `json:"truck,omitempty"`
	History         []DeclarationStep `json:"history"`
	// QueuePosition orders the review queue (first come, first served).
	QueuePosition uint64 `json:"-"`
}

// DeclarationFilter selects declarations in the review queue; empty fields
// match all.
type DeclarationFilter struct {
	District string
	Status   string
	Kind     string
	Limit    int
}

// VenueWindow asks for one venue's passes with at in [From, To).
type VenueWindow struct {
	VenueID  uuid.UUID
	From, To time.Time
}

// AuditEntry is one recorded look at a person's history (a TraceRequested
// event), as the audit read model lists it.
type AuditEntry struct {
	EventID  uuid.UUID `json:"event_id"`
	TraceID  uuid.UUID `json:"trace_id"`
	Analyst  string    `json:"analyst"`
	PersonID uuid.UUID `json:"person_id"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Depth    int       `json:"depth"`
	Reason   string    `json:"reason"`
	// Kind is "contacts" (POST /v1/traces) or "history" (a person's passes).
	Kind   string `json:"kind,omitempty"`
	Source string `json:"source,omitempty"`
	// AsOf is the moment the answer was given as of (zero: not recorded).
	AsOf              time.Time `json:"as_of,omitzero"`
	MinOverlapMinutes int       `json:"min_overlap_minutes"`
	BufferMinutes     int       `json:"buffer_minutes"`
	Contacts          int       `json:"contacts"`
	// At is when the look happened (the event's OccurredAt).
	At       time.Time `json:"at"`
	Position uint64    `json:"position"`
}

// AuditQuery asks for the audit entries with at in [From, To) (zero bounds
// open), oldest first by (at, position), at most Limit of them, strictly
// after (AfterAt, AfterPosition) when AfterAt is set.
type AuditQuery struct {
	From, To      time.Time
	Limit         int
	AfterAt       time.Time
	AfterPosition uint64
}
