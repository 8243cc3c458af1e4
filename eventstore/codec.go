package eventstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/internal/jsonscan"
	"github.com/google/uuid"
)

// The message body is the JSON envelope exactly as encoding/json would write
// domain.Envelope. Encoding and decoding are hand-written because they sit on
// the two hot paths (group commit and replay): the generic reflection-based
// codec costs several microseconds per event, these a fraction of that. The
// output is checked against encoding/json in codec_test.go, and any body the
// fast decoder does not understand is handed to encoding/json before it is
// called an error.

// ErrNotEnvelope is wrapped by the errors of a log message whose body is
// not an event envelope or a pack of them (DecodeMessage, Subscriber.Reread,
// and the reads of a damaged log).
var ErrNotEnvelope = errors.New("eventstore: message body is not an event envelope")

// appendEnvelope appends e as JSON to buf. Payload must be valid JSON (an
// empty payload is written as null).
func appendEnvelope(buf []byte, e *domain.Envelope) []byte {
	buf = append(buf, `{"id":"`...)
	buf = domain.AppendUUID(buf, e.ID)
	buf = append(buf, `","type":`...)
	buf = appendJSONString(buf, e.Type)
	buf = append(buf, `,"schema_version":`...)
	buf = strconv.AppendInt(buf, int64(e.SchemaVersion), 10)
	buf = append(buf, `,"aggregate":`...)
	buf = appendJSONString(buf, e.Aggregate)
	buf = append(buf, `,"occurred_at":"`...)
	buf = e.OccurredAt.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, `","recorded_at":"`...)
	buf = e.RecordedAt.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, '"')
	if e.Actor != "" {
		buf = append(buf, `,"actor":`...)
		buf = appendJSONString(buf, e.Actor)
	}
	if e.CorrelationID != "" {
		buf = append(buf, `,"correlation_id":`...)
		buf = appendJSONString(buf, e.CorrelationID)
	}
	buf = append(buf, `,"payload":`...)
	if len(e.Payload) == 0 {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, e.Payload...)
	}
	return append(buf, '}')
}

// appendJSONString appends s as a JSON string, escaping what JSON requires
// (quote, backslash, control characters) and replacing invalid UTF-8 with
// U+FFFD as encoding/json does. HTML characters are not escaped: the body is
// never embedded in HTML.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// interner shares the strings that repeat from event to event (types,
// actors) during one read, instead of allocating each again. It stops
// growing at internMax entries.
type interner map[string]string

const internMax = 4096

func (in interner) str(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in) < internMax {
		in[s] = s
	}
	return s
}

// decodeEnvelope decodes a one-event message body into an envelope. Payload
// aliases body (a NATS message owns its data, so this is safe and saves a
// copy). in may be nil.
func decodeEnvelope(body []byte, e *domain.Envelope, in interner) error {
	d := scanner{jsonscan.Scanner{B: body}}
	d.WS()
	if err := d.envelope(e, in); err != nil || !d.AtEnd() {
		// Not in the shape this package writes: let encoding/json judge.
		*e = domain.Envelope{}
		if jerr := json.Unmarshal(body, e); jerr != nil {
			return fmt.Errorf("%w: %v", ErrNotEnvelope, jerr)
		}
	}
	return checkEnvelope(e)
}

func checkEnvelope(e *domain.Envelope) error {
	if e.ID == uuid.Nil || e.Type == "" || e.Aggregate == "" {
		return fmt.Errorf("%w: id, type or aggregate missing", ErrNotEnvelope)
	}
	return nil
}

// Packs. A pack's body is a JSON array of envelopes, each exactly as
// appendEnvelope writes it: "[" e0 "," e1 … "]". A JSON array keeps the body
// readable with any JSON tool, and the decoder finds each element's end while
// decoding it, so a pack costs no more to read than its envelopes.

// appendPackStart, appendPackElem and appendPackEnd build a pack body from
// encoded envelopes.
func appendPackStart(buf []byte) []byte { return append(buf, '[') }

func appendPackElem(buf []byte, first bool, envelope []byte) []byte {
	if !first {
		buf = append(buf, ',')
	}
	return append(buf, envelope...)
}

func appendPackEnd(buf []byte) []byte { return append(buf, ']') }

// walkPack calls visit for every element of a pack body with the element's
// index and a scanner at its first byte; visit must leave the scanner right
// after the element (decodeAt and skipValue do). It returns the number of
// elements.
func walkPack(body []byte, visit func(i int, d *scanner) error) (int, error) {
	d := &scanner{jsonscan.Scanner{B: body}}
	d.WS()
	if !d.Eat('[') {
		return 0, fmt.Errorf("%w: pack is not a JSON array", ErrNotEnvelope)
	}
	d.WS()
	n := 0
	if !d.Eat(']') {
		for {
			d.WS()
			if err := visit(n, d); err != nil {
				return n, err
			}
			n++
			d.WS()
			if d.Eat(',') {
				continue
			}
			if d.Eat(']') {
				break
			}
			return n, fmt.Errorf("%w: pack element %d is not followed by ',' or ']'", ErrNotEnvelope, n-1)
		}
	}
	if !d.AtEnd() {
		return n, fmt.Errorf("%w: data after the pack", ErrNotEnvelope)
	}
	return n, nil
}

// decodeAt decodes the envelope starting at d's position and moves d past
// it. Payload aliases d's buffer.
func decodeAt(d *scanner, e *domain.Envelope, in interner) error {
	start := d.I
	if err := d.envelope(e, in); err != nil {
		*e = domain.Envelope{}
		d.I = start
		if !d.skipValue() {
			return fmt.Errorf("%w: malformed pack element", ErrNotEnvelope)
		}
		if jerr := json.Unmarshal(d.B[start:d.I], e); jerr != nil {
			return fmt.Errorf("%w: %v", ErrNotEnvelope, jerr)
		}
	}
	return checkEnvelope(e)
}

// peekString returns the raw value of the top-level string field key of the
// object starting at d's position, without moving d; false when there is
// none, when it has escapes, or anything is odd (then decode fully).
func (d scanner) peekString(key string) ([]byte, bool) {
	if !d.Eat('{') {
		return nil, false
	}
	for {
		k, ok := d.Name()
		if !ok {
			return nil, false
		}
		if string(k) == key {
			return d.Plain()
		}
		if !d.skipValue() {
			return nil, false
		}
		d.WS()
		if !d.Eat(',') {
			return nil, false
		}
	}
}

// errFast means the fast decoder gave up; encoding/json decides.
var errFast = errors.New("fast decode not possible")

// envelope parses the envelope object starting at d's position the way
// appendEnvelope writes it, in any key order and with any whitespace, and
// moves d past it. Strings with escapes, unknown value kinds and anything
// odd return errFast.
func (d *scanner) envelope(e *domain.Envelope, in interner) error {
	b := d.B
	if !d.Eat('{') {
		return errFast
	}
	d.WS()
	if d.Eat('}') {
		return nil
	}
	for {
		key, ok := d.Name()
		if !ok {
			return errFast
		}
		switch string(key) {
		case "id":
			s, ok := d.Plain()
			if !ok {
				return errFast
			}
			id, err := uuid.ParseBytes(s)
			if err != nil {
				return errFast
			}
			e.ID = id
		case "type":
			if !d.strTo(&e.Type, in) {
				return errFast
			}
		case "schema_version":
			n, ok := d.int()
			if !ok {
				return errFast
			}
			e.SchemaVersion = n
		case "aggregate":
			if !d.strTo(&e.Aggregate, nil) {
				return errFast
			}
		case "occurred_at", "recorded_at":
			s, ok := d.Plain()
			if !ok {
				return errFast
			}
			var t time.Time
			if err := t.UnmarshalText(s); err != nil {
				return errFast
			}
			if key[0] == 'o' {
				e.OccurredAt = t
			} else {
				e.RecordedAt = t
			}
		case "actor":
			if !d.strTo(&e.Actor, in) {
				return errFast
			}
		case "correlation_id":
			if !d.strTo(&e.CorrelationID, nil) {
				return errFast
			}
		case "payload":
			start := d.I
			if !d.skipValue() {
				return errFast
			}
			raw := b[start:d.I:d.I]
			if string(raw) == "null" {
				raw = nil
			}
			e.Payload = raw
		default:
			if !d.skipValue() {
				return errFast
			}
		}
		d.WS()
		if d.Eat(',') {
			continue
		}
		if d.Eat('}') {
			return nil
		}
		return errFast
	}
}

type scanner struct{ jsonscan.Scanner }

// skipString moves past a string, escapes included.
func (d *scanner) skipString() bool {
	b := d.B
	i := d.I + 1 // past the opening quote
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return false
		}
		end := i + j
		// The quote is escaped when an odd number of backslashes precede it.
		k := end - 1
		for k >= i && b[k] == '\\' {
			k--
		}
		if (end-1-k)%2 == 0 {
			for _, c := range b[i:end] {
				if c < 0x20 {
					return false
				}
			}
			d.I = end + 1
			return true
		}
		i = end + 1
	}
}

// str reads a string (or null as ""), through encoding/json when it has
// escapes or is not valid UTF-8 (which encoding/json replaces).
func (d *scanner) str(in interner) (string, bool) {
	if bytes.HasPrefix(d.B[d.I:], []byte("null")) {
		d.I += 4
		return "", true
	}
	start := d.I
	if s, ok := d.Plain(); ok {
		return in.str(s), true
	}
	d.I = start
	if !d.skipValue() || d.B[start] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(d.B[start:d.I], &s); err != nil {
		return "", false
	}
	return s, true
}

// strTo reads a string as str does into *dst, which it leaves alone if
// there is none; it reports whether there was.
func (d *scanner) strTo(dst *string, in interner) bool {
	s, ok := d.str(in)
	if ok {
		*dst = s
	}
	return ok
}

func (d *scanner) int() (int, bool) {
	start := d.I
	if d.I < len(d.B) && d.B[d.I] == '-' {
		d.I++
	}
	for d.I < len(d.B) && d.B[d.I] >= '0' && d.B[d.I] <= '9' {
		d.I++
	}
	n, err := strconv.Atoi(string(d.B[start:d.I]))
	return n, err == nil
}

// skipValue moves past one JSON value, checking its structure (brackets,
// strings, literals) but not every detail of numbers.
func (d *scanner) skipValue() bool {
	if d.I >= len(d.B) {
		return false
	}
	switch c := d.B[d.I]; {
	case c == '"':
		return d.skipString()
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		d.I++
		d.WS()
		if d.Eat(closer) {
			return true
		}
		for {
			d.WS()
			if c == '{' {
				if d.I >= len(d.B) || d.B[d.I] != '"' || !d.skipValue() {
					return false
				}
				d.WS()
				if !d.Eat(':') {
					return false
				}
				d.WS()
			}
			if !d.skipValue() {
				return false
			}
			d.WS()
			if d.Eat(',') {
				continue
			}
			return d.Eat(closer)
		}
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.I
	number:
		for d.I < len(d.B) {
			switch c := d.B[d.I]; {
			case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
				d.I++
			default:
				break number
			}
		}
		return d.I > start
	}
	return false
}

func (d *scanner) lit(s string) bool {
	if bytes.HasPrefix(d.B[d.I:], []byte(s)) {
		d.I += len(s)
		return true
	}
	return false
}
