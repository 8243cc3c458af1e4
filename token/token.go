// Package token signs and checks the ledger's tokens: bearer tokens that
// carry an actor's role, short-lived personal info codes (我的信息码) and
// printable venue codes. All three are HS256 JSON Web Tokens, issued with
// github.com/golang-jwt/jwt/v5 and signed with one key from the data dir;
// each kind has its own audience and its own key derived from that one, so
// a token of one kind is never accepted as another.
//
// Checking is on the hot path (every pass carries a bearer token and a code),
// so it is done by a strict verifier (verify.go) that accepts exactly the
// tokens this package issues, and verified bearer tokens and venue codes are
// remembered.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// Audiences name the token kinds. A token carries exactly one.
const (
	AudienceBearer       = "ledger:bearer"
	AudiencePersonalCode = "ledger:personal-code"
	AudienceVenueCode    = "ledger:venue-code"
)

// DefaultBearerTTL is how long a bearer token lives when IssueBearer is given
// no ttl.
const DefaultBearerTTL = 30 * 24 * time.Hour

// PersonalCodeTTL is how long a personal info code is valid: long enough to
// show it at a door, short enough that a screenshot is soon useless.
const PersonalCodeTTL = 5 * time.Minute

// MinKeyBytes is the shortest signing key NewSigner accepts.
const MinKeyBytes = 32

// ErrExpired is returned (wrapped, beside a domain error kind) when a token
// or code was genuine but has expired.
var ErrExpired = errors.New("token: expired")

// isRole reports whether a bearer token may carry role.
func isRole(role string) bool {
	switch role {
	case domain.RoleAdmin, domain.RoleReviewer, domain.RolePerson, domain.RoleScanner,
		domain.RoleAnalyst, domain.RoleDashboard, domain.RoleHealthFeed, domain.RoleAuditor:
		return true
	}
	return false
}

// Signer issues and checks tokens. It is safe for concurrent use.
type Signer struct {
	bearer, personal, venue kind
	now                     func() time.Time

	// bearerCache remembers bearer tokens already verified, so a scanner
	// that sends the same token with every pass pays for HMAC and JSON once.
	// A hit needs the whole token string to match, and expiry is still checked.
	bearerMu    sync.RWMutex
	bearerCache map[string]cachedBearer

	// venueCache remembers venue codes already verified. Venue codes do not
	// expire and every self scan carries one.
	venueMu    sync.RWMutex
	venueCache map[string]uuid.UUID
}

type cachedBearer struct {
	actor   domain.Actor
	expires time.Time
}

// Cache bounds; a full cache is emptied and refills.
const (
	bearerCacheSize = 8192
	venueCacheSize  = 65536
)

// NewSigner returns a Signer for key (at least MinKeyBytes long). now is the
// clock used for issuing and expiry checks; nil means time.Now.
func NewSigner(key []byte, now func() time.Time) (*Signer, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("token: signing key has %d bytes, want at least %d", len(key), MinKeyBytes)
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{
		bearer:      newKind(AudienceBearer, derive(key, AudienceBearer)),
		personal:    newKind(AudiencePersonalCode, derive(key, AudiencePersonalCode)),
		venue:       newKind(AudienceVenueCode, derive(key, AudienceVenueCode)),
		now:         now,
		bearerCache: make(map[string]cachedBearer),
		venueCache:  make(map[string]uuid.UUID),
	}, nil
}

// derive gives each token kind its own key, so that a token verifies under
// one kind's key only, whatever audiences it names.
func derive(key []byte, kind string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("checkin-ledger token key v1\x00"))
	m.Write([]byte(kind))
	return m.Sum(nil)
}

// bearerClaims are a bearer token's claims.
type bearerClaims struct {
	Role     string `json:"role"`
	PersonID string `json:"person_id,omitempty"`
	VenueID  string `json:"venue_id,omitempty"`
	// District limits a reviewer to one district (optional).
	District string `json:"district,omitempty"`
	jwt.RegisteredClaims
}

// IssueBearer returns a bearer token for actor, valid for ttl (0 or less:
// DefaultBearerTTL). A person token needs PersonID, a scanner token VenueID;
// an empty Subject is derived from the role and ids.
func (s *Signer) IssueBearer(actor domain.Actor, ttl time.Duration) (string, error) {
	if !isRole(actor.Role) {
		return "", fmt.Errorf("issue bearer token: role %q: %w", actor.Role, domain.ErrInvalid)
	}
	if actor.Role == domain.RolePerson && actor.PersonID == uuid.Nil {
		return "", fmt.Errorf("issue bearer token: a person token needs a person id: %w", domain.ErrInvalid)
	}
	if actor.Role == domain.RoleScanner && actor.VenueID == uuid.Nil {
		return "", fmt.Errorf("issue bearer token: a scanner token needs a venue id: %w", domain.ErrInvalid)
	}
	if actor.District != "" && (!domain.DistrictBound.Allow(actor) || !domain.ValidDistrict(actor.District)) {
		return "", fmt.Errorf("issue bearer token: only a reviewer or dashboard token names a district, of 6 digits: %w", domain.ErrInvalid)
	}
	if ttl <= 0 {
		ttl = DefaultBearerTTL
	}
	if actor.Subject == "" {
		actor.Subject = Subject(actor)
	}
	now := s.now()
	c := bearerClaims{
		Role: actor.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   actor.Subject,
			Audience:  jwt.ClaimStrings{AudienceBearer},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	if actor.PersonID != uuid.Nil {
		c.PersonID = actor.PersonID.String()
	}
	if actor.VenueID != uuid.Nil {
		c.VenueID = actor.VenueID.String()
	}
	c.District = actor.District
	return s.bearer.sign(c)
}

// Subject returns the stable audit name of an actor: "person:<id>",
// "scanner:<venue id>", "reviewer:<district>" for a district's reviewer
// ("dashboard:<district>" likewise), or the role alone.
func Subject(a domain.Actor) string {
	switch {
	case domain.IsDistrictBound(a):
		return a.Role + ":" + a.District
	case a.Role == domain.RolePerson && a.PersonID != uuid.Nil:
		return "person:" + a.PersonID.String()
	case a.Role == domain.RoleScanner && a.VenueID != uuid.Nil:
		return "scanner:" + a.VenueID.String()
	default:
		return a.Role
	}
}

// ParseBearer checks a bearer token and returns its actor. A token that is
// malformed, altered, signed with another key, of another kind or expired is
// an error wrapping domain.ErrUnauthorized (and ErrExpired when expired).
func (s *Signer) ParseBearer(tok string) (domain.Actor, error) {
	now := s.now()
	s.bearerMu.RLock()
	hit, ok := s.bearerCache[tok]
	s.bearerMu.RUnlock()
	if ok && now.Before(hit.expires) {
		return hit.actor, nil
	}
	a, exp, err := s.parseBearer(tok, now)
	if err != nil {
		if ok {
			s.bearerMu.Lock()
			delete(s.bearerCache, tok)
			s.bearerMu.Unlock()
		}
		return domain.Actor{}, fmt.Errorf("parse bearer token: %w", err)
	}
	s.bearerMu.Lock()
	if len(s.bearerCache) >= bearerCacheSize {
		clear(s.bearerCache)
	}
	s.bearerCache[tok] = cachedBearer{actor: a, expires: exp}
	s.bearerMu.Unlock()
	return a, nil
}

func (s *Signer) parseBearer(tok string, now time.Time) (domain.Actor, time.Time, error) {
	var c wireClaims
	exp, err := s.bearer.verify(tok, now, true, &c)
	if err != nil {
		return domain.Actor{}, time.Time{}, classify(err, domain.ErrUnauthorized)
	}
	bad := func(why string) (domain.Actor, time.Time, error) {
		return domain.Actor{}, time.Time{}, fmt.Errorf("%s: %w", why, domain.ErrUnauthorized)
	}
	a := domain.Actor{Role: c.Role, Subject: c.Sub}
	if !isRole(c.Role) {
		return bad("unknown role")
	}
	if c.PersonID != "" {
		if a.PersonID, err = uuid.Parse(c.PersonID); err != nil {
			return bad("bad person id")
		}
	}
	if c.VenueID != "" {
		if a.VenueID, err = uuid.Parse(c.VenueID); err != nil {
			return bad("bad venue id")
		}
	}
	if a.Role == domain.RolePerson && a.PersonID == uuid.Nil {
		return bad("person token without person id")
	}
	if a.Role == domain.RoleScanner && a.VenueID == uuid.Nil {
		return bad("scanner token without venue id")
	}
	if c.District != "" {
		if !domain.DistrictBound.Allow(a) || !domain.ValidDistrict(c.District) {
			return bad("bad district")
		}
		a.District = c.District
	}
	if a.Subject == "" {
		a.Subject = Subject(a)
	}
	return a, exp, nil
}

// IssuePersonalCode returns a personal info code for personID and when it
// expires (PersonalCodeTTL from now).
func (s *Signer) IssuePersonalCode(personID uuid.UUID) (code string, expiresAt time.Time) {
	now := s.now()
	expiresAt = now.Add(PersonalCodeTTL).Truncate(time.Second)
	return s.personal.mustSign(jwt.RegisteredClaims{
		Subject:   personID.String(),
		Audience:  jwt.ClaimStrings{AudiencePersonalCode},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expiresAt),
	}), expiresAt
}

// ParsePersonalCode checks a personal info code now and returns the person id.
// An expired, altered, forged or other-kind code is an error wrapping
// domain.ErrInvalid (and ErrExpired when expired): it arrives inside a
// request body, so it is bad input rather than a missing credential.
func (s *Signer) ParsePersonalCode(code string) (uuid.UUID, error) {
	pc, err := s.ParsePersonalCodeAt(code, time.Time{}, 0)
	return pc.PersonID, err
}

// PersonalCode is a checked personal info code.
type PersonalCode struct {
	PersonID uuid.UUID
	// ID names this one code (its signature).
	ID string
}

// ParsePersonalCodeAt checks a personal info code as a scanner saw it at
// at (zero: now): signed by this ledger, issued no later than at and not
// expired at at, give or take skew. A batch from a scanner that was offline is checked
// at each pass's occurred_at, not at upload time. Errors are as
// ParsePersonalCode's.
func (s *Signer) ParsePersonalCodeAt(code string, at time.Time, skew time.Duration) (PersonalCode, error) {
	online := at.IsZero()
	if online {
		at = s.now() // now, exactly
	}
	var c wireClaims
	if _, err := s.personal.verify(code, at.Add(-skew), true, &c); err != nil {
		return PersonalCode{}, fmt.Errorf("parse personal code: %w", classify(err, domain.ErrInvalid))
	}
	// A code read offline must say when it was issued; one read now need
	// only be unexpired.
	if (c.Iat == nil && !online) || (c.Iat != nil && numericTime(*c.Iat).After(at.Add(skew))) {
		return PersonalCode{}, fmt.Errorf("parse personal code: issued after the pass it is scanned for: %w", domain.ErrInvalid)
	}
	id, err := uuid.Parse(c.Sub)
	if err != nil || id == uuid.Nil {
		return PersonalCode{}, fmt.Errorf("parse personal code: bad subject: %w", domain.ErrInvalid)
	}
	// The code's signature names it: an HMAC over all of it, so no two codes
	// share one (and it never leaves the ledger but through a digest, the
	// derived pass event id).
	return PersonalCode{PersonID: id, ID: code[strings.LastIndexByte(code, '.')+1:]}, nil
}

// IssueVenueCode returns the printable code of a venue. It has no expiry and
// is the same string every time for the same venue, so a reprint matches the
// code already posted at the entrance.
func (s *Signer) IssueVenueCode(venueID uuid.UUID) string {
	return s.venue.mustSign(jwt.RegisteredClaims{
		Subject:  venueID.String(),
		Audience: jwt.ClaimStrings{AudienceVenueCode},
	})
}

// ParseVenueCode checks a venue code and returns the venue id. A forged,
// altered or other-kind code is an error wrapping domain.ErrInvalid.
func (s *Signer) ParseVenueCode(code string) (uuid.UUID, error) {
	s.venueMu.RLock()
	id, ok := s.venueCache[code]
	s.venueMu.RUnlock()
	if ok {
		return id, nil
	}
	id, err := s.parseCode(&s.venue, code, false)
	if err != nil {
		return uuid.Nil, fmt.Errorf("parse venue code: %w", err)
	}
	s.venueMu.Lock()
	if len(s.venueCache) >= venueCacheSize {
		clear(s.venueCache)
	}
	s.venueCache[code] = id
	s.venueMu.Unlock()
	return id, nil
}

func (s *Signer) parseCode(k *kind, code string, expires bool) (uuid.UUID, error) {
	var c wireClaims
	if _, err := k.verify(code, s.now(), expires, &c); err != nil {
		return uuid.Nil, classify(err, domain.ErrInvalid)
	}
	id, err := uuid.Parse(c.Sub)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, fmt.Errorf("bad subject: %w", domain.ErrInvalid)
	}
	return id, nil
}

// classify turns a verification error into a short reason wrapping kind.
// Reasons never echo the token.
func classify(err error, kind error) error {
	if errors.Is(err, errExpired) {
		return fmt.Errorf("%w: %w", ErrExpired, kind)
	}
	return fmt.Errorf("%s: %w", err.Error(), kind)
}
