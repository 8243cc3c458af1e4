package domain

import (
	"fmt"
	"reflect"
	"strings"
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
// every such field is one line) and have at most limit characters. An empty
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

// cleanString reports why s may not enter the log, or nil.
func cleanString(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("contains a control character (U+%04X)", r)
		}
	}
	return nil
}

// checkStrings is NewEnvelope's backstop: every string in ev (an event or its meta) (fields,
// nested structs, slices) is clean (cleanString) and at most MaxEventString
// bytes, whichever command made it. The error names the field by its JSON
// name.
func checkStrings(ev any) error {
	return walkStrings(reflect.ValueOf(ev), "")
}

func walkStrings(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return walkStrings(v.Elem(), path)
	case reflect.String:
		s := v.String()
		if len(s) > MaxEventString {
			return Invalid(path, "is longer than %d bytes", MaxEventString)
		}
		if err := cleanString(s); err != nil {
			return Invalid(path, "%s", err)
		}
	case reflect.Struct:
		t := v.Type()
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
			if err := walkStrings(v.Field(i), name); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // bytes, e.g. a UUID
		}
		for i := range v.Len() {
			if err := walkStrings(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}
