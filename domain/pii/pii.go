// Package pii protects personal data: the keyed hash used to look up an ID
// document, AES-GCM sealing of personal fields with a person's data key, and
// the masks shown in lists ("张*", "371*********1234").
package pii

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ErrOpen is returned by Open when a sealed value cannot be decrypted: the
// key is wrong or was destroyed, or the value was altered.
var ErrOpen = errors.New("pii: cannot open sealed value")

// personNamespace is the UUIDv5 namespace of person ids derived from ID hashes.
var personNamespace = uuid.MustParse("5d0a3a7e-8f43-4c55-9a0e-6c1f6a3b9e21")

// Hasher computes keyed hashes of ID documents. The key never leaves the
// data dir (or LEDGER_ID_HASH_KEY): without it a hash cannot be reversed by
// trying every ID number.
type Hasher struct {
	key []byte
	// macs keeps keyed HMAC states: Reset returns one to its keyed start
	// without hashing the key pads again (half the cost of a hash of an ID).
	macs sync.Pool
}

// NewHasher returns a Hasher with key (at least 32 bytes).
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("pii: hash key has %d bytes, want at least 32", len(key))
	}
	h := &Hasher{key: append([]byte(nil), key...)}
	h.macs.New = func() any { return hmac.New(sha256.New, h.key) }
	return h, nil
}

// Normalize returns the canonical form of an ID number: trimmed, upper case,
// without inner spaces.
func Normalize(idNumber string) string {
	canonical := true
	for i := 0; i < len(idNumber) && canonical; i++ {
		c := idNumber[i]
		canonical = c > ' ' && c < utf8.RuneSelf && (c < 'a' || c > 'z')
	}
	if canonical {
		return idNumber
	}
	return strings.ToUpper(strings.Join(strings.Fields(idNumber), ""))
}

// IDHash returns the keyed hash (hex HMAC-SHA256) of an ID document.
func (h *Hasher) IDHash(idType, idNumber string) string {
	m := h.macs.Get().(hash.Hash)
	defer h.macs.Put(m)
	m.Reset()
	var buf [64]byte
	b := append(append(append(buf[:0], idType...), 0), Normalize(idNumber)...)
	m.Write(b)
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0]))
}

// PersonID returns the person id that belongs to an ID document's hash. One
// document maps to one id, so registering it twice conflicts on the same
// aggregate.
func PersonID(idHash string) uuid.UUID {
	return uuid.NewSHA1(personNamespace, []byte(idHash))
}

// NewKey returns a fresh random 32-byte data key.
func NewKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("pii: new key: %w", err)
	}
	return k, nil
}

// Seal encrypts plaintext with key (AES-256-GCM).
func Seal(key []byte, plaintext string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("pii: nonce: %w", err)
	}
	out := aead.Seal(nonce, nonce, []byte(plaintext), nil)
	return base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a value sealed with key.
func Open(key []byte, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	raw, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return "", ErrOpen
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	if len(raw) < aead.NonceSize() {
		return "", ErrOpen
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], nil)
	if err != nil {
		return "", ErrOpen
	}
	return string(pt), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("pii: key: %w", err)
	}
	return cipher.NewGCM(block)
}

// MaskName keeps the surname (first character) and masks the rest: "张三" → "张*".
func MaskName(name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return ""
	}
	r, _ := utf8.DecodeRuneInString(name)
	return string(r) + "*"
}

// MaskID shows at most half of an ID number and masks the rest with '*':
// a long number (14 characters or more: a resident ID) keeps its first 3
// and last 4 characters, a shorter one (passports, permits) its last
// min(4, n/2) characters only.
func MaskID(idNumber string) string {
	n := []rune(Normalize(idNumber))
	if len(n) >= 14 {
		return string(n[:3]) + strings.Repeat("*", len(n)-7) + string(n[len(n)-4:])
	}
	shown := min(4, len(n)/2)
	return strings.Repeat("*", len(n)-shown) + string(n[len(n)-shown:])
}

// MaskPhone keeps the first 3 and last 4 digits of a phone number, the way
// a mainland mobile number is shown masked ("139****1111"); a shorter one
// is masked as a document number (MaskID).
func MaskPhone(phone string) string {
	n := []rune(phone)
	if len(n) < 11 {
		return MaskID(phone)
	}
	return string(n[:3]) + strings.Repeat("*", len(n)-7) + string(n[len(n)-4:])
}
