// Package idcard validates the identity documents a person registers with:
// the mainland resident ID (GB 11643, ISO 7064 MOD 11-2 check character),
// passports, the Mainland Travel Permits for Hong Kong and Macao residents
// and for Taiwan residents, and the Foreign Permanent Resident ID card.
//
// Validate returns the document number in its canonical form (trimmed, upper
// case, no inner spaces). Its errors name the document type and the rule that
// failed, never the number itself, so they are safe to log and to return to a
// client.
package idcard

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Document types, as used on the wire in id_type.
const (
	ResidentID                = "resident_id"
	Passport                  = "passport"
	HKMacaoPermit             = "hk_macao_permit"
	TaiwanPermit              = "taiwan_permit"
	ForeignPermanentResidence = "foreign_permanent_residence"
)

// Types returns every document type Validate knows, in a stable order.
func Types() []string {
	return []string{ResidentID, Passport, HKMacaoPermit, TaiwanPermit, ForeignPermanentResidence}
}

// Error kinds. Every error Validate returns is an *Error wrapping one of them.
var (
	// ErrUnknownType is returned by Validate when id_type is not one of Types().
	ErrUnknownType = errors.New("idcard: unknown ID type")
	// ErrInvalidNumber is returned by Validate when the number does not fit its type's format.
	ErrInvalidNumber = errors.New("idcard: invalid ID number")
)

// Error says why a document was refused. Reason never contains the number.
type Error struct {
	// Field is "id_type" or "id_number".
	Field string
	// Reason is a short human explanation, e.g. "resident_id check character does not match".
	Reason string
	kind   error
}

func (e *Error) Error() string { return "idcard: " + e.Field + ": " + e.Reason }

// Unwrap returns ErrUnknownType or ErrInvalidNumber.
func (e *Error) Unwrap() error { return e.kind }

func invalid(reason string) error {
	return &Error{Field: "id_number", Reason: reason, kind: ErrInvalidNumber}
}

// Normalize returns the canonical form of a document number: trimmed, upper
// case, without inner spaces. It matches pii.Normalize, so the keyed hash of
// a validated number is stable.
func Normalize(number string) string {
	return strings.ToUpper(strings.Join(strings.Fields(number), ""))
}

// Validate checks number against the format of idType and returns its
// canonical form. now bounds birth dates (none may lie in the future).
//
// The rules:
//   - resident_id: 18 characters; the first 17 digits, the last the ISO 7064
//     MOD 11-2 check character (0-9 or X; a lower-case x is accepted and
//     normalised); characters 1-2 a province code that exists (11-15, 21-23,
//     31-37, 41-46, 50-54, 61-65, 71, 81-83); characters 7-14 a real
//     calendar date (YYYYMMDD) from 1900-01-01 up to now.
//   - passport: 5 to 9 letters or digits with at least one digit. This is the
//     ICAO 9303 document-number field, which covers Chinese passports (E or G
//     followed by 8 digits, or E, a letter and 7 digits) and the passports of
//     most other countries; a stricter per-country rule would refuse real
//     visitors.
//   - hk_macao_permit: H (Hong Kong) or M (Macao) followed by 8 or 10 digits.
//   - taiwan_permit: 8 digits, or 10 digits (older cards add a 2-digit issue count).
//   - foreign_permanent_residence: the 2004 card, 15 characters: 3 letters
//     (the country code) and 12 digits; or the 2023 card, 18 characters
//     starting with 9, checked like a resident ID (17 digits, MOD 11-2 check
//     character, birth date at characters 7-14) but without the province rule.
func Validate(idType, number string, now time.Time) (string, error) {
	n := Normalize(number)
	if n == "" {
		return "", invalid("is required")
	}
	if !ascii(n) && slices.Contains(Types(), idType) {
		// Every document number is Latin letters and the digits 0-9; a
		// full-width or another script's character is not one of them
		// (and counted in bytes it would be reported as a wrong length).
		return "", invalid("must be written with the digits 0-9 and the letters A-Z (not full-width or other characters)")
	}
	switch idType {
	case ResidentID:
		return n, validateResident(n, now)
	case Passport:
		return n, validatePassport(n)
	case HKMacaoPermit:
		return n, validateHKMacao(n)
	case TaiwanPermit:
		return n, validateTaiwan(n)
	case ForeignPermanentResidence:
		return n, validateForeign(n, now)
	case "":
		return "", &Error{Field: "id_type", Reason: "is required", kind: ErrUnknownType}
	default:
		return "", &Error{Field: "id_type", Reason: "must be one of " + strings.Join(Types(), ", "), kind: ErrUnknownType}
	}
}

// ascii reports whether s holds ASCII bytes only.
func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// weights are the ISO 7064 MOD 11-2 weights of the first 17 characters.
var weights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// CheckChar returns the GB 11643 (ISO 7064 MOD 11-2) check character of the
// first 17 digits of an 18-character ID number. ok is false when first17 is
// not 17 ASCII digits.
func CheckChar(first17 string) (c byte, ok bool) {
	if len(first17) != 17 || !allDigits(first17) {
		return 0, false
	}
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(first17[i]-'0') * weights[i]
	}
	return "10X98765432"[sum%11], true
}

func validateResident(n string, now time.Time) error {
	if err := validate18("resident_id", n, now); err != nil {
		return err
	}
	if !provinceExists(n[:2]) {
		return invalid("resident_id region code does not exist")
	}
	return nil
}

// validate18 checks the shape shared by the resident ID and the 2023
// foreign permanent resident ID: 17 digits, check character, birth date.
func validate18(kind, n string, now time.Time) error {
	if len(n) != 18 {
		return invalid(kind + " must have 18 characters")
	}
	want, ok := CheckChar(n[:17])
	if !ok {
		return invalid(kind + " must have 17 digits before the check character")
	}
	if last := n[17]; last != 'X' && (last < '0' || last > '9') {
		return invalid(kind + " check character must be a digit or X")
	}
	if n[17] != want {
		return invalid(kind + " check character does not match")
	}
	return validateBirth(kind, n[6:14], now)
}

func validateBirth(kind, yyyymmdd string, now time.Time) error {
	birth, err := time.Parse("20060102", yyyymmdd)
	if err != nil {
		// time.Parse refuses out-of-range months and days, including 30 February.
		return invalid(kind + " birth date is not a calendar date")
	}
	if birth.Year() < 1900 {
		return invalid(kind + " birth date is before 1900")
	}
	y, m, d := now.Date()
	if birth.After(time.Date(y, m, d, 0, 0, 0, 0, time.UTC)) {
		return invalid(kind + " birth date is in the future")
	}
	return nil
}

// provinceExists reports whether the first two digits of a resident ID name
// a province-level division (GB/T 2260), or 81/82/83: the residence permits
// of Hong Kong, Macao and Taiwan residents.
func provinceExists(p string) bool {
	switch p {
	case "11", "12", "13", "14", "15",
		"21", "22", "23",
		"31", "32", "33", "34", "35", "36", "37",
		"41", "42", "43", "44", "45", "46",
		"50", "51", "52", "53", "54",
		"61", "62", "63", "64", "65",
		"71", "81", "82", "83":
		return true
	}
	return false
}

func validatePassport(n string) error {
	if len(n) < 5 || len(n) > 9 {
		return invalid("passport number must have 5 to 9 letters or digits")
	}
	digits := 0
	for i := 0; i < len(n); i++ {
		switch c := n[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'A' && c <= 'Z':
		default:
			return invalid("passport number may hold only letters and digits")
		}
	}
	if digits == 0 {
		return invalid("passport number must contain a digit")
	}
	return nil
}

func validateHKMacao(n string) error {
	if (n[0] != 'H' && n[0] != 'M') || (len(n) != 9 && len(n) != 11) || !allDigits(n[1:]) {
		return invalid("hk_macao_permit must be H or M followed by 8 or 10 digits")
	}
	return nil
}

func validateTaiwan(n string) error {
	if (len(n) != 8 && len(n) != 10) || !allDigits(n) {
		return invalid("taiwan_permit must be 8 or 10 digits")
	}
	return nil
}

func validateForeign(n string, now time.Time) error {
	switch len(n) {
	case 15:
		if !allLetters(n[:3]) || !allDigits(n[3:]) {
			return invalid("foreign_permanent_residence (15 characters) must be 3 letters and 12 digits")
		}
		return nil
	case 18:
		if n[0] != '9' {
			return invalid("foreign_permanent_residence (18 characters) must start with 9")
		}
		return validate18("foreign_permanent_residence", n, now)
	default:
		return invalid("foreign_permanent_residence must have 15 or 18 characters")
	}
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func allLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// Sample returns a valid 18-character resident ID number for seq, for test
// fixtures and the load generator: region 371302 (Lanshan), a real birth
// date and the GB 11643 check character. Different seq give different
// numbers up to 20,000,000.
func Sample(seq int) string {
	birth := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (seq/1000)%20000)
	body := fmt.Sprintf("371302%s%03d", birth.Format("20060102"), seq%1000)
	c, _ := CheckChar(body)
	return body + string(c)
}
