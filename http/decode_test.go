package http

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/checkin-ledger/ledger/domain"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
		Tags  []int  `json:"tags"`
		Sub   *struct {
			A string `json:"a"`
		} `json:"sub"`
	}
	tests := []struct {
		name   string
		body   string
		limit  int64
		field  string // "" : no error; else the first bad field
		tooBig bool
		all    []string // every bad field, when the answer must name several
	}{
		{"ok", `{"name":"a","count":1}`, 1024, "", false, nil},
		{"ok with trailing space", "{\"name\":\"a\"}\n  ", 1024, "", false, nil},
		{"empty", ``, 1024, "body", false, nil},
		{"truncated", `{"name":"a"`, 1024, "body", false, nil},
		{"syntax", `{"name":}`, 1024, "body", false, nil},
		{"not an object", `[1,2]`, 1024, "body", false, nil},
		{"unknown field", `{"name":"a","admin":true}`, 1024, "admin", false, nil},
		{"wrong type", `{"count":"many"}`, 1024, "count", false, nil},
		{"wrong nested type", `{"tags":[1,"x"]}`, 1024, "tags[1]", false, nil},
		{"two values", `{"name":"a"}{"name":"b"}`, 1024, "body", false, nil},
		{"too large", `{"name":"` + strings.Repeat("x", 200) + `"}`, 64, "", true, nil},
		// Strict JSON: names match exactly, once; bad UTF-8 is refused.
		{"case-variant name", `{"NAME":"a"}`, 1024, "NAME", false, nil},
		{"duplicate name", `{"name":"a","name":"b"}`, 1024, "name", false, nil},
		{"duplicate nested name", `{"sub":{"a":"x","a":"y"}}`, 1024, "sub.a", false, nil},
		{"unknown nested name", `{"sub":{"b":"x"}}`, 1024, "sub.b", false, nil},
		{"invalid UTF-8", "{\"name\":\"\xff\"}", 1024, "name", false, nil},
		{"not an integer", `{"count":1.5}`, 1024, "count", false, nil},
		{"every bad field at once", `{"Name":"a","count":"x","name":"b","name":"c","tags":[1,"y"],"extra":1}`, 1024, "Name", false,
			[]string{"Name", "count", "name", "tags[1]", "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			var v body
			err := decode(w, r, tt.limit, &v)
			var tooBig *http.MaxBytesError
			switch {
			case tt.tooBig:
				if !errors.As(err, &tooBig) {
					t.Fatalf("error = %v, want MaxBytesError", err)
				}
			case tt.field == "":
				if err != nil {
					t.Fatalf("error = %v", err)
				}
			default:
				var fe *domain.FieldError
				if !errors.As(err, &fe) || fe.Field != tt.field {
					t.Fatalf("error = %v, want a field error on %q", err, tt.field)
				}
				if tt.all != nil {
					var got []string
					for _, f := range fieldProblems(err) {
						got = append(got, f.Field)
					}
					if !slices.Equal(got, tt.all) {
						t.Fatalf("fields = %v, want %v", got, tt.all)
					}
				}
			}
		})
	}
}

func TestJSONMediaType(t *testing.T) {
	tests := []struct {
		name string
		ct   string
		ok   bool
	}{
		{"json", "application/json", true},
		{"json utf-8", "application/json; charset=utf-8", true},
		{"json UTF-8 upper case", "Application/JSON; charset=UTF-8", true},
		{"missing", "", false},
		{"curl -d's form type", "application/x-www-form-urlencoded", false},
		{"text", "text/plain", false},
		{"another charset", "application/json; charset=latin1", false},
		{"another parameter", "application/json; v=2", false},
		{"json suffix", "application/problem+json", false},
		{"malformed", "application/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := jsonMediaType(tt.ct)
			if tt.ok != (err == nil) {
				t.Fatalf("jsonMediaType(%q) = %v, want ok %v", tt.ct, err, tt.ok)
			}
			if err != nil {
				if p, _ := problemFor(err); p.Status != http.StatusUnsupportedMediaType || p.Type != ProblemUnsupportedType {
					t.Fatalf("problem = %+v, want 415 %s", p, ProblemUnsupportedType)
				}
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"", true}, // left out
		{"2022-05-01T08:00:00+08:00", true},
		{"2022-05-01T08:00:00.123456789Z", true},
		{"2022-05-01T08:00:00-12:00", true},
		{"2022-05-01T08:00:00+14:00", true},
		{"2022-05-01T08:00:00+05:45", true},
		{"0001-01-01T00:00:00Z", false}, // an explicit zero time is not "now"
		{"0001-01-01T08:00:00+08:00", false},
		{"2022-05-01T08:00:00+24:00", false},
		{"2022-05-01T08:00:00+23:60", false},
		{"2022-05-01T08:00:00+14:30", false},
		{"2022-05-01T08:00:00-12:30", false},
		{"2022-05-01T08:00:00+99:00", false},
		{"2022-05-01T08:00:00", false},
		{"2022-05-01", false},
	}
	for _, tt := range tests {
		_, err := parseTime("at", tt.in)
		if tt.ok != (err == nil) {
			t.Errorf("parseTime(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
		var fe *domain.FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "at") {
			t.Errorf("parseTime(%q) = %v, want a field error on at", tt.in, err)
		}
	}
}
