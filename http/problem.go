package http

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// Problem type URIs (RFC 9457 "type"): one per kind of error, stable so that
// clients can branch on them.
const (
	ProblemValidation       = "urn:checkin-ledger:problem:validation"
	ProblemNotFound         = "urn:checkin-ledger:problem:not-found"
	ProblemConflict         = "urn:checkin-ledger:problem:conflict"
	ProblemUnauthorized     = "urn:checkin-ledger:problem:unauthorized"
	ProblemForbidden        = "urn:checkin-ledger:problem:forbidden"
	ProblemTooLarge         = "urn:checkin-ledger:problem:too-large"
	ProblemUnsupportedType  = "urn:checkin-ledger:problem:unsupported-media-type"
	ProblemMethodNotAllowed = "urn:checkin-ledger:problem:method-not-allowed"
	ProblemRateLimited      = "urn:checkin-ledger:problem:rate-limited"
	ProblemUnavailable      = "urn:checkin-ledger:problem:unavailable"
	ProblemTimeout          = "urn:checkin-ledger:problem:timeout"
	ProblemInternal         = "urn:checkin-ledger:problem:internal"
)

// Problem is an application/problem+json body (RFC 9457).
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Errors lists the bad input fields of a validation problem.
	Errors []FieldProblem `json:"errors,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter time.Duration `json:"-"`
}

// retryLater is implemented by errors of a part that is not ready yet but
// will be (the read models replaying at start): 503 with Retry-After.
type retryLater interface {
	error
	RetryAfter() time.Duration
}

// OutageRetryAfter is the Retry-After of a 503 answered because the read
// models could not be reached (ledger.ErrUnavailable).
const OutageRetryAfter = 5 * time.Second

// FieldProblem is one bad input field.
type FieldProblem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Errors of the HTTP layer itself, mapped by problemFor like domain errors.
var (
	// errWaitTimeout is returned when min_position was not reached in time.
	errWaitTimeout = errors.New("http: read models did not reach min_position in time")
	// errUnavailable is returned when a dependency (NATS, the read models) is not ready.
	errUnavailable = errors.New("http: service unavailable")
	// errUnsupportedMediaType is returned when a JSON route's body is not
	// said to be application/json.
	errUnsupportedMediaType = errors.New("http: unsupported media type")
	// errRateLimited is returned when a client exceeded a rate limit.
	errRateLimited = errors.New("http: too many requests")
	// errMethodNotAllowed is returned for a known path with another method.
	errMethodNotAllowed = errors.New("http: method not allowed")
	// errRouteNotFound is returned for a path no route serves.
	errRouteNotFound = errors.New("http: no such route")
)

// errUnavailableWith is errUnavailable with a reason.
func errUnavailableWith(reason string) error { return domain.Errorf(errUnavailable, "%s", reason) }

// problemFor is the one place that maps an error to a status and a problem.
// It reports internal = true for errors of no known kind, which the caller
// logs in full; the client sees only a generic message for those.
func problemFor(err error) (p Problem, internal bool) {
	var (
		tooLarge *http.MaxBytesError
		later    retryLater
	)
	switch {
	case errors.As(err, &later):
		return Problem{Type: ProblemUnavailable, Title: "Service unavailable", Status: http.StatusServiceUnavailable,
			Detail: later.Error(), RetryAfter: later.RetryAfter()}, false
	case errors.As(err, &tooLarge):
		return Problem{Type: ProblemTooLarge, Title: "Request body too large", Status: http.StatusRequestEntityTooLarge,
			Detail: "the body exceeds the limit for this route"}, false
	case errors.Is(err, errUnsupportedMediaType):
		return Problem{Type: ProblemUnsupportedType, Title: "Unsupported media type", Status: http.StatusUnsupportedMediaType,
			Detail: message(err, errUnsupportedMediaType)}, false
	case errors.Is(err, ledger.ErrUnavailable):
		// Before the deadline case: a store that timed out is an outage.
		return Problem{Type: ProblemUnavailable, Title: "Service unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the read models cannot be reached; retry later", RetryAfter: OutageRetryAfter}, false
	case errors.Is(err, errWaitTimeout):
		return Problem{Type: ProblemTimeout, Title: "Read models not caught up", Status: http.StatusGatewayTimeout,
			Detail: message(err, errWaitTimeout)}, false
	case errors.Is(err, context.DeadlineExceeded) && !errors.As(err, new(interface{ Unavailable() bool })):
		return Problem{Type: ProblemTimeout, Title: "Timed out", Status: http.StatusGatewayTimeout}, false
	case errors.Is(err, errUnavailable), errors.Is(err, context.Canceled), errors.As(err, new(interface{ Unavailable() bool })): // the log did not acknowledge in time (eventstore.ErrUnavailable)
		return Problem{Type: ProblemUnavailable, Title: "Service unavailable", Status: http.StatusServiceUnavailable,
			Detail: message(err, errUnavailable)}, false
	case errors.Is(err, errRateLimited):
		return Problem{Type: ProblemRateLimited, Title: "Too many requests", Status: http.StatusTooManyRequests,
			Detail: "slow down and retry later"}, false
	case errors.Is(err, errMethodNotAllowed):
		return Problem{Type: ProblemMethodNotAllowed, Title: "Method not allowed", Status: http.StatusMethodNotAllowed}, false
	case errors.Is(err, errRouteNotFound):
		return Problem{Type: ProblemNotFound, Title: "Not found", Status: http.StatusNotFound,
			Detail: "no such route"}, false
	case errors.Is(err, domain.ErrInvalid):
		p := Problem{Type: ProblemValidation, Title: "Invalid input", Status: http.StatusBadRequest,
			Errors: fieldProblems(err)}
		if len(p.Errors) == 1 {
			p.Detail = p.Errors[0].Field + ": " + p.Errors[0].Reason
		} else {
			p.Detail = message(err, domain.ErrInvalid)
		}
		return p, false
	}
	for _, k := range kindProblems {
		if errors.Is(err, k.kind) {
			return Problem{Type: k.typ, Title: k.title, Status: k.status, Detail: message(err, k.kind)}, false
		}
	}
	return Problem{Type: ProblemInternal, Title: "Internal server error", Status: http.StatusInternalServerError,
		Detail: "the error was logged"}, true
}

// kindProblems are the problems of the other domain error kinds, in the
// order problemFor tries them; the detail is the error's message.
var kindProblems = []struct {
	kind       error
	typ, title string
	status     int
}{
	{domain.ErrUnauthorized, ProblemUnauthorized, "Unauthorized", http.StatusUnauthorized},
	{domain.ErrForbidden, ProblemForbidden, "Forbidden", http.StatusForbidden},
	{domain.ErrNotFound, ProblemNotFound, "Not found", http.StatusNotFound},
	{domain.ErrConflict, ProblemConflict, "Conflict", http.StatusConflict},
}

// message is the client's text for err of kind: the message of a
// *domain.Error (what domain.Errorf makes), nothing for the bare kind.
// An error that wraps the kind on its way up with %w ("append: %w", as the
// token signer and the event store do) has no message field: its text is
// kept without the trailing ": <kind>", so what the wrapping said stays.
func message(err, kind error) string {
	if de, ok := err.(*domain.Error); ok && de.Kind == kind {
		return de.Msg
	}
	msg := err.Error()
	if msg == kind.Error() {
		return ""
	}
	return strings.TrimSuffix(msg, ": "+kind.Error())
}

// fieldProblems lists every *domain.FieldError in err's tree, in order.
func fieldProblems(err error) []FieldProblem {
	var out []FieldProblem
	for _, fe := range domain.FieldErrors(err) {
		out = append(out, FieldProblem{Field: fe.Field, Reason: fe.Reason})
	}
	return out
}

var problemContentType = []string{"application/problem+json"}

// writeError answers with err's problem. Internal errors are logged in full
// with the route pattern (never the raw path or body); the client gets a
// generic problem.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		clientGone(w)
		return
	}
	p, internal := problemFor(err)
	if internal {
		s.logInternal(r, err)
	}
	writeProblem(w, p)
}

// logInternal logs an internal error with the request's method and route
// pattern. Domain errors never hold ID numbers, and the raw path and body
// are not logged.
func (s *Server) logInternal(r *http.Request, err error) {
	s.logFailure(r, slog.LevelError, "request failed", err)
}

// logAnswerBroke logs err, a failure to write an answer already begun (a
// long trace's stream): a write to the client's connection that failed is
// the client's leaving, no failure of ours, logged at info; anything else
// is logInternal's error.
func (s *Server) logAnswerBroke(r *http.Request, err error) {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "write" {
		s.logFailure(r, slog.LevelInfo, "client went away", err)
		return
	}
	s.logInternal(r, err)
}

func (s *Server) logFailure(r *http.Request, level slog.Level, msg string, err error) {
	s.log.LogAttrs(r.Context(), level, msg,
		slog.String("method", r.Method), slog.String("route", routePattern(r)), slog.String("err", err.Error()))
}

func writeProblem(w http.ResponseWriter, p Problem) {
	noteAnswer(w, p)
	h := w.Header()
	h["Content-Type"] = problemContentType
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="ledger"`)
	}
	switch {
	case p.RetryAfter > 0:
		h.Set("Retry-After", strconv.Itoa(int(max(p.RetryAfter.Round(time.Second), time.Second)/time.Second)))
	case p.Status == http.StatusServiceUnavailable:
		h.Set("Retry-After", "1")
	}
	b, err := json.Marshal(p)
	if err != nil { // a Problem always marshals; keep the status anyway
		b = []byte(`{"type":"` + ProblemInternal + `","title":"Internal server error","status":500}`)
	}
	w.WriteHeader(p.Status)
	w.Write(append(b, '\n'))
}

func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unrouted"
}
