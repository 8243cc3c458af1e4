package domain

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestText(t *testing.T) {
	tests := []struct {
		name, in string
		required bool
		want     string
		ok       bool
	}{
		{"plain", " 沂河超市 ", true, "沂河超市", true},
		{"empty optional", "", false, "", true},
		{"empty required", "  ", true, "", false},
		{"NUL", "a\x00b", false, "", false},
		{"DEL", "a\x7fb", false, "", false},
		{"C1 control", "a\u0085b", false, "", false},
		{"line break", "a\nb", false, "", false},
		{"tab", "a\tb", false, "", false},
		{"invalid UTF-8", "a\xffb", false, "", false},
		{"lone surrogate half", "a\xed\xa0\x80b", false, "", false},
		{"right-to-left override", "场\u202e场", false, "", false},
		{"zero-width space", "a\u200bb", false, "", false},
		{"line separator", "a\u2028b", false, "", false},
		{"noncharacter", "a\ufffeb", false, "", false},
		{"last noncharacter", "a\U0010FFFFb", false, "", false},
		{"no-break space is a space", "a\u00a0b", false, "a\u00a0b", true},
		{"longest", strings.Repeat("名", 8), true, strings.Repeat("名", 8), true},
		{"too long", strings.Repeat("名", 9), true, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Text("f", tt.in, 8, tt.required)
			if tt.ok != (err == nil) || got != tt.want {
				t.Fatalf("Text(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
			}
			if err != nil {
				wantField(t, err, "f")
			}
		})
	}
}

// TestNewEnvelopeRefusesUncleanStrings: for every string field of every
// event type (nested ones included), a NUL, a control character, invalid
// UTF-8 or an overlong value is refused with ErrInvalid naming the field,
// and a clean value is taken.
func TestNewEnvelopeRefusesUncleanStrings(t *testing.T) {
	bad := map[string]string{"NUL": "a\x00b", "ESC": "a\x1bb", "invalid UTF-8": "a\xc3", "long": strings.Repeat("x", MaxEventString+1),
		"bidi override": "a\u202eb"}
	fields := 0
	for typ, mk := range registry {
		ev := mk()
		var paths [][]int
		var walk func(t reflect.Type, at []int)
		walk = func(rt reflect.Type, at []int) {
			for i := range rt.NumField() {
				f := rt.Field(i)
				idx := append(append([]int{}, at...), i)
				switch {
				case f.Type.Kind() == reflect.String:
					paths = append(paths, idx)
				case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}):
					walk(f.Type, idx)
				}
			}
		}
		walk(reflect.TypeOf(ev).Elem(), nil)
		for _, path := range paths {
			fields++
			for what, v := range bad {
				e := reflect.New(reflect.TypeOf(ev).Elem())
				e.Elem().FieldByIndex(path).SetString(v)
				_, err := NewEnvelope("x.y", e.Interface().(Event), Meta{}, time.Now())
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("%s field %v with %s: %v, want ErrInvalid", typ, path, what, err)
				}
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field == "" {
					t.Errorf("%s field %v with %s: %v names no field", typ, path, what, err)
				}
			}
			e := reflect.New(reflect.TypeOf(ev).Elem())
			e.Elem().FieldByIndex(path).SetString("临沂 ok")
			if _, err := NewEnvelope("x.y", e.Interface().(Event), Meta{}, time.Now()); err != nil {
				t.Errorf("%s field %v with a clean value: %v", typ, path, err)
			}
		}
	}
	if fields < 40 {
		t.Fatalf("found only %d string fields across the events", fields)
	}
	if _, err := NewEnvelope("x.y", VenueReviewed{}, Meta{Actor: "analyst:\x00"}, time.Now()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a NUL in the actor: %v, want ErrInvalid", err)
	}
}

func BenchmarkCheckStrings(b *testing.B) {
	p := PassRecorded{Direction: DirectionIn, Method: MethodStaffScan, Decision: DecisionPass, Operator: "scanner:0190c2a4-2222-7000-8000-000000000001",
		Screen: Screen{NameMasked: "张*", CodeColour: ColourGreen, NATResult: NATNegative, VenueName: "临沂大学图书馆", Direction: DirectionIn, Decision: DecisionPass}}
	b.ReportAllocs()
	for b.Loop() {
		if err := checkStrings(p); err != nil {
			b.Fatal(err)
		}
	}
}
