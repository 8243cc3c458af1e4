// Package jsonscan holds the few steps the hand-written JSON readers share
// (the event store's envelope, the pass event, the pass request): white
// space, one expected byte, and a string with no escape. Each reader gives
// up on anything else and leaves it to encoding/json, so these steps only
// need to recognise the plain shape, never to report what is wrong.
package jsonscan

import "unicode/utf8"

// Scanner reads B from I. A method that returns false may leave I anywhere.
type Scanner struct {
	B []byte
	I int
}

// WS moves past white space.
func (d *Scanner) WS() {
	for d.I < len(d.B) {
		switch d.B[d.I] {
		case ' ', '\t', '\n', '\r':
			d.I++
		default:
			return
		}
	}
}

// Eat moves past c when it is next.
func (d *Scanner) Eat(c byte) bool {
	if d.I < len(d.B) && d.B[d.I] == c {
		d.I++
		return true
	}
	return false
}

// AtEnd reports whether only white space is left.
func (d *Scanner) AtEnd() bool {
	d.WS()
	return d.I == len(d.B)
}

// Name reads an object member's name (a plain string, see Plain) and the
// colon after it, with the white space around them, leaving d at the value.
func (d *Scanner) Name() ([]byte, bool) {
	d.WS()
	name, ok := d.Plain()
	if !ok {
		return nil, false
	}
	d.WS()
	if !d.Eat(':') {
		return nil, false
	}
	d.WS()
	return name, true
}

// Plain reads a string with no escape and no control character, in valid
// UTF-8, and returns its content (aliasing B).
func (d *Scanner) Plain() ([]byte, bool) {
	if !d.Eat('"') {
		return nil, false
	}
	rest := d.B[d.I:]
	ascii := true
	for n, c := range rest {
		switch strByte[c] {
		case strPlain:
			continue
		case strNonASCII:
			ascii = false
			continue
		case strQuote:
			s := rest[:n]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			d.I += n + 1
			return s, true
		}
		return nil, false
	}
	return nil, false
}

// Classes of a byte inside a JSON string, for Plain.
const (
	strPlain    = iota
	strNonASCII // part of a UTF-8 sequence
	strQuote    // the closing quote
	strRefused  // a backslash (an escape) or a control character
)

var strByte = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c < 0x20 || c == '\\':
			t[c] = strRefused
		case c == '"':
			t[c] = strQuote
		case c >= utf8.RuneSelf:
			t[c] = strNonASCII
		}
	}
	return t
}()
