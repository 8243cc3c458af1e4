package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// jsonPass is the reference: encoding/json's own decoding of a pass, what
// Decode did before decodePass existed.
func jsonPass(b []byte) (PassRecorded, error) {
	var p PassRecorded
	err := json.Unmarshal(b, (*passJSON)(&p))
	return p, err
}

// jsonEvent is the reference encoding: encoding/json's own, without
// PassRecorded's MarshalJSON.
func jsonEvent(ev Event) ([]byte, error) {
	if p, ok := ev.(PassRecorded); ok {
		p.Screen.NameMasked = "" // v2: the log holds no name
		return json.Marshal(passJSON(p))
	}
	return json.Marshal(ev)
}

// jsonPassFull is what encoding/json writes for p with its screen's name,
// as appendPass does (the HTTP answer's screen is written by it).
func jsonPassFull(p PassRecorded) ([]byte, error) { return json.Marshal(passJSON(p)) }

// samePass fails t unless got equals want exactly, times included: the
// same instant, location and String output.
func samePass(t *testing.T, in []byte, got, want PassRecorded) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decode %s:\n got %#v\nwant %#v", in, got, want)
	}
	for _, tt := range [][2]time.Time{{got.Screen.At, want.Screen.At}, {got.Screen.NATAt, want.Screen.NATAt}} {
		gz, goff := tt[0].Zone()
		wz, woff := tt[1].Zone()
		if !tt[0].Equal(tt[1]) || tt[0].String() != tt[1].String() || tt[0].Location().String() != tt[1].Location().String() ||
			gz != wz || goff != woff {
			t.Fatalf("decode %s: time %v (%s), want %v (%s)", in, tt[0], tt[0].Location(), tt[1], tt[1].Location())
		}
	}
}

// passStrings are the values a generated string field takes: the domain's
// constants, masked names in several scripts, and characters encoding/json
// escapes (those payloads must fall back).
var passStrings = []string{
	"", DirectionIn, DirectionOut, MethodSelfScan, MethodStaffScan, MethodManual,
	DecisionPass, DecisionDeny, ColourGreen, ColourYellow, ColourRed, ColourUnknown,
	NATNegative, NATPositive, NATNone,
	"张*", "欧阳**", "李*", "临沂大学图书馆", "scanner:0190abcd", "red health code",
	"venue requires a green health code; health code is yellow", "Ñ*", "😀*", "a", " spaced out ",
	"x\x7fy", "in ", "IN", "Green",
}

// escaped are strings encoding/json writes with escapes.
var escaped = []string{
	`say "hi"`, `back\slash`, "line\nbreak", "tab\t", "\x00nul", "<b>&amp;</b>", "\u2028", "\u2029",
	"bad \xff utf-8", "\xe4\xb8", "slash/ok",
}

func randString(r *rand.Rand, escapes bool) string {
	switch n := r.IntN(10); {
	case n < 6:
		return passStrings[r.IntN(len(passStrings))]
	case n < 9:
		// random runes from ASCII, Latin, CJK and astral planes
		var sb strings.Builder
		for range r.IntN(8) {
			switch r.IntN(4) {
			case 0:
				sb.WriteRune(rune(0x20 + r.IntN(0x5f)))
			case 1:
				sb.WriteRune(rune(0xa0 + r.IntN(0x500)))
			case 2:
				sb.WriteRune(rune(0x4e00 + r.IntN(0x5200)))
			default:
				sb.WriteRune(rune(0x1f300 + r.IntN(0x300)))
			}
		}
		s := sb.String()
		if !escapes && strings.ContainsAny(s, "\"\\<>&") {
			return "plain"
		}
		return s
	default:
		if escapes {
			return escaped[r.IntN(len(escaped))]
		}
		return "张三"
	}
}

func randUUID(r *rand.Rand) uuid.UUID {
	if r.IntN(8) == 0 {
		return uuid.Nil
	}
	var u uuid.UUID
	for i := range u {
		u[i] = byte(r.Uint32())
	}
	return u
}

// randTime returns the zero time or a time in years 1..9998 with a varying
// precision, in UTC unless zones is set.
func randTime(r *rand.Rand, zones bool) time.Time {
	if r.IntN(6) == 0 {
		return time.Time{}
	}
	var t time.Time
	switch r.IntN(3) {
	case 0: // around now
		t = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(3 * 365 * 24 * time.Hour))))
	case 1: // any year
		t = time.Date(1+r.IntN(9998), time.January, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
	default: // leap days and ends of months and years
		t = time.Date([]int{1, 4, 100, 400, 1900, 2000, 2024, 2100, 9998}[r.IntN(9)], time.Month(1+r.IntN(12)), 28+r.IntN(4), 23, 59, 59, 0, time.UTC)
	}
	switch r.IntN(5) {
	case 0:
		t = t.Truncate(time.Second)
	case 1:
		t = t.Truncate(time.Millisecond)
	case 2:
		t = t.Truncate(time.Microsecond)
	case 3:
		t = t.Add(time.Duration(r.IntN(1e9))).Truncate(10 * time.Nanosecond)
	}
	if zones && r.IntN(4) == 0 {
		t = t.In(time.FixedZone("", (r.IntN(27)-12)*3600+r.IntN(2)*1800))
	}
	return t
}

// randPass returns a PassRecorded with every field set, zero or empty at
// random; escapes lets strings need escaping (outside the fast decoder's
// shape) and zones lets times carry offsets.
func randPass(r *rand.Rand, escapes, zones bool) PassRecorded {
	doses := []int{0, 1, 2, 3, -1, 123456789, -123456789}[r.IntN(7)]
	p := PassRecorded{
		VenueID:    randUUID(r),
		PersonID:   randUUID(r),
		Direction:  randString(r, escapes),
		Method:     randString(r, escapes),
		Decision:   randString(r, escapes),
		Reason:     randString(r, escapes),
		Operator:   randString(r, escapes),
		GuardianID: randUUID(r),
		Screen: Screen{
			NameMasked:   randString(r, escapes),
			CodeColour:   randString(r, escapes),
			NATResult:    randString(r, escapes),
			NATAt:        randTime(r, zones),
			VaccineDoses: doses,
			VenueID:      randUUID(r),
			VenueName:    randString(r, escapes),
			At:           randTime(r, zones),
			Direction:    randString(r, escapes),
			Decision:     randString(r, escapes),
			Reason:       randString(r, escapes),
		},
	}
	if r.IntN(3) == 0 {
		p.GuardianID = uuid.Nil
	}
	return p
}

// TestDecodePassRandom: for many generated passes, decodePass takes every
// payload json.Marshal writes without escapes, and gives exactly
// what encoding/json gives; Decode gives the same for every payload.
func TestDecodePassRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	const n = 20_000
	for i := range n {
		escapes, zones := i%2 == 1, i%3 == 1
		in := randPass(r, escapes, zones)
		b, err := jsonEvent(in)
		if err != nil {
			t.Fatal(err)
		}
		want, err := jsonPass(b)
		if err != nil {
			t.Fatalf("json.Unmarshal %s: %v", b, err)
		}
		var got PassRecorded
		if decodePass(b, &got) {
			fast++
			samePass(t, b, got, want)
		} else if !escapes {
			t.Fatalf("decodePass refused %s", b)
		}
		ev, err := Decode(Envelope{Type: TypePassRecorded, SchemaVersion: PassRecorded{}.SchemaVersion(), Payload: b})
		if err != nil {
			t.Fatalf("Decode %s: %v", b, err)
		}
		samePass(t, b, *ev.(*PassRecorded), want)
	}
	if fast < n/3 {
		t.Fatalf("decodePass took %d of %d payloads", fast, n)
	}
}

// TestDecodePassOdd: inputs encoding/json accepts or refuses that
// json.Marshal does not write give the same pass or the same error through
// Decode; fast says whether decodePass itself takes them.
func TestDecodePassOdd(t *testing.T) {
	at := time.Date(2022, 4, 1, 8, 30, 5, 123456000, time.UTC)
	base := PassRecorded{
		VenueID: uuid.MustParse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"), PersonID: uuid.MustParse("0190a1b2-c3d4-7e5f-8a9b-000000000001"),
		Direction: DirectionIn, Method: MethodStaffScan, Decision: DecisionPass, Operator: "scanner:0190a1b2",
		Screen: Screen{NameMasked: "张*", CodeColour: ColourGreen, NATResult: NATNegative, NATAt: at.Add(-time.Hour),
			VaccineDoses: 2, VenueID: uuid.MustParse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"), VenueName: "临沂大学图书馆",
			At: at, Direction: DirectionIn, Decision: DecisionPass},
	}
	enc, err := jsonPassFull(base) // with a name, as a v1 pass held it: the decoder still reads one
	if err != nil {
		t.Fatal(err)
	}
	s := string(enc)
	// with replaces the first old in the encoded base pass.
	with := func(old, new string) string {
		t.Helper()
		if !strings.Contains(s, old) {
			t.Fatalf("%q not in %s", old, s)
		}
		return strings.Replace(s, old, new, 1)
	}
	const vid = `"venue_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"`
	const sat = `"at":"2022-04-01T08:30:05.123456Z"`
	tests := []struct {
		name string
		in   string
		fast bool
	}{
		{"as written", s, true},
		{"empty object", `{}`, true},
		{"empty screen", `{"screen":{}}`, true},
		{"reordered", `{"screen":{"at":"2022-04-01T08:30:05Z","name":"张*"},"decision":"deny",` + vid + `}`, true},
		{"guardian", with(`"screen"`, `"guardian_id":"0190a1b2-c3d4-7e5f-8a9b-000000000002","screen"`), true},
		{"upper-case uuid", with(vid, strings.ToUpper(vid[:12])+vid[12:]), false},
		{"upper-case uuid value", with(vid, `"venue_id":"0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"`), true},
		{"nat_at zero", with(`"nat_at":"2022-04-01T07:30:05.123456Z"`, `"nat_at":"0001-01-01T00:00:00Z"`), true},
		{"nine digits", with(sat, `"at":"2022-04-01T08:30:05.123456789Z"`), true},
		{"leap day", with(sat, `"at":"2024-02-29T23:59:59.1Z"`), true},
		{"year 0", with(sat, `"at":"0000-02-29T00:00:00Z"`), true},
		{"negative zero", with(`"vaccine_doses":2`, `"vaccine_doses":-0`), true},
		{"negative", with(`"vaccine_doses":2`, `"vaccine_doses":-7`), true},

		{"escaped name", with(`"张*"`, `"\u5f20*"`), false},
		{"escaped quote", with(`"张*"`, `"a\"b"`), false},
		{"escaped slash", with(`"scanner:0190a1b2"`, `"scanner\/0190a1b2"`), false},
		{"escaped key", with(`"method"`, `"m\u0065thod"`), false},
		{"invalid utf-8", with(`"张*"`, "\"\xe5\xbc*\""), false},
		{"control character", with(`"张*"`, "\"a\tb\""), false},
		{"raw U+2028", with(`"张*"`, "\"a\u2028b\""), true},
		{"space after colon", with(`"method":`, `"method": `), false},
		{"newline", with(`,"screen"`, ",\n\"screen\""), false},
		{"leading space", " " + s, false},
		{"trailing space", s + " ", false},
		{"trailing newline", s + "\n", false},
		{"unknown field", with(`"screen"`, `"extra":[1,{"a":null}],"screen"`), false},
		{"unknown screen field", with(`"name"`, `"extra":1,"name"`), false},
		{"case-folded name", with(`"method"`, `"Method"`), false},
		{"repeated field", with(`"screen"`, `"method":"manual","screen"`), false},
		{"repeated screen field", with(`"name"`, `"at":"2000-01-01T00:00:00Z","name"`), false},
		{"null", `null`, false},
		{"null screen", with(`"screen":{`, `"screen":null,"x":{`), false},
		{"null string", with(`"decision":"pass"`, `"decision":null`), false},
		{"null uuid", with(vid, `"venue_id":null`), false},
		{"null time", with(sat, `"at":null`), false},
		{"null int", with(`"vaccine_doses":2`, `"vaccine_doses":null`), false},
		{"braced uuid", with(vid, `"venue_id":"{0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}"`), false},
		{"urn uuid", with(vid, `"venue_id":"urn:uuid:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"`), false},
		{"hex uuid", with(vid, `"venue_id":"0190a1b2c3d47e5f8a9b0c1d2e3f4a5b"`), false},
		{"empty uuid", with(vid, `"venue_id":""`), false},
		{"bad uuid", with(vid, `"venue_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g"`), false},
		{"uuid number", with(vid, `"venue_id":12`), false},
		{"offset", with(sat, `"at":"2022-04-01T16:30:05.123456+08:00"`), true},
		{"zero offset", with(sat, `"at":"2022-04-01T08:30:05+00:00"`), true},
		{"negative zero offset", with(sat, `"at":"2022-04-01T08:30:05-00:00"`), true},
		{"half-hour offset", with(sat, `"at":"2022-04-01T02:00:05.5-06:30"`), true},
		{"offset to year 0", with(sat, `"at":"0001-01-01T00:00:00+01:00"`), true},
		{"offset hour 24", with(sat, `"at":"2022-04-01T08:30:05+24:00"`), false},
		{"offset minute 60", with(sat, `"at":"2022-04-01T08:30:05+01:60"`), false},
		{"offset without colon", with(sat, `"at":"2022-04-01T08:30:05+0800"`), false},
		{"offset hours only", with(sat, `"at":"2022-04-01T08:30:05+08"`), false},
		{"fraction after offset", with(sat, `"at":"2022-04-01T08:30:05+08:00.5"`), false},
		{"ten digits", with(sat, `"at":"2022-04-01T08:30:05.1234567891Z"`), false},
		{"comma", with(sat, `"at":"2022-04-01T08:30:05,5Z"`), false},
		{"dot only", with(sat, `"at":"2022-04-01T08:30:05.Z"`), false},
		{"lower z", with(sat, `"at":"2022-04-01T08:30:05z"`), false},
		{"lower t", with(sat, `"at":"2022-04-01t08:30:05Z"`), false},
		{"30 February", with(sat, `"at":"2023-02-29T08:30:05Z"`), false},
		{"hour 24", with(sat, `"at":"2022-04-01T24:00:00Z"`), false},
		{"second 60", with(sat, `"at":"2022-04-01T23:59:60Z"`), false},
		{"one-digit hour", with(sat, `"at":"2022-04-01T8:30:05Z"`), false},
		{"date only", with(sat, `"at":"2022-04-01"`), false},
		{"empty time", with(sat, `"at":""`), false},
		{"time number", with(sat, `"at":0`), false},
		{"float", with(`"vaccine_doses":2`, `"vaccine_doses":2.0`), false},
		{"exponent", with(`"vaccine_doses":2`, `"vaccine_doses":2e0`), false},
		{"leading zero", with(`"vaccine_doses":2`, `"vaccine_doses":02`), false},
		{"ten-digit int", with(`"vaccine_doses":2`, `"vaccine_doses":1234567890`), false},
		{"overflow", with(`"vaccine_doses":2`, `"vaccine_doses":99999999999999999999`), false},
		{"quoted int", with(`"vaccine_doses":2`, `"vaccine_doses":"2"`), false},
		{"bool int", with(`"vaccine_doses":2`, `"vaccine_doses":true`), false},
		{"minus only", with(`"vaccine_doses":2`, `"vaccine_doses":-`), false},
		{"number string", with(`"decision":"pass"`, `"decision":1`), false},
		{"screen array", `{"screen":[]}`, false},
		{"array", `[]`, false},
		{"string", `"pass"`, false},
		{"empty", ``, false},
		{"truncated", s[:len(s)-1], false},
		{"truncated string", s[:20], false},
		{"trailing comma", with(`"}}`, `",}}`), false},
		{"trailing data", s + "{}", false},
		{"missing colon", with(`"method":`, `"method"`), false},
		{"missing comma", with(`,"screen"`, `"screen"`), false},
		{"single quotes", `{'method':'manual'}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			want, werr := jsonPass(in)
			var fast PassRecorded
			ok := decodePass(in, &fast)
			if ok != tt.fast {
				t.Errorf("decodePass took it: %v, want %v", ok, tt.fast)
			}
			if ok {
				if werr != nil {
					t.Fatalf("decodePass took %s, encoding/json refuses it: %v", in, werr)
				}
				samePass(t, in, fast, want)
			}
			ev, err := Decode(Envelope{Type: TypePassRecorded, SchemaVersion: PassRecorded{}.SchemaVersion(), Payload: in})
			if werr != nil {
				wantErr := fmt.Sprintf("decode event %s (%s): %v", uuid.Nil, TypePassRecorded, werr)
				if err == nil || err.Error() != wantErr {
					t.Fatalf("Decode error %v, want %s", err, wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			samePass(t, in, *ev.(*PassRecorded), want)
		})
	}
}

// FuzzPassDecode: whatever decodePass takes, encoding/json takes too and
// decodes to the same pass.
func FuzzPassDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 64 {
		b, err := jsonEvent(randPass(r, i%2 == 1, i%4 == 1))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"screen":{"at":"2024-02-29T23:59:59.123456789Z","vaccine_doses":-0}}`))
	f.Add([]byte(`{"venue_id":"0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B","reason":"\u5f20"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var got PassRecorded
		if !decodePass(in, &got) {
			return
		}
		want, err := jsonPass(in)
		if err != nil {
			t.Fatalf("decodePass took %q, encoding/json refuses it: %v", in, err)
		}
		samePass(t, in, got, want)
	})
}

// oddTime returns a time json.Marshal may refuse or write in an unusual
// form: years outside [0,9999], offsets of a day or more or with seconds.
func oddTime(r *rand.Rand) time.Time {
	t := time.Date([]int{-1, 0, 1, 9999, 10000, 2022}[r.IntN(6)], time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), 0, 0, r.IntN(1e9), time.UTC)
	return t.In(time.FixedZone([]string{"", "CST"}[r.IntN(2)], []int{0, 59, -3661, 8 * 3600, 23*3600 + 59*60, 24 * 3600, -25 * 3600, 100 * 3600}[r.IntN(8)]))
}

// TestAppendPassRandom: for many generated passes, appendPass writes what
// json.Marshal writes, byte for byte, and refuses only what it must; so
// does NewEnvelope, given the pass or a pointer to it.
func TestAppendPassRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n = 20_000
	fast := 0
	for i := range n {
		escapes, odd := i%2 == 1, i%5 == 1
		p := randPass(r, escapes, i%3 == 1)
		if odd {
			p.Screen.At = oddTime(r)
			if r.IntN(2) == 0 {
				p.Screen.NATAt = oddTime(r)
			}
		}
		want, werr := jsonEvent(p)
		if viaMethod, err := json.Marshal(p); werr == nil && (err != nil || !bytes.Equal(viaMethod, want)) {
			t.Fatalf("json.Marshal through MarshalJSON wrote %s, %v; want %s", viaMethod, err, want)
		}
		full, ferr := jsonPassFull(p)
		got, ok := appendPass([]byte("prefix"), &p)
		if ok {
			fast++
			if ferr != nil {
				t.Fatalf("appendPass wrote %s, json.Marshal refuses %#v: %v", got, p, ferr)
			}
			if !bytes.Equal(got[len("prefix"):], full) {
				t.Fatalf("appendPass wrote\n%s\njson.Marshal\n%s", got[len("prefix"):], full)
			}
			if len(full) > passSize(&p) {
				t.Fatalf("passSize %d, wrote %d bytes", passSize(&p), len(full))
			}
		} else if !escapes && !odd && p.Screen.NameMasked == "" {
			t.Fatalf("appendPass refused %s", full)
		}
		unclean := checkStrings(p)
		for _, ev := range []Event{p, &p} {
			env, err := NewEnvelope("pass.x", ev, Meta{ID: uuid.New()}, time.Now())
			if unclean != nil {
				// Control characters and invalid UTF-8 never enter the log.
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("NewEnvelope of a pass with an unclean string (%v): %v, want ErrInvalid", unclean, err)
				}
				continue
			}
			if werr != nil {
				if err == nil || err.Error() != "encode PassRecorded: "+werr.Error() {
					t.Fatalf("NewEnvelope error %v, json.Marshal's %v", err, werr)
				}
				continue
			}
			if err != nil || !bytes.Equal(env.Payload, want) {
				t.Fatalf("NewEnvelope: %s, %v; json.Marshal %s", env.Payload, err, want)
			}
		}
	}
	if fast < n/3 {
		t.Fatalf("appendPass wrote %d of %d passes", fast, n)
	}
}

// TestEncodeEventOdd: values appendPass leaves to encoding/json come out as
// json.Marshal writes them (or with its error).
func TestEncodeEventOdd(t *testing.T) {
	var nilPass *PassRecorded
	at := time.Date(2022, 4, 1, 8, 30, 5, 0, time.UTC)
	tests := []struct {
		name string
		ev   Event
		fast bool
	}{
		{"zero", PassRecorded{}, true},
		{"nil pointer", nilPass, false},
		{"other event", VenueReviewed{VenueID: uuid.New(), Decision: "approve"}, false},
		{"DEL", PassRecorded{Reason: "a\x7fb"}, true},
		{"html", PassRecorded{Reason: "<b>&</b>"}, false},
		{"quote", PassRecorded{Screen: Screen{VenueName: `"`}}, false},
		{"U+2028", PassRecorded{Screen: Screen{VenueName: "a\u2028b"}}, false},
		{"U+FFFD", PassRecorded{Operator: "\ufffd"}, false},
		{"invalid UTF-8", PassRecorded{Operator: "\xe5\xbc"}, false},
		{"year 10000", PassRecorded{Screen: Screen{At: at.AddDate(8000, 0, 0)}}, false},
		{"year -1", PassRecorded{Screen: Screen{At: at.AddDate(-2023, 0, 0)}}, false},
		{"year 0", PassRecorded{Screen: Screen{At: at.AddDate(-2022, 0, 0)}}, true},
		{"offset 24h", PassRecorded{Screen: Screen{NATAt: at.In(time.FixedZone("", 24*3600))}}, false},
		{"offset 23:59", PassRecorded{Screen: Screen{At: at.In(time.FixedZone("X", 23*3600+59*60))}}, true},
		{"offset with seconds", PassRecorded{Screen: Screen{At: at.In(time.FixedZone("", -3661))}}, true},
		{"zero time elsewhere", PassRecorded{Screen: Screen{NATAt: time.Time{}.In(time.FixedZone("", 3600))}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, werr := jsonEvent(tt.ev)
			got, err := marshalEvent(tt.ev)
			if werr != nil {
				if err == nil || err.Error() != werr.Error() {
					t.Fatalf("error %v, json.Marshal's %v", err, werr)
				}
			} else if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("wrote %s, %v; json.Marshal %s", got, err, want)
			}
			p, isPass := tt.ev.(PassRecorded)
			if _, ok := appendPass(nil, &p); isPass && ok != tt.fast {
				t.Fatalf("appendPass took it: %v, want %v", ok, tt.fast)
			}
		})
	}
}

// FuzzPassEncode: whatever appendPass writes, json.Marshal writes too.
func FuzzPassEncode(f *testing.F) {
	f.Add("张*", "scanner:1", int64(1648801805), int64(123456789), 8*3600, 2)
	f.Add("<&>", "\u2028", int64(-62135596800), int64(0), 0, 0)
	f.Add("a\xffb", "", int64(253402300799), int64(999999999), -3661, -1)
	f.Fuzz(func(t *testing.T, name, operator string, sec, nsec int64, offset, doses int) {
		p := PassRecorded{Operator: operator, Screen: Screen{NameMasked: name, VenueName: name, VaccineDoses: doses,
			At: time.Unix(sec, nsec).In(time.FixedZone("", offset)), NATAt: time.Unix(sec, 0).UTC()}}
		got, ok := appendPass(nil, &p)
		if !ok {
			return
		}
		want, err := jsonPassFull(p)
		if err != nil {
			t.Fatalf("appendPass wrote %s, json.Marshal refuses it: %v", got, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendPass wrote\n%s\njson.Marshal\n%s", got, want)
		}
	})
}

// passPayloads are json.Marshal's encodings of realistic passes, as a
// replay meets them.
func passPayloads(b *testing.B) [][]byte {
	r := rand.New(rand.NewPCG(5, 6))
	out := make([][]byte, 256)
	venue := uuid.New()
	for i := range out {
		at := time.Date(2022, 4, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(14 * 24 * time.Hour)))).Truncate(time.Microsecond)
		p := PassRecorded{
			VenueID: venue, PersonID: uuid.New(), Direction: DirectionIn, Method: MethodStaffScan, Decision: DecisionPass,
			Operator: "scanner:" + venue.String()[:8],
			Screen: Screen{NameMasked: []string{"张*", "欧阳**", "李*"}[i%3], CodeColour: ColourGreen, NATResult: NATNegative,
				NATAt: at.Add(-30 * time.Hour).Truncate(time.Second), VaccineDoses: 2, VenueID: venue,
				VenueName: "临沂大学图书馆", At: at, Direction: DirectionIn, Decision: DecisionPass},
		}
		if i%10 == 0 {
			p.GuardianID = uuid.New()
		}
		var err error
		if out[i], err = jsonEvent(p); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkDecodePass decodes a pass payload with encoding/json (the old
// path) and with decodePass, in the same run.
func BenchmarkDecodePass(b *testing.B) {
	payloads := passPayloads(b)
	b.Run("json", func(b *testing.B) {
		benchEach(b, payloads, func(p []byte) error {
			_, err := jsonPass(p)
			return err
		})
	})
	b.Run("fast", func(b *testing.B) {
		benchEach(b, payloads, func(p []byte) error {
			var pass PassRecorded
			if !decodePass(p, &pass) {
				return errors.New("refused")
			}
			return nil
		})
	})
	b.Run("Decode", func(b *testing.B) {
		benchEach(b, payloads, func(p []byte) error {
			_, err := Decode(Envelope{Type: TypePassRecorded, SchemaVersion: PassRecorded{}.SchemaVersion(), Payload: p})
			return err
		})
	})
	// v1 passes (with the masked name) go through their upcaster.
	v1 := make([][]byte, len(payloads))
	for i, p := range payloads {
		pass, err := jsonPass(p)
		if err != nil {
			b.Fatal(err)
		}
		pass.Screen.NameMasked = []string{"张*", "欧阳**", "李*"}[i%3]
		if v1[i], err = jsonPassFull(pass); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Decode v1", func(b *testing.B) {
		benchEach(b, v1, func(p []byte) error {
			_, err := Decode(Envelope{Type: TypePassRecorded, SchemaVersion: 1, Payload: p})
			return err
		})
	})
}

// BenchmarkEncodePass encodes a pass with json.Marshal (the old path) and
// with appendPass, in the same run.
func BenchmarkEncodePass(b *testing.B) {
	payloads := passPayloads(b)
	passes := make([]PassRecorded, len(payloads))
	for i, p := range payloads {
		var err error
		if passes[i], err = jsonPass(p); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("json", func(b *testing.B) {
		benchEach(b, passes, func(p PassRecorded) error {
			_, err := jsonEvent(p)
			return err
		})
	})
	b.Run("fast", func(b *testing.B) {
		benchEach(b, passes, func(p PassRecorded) error {
			_, err := marshalEvent(p)
			return err
		})
	})
}

// benchEach runs do once a loop on inputs in turn, reporting allocations;
// an error from do fails the benchmark.
func benchEach[T any](b *testing.B, inputs []T, do func(T) error) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := do(inputs[i%len(inputs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
