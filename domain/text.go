package domain

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// MaxEventString bounds every string of every event, in bytes: the
// backstop behind each field's own, tighter limit.
const MaxEventString = 4096

// Text checks a free-text field and returns it trimmed. Every string that
// enters the log through a command passes here: it must be valid UTF-8
// (refused, never repaired with U+FFFD), hold no control character (NUL
// included: PostgreSQL's text cannot hold one; line breaks and tabs too,
// every such field is one line), no invisible formatting character (bidi
// overrides, zero-width characters, line separators) and no noncharacter,
// and have at most limit characters. An empty
// string is refused when required.
func Text(field, s string, limit int, required bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" && required {
		return "", Invalid(field, "is required")
	}
	if err := cleanString(s); err != nil {
		return "", Invalid(field, "%s", err)
	}
	if n := utf8.RuneCountInString(s); n > limit {
		return "", Invalid(field, "has %d characters, at most %d allowed", n, limit)
	}
	return s, nil
}

// cleanString reports why s may not enter the log, or nil. It runs on
// every string of every event (checkStrings), so the common case (ASCII
// printable, or valid UTF-8 without C1 controls) takes one pass.
func cleanString(s string) error {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b == 0x7f {
			return fmt.Errorf("contains a control character (U+%04X)", b)
		} else if b >= 0x80 {
			return cleanUTF8(s[i:])
		}
	}
	return nil
}

// cleanUTF8 is cleanString past the first non-ASCII byte. Besides control
// characters it refuses the invisible ones that change how text shows
// (format characters such as U+202E, the right-to-left override, or U+200B,
// the other invisible ones, and the line and paragraph separators) and
// noncharacters (U+FFFE…): a name or reason must read as what it is.
func cleanUTF8(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("is not valid UTF-8")
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			return fmt.Errorf("contains a control character (U+%04X)", r)
		case unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || invisible(r):
			return fmt.Errorf("contains an invisible formatting character (U+%04X)", r)
		case r&0xFFFE == 0xFFFE || (r >= 0xFDD0 && r <= 0xFDEF):
			return fmt.Errorf("contains a noncharacter (U+%04X)", r)
		}
	}
	return nil
}

// invisible reports the default-ignorable characters outside Cf that show
// as nothing: the combining grapheme joiner, the Hangul fillers, the
// Mongolian free variation selectors and the variation selectors.
func invisible(r rune) bool {
	switch {
	case r < 0x034f:
		return false
	case r == 0x034f, r == 0x115f, r == 0x1160, r == 0x3164, r == 0xffa0:
		return true
	}
	return r >= 0x180b && r <= 0x180f || r >= 0xfe00 && r <= 0xfe0f || r >= 0xe0100 && r <= 0xe01ef
}

// checkStrings is NewEnvelope's backstop: every string in ev (an event or
// its meta: fields, nested structs, slices) is clean (cleanString) and at
// most MaxEventString bytes, whichever command made it. The error names the
// field by its JSON name. Where the strings of a type lie is worked out once
// per type (stringsOf).
func checkStrings(ev any) error {
	v := reflect.ValueOf(ev)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	return stringsOf(v.Type()).check(v)
}

// stringPlan says where the strings of one type lie.
type stringPlan struct {
	fields []stringField
	// elem is the plan of a slice's or array's elements (nil: none hold strings).
	elem *stringPlan
	// isString: the type is a string itself.
	isString bool
	// path names where the value lies, by JSON names ("screen.name").
	path string
}

// stringField is a field of a struct that holds strings.
type stringField struct {
	index int
	plan  *stringPlan
}

var stringPlans sync.Map // reflect.Type → *stringPlan

// stringsOf returns t's plan (nil when t holds no strings).
func stringsOf(t reflect.Type) *stringPlan {
	if p, ok := stringPlans.Load(t); ok {
		return p.(*stringPlan)
	}
	p := planStrings(t, "", map[reflect.Type]bool{})
	stringPlans.Store(t, p)
	return p
}

// planStrings plans t, found at path (the fields' names are made here, once,
// so a check that finds nothing allocates nothing).
func planStrings(t reflect.Type, path string, seen map[reflect.Type]bool) *stringPlan {
	switch t.Kind() {
	case reflect.String:
		return &stringPlan{isString: true, path: path}
	case reflect.Pointer:
		return planStrings(t.Elem(), path, seen)
	case reflect.Slice, reflect.Array:
		if e := planStrings(t.Elem(), path+"[]", seen); e != nil {
			return &stringPlan{elem: e, path: path}
		}
	case reflect.Struct:
		if seen[t] {
			return nil
		}
		seen[t] = true
		defer delete(seen, t)
		p := stringPlan{path: path}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			if path != "" {
				name = path + "." + name
			}
			if fp := planStrings(f.Type, name, seen); fp != nil {
				p.fields = append(p.fields, stringField{index: i, plan: fp})
			}
		}
		if len(p.fields) > 0 {
			return &p
		}
	}
	return nil
}

// check applies the plan to v.
func (p *stringPlan) check(v reflect.Value) error {
	if p == nil {
		return nil
	}
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch {
	case p.isString:
		s := v.String()
		if len(s) > MaxEventString {
			return Invalid(p.path, "is longer than %d bytes", MaxEventString)
		}
		if err := cleanString(s); err != nil {
			return Invalid(p.path, "%s", err)
		}
	case p.elem != nil:
		for i := range v.Len() {
			if err := p.elem.check(v.Index(i)); err != nil {
				return err
			}
		}
	default:
		for _, f := range p.fields {
			if err := f.plan.check(v.Field(f.index)); err != nil {
				return err
			}
		}
	}
	return nil
}
