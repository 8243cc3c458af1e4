package token

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newSigner(t testing.TB, key string) (*Signer, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2022, 5, 1, 8, 0, 0, 0, time.UTC)}
	s, err := NewSigner([]byte(key), c.Now)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s, c
}

const keyA = "0123456789abcdef0123456789abcdef-key-a"
const keyB = "0123456789abcdef0123456789abcdef-key-b"

func TestNewSignerShortKey(t *testing.T) {
	if _, err := NewSigner([]byte("short"), nil); err == nil {
		t.Fatal("NewSigner accepted a 5-byte key")
	}
}

func TestBearerRoundTrip(t *testing.T) {
	s, _ := newSigner(t, keyA)
	person := uuid.New()
	venue := uuid.New()
	tests := []struct {
		name  string
		actor domain.Actor
		want  domain.Actor
	}{
		{"person", domain.Actor{Role: domain.RolePerson, PersonID: person},
			domain.Actor{Role: domain.RolePerson, PersonID: person, Subject: "person:" + person.String()}},
		{"scanner", domain.Actor{Role: domain.RoleScanner, VenueID: venue},
			domain.Actor{Role: domain.RoleScanner, VenueID: venue, Subject: "scanner:" + venue.String()}},
		{"admin", domain.Actor{Role: domain.RoleAdmin}, domain.Actor{Role: domain.RoleAdmin, Subject: "admin"}},
		{"reviewer with subject", domain.Actor{Role: domain.RoleReviewer, Subject: "reviewer:wang"},
			domain.Actor{Role: domain.RoleReviewer, Subject: "reviewer:wang"}},
		{"health feed", domain.Actor{Role: domain.RoleHealthFeed}, domain.Actor{Role: domain.RoleHealthFeed, Subject: "health-feed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := s.IssueBearer(tt.actor, 0)
			if err != nil {
				t.Fatalf("IssueBearer: %v", err)
			}
			got, err := s.ParseBearer(tok)
			if err != nil {
				t.Fatalf("ParseBearer: %v", err)
			}
			if got != tt.want {
				t.Fatalf("actor = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestIssueBearerRefusesIncompleteActor(t *testing.T) {
	s, _ := newSigner(t, keyA)
	for _, a := range []domain.Actor{
		{Role: "root"},
		{Role: domain.RolePerson},
		{Role: domain.RoleScanner},
	} {
		if _, err := s.IssueBearer(a, 0); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("IssueBearer(%+v) error = %v, want ErrInvalid", a, err)
		}
	}
}

func TestBearerExpiry(t *testing.T) {
	s, c := newSigner(t, keyA)
	tok, err := s.IssueBearer(domain.Actor{Role: domain.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(59 * time.Minute)
	if _, err := s.ParseBearer(tok); err != nil {
		t.Fatalf("token refused before expiry: %v", err)
	}
	c.Add(2 * time.Minute)
	_, err = s.ParseBearer(tok)
	if !errors.Is(err, domain.ErrUnauthorized) || !errors.Is(err, ErrExpired) {
		t.Fatalf("expired token error = %v, want ErrUnauthorized and ErrExpired", err)
	}
}

func TestBearerDefaultTTL(t *testing.T) {
	s, c := newSigner(t, keyA)
	tok, err := s.IssueBearer(domain.Actor{Role: domain.RoleDashboard}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Add(DefaultBearerTTL - time.Minute)
	if _, err := s.ParseBearer(tok); err != nil {
		t.Fatalf("refused within default ttl: %v", err)
	}
	c.Add(2 * time.Minute)
	if _, err := s.ParseBearer(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("after default ttl: %v, want ErrExpired", err)
	}
}

// tamper replaces the payload of a JWT with one where old is replaced by new,
// keeping the original signature.
func tamper(t *testing.T, tok, old, new string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(payload), old) {
		t.Fatalf("payload %s lacks %q", payload, old)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), old, new, 1)))
	return strings.Join(parts, ".")
}

func TestRefused(t *testing.T) {
	s, _ := newSigner(t, keyA)
	other, _ := newSigner(t, keyB)
	person := uuid.New()
	victim := uuid.New()
	venue := uuid.New()

	personTok, _ := s.IssueBearer(domain.Actor{Role: domain.RolePerson, PersonID: person}, 0)
	personalCode, _ := s.IssuePersonalCode(person)
	venueCode := s.IssueVenueCode(venue)
	foreignBearer, _ := other.IssueBearer(domain.Actor{Role: domain.RoleAdmin}, 0)
	foreignPersonal, _ := other.IssuePersonalCode(person)
	foreignVenue := other.IssueVenueCode(venue)

	// A token signed with the right key material but for two audiences at
	// once, as if the issuer had been tricked: it must not cross kinds.
	both := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:  venue.String(),
		Audience: jwt.ClaimStrings{AudienceVenueCode, AudienceBearer},
	})
	bothTok, err := both.SignedString(s.venue.key)
	if err != nil {
		t.Fatal(err)
	}
	// alg "none" with the right claims.
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, bearerClaims{Role: domain.RoleAdmin,
		RegisteredClaims: jwt.RegisteredClaims{Audience: jwt.ClaimStrings{AudienceBearer},
			ExpiresAt: jwt.NewNumericDate(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		parse func(string) error
		tok   string
		kind  error
	}{
		{"bearer tampered role", bearer(s), tamper(t, personTok, `"role":"person"`, `"role":"admin"`), domain.ErrUnauthorized},
		{"bearer tampered person", bearer(s), tamper(t, personTok, person.String(), victim.String()), domain.ErrUnauthorized},
		{"bearer wrong key", bearer(s), foreignBearer, domain.ErrUnauthorized},
		{"bearer alg none", bearer(s), none, domain.ErrUnauthorized},
		{"bearer empty", bearer(s), "", domain.ErrUnauthorized},
		{"bearer garbage", bearer(s), "not.a.token", domain.ErrUnauthorized},
		{"personal code as bearer", bearer(s), personalCode, domain.ErrUnauthorized},
		{"venue code as bearer", bearer(s), venueCode, domain.ErrUnauthorized},
		{"two audiences as bearer", bearer(s), bothTok, domain.ErrUnauthorized},

		{"personal tampered", personal(s), tamper(t, personalCode, person.String(), victim.String()), domain.ErrInvalid},
		{"personal wrong key", personal(s), foreignPersonal, domain.ErrInvalid},
		{"bearer as personal code", personal(s), personTok, domain.ErrInvalid},
		{"venue code as personal code", personal(s), venueCode, domain.ErrInvalid},
		{"personal truncated", personal(s), personalCode[:len(personalCode)-3], domain.ErrInvalid},

		{"venue tampered", venueFn(s), tamper(t, venueCode, venue.String(), victim.String()), domain.ErrInvalid},
		{"venue wrong key", venueFn(s), foreignVenue, domain.ErrInvalid},
		{"personal code as venue code", venueFn(s), personalCode, domain.ErrInvalid},
		{"bearer as venue code", venueFn(s), personTok, domain.ErrInvalid},
		{"two audiences as venue code", venueFn(s), bothTok, domain.ErrInvalid},
		{"venue code too long", venueFn(s), strings.Repeat("a", 5000), domain.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse(tt.tok)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("error = %v, want %v", err, tt.kind)
			}
			if strings.Contains(err.Error(), tt.tok) && tt.tok != "" {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
}

func bearer(s *Signer) func(string) error {
	return func(tok string) error { _, err := s.ParseBearer(tok); return err }
}
func personal(s *Signer) func(string) error {
	return func(tok string) error { _, err := s.ParsePersonalCode(tok); return err }
}
func venueFn(s *Signer) func(string) error {
	return func(tok string) error { _, err := s.ParseVenueCode(tok); return err }
}

func TestPersonalCode(t *testing.T) {
	s, c := newSigner(t, keyA)
	person := uuid.New()
	code, exp := s.IssuePersonalCode(person)
	if want := c.Now().Add(PersonalCodeTTL); !exp.Equal(want) {
		t.Fatalf("expires at %v, want %v", exp, want)
	}
	got, err := s.ParsePersonalCode(code)
	if err != nil || got != person {
		t.Fatalf("ParsePersonalCode = %v, %v; want %v", got, err, person)
	}
	c.Add(PersonalCodeTTL - time.Second)
	if _, err := s.ParsePersonalCode(code); err != nil {
		t.Fatalf("refused before expiry: %v", err)
	}
	c.Add(time.Second)
	_, err = s.ParsePersonalCode(code)
	if !errors.Is(err, domain.ErrInvalid) || !errors.Is(err, ErrExpired) {
		t.Fatalf("expired code error = %v, want ErrInvalid and ErrExpired", err)
	}
}

func TestVenueCode(t *testing.T) {
	s, c := newSigner(t, keyA)
	venue := uuid.New()
	code := s.IssueVenueCode(venue)
	if again := s.IssueVenueCode(venue); again != code {
		t.Fatalf("venue code changed between issues: %q vs %q", code, again)
	}
	if other := s.IssueVenueCode(uuid.New()); other == code {
		t.Fatal("two venues share a code")
	}
	c.Add(10 * 365 * 24 * time.Hour) // venue codes do not expire
	got, err := s.ParseVenueCode(code)
	if err != nil || got != venue {
		t.Fatalf("ParseVenueCode = %v, %v; want %v", got, err, venue)
	}
}

func BenchmarkParseBearer(b *testing.B) {
	s, _ := newSigner(b, keyA)
	tok, _ := s.IssueBearer(domain.Actor{Role: domain.RoleScanner, VenueID: uuid.New()}, 0)
	benchParse(b, tok, s.ParseBearer)
}

func BenchmarkParsePersonalCode(b *testing.B) {
	s, _ := newSigner(b, keyA)
	code, _ := s.IssuePersonalCode(uuid.New())
	benchParse(b, code, s.ParsePersonalCode)
}

func BenchmarkParseVenueCode(b *testing.B) {
	s, _ := newSigner(b, keyA)
	benchParse(b, s.IssueVenueCode(uuid.New()), s.ParseVenueCode)
}

// benchParse measures parse on tok, which it must accept.
func benchParse[T any](b *testing.B, tok string, parse func(string) (T, error)) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIssuedTokensAreStandardJWTs checks that golang-jwt's own parser
// accepts what the signer issues, with the kind's key and audience: the
// strict verifier narrows what is accepted, not the format.
func TestIssuedTokensAreStandardJWTs(t *testing.T) {
	s, _ := newSigner(t, keyA)
	bearerTok, _ := s.IssueBearer(domain.Actor{Role: domain.RoleAnalyst}, 0)
	personalCode, _ := s.IssuePersonalCode(uuid.New())
	venueCode := s.IssueVenueCode(uuid.New())
	for _, tt := range []struct {
		tok string
		k   kind
	}{{bearerTok, s.bearer}, {personalCode, s.personal}, {venueCode, s.venue}} {
		if !strings.HasPrefix(tt.tok, hs256Header+".") {
			t.Errorf("%s token does not start with the HS256 header: %s", tt.k.audience, tt.tok)
		}
		_, err := jwt.Parse(tt.tok, func(*jwt.Token) (any, error) { return tt.k.key, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithAudience(tt.k.audience), jwt.WithTimeFunc(s.now))
		if err != nil {
			t.Errorf("golang-jwt refuses our %s token: %v", tt.k.audience, err)
		}
	}
}

// TestVerifierStrictness signs unusual but genuine tokens with the right
// key and checks what the verifier makes of them.
func TestVerifierStrictness(t *testing.T) {
	s, c := newSigner(t, keyA)
	person := uuid.New()
	future := jwt.NewNumericDate(c.Now().Add(time.Hour))
	sign := func(k kind, claims jwt.Claims, header map[string]any) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		if header != nil {
			tok.Header = header
		}
		str, err := tok.SignedString(k.key)
		if err != nil {
			t.Fatal(err)
		}
		return str
	}
	tests := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"audience as a plain string", sign(s.personal, jwt.MapClaims{"aud": AudiencePersonalCode, "sub": person.String(), "exp": future.Unix()}, nil), true},
		{"fractional expiry", sign(s.personal, jwt.MapClaims{"aud": []string{AudiencePersonalCode}, "sub": person.String(), "exp": float64(future.Unix()) + 0.5}, nil), true},
		{"no expiry", sign(s.personal, jwt.MapClaims{"aud": []string{AudiencePersonalCode}, "sub": person.String()}, nil), false},
		{"not yet valid", sign(s.personal, jwt.MapClaims{"aud": []string{AudiencePersonalCode}, "sub": person.String(), "exp": future.Unix(), "nbf": future.Unix()}, nil), false},
		{"no audience", sign(s.personal, jwt.MapClaims{"sub": person.String(), "exp": future.Unix()}, nil), false},
		{"two audiences", sign(s.personal, jwt.MapClaims{"aud": []string{AudiencePersonalCode, AudiencePersonalCode}, "sub": person.String(), "exp": future.Unix()}, nil), false},
		{"subject not an id", sign(s.personal, jwt.MapClaims{"aud": []string{AudiencePersonalCode}, "sub": "someone", "exp": future.Unix()}, nil), false},
		{"other header", sign(s.personal, jwt.MapClaims{"aud": []string{AudiencePersonalCode}, "sub": person.String(), "exp": future.Unix()},
			map[string]any{"alg": "HS256", "typ": "JWT", "kid": "1"}), false},
		{"payload not JSON", hs256Header + "." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + "." + "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := s.ParsePersonalCode(tt.tok)
			if tt.ok && (err != nil || id != person) {
				t.Fatalf("ParsePersonalCode = %v, %v; want %v", id, err, person)
			}
			if !tt.ok && !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("ParsePersonalCode = %v, %v; want ErrInvalid", id, err)
			}
		})
	}
	t.Run("extra segment", func(t *testing.T) {
		code, _ := s.IssuePersonalCode(person)
		if _, err := s.ParsePersonalCode(code + ".x"); !errors.Is(err, domain.ErrInvalid) {
			t.Fatalf("a four-segment code was accepted: %v", err)
		}
	})
	t.Run("bearer without expiry", func(t *testing.T) {
		tok := sign(s.bearer, jwt.MapClaims{"aud": []string{AudienceBearer}, "role": "admin"}, nil)
		if _, err := s.ParseBearer(tok); !errors.Is(err, domain.ErrUnauthorized) {
			t.Fatalf("a bearer token without expiry was accepted: %v", err)
		}
	})
}

// FuzzParse checks that no input makes the verifier panic, and that
// anything it accepts was signed with the right key.
func FuzzParse(f *testing.F) {
	s, err := NewSigner([]byte(keyA), nil)
	if err != nil {
		f.Fatal(err)
	}
	code, _ := s.IssuePersonalCode(uuid.New())
	tok, _ := s.IssueBearer(domain.Actor{Role: domain.RoleAdmin}, 0)
	f.Add(code)
	f.Add(tok)
	f.Add(s.IssueVenueCode(uuid.New()))
	f.Add(hs256Header + "..")
	f.Fuzz(func(t *testing.T, in string) {
		for _, k := range []struct {
			parse func(string) error
			key   []byte
		}{{bearer(s), s.bearer.key}, {personal(s), s.personal.key}, {venueFn(s), s.venue.key}} {
			if k.parse(in) != nil {
				continue
			}
			_, err := jwt.Parse(in, func(*jwt.Token) (any, error) { return k.key, nil },
				jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation())
			if err != nil {
				t.Fatalf("accepted %q, which golang-jwt refuses: %v", in, err)
			}
		}
	})
}
