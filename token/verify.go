package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// hs256Header is the first segment of every token this package issues: the
// JOSE header {"alg":"HS256","typ":"JWT"} as golang-jwt encodes it. The
// verifier accepts no other header, so no algorithm can be chosen by the
// token ("none", RS256 with the HMAC key as a public key, …).
var hs256Header = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// strictB64 decodes signatures refusing non-zero trailing bits, so one
// signature has one spelling.
var strictB64 = base64.RawURLEncoding.Strict()

// maxTokenBytes bounds what the verifier looks at; our tokens are far shorter.
const maxTokenBytes = 2048

// refusal is why verify refused a token, in words that never echo it;
// classify turns it into a domain error.
type refusal string

func (r refusal) Error() string { return string(r) }

// The refusals.
const (
	errEmpty     refusal = "empty token"
	errMalformed refusal = "malformed token"
	errSignature refusal = "bad signature"
	errAudience  refusal = "wrong kind of token"
	errExpired   refusal = "expired"
	errNoExpiry  refusal = "token without expiry"
)

// kind is one token kind: its audience and key, and a pool of HMACs keyed
// with it.
type kind struct {
	audience string
	key      []byte
	macs     *sync.Pool
}

func newKind(audience string, key []byte) kind {
	return kind{audience: audience, key: key, macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// sign issues claims as an HS256 JWT with golang-jwt.
func (k *kind) sign(claims jwt.Claims) (string, error) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(k.key)
	if err != nil {
		return "", fmt.Errorf("sign %s token: %w", k.audience, err)
	}
	return tok, nil
}

// mustSign signs fixed-shape claims. HS256 signing with a byte key and the
// marshalling of string and date claims cannot fail; if it ever does, that
// is a programming error in this package.
func (k *kind) mustSign(claims jwt.Claims) string {
	tok, err := k.sign(claims)
	if err != nil {
		panic(err)
	}
	return tok
}

// wireClaims are the claims the verifier reads, of every kind.
type wireClaims struct {
	Aud      audience `json:"aud"`
	Sub      string   `json:"sub"`
	Exp      *float64 `json:"exp"`
	Nbf      *float64 `json:"nbf"`
	Iat      *float64 `json:"iat"`
	Role     string   `json:"role"`
	PersonID string   `json:"person_id"`
	VenueID  string   `json:"venue_id"`
	District string   `json:"district"`
}

// audience is the aud claim: one string, or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}

// verify checks tok's header, signature, audience and times (at now), fills
// claims from its payload and returns its expiry (zero when it has none).
// needExpiry refuses a token without one.
func (k *kind) verify(tok string, now time.Time, needExpiry bool, claims *wireClaims) (time.Time, error) {
	if tok == "" {
		return time.Time{}, errEmpty
	}
	if len(tok) > maxTokenBytes {
		return time.Time{}, errMalformed
	}
	head, rest, ok := strings.Cut(tok, ".")
	if !ok || head != hs256Header {
		return time.Time{}, errMalformed
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return time.Time{}, errMalformed
	}
	var sum [sha256.Size]byte
	if base64.RawURLEncoding.DecodedLen(len(sig)) != len(sum) {
		return time.Time{}, errSignature
	}
	if n, err := strictB64.Decode(sum[:], []byte(sig)); err != nil || n != len(sum) {
		return time.Time{}, errSignature
	}
	mac := k.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write([]byte(tok[:len(head)+1+len(payload)]))
	var want [sha256.Size]byte
	mac.Sum(want[:0])
	k.macs.Put(mac)
	if !hmac.Equal(sum[:], want[:]) {
		return time.Time{}, errSignature
	}

	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return time.Time{}, errMalformed
	}
	if err := json.Unmarshal(raw, claims); err != nil {
		return time.Time{}, errMalformed
	}
	if len(claims.Aud) != 1 || claims.Aud[0] != k.audience {
		return time.Time{}, errAudience
	}
	if claims.Nbf != nil && now.Before(numericTime(*claims.Nbf)) {
		return time.Time{}, errMalformed
	}
	if claims.Exp == nil {
		if needExpiry {
			return time.Time{}, errNoExpiry
		}
		return time.Time{}, nil
	}
	exp := numericTime(*claims.Exp)
	if !now.Before(exp) {
		return time.Time{}, errExpired
	}
	return exp, nil
}

// numericTime converts a JWT NumericDate (seconds since the epoch).
func numericTime(v float64) time.Time {
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9))
}
