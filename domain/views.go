package domain

import (
	"time"

	"github.com/google/uuid"
)

// PersonView is a person as the read models know them.
type PersonView struct {
	ID            uuid.UUID
	NameMasked    string
	IDType        string
	IDMasked      string
	IDHash        string
	Verification  string // pending | approved | rejected
	GuardianID    uuid.UUID
	Relation      string
	FamilyMembers []uuid.UUID
	// Erased is set once the person was erased (PersonErased): their name
	// and ID number masks are blank, their document is no lookup key, and
	// their passes stay as anonymous facts under their id.
	Erased       bool
	RegisteredAt time.Time
	Position     uint64 // version of the person aggregate
}

// HealthView is the latest health status known for an ID document.
type HealthView struct {
	CodeColour   string
	NATResult    string
	NATAt        time.Time
	VaccineDoses int
	RecordedAt   time.Time
}

// VenueView is a venue as the read models know it.
type VenueView struct {
	ID             uuid.UUID
	Name           string
	Type           string
	District       string
	Address        string
	Lat            float64
	Lng            float64
	Status         string // pending | approved | rejected
	Reason         string
	ManagerID      uuid.UUID
	Admins         []uuid.UUID
	RequireGreen   bool
	NATWithinHours int
	AppliedAt      time.Time
	ReviewedAt     time.Time
}

// VenueFilter selects venues; empty fields match all.
type VenueFilter struct {
	District string
	Status   string
	Limit    int
}

// Entry is one row of a venue's entry list.
type Entry struct {
	EventID    uuid.UUID
	PersonID   uuid.UUID
	NameMasked string
	IDMasked   string
	At         time.Time
	Direction  string
	Decision   string
	Method     string
	Operator   string
	Reason     string
	Position   uint64
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
	EventID   uuid.UUID
	VenueID   uuid.UUID
	VenueName string
	VenueType string
	District  string
	Address   string
	At        time.Time
	Direction string
	Decision  string
}

// Alert is a district alert raised by a denied or abnormal pass.
type Alert struct {
	EventID     uuid.UUID
	District    string
	VenueID     uuid.UUID
	PersonID    uuid.UUID
	PassEventID uuid.UUID
	CodeColour  string
	Decision    string
	Reason      string
	At          time.Time
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
	ArrivalDate         string
	Origin              string
	DestinationDistrict string
	NATResult           string
	NATAt               time.Time
}

// TruckDetails are what a truck pass (货车畅行) says; the contact's name and
// phone are masked.
type TruckDetails struct {
	PlateNumber      string
	NATProofAt       time.Time
	ItineraryOK      bool
	HealthCodeColour string
	LogisticsPark    string
	ContactName      string
	ContactPhone     string
}

// DeclarationStep is one event in a declaration's history: its submission,
// its joining the review queue, its review.
type DeclarationStep struct {
	EventID  uuid.UUID
	Type     string
	At       time.Time
	Actor    string
	Decision string
	Reason   string
	Position uint64
}

// DeclarationView is a declaration as the read models know it.
type DeclarationView struct {
	ID              uuid.UUID
	Kind            string // arrival | truck
	PersonID        uuid.UUID
	FamilyMemberIDs []uuid.UUID
	District        string
	Status          string // pending | approved | rejected
	Reason          string
	Queued          bool
	SubmittedAt     time.Time
	QueuedAt        time.Time
	ReviewedAt      time.Time
	Arrival         *ArrivalDetails
	Truck           *TruckDetails
	History         []DeclarationStep
	// QueuePosition orders the review queue (first come, first served).
	QueuePosition uint64
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
	EventID  uuid.UUID
	TraceID  uuid.UUID
	Analyst  string
	PersonID uuid.UUID
	From     time.Time
	To       time.Time
	Depth    int
	Reason   string
	// Kind is "contacts" (POST /v1/traces) or "history" (a person's passes).
	Kind   string
	Source string
	// AsOf is the moment the answer was given as of (zero: not recorded).
	AsOf              time.Time
	MinOverlapMinutes int
	BufferMinutes     int
	Contacts          int
	// At is when the look happened (the event's OccurredAt).
	At       time.Time
	Position uint64
}

// AuditChainEntry is one entry of the audit chain (an AuditRecorded event)
// as the read models list it.
type AuditChainEntry struct {
	AuditRecorded
	EventID  uuid.UUID
	Position uint64
}

// AuditChainQuery asks for the audit chain's entries in chain order (by
// Seq), at most Limit of them after AfterSeq, with at in [Since, Until)
// (zero bounds open), about PersonID, of Kind and by Actor when set.
type AuditChainQuery struct {
	PersonID uuid.UUID
	// Source, when set, asks for the entry of that audited event
	// (AuditRecorded.SourceEventID): at most one.
	Source       uuid.UUID
	Kind         string
	Actor        string
	Since, Until time.Time
	AfterSeq     uint64
	Limit        int
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
