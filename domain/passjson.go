package domain

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/internal/jsonscan"
)

// A hand-written decoder for the PassRecorded payload, the event a replay
// and a batch ingest meet most: encoding/json (reflection) costs several
// times more per pass. It accepts only the JSON json.Marshal writes for
// PassRecorded — compact, in any field order, each known field at most once,
// strings without escapes, UUIDs in the 36-character form, RFC 3339 times
// with at most nine fractional digits, small integers — and refuses
// anything else (escapes, whitespace, unknown or repeated fields, nulls,
// other number or time forms), so that Decode hands it to encoding/json and
// behaviour never changes. appendPass is the matching encoder: byte for
// byte what json.Marshal writes, or it declines. PassRecorded's MarshalJSON
// and UnmarshalJSON use them, so the codec belongs to the type it encodes;
// passjson_test.go checks both against encoding/json, with fuzz targets.

// decodePass decodes b, a PassRecorded payload as encoding/json writes it,
// into p, which must be the zero value. It returns false when b is in any
// other shape; p is then partly written and must be reset before decoding b
// otherwise.
func decodePass(b []byte, p *PassRecorded) bool {
	d := passDecoder{jsonscan.Scanner{B: b}}
	return d.pass(p) && d.I == len(b)
}

// passDecoder reads b from i. Every method returns false, leaving i
// anywhere, when the input is not in the shape it accepts.
type passDecoder struct{ jsonscan.Scanner }

// Bits of the fields seen in an object, to refuse a repeated one.
const (
	pfVenueID = 1 << iota
	pfPersonID
	pfDirection
	pfMethod
	pfDecision
	pfReason
	pfOperator
	pfGuardianID
	pfScreen
)

func (d *passDecoder) pass(p *PassRecorded) bool {
	return d.object("venue_id", func(name []byte) (bit uint, want string, ok bool) {
		switch string(name) {
		case "venue_id":
			bit, want, ok = pfVenueID, "person_id", d.uuid(&p.VenueID)
		case "person_id":
			bit, want, ok = pfPersonID, "direction", d.uuid(&p.PersonID)
		case "direction":
			bit, want, ok = pfDirection, "method", d.str(&p.Direction)
		case "method":
			bit, want, ok = pfMethod, "decision", d.str(&p.Method)
		case "decision":
			bit, want, ok = pfDecision, "reason", d.str(&p.Decision)
		case "reason":
			bit, want, ok = pfReason, "operator", d.str(&p.Reason)
		case "operator":
			bit, want, ok = pfOperator, "guardian_id", d.str(&p.Operator)
		case "guardian_id":
			bit, want, ok = pfGuardianID, "screen", d.uuid(&p.GuardianID)
		case "screen":
			bit, want, ok = pfScreen, "", d.screen(&p.Screen)
		default:
			return 0, "", false
		}
		return bit, want, ok
	})
}

// Bits of Screen's fields.
const (
	sfName = 1 << iota
	sfCodeColour
	sfNATResult
	sfNATAt
	sfVaccineDoses
	sfVenueID
	sfVenueName
	sfAt
	sfDirection
	sfDecision
	sfReason
)

func (d *passDecoder) screen(s *Screen) bool {
	return d.object("code_colour", func(name []byte) (bit uint, want string, ok bool) {
		switch string(name) {
		case "name":
			bit, want, ok = sfName, "code_colour", d.str(&s.NameMasked)
		case "code_colour":
			bit, want, ok = sfCodeColour, "nat_result", d.str(&s.CodeColour)
		case "nat_result":
			bit, want, ok = sfNATResult, "nat_at", d.str(&s.NATResult)
		case "nat_at":
			bit, want, ok = sfNATAt, "vaccine_doses", d.time(&s.NATAt)
		case "vaccine_doses":
			bit, want, ok = sfVaccineDoses, "venue_id", d.int(&s.VaccineDoses)
		case "venue_id":
			bit, want, ok = sfVenueID, "venue_name", d.uuid(&s.VenueID)
		case "venue_name":
			bit, want, ok = sfVenueName, "at", d.str(&s.VenueName)
		case "at":
			bit, want, ok = sfAt, "direction", d.time(&s.At)
		case "direction":
			bit, want, ok = sfDirection, "decision", d.str(&s.Direction)
		case "decision":
			bit, want, ok = sfDecision, "reason", d.str(&s.Decision)
		case "reason":
			bit, want, ok = sfReason, "", d.str(&s.Reason)
		default:
			return 0, "", false
		}
		return bit, want, ok
	})
}

// object reads one JSON object whose members field decodes: field returns
// the member's bit (a member seen twice refuses the object), the name
// expected next (members usually come in encoding/json's order) and
// whether it read the value; an unknown name refuses.
func (d *passDecoder) object(first string, field func(name []byte) (bit uint, next string, ok bool)) bool {
	if !d.Eat('{') {
		return false
	}
	if d.Eat('}') {
		return true
	}
	var seen uint
	want := first
	for {
		name, ok := d.name(want)
		if !ok {
			return false
		}
		var bit uint
		bit, want, ok = field(name)
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if d.Eat(',') {
			continue
		}
		return d.Eat('}')
	}
}

// name reads an object member's name and the colon after it. want is the
// name json.Marshal writes next: when it is there, it costs a comparison
// instead of a scan.
func (d *passDecoder) name(want string) ([]byte, bool) {
	rest := d.B[d.I:]
	if n := len(want); len(rest) > n+2 && rest[0] == '"' && rest[n+1] == '"' && rest[n+2] == ':' &&
		string(rest[1:n+1]) == want {
		d.I += n + 3
		return rest[1 : n+1], true
	}
	n, ok := d.Plain()
	return n, ok && d.Eat(':')
}

// str reads a string into *s. The values that repeat from pass to pass
// (the domain's constants) are shared instead of allocated.
func (d *passDecoder) str(s *string) bool {
	b, ok := d.Plain()
	if !ok {
		return false
	}
	switch string(b) {
	case "":
		*s = ""
	case DirectionIn:
		*s = DirectionIn
	case DirectionOut:
		*s = DirectionOut
	case MethodSelfScan:
		*s = MethodSelfScan
	case MethodStaffScan:
		*s = MethodStaffScan
	case MethodManual:
		*s = MethodManual
	case DecisionPass:
		*s = DecisionPass
	case DecisionDeny:
		*s = DecisionDeny
	case ColourGreen:
		*s = ColourGreen
	case ColourYellow:
		*s = ColourYellow
	case ColourRed:
		*s = ColourRed
	case ColourUnknown:
		*s = ColourUnknown
	case NATNegative:
		*s = NATNegative
	case NATPositive:
		*s = NATPositive
	case NATNone:
		*s = NATNone
	default:
		*s = string(b)
	}
	return true
}

// uuid reads a UUID in the form uuid.UUID.MarshalText writes (either case
// of hex digits, as UnmarshalText accepts).
func (d *passDecoder) uuid(u *uuid.UUID) bool {
	// The hex digits and dashes checked below leave no room for an
	// escape or a quote: the string is the 36 bytes between two quotes.
	if len(d.B)-d.I < 38 || d.B[d.I] != '"' || d.B[d.I+37] != '"' {
		return false
	}
	b := d.B[d.I+1 : d.I+37]
	if b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return false
	}
	for i, x := range [16]byte{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34} {
		hi, lo := unhex[b[x]], unhex[b[x+1]]
		if hi|lo > 0xf {
			return false
		}
		u[i] = hi<<4 | lo
	}
	d.I += 38
	return true
}

// unhex maps a hex digit (either case) to its value, anything else to 0xff.
var unhex = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			t[c] = byte(c - 'A' + 10)
		default:
			t[c] = 0xff
		}
	}
	return t
}()

// int reads a JSON integer of at most nine digits (no fraction or
// exponent).
func (d *passDecoder) int(v *int) bool {
	neg := d.Eat('-')
	start := d.I
	n := 0
	for d.I < len(d.B) && '0' <= d.B[d.I] && d.B[d.I] <= '9' {
		n = n*10 + int(d.B[d.I]-'0')
		d.I++
	}
	digits := d.I - start
	if digits == 0 || digits > 9 || (digits > 1 && d.B[start] == '0') {
		return false
	}
	if d.I < len(d.B) && (d.B[d.I] == '.' || d.B[d.I] == 'e' || d.B[d.I] == 'E') {
		return false
	}
	if neg {
		n = -n
	}
	*v = n
	return true
}

// time reads a time as time.Time.MarshalJSON writes one:
// "2006-01-02T15:04:05.999999999Z07:00" with at most nine fractional digits
// and the offset "Z" or "±hh:mm". It builds the value the way time's RFC 3339
// parser does (time.Date in UTC, moved by the offset into time.Local when
// Local has that offset at that instant, else into a fixed zone), so it
// equals encoding/json's. Anything time.Parse would refuse is refused.
func (d *passDecoder) time(t *time.Time) bool {
	b, ok := d.Plain()
	if !ok || len(b) < len("2006-01-02T15:04:05Z") ||
		b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return false
	}
	year, ok1 := dec(b[0:4], 0, 9999)
	month, ok2 := dec(b[5:7], 1, 12)
	hour, ok3 := dec(b[11:13], 0, 23)
	minute, ok4 := dec(b[14:16], 0, 59)
	sec, ok5 := dec(b[17:19], 0, 59)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) {
		return false
	}
	day, ok := dec(b[8:10], 1, daysIn(month, year))
	if !ok {
		return false
	}
	zone := b[19:]
	nsec := 0
	if len(zone) > 0 && zone[0] == '.' {
		n := 1
		for n < len(zone) && '0' <= zone[n] && zone[n] <= '9' {
			n++
		}
		if n < 2 || n > 10 {
			return false
		}
		nsec, _ = dec(zone[1:n], 0, 999_999_999)
		for i := n; i < 10; i++ {
			nsec *= 10
		}
		zone = zone[n:]
	}
	u := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if len(zone) == 1 && zone[0] == 'Z' {
		*t = u
		return true
	}
	if len(zone) != len("+07:00") || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':' {
		return false
	}
	zh, ok1 := dec(zone[1:3], 0, 23)
	zm, ok2 := dec(zone[4:6], 0, 59)
	if !(ok1 && ok2) {
		return false
	}
	offset := (zh*60 + zm) * 60
	if zone[0] == '-' {
		offset = -offset
	}
	u = u.Add(-time.Duration(offset) * time.Second)
	if _, local := u.In(time.Local).Zone(); local == offset {
		*t = u.In(time.Local)
	} else {
		*t = u.In(time.FixedZone("", offset))
	}
	return true
}

// dec parses the decimal digits b as a number in [lo, hi].
func dec(b []byte, lo, hi int) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, lo <= n && n <= hi
}

// daysIn is the number of days in month of year (proleptic Gregorian).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// passJSON is PassRecorded without its methods: encoding/json's own
// encoding, which the fast paths below reproduce byte for byte and fall back
// to for anything they decline.
type passJSON PassRecorded

// MarshalJSON writes p exactly as encoding/json would by default, by hand
// when it can (appendPass), without the screen's name: a PassRecorded v2
// never holds one in the log.
func (p PassRecorded) MarshalJSON() ([]byte, error) {
	// v2: the log keeps no name; the answer to a pass adds it (Screen).
	p.Screen.NameMasked = ""
	if b, ok := appendPass(make([]byte, 0, passSize(&p)), &p); ok {
		return b, nil
	}
	return json.Marshal(passJSON(p))
}

// UnmarshalJSON reads p exactly as encoding/json would by default, by hand
// when b has the shape MarshalJSON writes (decodePass).
func (p *PassRecorded) UnmarshalJSON(b []byte) error {
	*p = PassRecorded{}
	if decodePass(b, p) {
		return nil
	}
	*p = PassRecorded{}
	return json.Unmarshal(b, (*passJSON)(p))
}

// passSize bounds the length of p's JSON written by appendPass: the names
// (240 bytes), UUIDs (4×38), times (2×37), quotes (12×2) and number (20)
// take at most 510 bytes, the strings the rest.
func passSize(p *PassRecorded) int {
	s := &p.Screen
	return 510 + len(p.Direction) + len(p.Method) + len(p.Decision) + len(p.Reason) + len(p.Operator) +
		len(s.NameMasked) + len(s.CodeColour) + len(s.NATResult) + len(s.VenueName) + len(s.Direction) +
		len(s.Decision) + len(s.Reason)
}

// appendPass appends p to b as json.Marshal writes it: the fields in
// order, the omitempty and omitzero ones left out when empty or zero. It
// returns false when p has a string encoding/json would escape (quote,
// backslash, control and HTML characters, U+2028, U+2029, invalid UTF-8 or
// U+FFFD) or a time it cannot write (a year outside [0,9999], an offset of
// a day or more): json.Marshal must then write it.
func appendPass(b []byte, p *PassRecorded) ([]byte, bool) {
	e := passEncoder{b: b, ok: true}
	e.b = append(e.b, `{"venue_id":`...)
	e.uuid(p.VenueID)
	e.b = append(e.b, `,"person_id":`...)
	e.uuid(p.PersonID)
	e.b = append(e.b, `,"direction":`...)
	e.str(p.Direction)
	e.b = append(e.b, `,"method":`...)
	e.str(p.Method)
	e.b = append(e.b, `,"decision":`...)
	e.str(p.Decision)
	e.omitEmpty(`,"reason":`, p.Reason)
	e.omitEmpty(`,"operator":`, p.Operator)
	if p.GuardianID != uuid.Nil {
		e.b = append(e.b, `,"guardian_id":`...)
		e.uuid(p.GuardianID)
	}
	e.b = append(e.b, `,"screen":`...)
	e.screen(&p.Screen)
	e.b = append(e.b, '}')
	return e.b, e.ok
}

// AppendScreenJSON appends s to b as json.Marshal writes it. It returns
// false when s holds a string encoding/json would escape or a time it
// cannot write (see appendPass): json.Marshal must then write it.
func AppendScreenJSON(b []byte, s *Screen) ([]byte, bool) {
	e := passEncoder{b: b, ok: true}
	e.screen(s)
	return e.b, e.ok
}

// AppendJSONString appends s to b quoted as json.Marshal writes it, or
// returns false when s needs an escape.
func AppendJSONString(b []byte, s string) ([]byte, bool) {
	e := passEncoder{b: b, ok: true}
	e.str(s)
	return e.b, e.ok
}

// AppendJSONTime appends t quoted as json.Marshal writes it, or returns
// false when json.Marshal would refuse it.
func AppendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	e := passEncoder{b: b, ok: true}
	e.time(t)
	return e.b, e.ok
}

func (e *passEncoder) screen(s *Screen) {
	e.b = append(e.b, '{')
	if s.NameMasked != "" { // omitempty: a v2 event's screen has no name
		e.b = append(e.b, `"name":`...)
		e.str(s.NameMasked)
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, `"code_colour":`...)
	e.str(s.CodeColour)
	e.omitEmpty(`,"nat_result":`, s.NATResult)
	if !s.NATAt.IsZero() {
		e.b = append(e.b, `,"nat_at":`...)
		e.time(s.NATAt)
	}
	e.b = append(e.b, `,"vaccine_doses":`...)
	e.b = strconv.AppendInt(e.b, int64(s.VaccineDoses), 10)
	e.b = append(e.b, `,"venue_id":`...)
	e.uuid(s.VenueID)
	e.b = append(e.b, `,"venue_name":`...)
	e.str(s.VenueName)
	e.b = append(e.b, `,"at":`...)
	e.time(s.At)
	e.b = append(e.b, `,"direction":`...)
	e.str(s.Direction)
	e.b = append(e.b, `,"decision":`...)
	e.str(s.Decision)
	e.omitEmpty(`,"reason":`, s.Reason)
	e.b = append(e.b, '}')
}

// passEncoder appends to b; ok turns false for a value it cannot write.
type passEncoder struct {
	b  []byte
	ok bool
}

func (e *passEncoder) uuid(u uuid.UUID) {
	e.b = append(AppendUUID(append(e.b, '"'), u), '"')
}

// AppendUUID appends u's canonical text (as u.String() spells it) to b,
// without allocating: for the hand-written JSON writers (PassRecorded's
// here, the envelope's in eventstore).
func AppendUUID(b []byte, u uuid.UUID) []byte {
	const hex = "0123456789abcdef"
	var s [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hex[c>>4], hex[c&0xf]
		j += 2
	}
	return append(b, s[:]...)
}

// omitEmpty writes an omitempty string field: its key (with the comma
// before it) and s, or nothing when s is empty.
func (e *passEncoder) omitEmpty(key, s string) {
	if s != "" {
		e.b = append(e.b, key...)
		e.str(s)
	}
}

func (e *passEncoder) str(s string) {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if !plainByte[c] {
				e.ok = false
				return
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
			e.ok = false
			return
		}
		i += n
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, s...)
	e.b = append(e.b, '"')
}

// plainByte is true for the ASCII bytes encoding/json writes unescaped.
var plainByte = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// time writes t as RFC 3339 with nanoseconds, refusing what
// time.Time.MarshalJSON refuses.
func (e *passEncoder) time(t time.Time) {
	e.b = append(e.b, '"')
	n0 := len(e.b)
	e.b = t.AppendFormat(e.b, time.RFC3339Nano)
	// The checks of time.Time.MarshalJSON (and encoding/json v2).
	f := e.b[n0:]
	if f[len("2006")] != '-' { // a year outside [0,9999]
		e.ok = false
	} else if f[len(f)-1] != 'Z' { // an offset hour outside [0,23]
		c := f[len(f)-len("Z07:00")]
		_, ok := dec(f[len(f)-len("07:00"):len(f)-len(":00")], 0, 23)
		if '0' <= c && c <= '9' || !ok {
			e.ok = false
		}
	}
	e.b = append(e.b, '"')
}
