package domain

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorf(t *testing.T) {
	err := Errorf(ErrConflict, "venue %d already reviewed", 7)
	if got, want := err.Error(), "venue 7 already reviewed: domain: conflict"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		t.Fatalf("errors.Is does not follow the kind: %v", err)
	}
	var de *Error
	if !errors.As(fmt.Errorf("append: %w", err), &de) || de.Kind != ErrConflict || de.Msg != "venue 7 already reviewed" {
		t.Fatalf("errors.As = %+v", de)
	}
}
