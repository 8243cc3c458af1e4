package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error kinds. Every error a rule or a store returns to a caller wraps one of
// these, so the HTTP layer can map it to a status with errors.Is.
var (
	// ErrInvalid is returned when a command or query has bad input; nothing was changed.
	ErrInvalid = errors.New("domain: invalid input")
	// ErrNotFound is returned when the named aggregate or read-model row does not exist.
	ErrNotFound = errors.New("domain: not found")
	// ErrConflict is returned when a command was decided on a stale version, or
	// would break a uniqueness rule (an ID document registered twice).
	ErrConflict = errors.New("domain: conflict")
	// ErrForbidden is returned when the actor may not do what was asked.
	ErrForbidden = errors.New("domain: forbidden")
	// ErrUnauthorized is returned when the caller presented no valid credential.
	ErrUnauthorized = errors.New("domain: unauthorized")
	// ErrUnknownEvent is returned when an event's type is not known to this
	// build, or its schema version is newer than this build understands. Such
	// an event is never skipped.
	ErrUnknownEvent = errors.New("domain: unknown event type or schema version")
)

// FieldError is an ErrInvalid about one named input field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Invalid returns a FieldError for field.
func Invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// oneOf refuses v, the value of field, unless it is one of allowed: a
// FieldError saying "must be a, b or c".
func oneOf(field, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	last := len(allowed) - 1
	return Invalid(field, "must be %s or %s", strings.Join(allowed[:last], ", "), allowed[last])
}

// Error is an error of a kind with a message for the caller: what Errorf
// returns. errors.Is(err, kind) holds, and the HTTP layer shows Msg.
type Error struct {
	// Kind is one of the kinds above (or a kind of the caller's own).
	Kind error
	// Msg says what went wrong, without the kind.
	Msg string
}

// Error is "<Msg>: <Kind>", e.g. "venue 1 not found: domain: not found".
func (e *Error) Error() string { return e.Msg + ": " + e.Kind.Error() }

// Unwrap makes errors.Is(err, e.Kind) true.
func (e *Error) Unwrap() error { return e.Kind }

// Errorf returns an *Error of kind with a message:
// Errorf(ErrConflict, "venue %s already reviewed", id).
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// fieldErrs gathers every bad field of one command, so that the caller
// hears of all of them at once (errors.Join: errors.Is(err, ErrInvalid)
// holds, and each FieldError is in the tree).
type fieldErrs []error

func (e *fieldErrs) add(err error) {
	if err != nil {
		*e = append(*e, err)
	}
}

// text adds err and returns v: for validators that return a value and an error.
func (e *fieldErrs) text(v string, err error) string {
	e.add(err)
	return v
}

func (e fieldErrs) err() error { return errors.Join(e...) }

// FieldErrors returns every *FieldError in err's tree (errors.Join and
// wrapping included), in order: all the bad fields of one request.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}
