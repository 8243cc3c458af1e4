package http

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// The pass route is the hot path: its request and its answer are read and
// written here by hand when they have the plain shape scanners send, and by
// encoding/json otherwise. Both give exactly what encoding/json gives (the
// tests hold them to it); the fast path only refuses more.

// decodePassRequest reads body into req when it is one object of the
// request's fields, each a string without escapes (family_member_ids an
// array of them), no field twice. It reports false for anything else
// (null, a number, an escape, an unknown or repeated field, bad UTF-8):
// decodeOne then decodes it and names the error.
func decodePassRequest(body []byte, req *passRequest) bool {
	d := reqScanner{b: body}
	d.ws()
	return d.passObject(req) && d.end()
}

// decodeBatchRequest reads a batch body {"passes": [...]} whose items all
// have the plain shape decodePassRequest reads; false for anything else.
func decodeBatchRequest(body []byte) ([]passRequest, bool) {
	d := reqScanner{b: body}
	d.ws()
	if !d.eat('{') {
		return nil, false
	}
	d.ws()
	if key, ok := d.str(); !ok || string(key) != "passes" {
		return nil, false
	}
	d.ws()
	if !d.eat(':') {
		return nil, false
	}
	d.ws()
	if !d.eat('[') {
		return nil, false
	}
	items := []passRequest{}
	d.ws()
	if !d.eat(']') {
		for {
			d.ws()
			items = append(items, passRequest{})
			if !d.passObject(&items[len(items)-1]) {
				return nil, false
			}
			d.ws()
			if d.eat(',') {
				continue
			}
			if !d.eat(']') {
				return nil, false
			}
			break
		}
	}
	d.ws()
	if !d.eat('}') || !d.end() {
		return nil, false
	}
	return items, true
}

// passObject reads one pass request object at the scanner's position.
func (d *reqScanner) passObject(req *passRequest) bool {
	var seen uint16
	if !d.eat('{') {
		return false
	}
	d.ws()
	if d.eat('}') {
		return true
	}
	for {
		d.ws()
		key, ok := d.str()
		if !ok {
			return false
		}
		d.ws()
		if !d.eat(':') {
			return false
		}
		d.ws()
		f := passField(key)
		if f < 0 || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		if f == fieldFamily {
			if !d.strings(&req.FamilyMemberIDs) {
				return false
			}
		} else {
			v, ok := d.str()
			if !ok {
				return false
			}
			*req.field(f) = string(v)
		}
		d.ws()
		if d.eat(',') {
			continue
		}
		return d.eat('}')
	}
}

const fieldFamily = 7

// passField numbers the request's JSON names; -1 for any other.
func passField(key []byte) int {
	switch string(key) {
	case "method":
		return 0
	case "direction":
		return 1
	case "venue_code":
		return 2
	case "venue_id":
		return 3
	case "personal_code":
		return 4
	case "id_type":
		return 5
	case "id_number":
		return 6
	case "family_member_ids":
		return fieldFamily
	case "event_id":
		return 8
	case "occurred_at":
		return 9
	}
	return -1
}

// field returns the string field numbered f by passField.
func (req *passRequest) field(f int) *string {
	return [...]*string{&req.Method, &req.Direction, &req.VenueCode, &req.VenueID, &req.PersonalCode,
		&req.IDType, &req.IDNumber, nil, &req.EventID, &req.OccurredAt}[f]
}

type reqScanner struct {
	b []byte
	i int
}

func (d *reqScanner) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *reqScanner) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (d *reqScanner) end() bool {
	d.ws()
	return d.i == len(d.b)
}

// str reads a string with no escape and no control character, valid UTF-8.
func (d *reqScanner) str() ([]byte, bool) {
	if !d.eat('"') {
		return nil, false
	}
	j := bytes.IndexByte(d.b[d.i:], '"')
	if j < 0 {
		return nil, false
	}
	s := d.b[d.i : d.i+j]
	ascii := true
	for _, c := range s {
		if c == '\\' || c < 0x20 {
			return nil, false
		}
		ascii = ascii && c < utf8.RuneSelf
	}
	if !ascii && !utf8.Valid(s) {
		return nil, false
	}
	d.i += j + 1
	return s, true
}

// strings reads an array of plain strings.
func (d *reqScanner) strings(out *[]string) bool {
	if !d.eat('[') {
		return false
	}
	list := []string{}
	d.ws()
	if d.eat(']') {
		*out = list
		return true
	}
	for {
		d.ws()
		v, ok := d.str()
		if !ok {
			return false
		}
		list = append(list, string(v))
		d.ws()
		if d.eat(',') {
			continue
		}
		if !d.eat(']') {
			return false
		}
		*out = list
		return true
	}
}

// appendPassResponse appends r as json.Marshal writes it, or returns false
// when a string or time in it needs encoding/json.
func appendPassResponse(b []byte, r *passResponse) ([]byte, bool) {
	ok := true
	b = append(b, `{"event_id":`...)
	b = appendUUID(b, r.EventID)
	b = append(b, `,"position":`...)
	b = strconv.AppendUint(b, r.Position, 10)
	b = append(b, `,"decision":`...)
	if b, ok = domain.AppendJSONString(b, r.Decision); !ok {
		return b, false
	}
	b = append(b, `,"screen":`...)
	if b, ok = domain.AppendScreenJSON(b, &r.Screen); !ok {
		return b, false
	}
	if r.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	if len(r.Family) > 0 {
		b = append(b, `,"family":[`...)
		for i := range r.Family {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendPassResponse(b, &r.Family[i]); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// appendUUID appends id quoted, as uuid.UUID's MarshalText writes it.
func appendUUID(b []byte, id uuid.UUID) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, '"')
}
