package domain

import (
	"slices"

	"github.com/google/uuid"
)

// Who may do what: every "may" rule of the ledger is in this file. The HTTP
// routes gate on the role sets (a caller outside a route's set is refused
// before anything is read); the use cases and the decide functions apply
// the finer rules below (whose venue, which person, which district) once,
// where the decision is made.

// Roles is the set of roles that may call one kind of operation.
type Roles []string

// Allow reports whether a holds one of the roles.
func (rs Roles) Allow(a Actor) bool { return slices.Contains(rs, a.Role) }

// Require returns ErrForbidden with message unless a holds one of the roles.
func (rs Roles) Require(a Actor, message string) error {
	if !rs.Allow(a) {
		return Errorf(ErrForbidden, "%s", message)
	}
	return nil
}

// The role sets of the API's operations.
var (
	// Reviewers review identities, venue applications and declarations,
	// and read the review queue.
	Reviewers = Roles{RoleReviewer, RoleAdmin}
	// Admins run the ledger's administrative operations (the poison queue).
	Admins = Roles{RoleAdmin}
	// Persons are registered citizens acting for themselves (and as venue
	// staff, for the venues they manage).
	Persons = Roles{RolePerson}
	// HealthFeeds push health records.
	HealthFeeds = Roles{RoleHealthFeed}
	// Tracers run contact traces (the audit trail is for AuditReaders).
	Tracers = Roles{RoleAnalyst, RoleAdmin}
	// AuditReaders list and verify the audit trail: admins, and auditors
	// (a role that does nothing else, for whoever checks the admins).
	AuditReaders = Roles{RoleAdmin, RoleAuditor}
	// HistoryReaders read a person's pass history.
	HistoryReaders = Roles{RolePerson, RoleAdmin, RoleAnalyst}
	// CityReaders list venues and read district alerts.
	CityReaders = Roles{RoleAdmin, RoleReviewer, RoleDashboard, RoleAnalyst}
	// PersonReaders read a person (MayReadPerson narrows a person's reads).
	PersonReaders = Roles{RolePerson, RoleAdmin, RoleReviewer}
	// DeclarationReaders read one declaration (MayReadDeclaration narrows).
	DeclarationReaders = Roles{RolePerson, RoleReviewer, RoleAdmin}
	// SubAdminManagers add and remove a venue's sub-admins (the venue's
	// manager, checked by MayManageSubAdmins, or an admin).
	SubAdminManagers = Roles{RolePerson, RoleAdmin}
	// Dashboards read a venue's occupancy besides its staff and admins
	// (MayReadVenueStaffView's also), and the dashboard's counts.
	Dashboards = Roles{RoleDashboard}
	// AlertPersonReaders see whom a district alert is about; the other
	// readers of alerts (dashboards) see where and what, never who
	// (AlertSeenBy).
	AlertPersonReaders = Roles{RoleReviewer, RoleAdmin, RoleAnalyst}
	// DistrictBound are the roles whose token may name one district
	// (Actor.District): they then read and act only there (DistrictScope,
	// InDistrict).
	DistrictBound = Roles{RoleReviewer, RoleDashboard}
)

// IsDistrictBound reports whether a's token limits it to one district.
func IsDistrictBound(a Actor) bool { return a.District != "" && DistrictBound.Allow(a) }

// IsVenueStaff reports whether actor works a venue: a scanner bound to it,
// or a person who manages it or is one of its sub-admins.
func IsVenueStaff(actor Actor, venue VenueView) bool {
	switch actor.Role {
	case RoleScanner:
		return actor.VenueID != uuid.Nil && actor.VenueID == venue.ID
	case RolePerson:
		return actor.PersonID != uuid.Nil &&
			(venue.ManagerID == actor.PersonID || slices.Contains(venue.Admins, actor.PersonID))
	}
	return false
}

// AuthorisePass decides whether actor may record a pass by method at venue.
func AuthorisePass(actor Actor, method string, venue VenueView) error {
	if method == MethodSelfScan {
		if actor.Role != RolePerson || actor.PersonID == uuid.Nil {
			return Errorf(ErrForbidden, "a self scan needs a person's token")
		}
		return nil
	}
	if !IsVenueStaff(actor, venue) {
		return Errorf(ErrForbidden, "only venue %s's staff or scanners may record its %s passes", venue.ID, method)
	}
	return nil
}

// MayReadDeclaration reports whether a may read a declaration: its
// declarant, reviewers (of its district, when their token names one) and
// admins.
func MayReadDeclaration(a Actor, v DeclarationView) bool {
	switch a.Role {
	case RoleReviewer:
		return a.District == "" || a.District == v.District
	case RoleAdmin:
		return true
	case RolePerson:
		return a.PersonID != uuid.Nil && a.PersonID == v.PersonID
	}
	return false
}

// MayReadPerson reports whether a may see person p: themself, their
// guardian, a reviewer or an admin.
func MayReadPerson(a Actor, p PersonView) bool {
	return a.Role == RoleAdmin || a.Role == RoleReviewer || isSelfOrGuardian(a, p)
}

// isSelfOrGuardian reports whether a is person p or p's guardian.
func isSelfOrGuardian(a Actor, p PersonView) bool {
	return a.Role == RolePerson && a.PersonID != uuid.Nil &&
		(a.PersonID == p.ID || (p.GuardianID != uuid.Nil && a.PersonID == p.GuardianID))
}

// MayPrintVenueCode reports whether a may see and print v's code: its staff
// (its manager and sub-admins, not its scanners: a scanner scans personal
// codes, and a device that can show the venue's code could hand it to
// anyone), reviewers of its district and admins.
func MayPrintVenueCode(a Actor, v VenueView) bool {
	if a.Role == RoleScanner {
		return false
	}
	return (Reviewers.Allow(a) && InDistrict(a, v.District)) || IsVenueStaff(a, v)
}

// MayReadVenueRecord reports whether a may read v's full record (its
// manager, sub-admins and status history) rather than its public face: its
// staff and scanners, and the city's readers (CityReaders), a reviewer
// bound to a district only in that district.
func MayReadVenueRecord(a Actor, v VenueView) bool {
	return IsVenueStaff(a, v) || (CityReaders.Allow(a) && InDistrict(a, v.District))
}

// DistrictScope returns the district a district-wide read by a covers when
// asked names one ("" for every district): what was asked, except that a
// reviewer or dashboard bound to a district (IsDistrictBound) reads only
// theirs, so "" is theirs and another district is ErrForbidden.
func DistrictScope(a Actor, asked string) (string, error) {
	if !IsDistrictBound(a) {
		return asked, nil
	}
	if asked != "" && asked != a.District {
		return "", Errorf(ErrForbidden, "a %s of district %s reads only that district, not %s", a.Role, a.District, asked)
	}
	return a.District, nil
}

// MayReadVenueStaffView reports whether a may read v's staff-only views
// (entry list, occupancy): its staff and scanners, admins, and the roles in
// also, one bound to a district (a district dashboard) only there.
func MayReadVenueStaffView(a Actor, v VenueView, also Roles) bool {
	return IsVenueStaff(a, v) || a.Role == RoleAdmin || (also.Allow(a) && InDistrict(a, v.District))
}

// InDistrict reports whether a may act on or read what belongs to district:
// a reviewer or dashboard bound to a district (IsDistrictBound) only in
// that district, everyone else wherever their role allows.
func InDistrict(a Actor, district string) bool {
	return !IsDistrictBound(a) || a.District == district
}

// MayAddFamilyMember decides whether a may register family members under
// guardian: only the guardian themself.
func MayAddFamilyMember(a Actor, guardian uuid.UUID) error {
	if a.Role != RolePerson || a.PersonID != guardian {
		return Errorf(ErrForbidden, "only the guardian may add their family members")
	}
	return nil
}

// MayApply decides whether a may apply for something in their own name (a
// venue code, a declaration): a registered person's token.
func MayApply(a Actor, what string) error {
	if a.Role != RolePerson || a.PersonID == uuid.Nil {
		return Errorf(ErrForbidden, "only a registered person may %s", what)
	}
	return nil
}

// MayReview decides whether a may review a thing ("venue", "declaration")
// of district: reviewers and admins, and a reviewer bound to a district
// only in that district. An empty district (the thing does not exist, so
// it has none) checks the role only.
func MayReview(a Actor, thing, district string) error {
	if !Reviewers.Allow(a) {
		return Errorf(ErrForbidden, "only a reviewer or an admin may review a %s", thing)
	}
	if district != "" && !InDistrict(a, district) {
		return Errorf(ErrForbidden, "a reviewer of district %s may not review district %s's %ss", a.District, district, thing)
	}
	return nil
}

// MayManageSubAdmins decides whether a may add or remove v's sub-admins:
// its manager, or an admin.
func MayManageSubAdmins(a Actor, v Venue) error {
	if a.Role == RoleAdmin || (a.Role == RolePerson && a.PersonID == v.ManagerID()) {
		return nil
	}
	return Errorf(ErrForbidden, "only the venue's manager or an admin may change its sub-admins")
}

// What an identity check means. A person starts pending; a face check or a
// manual review approves or rejects them (and a rejected person may be
// checked again).
//   - Pending: may pass, apply for a venue code and declare (each of those
//     is reviewed in its turn, and the reviewer sees the verification),
//     register family members and be a sub-admin.
//   - Rejected: their identity is not established, so whatever they do in
//     their own name is refused: an entry is denied (an exit still passes),
//     and they may not apply for a venue code, have one approved, be a
//     sub-admin, declare or register family members.
//   - Approved: everything their role allows.

// MayActAsSelf decides whether p may act in their own name (what), as
// above: anyone registered and not rejected.
func MayActAsSelf(p Person, what string) error {
	if p.erased {
		return WasErased(p.id)
	}
	if p.registered && p.verification == VerificationRejected {
		return Errorf(ErrForbidden, "a person whose identity check was rejected may not %s until a new check approves them", what)
	}
	return nil
}

// MayActWithToken decides whether a's token still acts in their name. A
// person's token stops acting once the person is erased (p, as the read
// models hold them; known false: not in them, which is no erasure): an
// erased person does nothing more, as themself or as a venue's staff.
// Every other role's token acts while it is valid.
func MayActWithToken(a Actor, p PersonView, known bool) error {
	if a.Role == RolePerson && known && p.Erased {
		return WasErased(a.PersonID)
	}
	return nil
}

// MayShowPersonalCode decides whether a personal code may be issued for p
// (to whom is the route's gate and MayReadPerson): never for an erased
// person, whose passes are all refused.
func MayShowPersonalCode(p PersonView) error {
	if p.Erased {
		return WasErased(p.ID)
	}
	return nil
}

// MayErasePerson decides whether a may erase a person (and the family
// members registered under them): admins only.
func MayErasePerson(a Actor) error {
	return Admins.Require(a, "only an admin may erase a person")
}

// MayReadHistory reports whether a may read person p's pass history:
// analysts and admins anyone's, a person their own and their family
// members'.
func MayReadHistory(a Actor, p PersonView) bool {
	return a.Role == RoleAnalyst || a.Role == RoleAdmin || isSelfOrGuardian(a, p)
}

// MayProbePersons reports whether a may learn that a person id exists
// without being allowed to read them (a 404 rather than a 403): the roles
// that read anyone.
func MayProbePersons(a Actor) bool {
	return a.Role == RoleAdmin || a.Role == RoleReviewer || a.Role == RoleAnalyst
}

// LookNeedsReason reports whether a must say why they look at a person's
// movements: an analyst looks at other people's for a living.
func LookNeedsReason(a Actor) bool { return a.Role == RoleAnalyst }

// AlertSeenBy is alert as actor may see it: without its person for a role
// outside AlertPersonReaders (a dashboard shows the city's denied passes,
// not the people refused).
func AlertSeenBy(actor Actor, alert Alert) Alert {
	if !AlertPersonReaders.Allow(actor) {
		alert.PersonID = uuid.Nil
	}
	return alert
}
