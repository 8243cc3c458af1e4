package domain_test

import (
	"testing"

	"github.com/checkin-ledger/ledger/domain"
)

// An outside tester's probes of the audited-reason rule: the spellings of a
// phone or ID number it refuses today, the invisible and control characters
// it refuses, and the case numbers it keeps.
func TestOutsiderAuditedReasonRefuses(t *testing.T) {
	for name, reason := range map[string]string{
		"mobile whole":           "13800138000",
		"mobile dashes":          "138-0013-8000",
		"mobile dots":            "138.0013.8000",
		"mobile spaces":          "138 0013 8000",
		"mobile double spaces":   "138  0013  8000",
		"mobile spaced dashes":   "138 - 0013 - 8000",
		"mobile full-width":      "１３８００１３８０００",
		"full-width dashes":      "１３８－００１３－８０００",
		"ideographic spaces":     "138\u30000013\u30008000",
		"no-break spaces":        "138\u00a00013\u00a08000",
		"country code":           "+86 138 0013 8000",
		"landline in brackets":   "(0539) 812.3456",
		"ID number whole":        "371302199001011233",
		"ID number dashed":       "371302-19900101-1233",
		"ID number check X":      "371302 19900101 125X",
		"zero-width space":       "138\u200b0013\u200b8000",
		"zero-width joiner":      "138\u200d00138000",
		"word joiner":            "138\u206000138000",
		"soft hyphen":            "138\u00ad0013\u00ad8000",
		"byte order mark":        "\ufeff13800138000",
		"NUL":                    "case\x00x",
		"tab":                    "case\tx",
		"line feed":              "case\nx",
		"DEL":                    "case\x7fx",
		"C1 next line":           "case\u0085x",
		"right-to-left mark":     "case\u200fx",
		"right-to-left override": "case\u202ex",
		"left-to-right isolate":  "case\u2066x",
		"line separator":         "case\u2028x",
		"tag character":          "13800\U000e0031138000",
		"invalid UTF-8":          "case \xff",
		// The second round: other separators, dashes, spaces and digits.
		"slashes":                "138/0013/8000",
		"underscores":            "138_0013_8000",
		"commas":                 "138,0013,8000",
		"colons":                 "138:0013:8000",
		"minus signs":            "138\u22120013\u22128000",
		"figure dashes":          "138\u20120013\u20128000",
		"small hyphen-minus":     "138\ufe630013\ufe638000",
		"middle dots":            "138\u00b70013\u00b78000",
		"katakana middle dots":   "138\u30fb0013\u30fb8000",
		"thin spaces":            "138\u20090013\u20098000",
		"en spaces":              "138\u20020013\u20028000",
		"narrow no-break spaces": "138\u202f0013\u202f8000",
		"Arabic-Indic digits":    "١٣٨٠٠١٣٨٠٠٠",
		"Devanagari digits":      "१३८००१३८०००",
		"mathematical digits":    "𝟏𝟑𝟖𝟎𝟎𝟏𝟑𝟖𝟎𝟎𝟎",
		"circled digits":         "①③⑧⓪⓪①③⑧⓪⓪⓪",
		"superscript digits":     "¹³⁸⁰⁰¹³⁸⁰⁰⁰",
		"combining marks":        "1\u03323\u03328\u03320\u03320\u03321\u03323\u03328\u03320\u03320\u03320\u0332",
		// The third round: separators a list of them had missed.
		"ideographic commas":     "138、0013、8000",
		"ideographic full stops": "138。0013。8000",
		"ID ideographic commas":  "371302、19800101、009X",
		"plus signs":             "138+0013+8000",
		"hashes":                 "138#0013#8000",
		"bars":                   "110105|19491231|002X",
		"apostrophes":            "138'0013'8000",
		"tildes":                 "138~0013~8000",
		"asterisks":              "138*0013*8000",
		"equals signs":           "138=0013=8000",
		"semicolons":             "138;0013;8000",
		"quotes":                 "138\"0013\"8000",
		"exclamation marks":      "138!0013!8000",
		"ampersands":             "138&0013&8000",
		"hyphen bullets":         "138⁃0013⁃8000",
		"prolonged sound marks":  "138ー0013ー8000",
		"arrows":                 "138 → 0013 → 8000",
		"keycaps":                "1⃣3⃣8⃣0⃣0⃣1⃣3⃣8⃣0⃣0⃣0⃣",
		"enclosing circles":      "1⃝3⃝8⃝0⃝0⃝1⃝3⃝8⃝0⃝0⃝0⃝",
		"variation selector":     "case\ufe0fx",
		"Hangul filler":          "case\u3164x",
	} {
		if got, err := domain.ValidateAuditedReason(reason, true); err == nil {
			t.Errorf("%s: %q accepted as %q, want a validation error", name, reason, got)
		}
	}
}

func TestOutsiderAuditedReasonKeepsCaseNumbers(t *testing.T) {
	for _, reason := range []string{
		"case-2022-0512-00123",
		"案件 2022-0512-00123",
		"CASE-2022-1305-00123",
		"case-2023-0001-00042",
		"outbreak at school 3",
	} {
		if _, err := domain.ValidateAuditedReason(reason, true); err != nil {
			t.Errorf("%q refused: %v", reason, err)
		}
	}
}
