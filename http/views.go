package http

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// The API's JSON shapes of the read models' views. The domain views carry
// no JSON tags: what a client sees, under which names, is decided here. A
// shape with exactly its view's fields is a conversion of it (alertJSON(v)),
// so a field added to that view does not compile until it is added here; the
// other shapes copy field by field, and a field added to their view is not on
// the wire until it is added here. testdata/views.golden holds the bytes
// these render to.

// personJSON is a person (GET /v1/persons/{id}).
type personJSON struct {
	ID            uuid.UUID   `json:"person_id"`
	NameMasked    string      `json:"name"`
	IDType        string      `json:"id_type"`
	IDMasked      string      `json:"id_number"`
	Verification  string      `json:"verification"` // pending | approved | rejected
	GuardianID    uuid.UUID   `json:"guardian_id,omitzero"`
	Relation      string      `json:"relation,omitempty"`
	FamilyMembers []uuid.UUID `json:"family_members"`
	RegisteredAt  time.Time   `json:"registered_at"`
	// Erased: the person was erased; name is empty and id_number "***".
	Erased bool `json:"erased,omitempty"`
}

func personOf(v domain.PersonView) personJSON {
	return personJSON{ID: v.ID, NameMasked: v.NameMasked, IDType: v.IDType, IDMasked: v.IDMasked,
		Verification: v.Verification, GuardianID: v.GuardianID, Relation: v.Relation,
		FamilyMembers: v.FamilyMembers, RegisteredAt: v.RegisteredAt, Erased: v.Erased}
}

// healthJSON is a person's latest health status.
type healthJSON struct {
	CodeColour   string    `json:"code_colour"`
	NATResult    string    `json:"nat_result"`
	NATAt        time.Time `json:"nat_at,omitzero"`
	VaccineDoses int       `json:"vaccine_doses"`
	RecordedAt   time.Time `json:"recorded_at"`
}

func healthOf(v domain.HealthView) healthJSON { return healthJSON(v) }

// publicVenueJSON is what anyone may see of a venue: no managers, no code.
type publicVenueJSON struct {
	ID       uuid.UUID `json:"venue_id"`
	Name     string    `json:"name"`
	Type     string    `json:"type"`
	District string    `json:"district"`
	Address  string    `json:"address"`
	Lat      float64   `json:"lat"`
	Lng      float64   `json:"lng"`
	Status   string    `json:"status"` // pending | approved | rejected
}

func publicVenueOf(v domain.VenueView) publicVenueJSON {
	return publicVenueJSON{ID: v.ID, Name: v.Name, Type: v.Type, District: v.District, Address: v.Address,
		Lat: v.Lat, Lng: v.Lng, Status: v.Status}
}

// venueJSON is a venue as its staff, reviewers, admins, dashboards and
// analysts see it: the public fields first, then the rest.
type venueJSON struct {
	publicVenueJSON
	Reason         string      `json:"reason,omitempty"`
	ManagerID      uuid.UUID   `json:"manager_id"`
	Admins         []uuid.UUID `json:"admins"`
	RequireGreen   bool        `json:"require_green"`
	NATWithinHours int         `json:"nat_within_hours"`
	AppliedAt      time.Time   `json:"applied_at"`
	ReviewedAt     time.Time   `json:"reviewed_at,omitzero"`
}

func venueOf(v domain.VenueView) venueJSON {
	return venueJSON{publicVenueJSON: publicVenueOf(v), Reason: v.Reason, ManagerID: v.ManagerID, Admins: v.Admins,
		RequireGreen: v.RequireGreen, NATWithinHours: v.NATWithinHours, AppliedAt: v.AppliedAt, ReviewedAt: v.ReviewedAt}
}

// entryJSON is one row of a venue's entry list.
type entryJSON struct {
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
	Position   uint64    `json:"-"` // the page's cursor holds it
}

func entryOf(v domain.Entry) entryJSON { return entryJSON(v) }

// visitJSON is one pass in a person's trace history.
type visitJSON struct {
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

func visitOf(v domain.Visit) visitJSON { return visitJSON(v) }

// alertJSON is a district alert.
type alertJSON struct {
	EventID     uuid.UUID `json:"event_id"`
	District    string    `json:"district"`
	VenueID     uuid.UUID `json:"venue_id"`
	PersonID    uuid.UUID `json:"person_id,omitzero"` // left out for a dashboard (domain.AlertSeenBy)
	PassEventID uuid.UUID `json:"pass_event_id"`
	CodeColour  string    `json:"code_colour"`
	Decision    string    `json:"decision"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
}

func alertOf(v domain.Alert) alertJSON { return alertJSON(v) }

// declarationJSON is a declaration with its history.
type declarationJSON struct {
	ID              uuid.UUID             `json:"declaration_id"`
	Kind            string                `json:"kind"` // arrival | truck
	PersonID        uuid.UUID             `json:"person_id"`
	FamilyMemberIDs []uuid.UUID           `json:"family_member_ids"`
	District        string                `json:"district"`
	Status          string                `json:"status"` // pending | approved | rejected
	Reason          string                `json:"reason,omitempty"`
	Queued          bool                  `json:"queued"`
	SubmittedAt     time.Time             `json:"submitted_at"`
	QueuedAt        time.Time             `json:"queued_at,omitzero"`
	ReviewedAt      time.Time             `json:"reviewed_at,omitzero"`
	Arrival         *arrivalJSON          `json:"arrival,omitempty"`
	Truck           *truckJSON            `json:"truck,omitempty"`
	History         []declarationStepJSON `json:"history"`
}

// arrivalJSON is what an arrival declaration says.
type arrivalJSON struct {
	ArrivalDate         string    `json:"arrival_date"`
	Origin              string    `json:"origin"`
	DestinationDistrict string    `json:"destination_district"`
	NATResult           string    `json:"nat_result"`
	NATAt               time.Time `json:"nat_at,omitzero"`
}

// truckJSON is what a truck pass says, the contact masked.
type truckJSON struct {
	PlateNumber      string    `json:"plate_number"`
	NATProofAt       time.Time `json:"nat_proof_at"`
	ItineraryOK      bool      `json:"itinerary_ok"`
	HealthCodeColour string    `json:"health_code_colour"`
	LogisticsPark    string    `json:"logistics_park"`
	ContactName      string    `json:"contact_name"`
	ContactPhone     string    `json:"contact_phone"`
}

// declarationStepJSON is one event in a declaration's history.
type declarationStepJSON struct {
	EventID  uuid.UUID `json:"event_id"`
	Type     string    `json:"type"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor,omitempty"`
	Decision string    `json:"decision,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Position uint64    `json:"position"`
}

func declarationOf(v domain.DeclarationView) declarationJSON {
	out := declarationJSON{ID: v.ID, Kind: v.Kind, PersonID: v.PersonID, FamilyMemberIDs: v.FamilyMemberIDs,
		District: v.District, Status: v.Status, Reason: v.Reason, Queued: v.Queued, SubmittedAt: v.SubmittedAt,
		QueuedAt: v.QueuedAt, ReviewedAt: v.ReviewedAt,
		History: mapSlice(v.History, func(s domain.DeclarationStep) declarationStepJSON { return declarationStepJSON(s) })}
	if a := v.Arrival; a != nil {
		out.Arrival = (*arrivalJSON)(a)
	}
	if t := v.Truck; t != nil {
		out.Truck = (*truckJSON)(t)
	}
	return out
}

// auditEntryJSON is one recorded look at a person's history.
type auditEntryJSON struct {
	EventID  uuid.UUID `json:"event_id"`
	TraceID  uuid.UUID `json:"trace_id"`
	Analyst  string    `json:"analyst"`
	PersonID uuid.UUID `json:"person_id"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Depth    int       `json:"depth"`
	Reason   string    `json:"reason"`
	// Kind is "contacts" (POST /v1/traces) or "history" (a person's passes).
	Kind              string    `json:"kind,omitempty"`
	Source            string    `json:"source,omitempty"`
	AsOf              time.Time `json:"as_of,omitzero"`
	MinOverlapMinutes int       `json:"min_overlap_minutes"`
	BufferMinutes     int       `json:"buffer_minutes"`
	Contacts          int       `json:"contacts"`
	At                time.Time `json:"at"`
	Position          uint64    `json:"position"`
}

func auditEntryOf(v domain.AuditEntry) auditEntryJSON { return auditEntryJSON(v) }

// mapSlice renders each of xs with f; nil stays nil (null on the wire)
// and empty stays empty ([]).
func mapSlice[A, B any](xs []A, f func(A) B) []B {
	if xs == nil {
		return nil
	}
	out := make([]B, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// traceIndexJSON, traceVisitJSON and traceContactJSON are POST /v1/traces'
// parts.
type traceIndexJSON struct {
	PersonID       uuid.UUID `json:"person_id"`
	NameMasked     string    `json:"name"`
	Visits         int       `json:"visits"`
	Contacts       int       `json:"contacts"`
	SecondContacts int       `json:"second_contacts"`
}

type traceVisitJSON struct {
	VenueID   uuid.UUID `json:"venue_id"`
	VenueName string    `json:"venue_name"`
	VenueType string    `json:"venue_type"`
	District  string    `json:"district"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
}

type traceContactJSON struct {
	PersonID       uuid.UUID `json:"person_id"`
	Depth          int       `json:"depth"`
	ViaPersonID    uuid.UUID `json:"via_person_id"`
	VenueID        uuid.UUID `json:"venue_id"`
	OverlapStart   time.Time `json:"overlap_start"`
	OverlapEnd     time.Time `json:"overlap_end"`
	OverlapMinutes int       `json:"overlap_minutes"`
	NameMasked     string    `json:"name"`
	VenueName      string    `json:"venue_name"`
}

func traceIndexOf(i ledger.TraceIndex) traceIndexJSON { return traceIndexJSON(i) }

func traceVisitOf(v ledger.TraceVisit) traceVisitJSON { return traceVisitJSON(v) }

func traceContactOf(c ledger.TraceContact) traceContactJSON {
	return traceContactJSON{PersonID: c.PersonID, Depth: c.Depth, ViaPersonID: c.ViaPersonID, VenueID: c.VenueID,
		OverlapStart: c.OverlapStart, OverlapEnd: c.OverlapEnd, OverlapMinutes: c.OverlapMinutes,
		NameMasked: c.NameMasked, VenueName: c.VenueName}
}

// poisonMessageJSON and poisonEventJSON are GET /v1/admin/poison's entries.
type poisonMessageJSON struct {
	ID         uint64            `json:"id"`
	Reaction   string            `json:"reaction"`
	Reason     string            `json:"reason"`
	PoisonedAt time.Time         `json:"poisoned_at"`
	Subject    string            `json:"subject"`
	Sequence   uint64            `json:"sequence"`
	Events     []poisonEventJSON `json:"events"`
}

type poisonEventJSON struct {
	EventID    uuid.UUID       `json:"event_id"`
	Type       string          `json:"type"`
	Aggregate  string          `json:"aggregate"`
	Position   uint64          `json:"position"`
	OccurredAt time.Time       `json:"occurred_at"`
	Payload    json.RawMessage `json:"payload"`
}

func poisonMessageOf(m ledger.PoisonMessage) poisonMessageJSON {
	return poisonMessageJSON{ID: m.ID, Reaction: m.Reaction, Reason: m.Reason, PoisonedAt: m.PoisonedAt,
		Subject: m.Subject, Sequence: m.Sequence,
		Events: mapSlice(m.Events, func(e ledger.PoisonEvent) poisonEventJSON { return poisonEventJSON(e) })}
}

// auditChainEntryJSON is one entry of the audit chain: the event's fields
// under the event's names, the ones its hash is computed over (a client
// recomputes it from what it reads), then where the event is in the log.
type auditChainEntryJSON struct {
	domain.AuditRecorded
	EventID  uuid.UUID `json:"event_id"`
	Position uint64    `json:"position"`
}

func auditChainEntryOf(v domain.AuditChainEntry) auditChainEntryJSON { return auditChainEntryJSON(v) }

// auditHeadJSON names one entry of the chain by its seq and hash.
type auditHeadJSON struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// auditBreakJSON is the first broken link of the chain.
type auditBreakJSON struct {
	Seq      uint64 `json:"seq"`
	Position uint64 `json:"position,omitempty"`
	Problem  string `json:"problem"`
}

// auditReportJSON is GET /v1/audit/verify's answer.
type auditReportJSON struct {
	OK      bool           `json:"ok"`
	Entries uint64         `json:"entries"`
	Head    auditHeadJSON  `json:"head"`
	Anchor  *auditHeadJSON `json:"anchor"`
	// AnchorState is none, stored, deleted or altered.
	AnchorState string `json:"anchor_state"`
	// AnchorLag counts the entries past the anchored head (written, not
	// anchored yet).
	AnchorLag uint64          `json:"anchor_lag"`
	Broken    *auditBreakJSON `json:"broken"`
}

func auditReportOf(r domain.AuditReport) auditReportJSON {
	out := auditReportJSON{OK: r.OK(), Entries: r.Entries, Head: auditHeadJSON(r.Head), AnchorState: string(r.AnchorState),
		AnchorLag: r.AnchorLag}
	if r.AnchorState == domain.AnchorStored {
		a := auditHeadJSON(r.Anchor)
		out.Anchor = &a
	}
	if b := r.Broken; b != nil {
		out.Broken = &auditBreakJSON{Seq: b.Seq, Position: b.Position, Problem: b.Problem}
	}
	return out
}

// passCountsJSON are pass counts: every pass, the denied, the abnormal.
type passCountsJSON struct {
	Passes   int64 `json:"passes"`
	Denied   int64 `json:"denied"`
	Abnormal int64 `json:"abnormal"`
}

func passCountsOf(c domain.PassCounts) passCountsJSON { return passCountsJSON(c) }

// hourJSON is one hour of today's passes.
type hourJSON struct {
	Hour time.Time `json:"hour"` // the hour's start, in the dashboard's time zone
	passCountsJSON
}

// districtCountsJSON is today's passes of one district.
type districtCountsJSON struct {
	District string `json:"district"`
	passCountsJSON
}

// venueTypeCountsJSON is today's passes at one venue type.
type venueTypeCountsJSON struct {
	VenueType string `json:"venue_type"`
	passCountsJSON
}

// occupancyJSON is one busy venue's occupancy now.
type occupancyJSON struct {
	VenueID   uuid.UUID `json:"venue_id"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	District  string    `json:"district"`
	Occupancy int       `json:"occupancy"`
}

func occupancyOf(v domain.VenueOccupancy) occupancyJSON { return occupancyJSON(v) }

// pendingJSON are the review queues' lengths.
type pendingJSON struct {
	Venues       int `json:"venues"`
	Declarations int `json:"declarations"`
}

// feedJSON is a denied or abnormal pass as the dashboard's feed shows it:
// where and what, never who.
type feedJSON struct {
	EventID    uuid.UUID `json:"event_id"`
	At         time.Time `json:"at"`
	District   string    `json:"district"`
	VenueID    uuid.UUID `json:"venue_id"`
	VenueName  string    `json:"venue_name"`
	CodeColour string    `json:"code_colour"`
	Decision   string    `json:"decision"`
	Reason     string    `json:"reason"`
}

// dashboardJSON is GET /v1/dashboard/summary and each event of
// GET /v1/dashboard/stream.
type dashboardJSON struct {
	District      string                `json:"district,omitempty"` // "" (left out): the whole city
	Day           string                `json:"day"`                // YYYY-MM-DD in TimeZone
	TimeZone      string                `json:"time_zone"`
	PassesToday   int64                 `json:"passes_today"`
	DeniedToday   int64                 `json:"denied_today"`
	AbnormalToday int64                 `json:"abnormal_today"`
	PassesTotal   int64                 `json:"passes_total"` // passes held now
	PassesPerHour []hourJSON            `json:"passes_per_hour"`
	ByDistrict    []districtCountsJSON  `json:"by_district"`
	ByVenueType   []venueTypeCountsJSON `json:"by_venue_type"`
	OccupancyTop  []occupancyJSON       `json:"occupancy_top"`
	Pending       pendingJSON           `json:"pending_reviews"`
	Feed          []feedJSON            `json:"feed"`
	At            time.Time             `json:"at"`
	Position      uint64                `json:"position"`
}
