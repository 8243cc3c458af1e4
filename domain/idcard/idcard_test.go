package idcard_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain/idcard"
)

var now = time.Date(2022, 5, 1, 12, 0, 0, 0, time.UTC)

// withCheck appends the MOD 11-2 check character, computed here independently
// of idcard.CheckChar, to 17 digits.
func withCheck(t *testing.T, first17 string) string {
	t.Helper()
	w := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	if len(first17) != 17 {
		t.Fatalf("withCheck: %d characters", len(first17))
	}
	sum := 0
	for i, c := range first17 {
		sum += int(c-'0') * w[i]
	}
	return first17 + string("10X98765432"[sum%11])
}

// wrongCheck returns id with a check character that does not match.
func wrongCheck(t *testing.T, id string) string {
	t.Helper()
	for _, c := range "0123456789X" {
		if byte(c) != id[17] {
			return id[:17] + string(c)
		}
	}
	t.Fatal("unreachable")
	return ""
}

func TestCheckChar(t *testing.T) {
	tests := []struct {
		name    string
		first17 string
		want    byte // 0: not ok, there is no check character
	}{
		// The worked example of GB 11643-1999.
		{"standard example", "11010519491231002", 'X'},
		{"linyi sample", "37130219900307123", withCheck(t, "37130219900307123")[17]},
		{"too short", "1101051949123100", 0},
		{"letter", "1101051949123100A", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := idcard.CheckChar(tt.first17)
			if wantOK := tt.want != 0; ok != wantOK || got != tt.want {
				t.Fatalf("CheckChar = %q, %v; want %q, %v", got, ok, tt.want, wantOK)
			}
		})
	}
}

// TestValidate: an accepted number comes back in its canonical form; a
// refusal is of its kind, says why, and does not repeat the number it
// refuses.
func TestValidate(t *testing.T) {
	valid := withCheck(t, "37130219900307123")
	xID := "11010519491231002X"
	accepted := []struct {
		name, idType, number string
		want                 string // canonical form
	}{
		{"resident valid", idcard.ResidentID, valid, valid},
		{"resident X check", idcard.ResidentID, xID, xID},
		{"resident lower x normalised", idcard.ResidentID, strings.ToLower(xID), xID},
		{"resident spaces trimmed", idcard.ResidentID, " 110105 19491231 002x ", xID},
		{"resident born 1900-01-01", idcard.ResidentID, withCheck(t, "11010519000101123"), withCheck(t, "11010519000101123")},
		{"resident born today", idcard.ResidentID, withCheck(t, "37131120220501001"), withCheck(t, "37131120220501001")},
		{"resident leap day", idcard.ResidentID, withCheck(t, "37131120000229001"), withCheck(t, "37131120000229001")},
		{"hk residence permit region", idcard.ResidentID, withCheck(t, "81000019800101001"), withCheck(t, "81000019800101001")},

		{"passport china E", idcard.Passport, "E12345678", "E12345678"},
		{"passport china EA", idcard.Passport, "ea1234567", "EA1234567"},
		{"passport china G", idcard.Passport, "G12345678", "G12345678"},
		{"passport foreign", idcard.Passport, "X1234567", "X1234567"},
		{"passport 5 chars", idcard.Passport, "AB123", "AB123"},

		{"hk permit 8 digits", idcard.HKMacaoPermit, "H12345678", "H12345678"},
		{"macao permit 10 digits", idcard.HKMacaoPermit, "m1234567890", "M1234567890"},

		{"taiwan 8", idcard.TaiwanPermit, "12345678", "12345678"},
		{"taiwan 10", idcard.TaiwanPermit, "1234567801", "1234567801"},

		{"foreign old", idcard.ForeignPermanentResidence, "usa110085061201", "USA110085061201"},
		{"foreign new", idcard.ForeignPermanentResidence, withCheck(t, "93784019850612001"), withCheck(t, "93784019850612001")},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			got, err := idcard.Validate(tt.idType, tt.number, now)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Validate = %q, want %q", got, tt.want)
			}
		})
	}

	refused := []struct {
		name, idType, number string
		err                  error
		reason               string // substring of the error
	}{
		{"resident bad check", idcard.ResidentID, wrongCheck(t, valid), idcard.ErrInvalidNumber, "check character does not match"},
		{"resident bad check X", idcard.ResidentID, wrongCheck(t, xID), idcard.ErrInvalidNumber, "check character does not match"},
		{"resident 30 February", idcard.ResidentID, withCheck(t, "11010519990230123"), idcard.ErrInvalidNumber, "not a calendar date"},
		{"resident 29 Feb non-leap", idcard.ResidentID, withCheck(t, "11010519010229123"), idcard.ErrInvalidNumber, "not a calendar date"},
		{"resident month 13", idcard.ResidentID, withCheck(t, "11010519991301123"), idcard.ErrInvalidNumber, "not a calendar date"},
		{"resident before 1900", idcard.ResidentID, withCheck(t, "11010518991231123"), idcard.ErrInvalidNumber, "before 1900"},
		{"resident born tomorrow", idcard.ResidentID, withCheck(t, "37131120220502001"), idcard.ErrInvalidNumber, "in the future"},
		{"resident unknown province", idcard.ResidentID, withCheck(t, "99010519900307123"), idcard.ErrInvalidNumber, "region code"},
		{"resident province 00", idcard.ResidentID, withCheck(t, "00010519900307123"), idcard.ErrInvalidNumber, "region code"},
		{"resident 17 chars", idcard.ResidentID, valid[:17], idcard.ErrInvalidNumber, "18 characters"},
		{"resident 19 chars", idcard.ResidentID, valid + "1", idcard.ErrInvalidNumber, "18 characters"},
		{"resident letter inside", idcard.ResidentID, "1101051949A231002X", idcard.ErrInvalidNumber, "17 digits"},
		{"resident bad last char", idcard.ResidentID, "11010519491231002Y", idcard.ErrInvalidNumber, "digit or X"},
		{"resident old 15-digit", idcard.ResidentID, "110105491231002", idcard.ErrInvalidNumber, "18 characters"},
		{"empty number", idcard.ResidentID, "  ", idcard.ErrInvalidNumber, "required"},

		{"passport 4 chars", idcard.Passport, "A123", idcard.ErrInvalidNumber, "5 to 9"},
		{"passport 10 chars", idcard.Passport, "E123456789", idcard.ErrInvalidNumber, "5 to 9"},
		{"passport symbol", idcard.Passport, "E1234-567", idcard.ErrInvalidNumber, "letters and digits"},
		{"passport no digit", idcard.Passport, "ABCDEFG", idcard.ErrInvalidNumber, "digit"},

		{"hk permit wrong letter", idcard.HKMacaoPermit, "K12345678", idcard.ErrInvalidNumber, "H or M"},
		{"hk permit 9 digits", idcard.HKMacaoPermit, "H123456789", idcard.ErrInvalidNumber, "H or M"},
		{"hk permit letter inside", idcard.HKMacaoPermit, "H1234567A", idcard.ErrInvalidNumber, "H or M"},
		{"hk permit letter only", idcard.HKMacaoPermit, "H", idcard.ErrInvalidNumber, "H or M"},

		{"taiwan 9", idcard.TaiwanPermit, "123456789", idcard.ErrInvalidNumber, "8 or 10"},
		{"taiwan letter", idcard.TaiwanPermit, "T2345678", idcard.ErrInvalidNumber, "8 or 10"},

		{"foreign old digits first", idcard.ForeignPermanentResidence, "1SA110085061201", idcard.ErrInvalidNumber, "3 letters"},
		{"foreign new not 9", idcard.ForeignPermanentResidence, withCheck(t, "83784019850612001"), idcard.ErrInvalidNumber, "start with 9"},
		{"foreign new bad check", idcard.ForeignPermanentResidence, wrongCheck(t, withCheck(t, "93784019850612001")), idcard.ErrInvalidNumber, "check character"},
		{"foreign new bad date", idcard.ForeignPermanentResidence, withCheck(t, "93784019850231001"), idcard.ErrInvalidNumber, "calendar date"},
		{"foreign 16 chars", idcard.ForeignPermanentResidence, "USA1100850612011", idcard.ErrInvalidNumber, "15 or 18"},

		{"unknown type", "drivers_licence", "12345678", idcard.ErrUnknownType, "must be one of"},
		{"missing type", "", "12345678", idcard.ErrUnknownType, "required"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := idcard.Validate(tt.idType, tt.number, now)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Validate error = %v, want %v", err, tt.err)
			}
			var e *idcard.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *idcard.Error", err)
			}
			if !strings.Contains(e.Reason, tt.reason) {
				t.Fatalf("reason %q does not mention %q", e.Reason, tt.reason)
			}
			if n := idcard.Normalize(tt.number); len(n) >= 5 && strings.Contains(err.Error(), n) {
				t.Fatalf("error %q contains the whole number", err)
			}
		})
	}
}

// TestValidateAllChecks checks that exactly one check character is accepted
// for each of many generated numbers.
func TestValidateAllChecks(t *testing.T) {
	for i := 0; i < 200; i++ {
		first := "3713" + string(rune('0'+i%10)) + "1" + "1985" + "0612" + string(rune('0'+i/100)) + string(rune('0'+(i/10)%10)) + string(rune('0'+i%10))
		good := withCheck(t, first)
		accepted := 0
		for _, c := range "0123456789X" {
			if _, err := idcard.Validate(idcard.ResidentID, first+string(c), now); err == nil {
				accepted++
				if first+string(c) != good {
					t.Fatalf("accepted %s, want only %s", first+string(c), good)
				}
			}
		}
		if accepted != 1 {
			t.Fatalf("%s: %d check characters accepted, want 1", first, accepted)
		}
	}
}

func TestSample(t *testing.T) {
	seen := map[string]bool{}
	for _, seq := range []int{0, 1, 999, 1000, 123456, 19_999_999} {
		n := idcard.Sample(seq)
		if _, err := idcard.Validate(idcard.ResidentID, n, time.Now()); err != nil || seen[n] {
			t.Fatalf("Sample(%d) = %s: %v (seen before: %v)", seq, n, err, seen[n])
		}
		seen[n] = true
	}
}

// TestValidateNonASCII: a number written with full-width or another
// script's characters is refused for what it is, not as a wrong length
// (its bytes are more than its characters).
func TestValidateNonASCII(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct{ typ, number string }{
		{idcard.ResidentID, "１１０１０５１９４９１２３１００２Ｘ"},
		{idcard.ResidentID, "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X"},
		{idcard.ResidentID, "11010519491231002X\u0301"},
		{idcard.Passport, "Ｅ12345678"},
	} {
		_, err := idcard.Validate(c.typ, c.number, now)
		if err == nil || !strings.Contains(err.Error(), "digits 0-9 and the letters A-Z") {
			t.Errorf("%s %q: %v, want the refusal of non-ASCII characters", c.typ, c.number, err)
		}
	}
	if _, err := idcard.Validate(idcard.ResidentID, "11010519491231002X", now); err != nil {
		t.Fatalf("the ASCII number: %v", err)
	}
}
