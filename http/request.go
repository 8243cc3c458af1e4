package http

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// actor returns the caller proven by the request's bearer token. A missing
// or bad token is ErrUnauthorized.
func (s *Server) actor(r *http.Request) (domain.Actor, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return domain.Actor{}, domain.Errorf(domain.ErrUnauthorized, "a bearer token is required")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return domain.Actor{}, domain.Errorf(domain.ErrUnauthorized, "the Authorization header must be \"Bearer <token>\"")
	}
	a, err := s.signer.ParseBearer(strings.TrimSpace(tok))
	if err != nil {
		return domain.Actor{}, err
	}
	return a, nil
}

// actorKey is the request context's key for the caller that roles and
// authenticated let through.
type actorKey struct{}

// roles gates a route on a role set: the caller must present a valid
// bearer token (401 otherwise) of one of rs's roles (403 with why
// otherwise), checked before anything is read. The handler finds the
// caller with actorOf.
func (s *Server) roles(rs domain.Roles, why string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return s.handle(func(w http.ResponseWriter, r *http.Request) error {
			a, err := s.actor(r)
			if err != nil {
				return err
			}
			if !rs.Allow(a) {
				return forbidden(why)
			}
			next.ServeHTTP(w, withActor(r, a))
			return nil
		})
	}
}

// authenticated gates a route on a valid bearer token of any role: what
// the caller may do there depends on the resource, and is decided with it
// (the domain.May* rules, the ledger's decide functions).
func (s *Server) authenticated(next http.Handler) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		a, err := s.actor(r)
		if err != nil {
			return err
		}
		next.ServeHTTP(w, withActor(r, a))
		return nil
	})
}

func withActor(r *http.Request, a domain.Actor) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), actorKey{}, a))
}

// actorOf returns the caller that the route's gate (roles, authenticated)
// let through.
func actorOf(r *http.Request) domain.Actor {
	a, _ := r.Context().Value(actorKey{}).(domain.Actor)
	return a
}

// forbidden is the error for an actor that may not do what was asked.
func forbidden(what string) error {
	return domain.Errorf(domain.ErrForbidden, "%s", what)
}

// decode reads one JSON value from the body into v, refusing unknown fields,
// trailing data and bodies over limit bytes (413).
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	return decodeOne(body, v)
}

// readBody reads the whole (limited) body first, so an oversized body is
// always a MaxBytesError (413), whichever JSON decoder sits behind.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	var body []byte
	var err error
	if n := r.ContentLength; n >= 0 && n <= limit {
		// The usual case: the server's body reader ends at Content-Length,
		// so read exactly that into one buffer instead of growing one.
		body = make([]byte, n)
		_, err = io.ReadFull(rd, body)
	} else {
		body, err = io.ReadAll(rd)
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, domain.Invalid("body", "could not be read")
	}
	return body, nil
}

// decodeOne decodes body, which must hold exactly one JSON value, into v,
// refusing unknown fields.
func decodeOne(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return domain.Invalid("body", "must hold exactly one JSON value")
	}
	return nil
}

// decodeBytes decodes one JSON value from b into v, refusing unknown fields.
func decodeBytes(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	return nil
}

// jsonError turns a decoding error into a validation error naming the field.
func jsonError(err error) error {
	var (
		syntax    *json.SyntaxError
		typ       *json.UnmarshalTypeError
		tooLarge  *http.MaxBytesError
		fieldErr  *domain.FieldError
		unknownFx = "json: unknown field "
	)
	switch {
	case errors.As(err, &tooLarge):
		return err
	case errors.As(err, &fieldErr):
		return err
	case errors.Is(err, io.EOF):
		return domain.Invalid("body", "is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return domain.Invalid("body", "is truncated JSON")
	case errors.As(err, &syntax):
		return domain.Invalid("body", "is not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		field := fieldPath(typ.Field)
		if field == "" {
			field = "body"
		}
		return domain.Invalid(field, "must be %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), unknownFx):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), unknownFx))
		if name == "" {
			name = strings.TrimPrefix(err.Error(), unknownFx)
		}
		return domain.Invalid(name, "is not a known field")
	default:
		return domain.Invalid("body", "cannot be decoded")
	}
}

// fieldPath names a field the same way with either encoding/json
// implementation: the v2-based one adds array indexes ("tags.1"), v1 does not.
func fieldPath(p string) string {
	parts := strings.Split(p, ".")
	out := parts[:0]
	for _, part := range parts {
		if _, err := strconv.Atoi(part); err == nil {
			continue
		}
		out = append(out, part)
	}
	return strings.Join(out, ".")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	default:
		return "a number"
	}
}

var jsonContentType = []string{"application/json"}

// writeJSON answers with status and v as JSON. Nothing is written when v
// does not encode: the error is the handler's to return.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	w.Write(b)
	w.Write(newline)
	return nil
}

var newline = []byte{'\n'}

// startWrite begins a write route on /…/{id}: {id} must be a UUID and the
// body must decode into req, in that order.
func (s *Server) startWrite(w http.ResponseWriter, r *http.Request, req any) (uuid.UUID, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return uuid.Nil, err
	}
	return id, decode(w, r, s.opts.MaxBodyBytes, req)
}

// readByID reads what the {id} path parameter names with fetch, once the
// read models have reached min_position: a malformed id is refused before
// the wait. It returns the item and the position the read reflects.
func readByID[T any](s *Server, r *http.Request, fetch func(context.Context, uuid.UUID) (T, error)) (T, uint64, error) {
	var zero T
	id, err := pathID(r, "id")
	if err != nil {
		return zero, 0, err
	}
	pos, err := s.readPosition(r)
	if err != nil {
		return zero, 0, err
	}
	v, err := fetch(r.Context(), id)
	return v, pos, err
}

// pathID parses the {name} path parameter as a UUID.
func pathID(r *http.Request, name string) (uuid.UUID, error) {
	return parseID(name, chi.URLParam(r, name))
}

// parseID parses a UUID input field; an empty string is an error.
func parseID(field, s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, domain.Invalid(field, "is required")
	}
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil || len(s) != 36 {
		return uuid.Nil, domain.Invalid(field, "must be a UUID")
	}
	return id, nil
}

// parseOptionalID parses a UUID that may be absent.
func parseOptionalID(field, s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, nil
	}
	return parseID(field, s)
}

// parseTime parses an RFC 3339 time with a zone; "" is the zero time.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, domain.Invalid(field, "must be an RFC 3339 time with a zone, e.g. 2022-05-01T08:00:00+08:00")
	}
	return t, nil
}

// queryLimit reads the limit query parameter: def when absent, 1..max otherwise.
func queryLimit(r *http.Request, def, max int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, domain.Invalid("limit", "must be a whole number from 1 to %d", max)
	}
	return n, nil
}

// readPosition waits for min_position (when the query asks for it) and
// returns the read models' position: every read answers with the position
// it reflects, read before the query so the answer is at least that fresh.
func (s *Server) readPosition(r *http.Request) (uint64, error) {
	if v := r.URL.Query().Get("min_position"); v != "" {
		min, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, domain.Invalid("min_position", "must be a non-negative whole number")
		}
		if err := s.waitFor(r.Context(), min); err != nil {
			return 0, err
		}
	}
	pos, err := s.reads.Position(r.Context())
	if err != nil {
		return 0, fmt.Errorf("read models position: %w", err)
	}
	return pos, nil
}

// waitFor blocks until the read models have applied position, up to
// Options.WaitTimeout.
func (s *Server) waitFor(ctx context.Context, position uint64) error {
	if position == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, s.opts.WaitTimeout)
	defer cancel()
	var err error
	if s.opts.Waiter != nil {
		err = s.opts.Waiter.WaitFor(wctx, position)
	} else {
		err = s.pollPosition(wctx, position)
	}
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return domain.Errorf(errWaitTimeout, "position %d not reached within %s", position, s.opts.WaitTimeout)
	default:
		return fmt.Errorf("wait for position %d: %w", position, err)
	}
}

func (s *Server) pollPosition(ctx context.Context, position uint64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		pos, err := s.reads.Position(ctx)
		if err != nil {
			return err
		}
		if pos >= position {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// cursor is a position in a venue's entry list, newest first: the last
// entry of the previous page. On the wire it is opaque base64.
type cursor struct {
	at       time.Time
	position uint64
}

func (c cursor) String() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.at.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], c.position)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func parseCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return cursor{}, domain.Invalid("cursor", "is not a cursor this API returned")
	}
	return cursor{
		at:       time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))).UTC(),
		position: binary.BigEndian.Uint64(b[8:]),
	}, nil
}
