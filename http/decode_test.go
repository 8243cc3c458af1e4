package http

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/checkin-ledger/ledger/domain"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
		Tags  []int  `json:"tags"`
	}
	tests := []struct {
		name   string
		body   string
		limit  int64
		field  string // "" : no error
		tooBig bool
	}{
		{"ok", `{"name":"a","count":1}`, 1024, "", false},
		{"ok with trailing space", "{\"name\":\"a\"}\n  ", 1024, "", false},
		{"empty", ``, 1024, "body", false},
		{"truncated", `{"name":"a"`, 1024, "body", false},
		{"syntax", `{"name":}`, 1024, "body", false},
		{"not an object", `[1,2]`, 1024, "body", false},
		{"unknown field", `{"name":"a","admin":true}`, 1024, "admin", false},
		{"wrong type", `{"count":"many"}`, 1024, "count", false},
		{"wrong nested type", `{"tags":[1,"x"]}`, 1024, "tags", false},
		{"two values", `{"name":"a"}{"name":"b"}`, 1024, "body", false},
		{"too large", `{"name":"` + strings.Repeat("x", 200) + `"}`, 64, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
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
			}
		})
	}
}
