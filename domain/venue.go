package domain

import (
	"errors"
	"math"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// Venue statuses.
const (
	VenueStatusPending  = "pending"
	VenueStatusApproved = "approved"
	VenueStatusRejected = "rejected"
)

// Review decisions (venues and declarations).
const (
	ReviewApprove = "approve"
	ReviewReject  = "reject"
)

// Venue types, as used on the wire in a venue's type (PRODUCT.md).
const (
	VenueGovernment        = "government"
	VenuePublicInstitution = "public_institution"
	VenueServiceHall       = "service_hall"
	VenueSchool            = "school"
	VenueHospital          = "hospital"
	VenueLibrary           = "library"
	VenueMuseum            = "museum"
	VenueCulturalCenter    = "cultural_center"
	VenueElderlyCare       = "elderly_care"
	VenueRestaurant        = "restaurant"
	VenueHotel             = "hotel"
	VenueGuesthouse        = "guesthouse"
	VenueMall              = "mall"
	VenueSupermarket       = "supermarket"
	VenueFarmersMarket     = "farmers_market"
	VenuePharmacy          = "pharmacy"
	VenueEntertainment     = "entertainment"
	VenueTouristSite       = "tourist_site"
	VenueEnterprise        = "enterprise"
	VenueTransportStation  = "transport_station"
	VenuePublicTransport   = "public_transport"
	VenueColdChain         = "cold_chain"
	VenueLogistics         = "logistics"
	VenueResidential       = "residential"
	VenueConstructionSite  = "construction_site"
	VenueOther             = "other"
)

// VenueTypes returns every venue type, in PRODUCT.md's order.
func VenueTypes() []string {
	return []string{VenueGovernment, VenuePublicInstitution, VenueServiceHall, VenueSchool,
		VenueHospital, VenueLibrary, VenueMuseum, VenueCulturalCenter, VenueElderlyCare,
		VenueRestaurant, VenueHotel, VenueGuesthouse, VenueMall, VenueSupermarket,
		VenueFarmersMarket, VenuePharmacy, VenueEntertainment, VenueTouristSite,
		VenueEnterprise, VenueTransportStation, VenuePublicTransport, VenueColdChain,
		VenueLogistics, VenueResidential, VenueConstructionSite, VenueOther}
}

// IsVenueType reports whether t is one of VenueTypes.
func IsVenueType(t string) bool { return slices.Contains(VenueTypes(), t) }

// Limits on venue input.
const (
	MaxVenueNameLength = 100 // runes
	MaxAddressLength   = 200 // runes
	MaxReasonLength    = 500 // runes
	// MaxNATWithinHours bounds a venue's nucleic-acid requirement (a week).
	MaxNATWithinHours = 168
)

// ValidDistrict reports whether d is a 6-digit administrative division
// code. Every 6-digit code is accepted: the ledger serves one city today
// (Linyi, 3713xx), but divisions are renamed and split, and refusing a real
// code would stop a venue from applying.
func ValidDistrict(d string) bool { return len(d) == 6 && digits(d) }

// Venue is the venue aggregate, rebuilt only by replaying its events through
// apply (ReplayVenue).
type Venue struct {
	root
	applied bool
	// application is the VenueApplied event: name, type, place, manager
	// and pass requirements.
	application VenueApplied
	status      string
	reason      string
	admins      []uuid.UUID // in the order they were added
	code        string
}

// ReplayVenue rebuilds a venue from its events, in log order.
func ReplayVenue(events []Envelope) (Venue, error) {
	return replay(events, (*Venue).apply)
}

// apply folds one event (e, decoded as ev) into the venue. It is the only
// way a Venue changes.
func (v *Venue) apply(e Envelope, ev Event) error {
	switch ev := ev.(type) {
	case *VenueApplied:
		v.id, v.applied, v.application = ev.VenueID, true, *ev
		v.status = VenueStatusPending
	case *VenueReviewed:
		v.status = ReviewedStatus(ev.Decision, VenueStatusApproved, VenueStatusRejected)
		v.reason = ev.Reason
	case *VenueCodeIssued:
		v.code = ev.Code
	case *SubAdminAdded:
		if !slices.Contains(v.admins, ev.PersonID) {
			v.admins = append(v.admins, ev.PersonID)
		}
	case *SubAdminRemoved:
		v.admins = slices.DeleteFunc(v.admins, func(id uuid.UUID) bool { return id == ev.PersonID })
	default:
		return notPartOf(e, "a venue")
	}
	v.version = e.Position
	return nil
}

// Exists reports whether the venue was applied for.
func (v Venue) Exists() bool { return v.applied }

// Name returns the venue's name.
func (v Venue) Name() string { return v.application.Name }

// Type returns the venue's type (one of VenueTypes).
func (v Venue) Type() string { return v.application.Type }

// District returns the venue's 6-digit district code.
func (v Venue) District() string { return v.application.District }

// Address returns the venue's street address.
func (v Venue) Address() string { return v.application.Address }

// Status returns pending, approved or rejected ("" before the application).
func (v Venue) Status() string { return v.status }

// Reason returns the reviewer's reason, if any.
func (v Venue) Reason() string { return v.reason }

// ManagerID returns the person who applied for the venue and manages it.
func (v Venue) ManagerID() uuid.UUID { return v.application.ManagerID }

// Admins returns the sub-admins, in the order they were added.
func (v Venue) Admins() []uuid.UUID { return slices.Clone(v.admins) }

// IsAdmin reports whether person is one of the venue's sub-admins.
func (v Venue) IsAdmin(person uuid.UUID) bool { return slices.Contains(v.admins, person) }

// Requirements returns the venue's pass requirements.
func (v Venue) Requirements() (requireGreen bool, natWithinHours int) {
	return v.application.RequireGreen, v.application.NATWithinHours
}

// Code returns the issued venue code, if any.
func (v Venue) Code() string { return v.code }

// validText checks a required free-text field (Text).
func validText(field, s string, limit int) (string, error) { return Text(field, s, limit, true) }

// optionalText checks an optional free-text field (Text).
func optionalText(field, s string, limit int) (string, error) { return Text(field, s, limit, false) }

// ValidateApplyVenue checks an application and returns it normalised;
// every bad field is reported at once.
func ValidateApplyVenue(cmd ApplyVenue) (ApplyVenue, error) {
	var errs fieldErrs
	cmd.Name = errs.text(validText("name", cmd.Name, MaxVenueNameLength))
	if !IsVenueType(cmd.Type) {
		errs.add(Invalid("type", "must be one of %s", strings.Join(VenueTypes(), ", ")))
	}
	if cmd.District = strings.TrimSpace(cmd.District); !ValidDistrict(cmd.District) {
		errs.add(Invalid("district", "must be a 6-digit administrative division code"))
	}
	cmd.Address = errs.text(validText("address", cmd.Address, MaxAddressLength))
	if math.IsNaN(cmd.Lat) || cmd.Lat < -90 || cmd.Lat > 90 {
		errs.add(Invalid("lat", "must be between -90 and 90"))
	}
	if math.IsNaN(cmd.Lng) || cmd.Lng < -180 || cmd.Lng > 180 {
		errs.add(Invalid("lng", "must be between -180 and 180"))
	}
	if cmd.NATWithinHours < 0 || cmd.NATWithinHours > MaxNATWithinHours {
		errs.add(Invalid("nat_within_hours", "must be between 0 and %d", MaxNATWithinHours))
	}
	return cmd, errs.err()
}

// DecideApplyVenue decides an application for a new venue id by a person.
func DecideApplyVenue(v Venue, venueID uuid.UUID, applicant Person, cmd ApplyVenue) ([]Event, error) {
	cmd, err := ValidateApplyVenue(cmd)
	if err != nil {
		return nil, err
	}
	if !applicant.registered {
		return nil, Errorf(ErrNotFound, "applicant is not a registered person")
	}
	if err := MayActAsSelf(applicant, "apply for a venue code"); err != nil {
		return nil, err
	}
	if v.applied {
		return nil, Errorf(ErrConflict, "venue %s already exists", venueID)
	}
	return []Event{VenueApplied{
		VenueID: venueID, Name: cmd.Name, Type: cmd.Type, District: cmd.District,
		Address: cmd.Address, Lat: cmd.Lat, Lng: cmd.Lng, ManagerID: applicant.id,
		RequireGreen: cmd.RequireGreen, NATWithinHours: cmd.NATWithinHours,
	}}, nil
}

// ValidateReview checks a review decision and returns the trimmed reason.
// A rejection needs a reason.
func ValidateReview(decision, reason string) (string, error) {
	reason, err := ValidateAuditedReason(reason, false)
	if err != nil {
		return "", err
	}
	switch decision {
	case ReviewApprove:
	case ReviewReject:
		if reason == "" {
			return "", Invalid("reason", "is required to reject")
		}
	default:
		return "", Invalid("decision", "must be approve or reject")
	}
	return reason, nil
}

// checkReview is how every review starts: actor may review the thing
// ("venue", "declaration") of district (MayReview), and the decision and
// its reason are valid (ValidateReview). It returns the trimmed reason.
func checkReview(actor Actor, thing, district, decision, reason string) (string, error) {
	if err := MayReview(actor, thing, district); err != nil {
		return "", err
	}
	return ValidateReview(decision, reason)
}

// ReviewedStatus is the status a review's decision leaves its venue or
// declaration in: approved for an approval, rejected for anything else.
func ReviewedStatus(decision, approved, rejected string) string {
	if decision == ReviewApprove {
		return approved
	}
	return rejected
}

// DecideReviewVenue decides actor's review of a pending venue application
// managed by manager (a rejected manager's venue cannot be approved).
func DecideReviewVenue(v Venue, actor Actor, cmd ReviewVenue, manager Person) ([]Event, error) {
	reason, err := checkReview(actor, "venue", v.District(), cmd.Decision, cmd.Reason)
	if err != nil {
		return nil, err
	}
	if !v.applied {
		return nil, Errorf(ErrNotFound, "venue not found")
	}
	if v.status != VenueStatusPending {
		return nil, Errorf(ErrConflict, "venue %s was already reviewed (%s)", v.id, v.status)
	}
	if cmd.Decision == ReviewApprove {
		if err := MayActAsSelf(manager, "have a venue code approved"); err != nil {
			// Why the applicant may not (rejected, or erased), as a conflict.
			why := err.Error()
			var de *Error
			if errors.As(err, &de) {
				why = de.Msg
			}
			return nil, Errorf(ErrConflict, "venue %s cannot be approved: its applicant: %s", v.id, why)
		}
	}
	return []Event{VenueReviewed{VenueID: v.id, Decision: cmd.Decision, Reason: reason}}, nil
}

// DecideAddSubAdmin decides whether actor may add person as a sub-admin.
func DecideAddSubAdmin(v Venue, actor Actor, person Person) ([]Event, error) {
	if !v.applied {
		return nil, Errorf(ErrNotFound, "venue not found")
	}
	if err := MayManageSubAdmins(actor, v); err != nil {
		return nil, err
	}
	if v.status == VenueStatusRejected {
		return nil, Errorf(ErrConflict, "venue %s was rejected", v.id)
	}
	if !person.registered {
		return nil, Errorf(ErrNotFound, "a sub-admin must be a registered person")
	}
	if err := MayActAsSelf(person, "be a sub-admin"); err != nil {
		return nil, err
	}
	if person.id == v.ManagerID() {
		return nil, Errorf(ErrConflict, "person %s already manages venue %s", person.id, v.id)
	}
	if v.IsAdmin(person.id) {
		return nil, Errorf(ErrConflict, "person %s is already a sub-admin of venue %s", person.id, v.id)
	}
	return []Event{SubAdminAdded{VenueID: v.id, PersonID: person.id}}, nil
}

// DecideRemoveSubAdmin decides whether actor may remove personID from the sub-admins.
func DecideRemoveSubAdmin(v Venue, actor Actor, personID uuid.UUID) ([]Event, error) {
	if !v.applied {
		return nil, Errorf(ErrNotFound, "venue not found")
	}
	if err := MayManageSubAdmins(actor, v); err != nil {
		return nil, err
	}
	if !v.IsAdmin(personID) {
		return nil, Errorf(ErrNotFound, "person %s is not a sub-admin of venue %s", personID, v.id)
	}
	return []Event{SubAdminRemoved{VenueID: v.id, PersonID: personID}}, nil
}
