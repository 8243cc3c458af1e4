package http

import (
	"strconv"

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
	var items []passRequest // nil until "passes" is read: it must come once
	ok := d.object(func(name []byte) bool {
		if string(name) != "passes" || items != nil {
			return false
		}
		items = []passRequest{}
		return d.array(func() bool {
			items = append(items, passRequest{})
			return d.passObject(&items[len(items)-1])
		})
	})
	if !ok || items == nil || !d.AtEnd() {
		return nil, false
	}
	return items, true
}

// passObject reads one pass request object at the scanner's position.
func (d *reqScanner) passObject(req *passRequest) bool {
	var seen uint16
	return d.object(func(name []byte) bool {
		f := passField(name)
		if f < 0 || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		if f == fieldFamily {
			return d.strings(&req.FamilyMemberIDs)
		}
		v, ok := d.Plain()
		if !ok {
			return false
		}
		*req.field(f) = string(v)
		return true
	})
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
	list := []string{}
	ok := d.array(func() bool {
		v, ok := d.Plain()
		if ok {
			list = append(list, string(v))
		}
		return ok
	})
	if ok {
		*out = list
	}
	return ok
}

// object reads an object, handing each member's name to member with the
// scanner at its value, which member reads.
func (d *reqScanner) object(member func(name []byte) bool) bool {
	return d.sequence('{', '}', func() bool {
		name, ok := d.Name()
		return ok && member(name)
	})
}

// array reads an array whose items item reads.
func (d *reqScanner) array(item func() bool) bool { return d.sequence('[', ']', item) }

// sequence reads begin, the items item reads separated by commas, and end,
// with white space around each item.
func (d *reqScanner) sequence(begin, end byte, item func() bool) bool {
	if !d.Eat(begin) {
		return false
	}
	d.WS()
	if d.Eat(end) {
		return true
	}
	for {
		d.WS()
		if !item() {
			return false
		}
		d.WS()
		if d.Eat(',') {
			continue
		}
		return d.Eat(end)
	}
}

// appendPassResponse appends r as json.Marshal writes it, or returns false
// when a string or time in it needs encoding/json.
func appendPassResponse(b []byte, r *passResponse) ([]byte, bool) {
	ok := true
	b = append(b, `{"event_id":"`...)
	b = domain.AppendUUID(b, r.EventID)
	b = append(b, `","position":`...)
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
