// Package token signs and checks the ledger's tokens: bearer tokens that
// carry an actor's role, short-lived personal info codes (我的信息码) and
// printable venue codes. All three are HS256 JSON Web Tokens signed with one
// key from the data dir; each kind has its own audience and its own derived
// key, so a token of one kind is never accepted as another.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
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

// roles lists the roles a bearer token may carry.
var roles = map[string]bool{
	domain.RoleAdmin: true, domain.RoleReviewer: true, domain.RolePerson: true,
	domain.RoleScanner: true, domain.RoleAnalyst: true, domain.RoleDashboard: true,
	domain.RoleHealthFeed: true,
}

// Signer issues and checks tokens. It is safe for concurrent use.
type Signer struct {
	bearerKey, personalKey, venueKey []byte
	now                              func() time.Time
	method                           jwt.SigningMethod
	bearerParser                     *jwt.Parser
	personalParser                   *jwt.Parser
	venueParser                      *jwt.Parser

	// cache remembers bearer tokens already verified, so a scanner that
	// sends the same token with every pass pays for HMAC and JSON once. A
	// hit needs the whole token string to match, and expiry is still checked.
	mu    sync.RWMutex
	cache map[string]cachedBearer
}

type cachedBearer struct {
	actor   domain.Actor
	expires time.Time
}

// bearerCacheSize bounds the cache; when full it is emptied and refills.
const bearerCacheSize = 8192

// NewSigner returns a Signer for key (at least MinKeyBytes long). now is the
// clock used for issuing and expiry checks; nil means time.Now.
func NewSigner(key []byte, now func() time.Time) (*Signer, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("token: signing key has %d bytes, want at least %d", len(key), MinKeyBytes)
	}
	if now == nil {
		now = time.Now
	}
	s := &Signer{
		bearerKey:   derive(key, AudienceBearer),
		personalKey: derive(key, AudiencePersonalCode),
		venueKey:    derive(key, AudienceVenueCode),
		now:         now,
		method:      jwt.SigningMethodHS256,
		cache:       make(map[string]cachedBearer),
	}
	common := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(now),
	}
	s.bearerParser = jwt.NewParser(append(common, jwt.WithAudience(AudienceBearer), jwt.WithExpirationRequired())...)
	s.personalParser = jwt.NewParser(append(common, jwt.WithAudience(AudiencePersonalCode), jwt.WithExpirationRequired())...)
	s.venueParser = jwt.NewParser(append(common, jwt.WithAudience(AudienceVenueCode))...)
	return s, nil
}

// derive gives each token kind its own key, so that even a token naming
// several audiences verifies under one kind's key only.
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
	jwt.RegisteredClaims
}

// codeClaims are a personal or venue code's claims: the subject is the id.
type codeClaims struct {
	jwt.RegisteredClaims
}

// IssueBearer returns a bearer token for actor, valid for ttl (0 or less:
// DefaultBearerTTL). A person token needs PersonID, a scanner token VenueID;
// an empty Subject is derived from the role and ids.
func (s *Signer) IssueBearer(actor domain.Actor, ttl time.Duration) (string, error) {
	if !roles[actor.Role] {
		return "", fmt.Errorf("issue bearer token: role %q: %w", actor.Role, domain.ErrInvalid)
	}
	if actor.Role == domain.RolePerson && actor.PersonID == uuid.Nil {
		return "", fmt.Errorf("issue bearer token: a person token needs a person id: %w", domain.ErrInvalid)
	}
	if actor.Role == domain.RoleScanner && actor.VenueID == uuid.Nil {
		return "", fmt.Errorf("issue bearer token: a scanner token needs a venue id: %w", domain.ErrInvalid)
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
	tok, err := jwt.NewWithClaims(s.method, c).SignedString(s.bearerKey)
	if err != nil {
		return "", fmt.Errorf("issue bearer token: %w", err)
	}
	return tok, nil
}

// Subject returns the stable audit name of an actor: "person:<id>",
// "scanner:<venue id>", or the role alone.
func Subject(a domain.Actor) string {
	switch {
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
	s.mu.RLock()
	hit, ok := s.cache[tok]
	s.mu.RUnlock()
	if ok {
		if s.now().Before(hit.expires) {
			return hit.actor, nil
		}
		s.mu.Lock()
		delete(s.cache, tok)
		s.mu.Unlock()
	}
	a, exp, err := s.parseBearer(tok)
	if err != nil {
		return domain.Actor{}, err
	}
	s.mu.Lock()
	if len(s.cache) >= bearerCacheSize {
		clear(s.cache)
	}
	s.cache[tok] = cachedBearer{actor: a, expires: exp}
	s.mu.Unlock()
	return a, nil
}

func (s *Signer) parseBearer(tok string) (domain.Actor, time.Time, error) {
	var c bearerClaims
	if err := s.parse(s.bearerParser, tok, &c, s.bearerKey); err != nil {
		return domain.Actor{}, time.Time{}, fmt.Errorf("parse bearer token: %w", classify(err, domain.ErrUnauthorized))
	}
	a := domain.Actor{Role: c.Role, Subject: c.Subject}
	bad := func(why string) (domain.Actor, time.Time, error) {
		return domain.Actor{}, time.Time{}, fmt.Errorf("parse bearer token: %s: %w", why, domain.ErrUnauthorized)
	}
	if !roles[c.Role] {
		return bad("unknown role")
	}
	var err error
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
	if a.Subject == "" {
		a.Subject = Subject(a)
	}
	return a, c.ExpiresAt.Time, nil
}

// IssuePersonalCode returns a personal info code for personID and when it
// expires (PersonalCodeTTL from now).
func (s *Signer) IssuePersonalCode(personID uuid.UUID) (code string, expiresAt time.Time) {
	now := s.now()
	expiresAt = now.Add(PersonalCodeTTL).Truncate(time.Second)
	c := codeClaims{jwt.RegisteredClaims{
		Subject:   personID.String(),
		Audience:  jwt.ClaimStrings{AudiencePersonalCode},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expiresAt),
	}}
	return s.mustSign(c, s.personalKey), expiresAt
}

// ParsePersonalCode checks a personal info code and returns the person id.
// An expired, altered, forged or other-kind code is an error wrapping
// domain.ErrInvalid (and ErrExpired when expired): it arrives inside a
// request body, so it is bad input rather than a missing credential.
func (s *Signer) ParsePersonalCode(code string) (uuid.UUID, error) {
	id, err := s.parseCode(s.personalParser, code, s.personalKey)
	if err != nil {
		return uuid.Nil, fmt.Errorf("parse personal code: %w", err)
	}
	return id, nil
}

// IssueVenueCode returns the printable code of a venue. It has no expiry and
// is the same string every time for the same venue, so a reprint matches the
// code already posted at the entrance.
func (s *Signer) IssueVenueCode(venueID uuid.UUID) string {
	c := codeClaims{jwt.RegisteredClaims{
		Subject:  venueID.String(),
		Audience: jwt.ClaimStrings{AudienceVenueCode},
	}}
	return s.mustSign(c, s.venueKey)
}

// ParseVenueCode checks a venue code and returns the venue id. A forged,
// altered or other-kind code is an error wrapping domain.ErrInvalid.
func (s *Signer) ParseVenueCode(code string) (uuid.UUID, error) {
	id, err := s.parseCode(s.venueParser, code, s.venueKey)
	if err != nil {
		return uuid.Nil, fmt.Errorf("parse venue code: %w", err)
	}
	return id, nil
}

func (s *Signer) parseCode(p *jwt.Parser, code string, key []byte) (uuid.UUID, error) {
	var c codeClaims
	if err := s.parse(p, code, &c, key); err != nil {
		return uuid.Nil, classify(err, domain.ErrInvalid)
	}
	id, err := uuid.Parse(c.Subject)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, fmt.Errorf("bad subject: %w", domain.ErrInvalid)
	}
	return id, nil
}

// parse verifies tok with key and checks that it names exactly one audience.
func (s *Signer) parse(p *jwt.Parser, tok string, claims jwt.Claims, key []byte) error {
	if tok == "" {
		return errEmpty
	}
	if len(tok) > maxTokenBytes {
		return errTooLong
	}
	_, err := p.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return key, nil })
	if err != nil {
		return err
	}
	if aud, _ := claims.GetAudience(); len(aud) != 1 {
		return jwt.ErrTokenInvalidAudience
	}
	return nil
}

// maxTokenBytes bounds what the parser will look at; our tokens are far shorter.
const maxTokenBytes = 4096

var (
	errEmpty   = errors.New("empty")
	errTooLong = errors.New("too long")
)

// classify turns a jwt error into a short reason wrapping kind. The jwt
// library's messages are not passed on: they can echo token contents.
func classify(err error, kind error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %w", ErrExpired, kind)
	case errors.Is(err, errEmpty):
		return fmt.Errorf("empty token: %w", kind)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("bad signature: %w", kind)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("wrong kind of token: %w", kind)
	case errors.Is(err, jwt.ErrTokenMalformed), errors.Is(err, errTooLong):
		return fmt.Errorf("malformed token: %w", kind)
	default:
		return fmt.Errorf("invalid token: %w", kind)
	}
}

// mustSign signs fixed-shape claims. HS256 signing with a byte key and the
// marshalling of string and number claims cannot fail; if it ever does, that
// is a programming error in this package.
func (s *Signer) mustSign(c jwt.Claims, key []byte) string {
	tok, err := jwt.NewWithClaims(s.method, c).SignedString(key)
	if err != nil {
		panic(fmt.Sprintf("token: signing fixed claims failed: %v", err))
	}
	return tok
}
