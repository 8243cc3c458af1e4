package http

import (
	"strconv"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/internal/jsonscan"
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
	d := reqScanner{jsonscan.Scanner{B: body}}
	d.WS()
	return d.passObject(req) && d.AtEnd()
}

// decodeBatchRequest reads a batch body {"passes": [...]} whose items all
// have the plain shape decodePassRequest reads; false for anything else.
func decodeBatchRequest(body []byte) ([]passRequest, bool) {
	d := reqScanner{jsonscan.Scanner{B: body}}
	d.WS()
	if !d.Eat('{') {
		return nil, false
	}
	d.WS()
	if key, ok := d.Plain(); !ok || string(key) != "passes" {
		return nil, false
	}
	d.WS()
	if !d.Eat(':') {
		return nil, false
	}
	d.WS()
	if !d.Eat('[') {
		return nil, false
	}
	items := []passRequest{}
	d.WS()
	if !d.Eat(']') {
		for {
			d.WS()
			items = append(items, passRequest{})
			if !d.passObject(&items[len(items)-1]) {
				return nil, false
			}
			d.WS()
			if d.Eat(',') {
				continue
			}
			if !d.Eat(']') {
				return nil, false
			}
			break
		}
	}
	d.WS()
	if !d.Eat('}') || !d.AtEnd() {
		return nil, false
	}
	return items, true
}

// passObject reads one pass request object at the scanner's position.
func (d *reqScanner) passObject(req *passRequest) bool {
	var seen uint16
	if !d.Eat('{') {
		return false
	}
	d.WS()
	if d.Eat('}') {
		return true
	}
	for {
		d.WS()
		key, ok := d.Plain()
		if !ok {
			return false
		}
		d.WS()
		if !d.Eat(':') {
			return false
		}
		d.WS()
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
			v, ok := d.Plain()
			if !ok {
				return false
			}
			*req.field(f) = string(v)
		}
		d.WS()
		if d.Eat(',') {
			continue
		}
		return d.Eat('}')
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

// reqScanner reads a pass request.
type reqScanner struct{ jsonscan.Scanner }

// strings reads an array of plain strings.
func (d *reqScanner) strings(out *[]string) bool {
	if !d.Eat('[') {
		return false
	}
	list := []string{}
	d.WS()
	if d.Eat(']') {
		*out = list
		return true
	}
	for {
		d.WS()
		v, ok := d.Plain()
		if !ok {
			return false
		}
		list = append(list, string(v))
		d.WS()
		if d.Eat(',') {
			continue
		}
		if !d.Eat(']') {
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
	b = append(b, `,"health_as_of":`...)
	if b, ok = domain.AppendJSONTime(b, r.HealthAsOf); !ok {
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
