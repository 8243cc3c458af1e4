package domain

import (
	"github.com/google/uuid"
)

// Reactions: commands run in answer to an event already in the log (by the
// reactions router), each writing its outcome as an event of its own. Each
// is idempotent: its event id is derived from the source event's id, and it
// decides on the aggregate's state, so a redelivered source changes nothing
// twice.

// ReactionsActor is the actor recorded on the events the reactions write.
var ReactionsActor = Actor{Subject: "reactions"}

var (
	// queuedNamespace is the UUIDv5 namespace of DeclarationQueued event ids.
	queuedNamespace = uuid.MustParse("b7e2f0a4-1c9d-4e63-8a5f-0d3b6c2e9f17")
	// codeNamespace is the UUIDv5 namespace of VenueCodeIssued event ids.
	codeNamespace = uuid.MustParse("e4a1c7d9-5b20-4f8e-b316-7c9d2a0e5f64")
)

// DeclarationQueuedEventID is the id of the DeclarationQueued event written
// in answer to the declaration event declaredEventID.
func DeclarationQueuedEventID(declaredEventID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(queuedNamespace, declaredEventID[:])
}

// VenueCodeEventID is the id of the VenueCodeIssued event written in answer
// to the approving VenueReviewed event reviewedEventID.
func VenueCodeEventID(reviewedEventID uuid.UUID) uuid.UUID {
	return uuid.NewSHA1(codeNamespace, reviewedEventID[:])
}

// PassIsAbnormal reports whether a recorded pass must be reported to its
// venue's district: it was denied, or the screen showed a yellow or red code
// or a positive nucleic-acid test.
func PassIsAbnormal(p PassRecorded) bool {
	return IsAbnormal(p.Decision, &HealthView{CodeColour: p.Screen.CodeColour, NATResult: p.Screen.NATResult})
}

// AlertFor builds the alert an abnormal pass raises in district.
func AlertFor(p PassRecorded, passEventID uuid.UUID, district string) AlertRaised {
	a := AlertRaised{
		District:    district,
		VenueID:     p.VenueID,
		PersonID:    p.PersonID,
		PassEventID: passEventID,
		CodeColour:  p.Screen.CodeColour,
		Decision:    p.Decision,
		Reason:      p.Reason,
	}
	if a.Reason == "" {
		a.Reason = "abnormal health status"
	}
	return a
}

// DecideIssueVenueCode decides whether an approved venue's code is issued:
// once, and only while it is approved.
func DecideIssueVenueCode(v Venue, code string) ([]Event, error) {
	if !v.applied {
		return nil, Errorf(ErrNotFound, "venue not found")
	}
	if v.status != VenueStatusApproved || v.code != "" {
		return nil, nil
	}
	return []Event{VenueCodeIssued{VenueID: v.id, Code: code}}, nil
}
