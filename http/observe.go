package http

import (
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Metrics is told of every request and every problem answered, for
// monitoring (cmd wires it to Prometheus). Its methods must be quick and
// safe for concurrent use.
type Metrics interface {
	// Request is told of a finished request: its method, route pattern
	// ("unrouted" when no route matched), status and duration.
	Request(method, route string, status int, took time.Duration)
	// Problem is told of each problem+json answer's type.
	Problem(typ string)
}

// requestIDHeader carries the request id: a sane one the client sent, or
// one made here; echoed in the answer and logged.
const requestIDHeader = "X-Request-Id"

// saneRequestID is a request id taken from a client as it is.
var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// observe logs one line per request and tells Metrics of it. The line
// holds the method, the route pattern (never the raw path or query, which
// may hold ids or a token), the status, the duration, the request id and
// the event id the request appended when there is one: never a name, an ID
// number or a phone.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(requestIDHeader)
		if !saneRequestID.MatchString(id) {
			id = uuid.NewString()
		}
		w.Header().Set(requestIDHeader, id)
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		took := time.Since(start)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		route, method := routePattern(r), knownMethod(r.Method)
		if s.opts.Metrics != nil {
			s.opts.Metrics.Request(method, route, status, took)
			if rec.problem != "" {
				s.opts.Metrics.Problem(rec.problem)
			}
		}
		attrs := []slog.Attr{slog.String("method", method), slog.String("route", route), slog.Int("status", status),
			slog.Float64("duration_ms", float64(took.Microseconds())/1000), slog.String("request_id", id)}
		if rec.eventID != uuid.Nil {
			attrs = append(attrs, slog.String("event_id", rec.eventID.String()))
		}
		if rec.problem != "" {
			attrs = append(attrs, slog.String("problem", rec.problem))
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// knownMethod is method when HTTP defines it, "OTHER" otherwise: a
// client may send any token as its method, and each one named in the
// metrics would be a new series (and a long one a long log line).
func knownMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// recorder notes what a handler answered: status, problem type, event id.
type recorder struct {
	http.ResponseWriter
	status  int
	problem string
	eventID uuid.UUID
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the stream's
// flushes and write deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// StatusClientGone is the status logged and counted for a request whose
// client went away before its answer (nginx's 499): nothing is answered,
// and it is not counted as an outage (a 503) of ours. A write the client
// left may still have been stored; its retry with the same event id gets
// the original answer.
const StatusClientGone = 499

// clientGone notes that the client went away.
func clientGone(w http.ResponseWriter) {
	if rec, ok := w.(*recorder); ok && rec.status == 0 {
		rec.status = StatusClientGone
	}
}

// eventNoter is an answer that names the event its request appended.
type eventNoter interface{ loggedEventID() uuid.UUID }

func (w writeResult) loggedEventID() uuid.UUID  { return w.EventID }
func (p passResponse) loggedEventID() uuid.UUID { return p.EventID }

// noteAnswer tells the request's recorder (when w is one) of what v says.
func noteAnswer(w http.ResponseWriter, v any) {
	rec, ok := w.(*recorder)
	if !ok {
		return
	}
	switch v := v.(type) {
	case eventNoter:
		rec.eventID = v.loggedEventID()
	case Problem:
		rec.problem = v.Type
	}
}
