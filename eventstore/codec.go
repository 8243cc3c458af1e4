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
	"github.com/google/uuid"
)

// The message body is the JSON envelope exactly as encoding/json would write
// domain.Envelope. Encoding and decoding are hand-written because they sit on
// the two hot paths (group commit and replay): the generic reflection-based
// codec costs several microseconds per event, these a fraction of that. The
// output is checked against encoding/json in codec_test.go, and any body the
// fast decoder does not understand is handed to encoding/json before it is
// called an error.

// errNotEnvelope is wrapped by decode errors: the body is not an envelope.
var errNotEnvelope = errors.New("eventstore: message body is not an event envelope")

// appendEnvelope appends e as JSON to buf. Payload must be valid JSON (an
// empty payload is written as null).
func appendEnvelope(buf []byte, e *domain.Envelope) []byte {
	buf = append(buf, `{"id":"`...)
	buf = appendUUID(buf, e.ID)
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

func appendUUID(buf []byte, id uuid.UUID) []byte {
	var s [36]byte
	const hex = "0123456789abcdef"
	j := 0
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hex[b>>4], hex[b&0x0f]
		j += 2
	}
	return append(buf, s[:]...)
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
	d := scanner{b: body}
	d.ws()
	if err := d.envelope(e, in); err != nil || !d.atEnd() {
		// Not in the shape this package writes: let encoding/json judge.
		*e = domain.Envelope{}
		if jerr := json.Unmarshal(body, e); jerr != nil {
			return fmt.Errorf("%w: %v", errNotEnvelope, jerr)
		}
	}
	return checkEnvelope(e)
}

func checkEnvelope(e *domain.Envelope) error {
	if e.ID == uuid.Nil || e.Type == "" || e.Aggregate == "" {
		return fmt.Errorf("%w: id, type or aggregate missing", errNotEnvelope)
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
	d := &scanner{b: body}
	d.ws()
	if !d.eat('[') {
		return 0, fmt.Errorf("%w: pack is not a JSON array", errNotEnvelope)
	}
	d.ws()
	n := 0
	if !d.eat(']') {
		for {
			d.ws()
			if err := visit(n, d); err != nil {
				return n, err
			}
			n++
			d.ws()
			if d.eat(',') {
				continue
			}
			if d.eat(']') {
				break
			}
			return n, fmt.Errorf("%w: pack element %d is not followed by ',' or ']'", errNotEnvelope, n-1)
		}
	}
	if !d.atEnd() {
		return n, fmt.Errorf("%w: data after the pack", errNotEnvelope)
	}
	return n, nil
}

// decodeAt decodes the envelope starting at d's position and moves d past
// it. Payload aliases d's buffer.
func decodeAt(d *scanner, e *domain.Envelope, in interner) error {
	start := d.i
	if err := d.envelope(e, in); err != nil {
		*e = domain.Envelope{}
		d.i = start
		if !d.skipValue() {
			return fmt.Errorf("%w: malformed pack element", errNotEnvelope)
		}
		if jerr := json.Unmarshal(d.b[start:d.i], e); jerr != nil {
			return fmt.Errorf("%w: %v", errNotEnvelope, jerr)
		}
	}
	return checkEnvelope(e)
}

// peekString returns the raw value of the top-level string field key of the
// object starting at d's position, without moving d; false when there is
// none, when it has escapes, or anything is odd (then decode fully).
func (d scanner) peekString(key string) ([]byte, bool) {
	if !d.eat('{') {
		return nil, false
	}
	for {
		d.ws()
		k, ok := d.rawString()
		if !ok {
			return nil, false
		}
		d.ws()
		if !d.eat(':') {
			return nil, false
		}
		d.ws()
		if string(k) == key {
			return d.rawString()
		}
		if !d.skipValue() {
			return nil, false
		}
		d.ws()
		if !d.eat(',') {
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
	b := d.b
	if !d.eat('{') {
		return errFast
	}
	d.ws()
	if d.eat('}') {
		return nil
	}
	for {
		d.ws()
		key, ok := d.rawString()
		if !ok {
			return errFast
		}
		d.ws()
		if !d.eat(':') {
			return errFast
		}
		d.ws()
		switch string(key) {
		case "id":
			s, ok := d.rawString()
			if !ok {
				return errFast
			}
			id, err := uuid.ParseBytes(s)
			if err != nil {
				return errFast
			}
			e.ID = id
		case "type":
			s, ok := d.str(in)
			if !ok {
				return errFast
			}
			e.Type = s
		case "schema_version":
			n, ok := d.int()
			if !ok {
				return errFast
			}
			e.SchemaVersion = n
		case "aggregate":
			s, ok := d.str(nil)
			if !ok {
				return errFast
			}
			e.Aggregate = s
		case "occurred_at", "recorded_at":
			s, ok := d.rawString()
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
			s, ok := d.str(in)
			if !ok {
				return errFast
			}
			e.Actor = s
		case "correlation_id":
			s, ok := d.str(nil)
			if !ok {
				return errFast
			}
			e.CorrelationID = s
		case "payload":
			start := d.i
			if !d.skipValue() {
				return errFast
			}
			raw := b[start:d.i:d.i]
			if string(raw) == "null" {
				raw = nil
			}
			e.Payload = raw
		default:
			if !d.skipValue() {
				return errFast
			}
		}
		d.ws()
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			return nil
		}
		return errFast
	}
}

type scanner struct {
	b []byte
	i int
}

func (d *scanner) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// atEnd reports whether only white space is left.
func (d *scanner) atEnd() bool {
	d.ws()
	return d.i == len(d.b)
}

func (d *scanner) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// rawString returns the bytes of a string without escapes; false for
// anything else (including a string with escapes).
func (d *scanner) rawString() ([]byte, bool) {
	b, i := d.b, d.i
	if i >= len(b) || b[i] != '"' {
		return nil, false
	}
	rest := b[i+1:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, false
	}
	str := rest[:j]
	for _, c := range str {
		if c == '\\' || c < 0x20 {
			return nil, false
		}
	}
	d.i = i + 1 + j + 1
	return str, true
}

// skipString moves past a string, escapes included.
func (d *scanner) skipString() bool {
	b := d.b
	i := d.i + 1 // past the opening quote
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
			d.i = end + 1
			return true
		}
		i = end + 1
	}
}

// str reads a string (or null as ""), unescaping through encoding/json when
// it has escapes.
func (d *scanner) str(in interner) (string, bool) {
	if bytes.HasPrefix(d.b[d.i:], []byte("null")) {
		d.i += 4
		return "", true
	}
	start := d.i
	if s, ok := d.rawString(); ok {
		if !utf8.Valid(s) {
			return "", false
		}
		return in.str(s), true
	}
	d.i = start
	if !d.skipValue() || d.b[start] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(d.b[start:d.i], &s); err != nil {
		return "", false
	}
	return s, true
}

func (d *scanner) int() (int, bool) {
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	n, err := strconv.Atoi(string(d.b[start:d.i]))
	return n, err == nil
}

// skipValue moves past one JSON value, checking its structure (brackets,
// strings, literals) but not every detail of numbers.
func (d *scanner) skipValue() bool {
	if d.i >= len(d.b) {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '"':
		return d.skipString()
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		d.i++
		d.ws()
		if d.eat(closer) {
			return true
		}
		for {
			d.ws()
			if c == '{' {
				if d.i >= len(d.b) || d.b[d.i] != '"' || !d.skipValue() {
					return false
				}
				d.ws()
				if !d.eat(':') {
					return false
				}
				d.ws()
			}
			if !d.skipValue() {
				return false
			}
			d.ws()
			if d.eat(',') {
				continue
			}
			return d.eat(closer)
		}
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.i
	number:
		for d.i < len(d.b) {
			switch c := d.b[d.i]; {
			case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
				d.i++
			default:
				break number
			}
		}
		return d.i > start
	}
	return false
}

func (d *scanner) lit(s string) bool {
	if bytes.HasPrefix(d.b[d.i:], []byte(s)) {
		d.i += len(s)
		return true
	}
	return false
}
