package http

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// actor returns the caller proven by the request's bearer token. A missing
// or bad token is ErrUnauthorized; the token of an erased person acts for
// nobody (ledger.MayAct: ErrConflict, "was erased").
func (s *Server) actor(r *http.Request) (domain.Actor, error) {
	if n := len(r.Header.Values("Authorization")); n > 1 {
		// Which one would act is nobody's guess (a proxy that adds its own).
		return domain.Actor{}, domain.Errorf(domain.ErrUnauthorized, "give one Authorization header, not %d", n)
	}
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
	if err := s.ledger.MayAct(r.Context(), a); err != nil {
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

// decode reads one JSON value from the body into v with the strict decoder
// (decodeOne), after checking the Content-Type (415) and the size (413).
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	return decodeOne(body, v)
}

// readBody reads the whole (limited) body of a JSON route, after checking
// that the request says it is JSON (errUnsupportedMediaType otherwise). It
// reads the whole body first, so an oversized body is always a
// MaxBytesError (413), whichever JSON decoder sits behind.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if err := jsonMediaType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
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

// jsonMediaType checks a JSON route's Content-Type: application/json, with
// no parameter but charset=utf-8. A missing header is refused too: the
// body's type is then unknown (curl -d sends a form type), and a route that
// guessed would take a form post from a browser page as JSON.
func jsonMediaType(ct string) error {
	if ct == "application/json" { // what every client of ours sends
		return nil
	}
	if ct == "" {
		return domain.Errorf(errUnsupportedMediaType, "Content-Type is missing: send application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return domain.Errorf(errUnsupportedMediaType, "Content-Type must be application/json")
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return domain.Errorf(errUnsupportedMediaType, "Content-Type application/json takes no parameter but charset=utf-8")
		}
	}
	return nil
}

// strictJSON is how every request body is decoded: encoding/json/v2's
// defaults (member names matched exactly, so "METHOD" is not "method"; a
// name given twice, invalid UTF-8 and trailing data refused) and unknown
// members refused.
var strictJSON = jsonv2.RejectUnknownMembers(true)

// decodeOne decodes body, which must hold exactly one JSON value, into v
// with the strict decoder. What it refuses is told field by field: every
// unknown, repeated or mistyped member at once (fieldErrors), else the one
// syntax error.
func decodeOne(body []byte, v any) error {
	if bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		// Decoded as an empty object otherwise, and answered for its
		// missing fields as if they had been left out.
		return domain.Invalid("body", "must be an object, not null")
	}
	err := jsonv2.Unmarshal(body, v, strictJSON)
	if err == nil {
		return nil
	}
	if errs := fieldErrors(body, reflect.TypeOf(v)); len(errs) > 0 {
		return errors.Join(errs...)
	}
	return jsonError(body, err)
}

// decodeBytes decodes one JSON value from b into v, as decodeOne does.
func decodeBytes(b []byte, v any) error { return decodeOne(b, v) }

// jsonError turns a strict decoding error into a validation error naming
// the field.
func jsonError(body []byte, err error) error {
	var (
		syntax   *jsontext.SyntacticError
		semantic *jsonv2.SemanticError
		tooLarge *http.MaxBytesError
		fieldErr *domain.FieldError
	)
	switch {
	case errors.As(err, &tooLarge):
		return err
	case errors.As(err, &fieldErr):
		return err
	case len(bytes.TrimSpace(body)) == 0:
		return domain.Invalid("body", "is empty; a JSON object is required")
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &syntax):
		return domain.Invalid(pointerField(syntax.JSONPointer), "appears more than once")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return domain.Invalid("body", "is truncated JSON")
	case errors.As(err, &syntax):
		if strings.Contains(syntax.Err.Error(), "invalid UTF-8") {
			return domain.Invalid(pointerField(syntax.JSONPointer), "is not valid UTF-8")
		}
		if strings.Contains(syntax.Err.Error(), "after top-level value") {
			return domain.Invalid("body", "must hold exactly one JSON value")
		}
		return domain.Invalid("body", "is not valid JSON (at byte %d)", syntax.ByteOffset)
	case errors.Is(err, jsonv2.ErrUnknownName) && errors.As(err, &semantic):
		return domain.Invalid(pointerField(semantic.JSONPointer), "is not a known field")
	case errors.As(err, &semantic):
		field := pointerField(semantic.JSONPointer)
		if semantic.GoType == nil {
			return domain.Invalid(field, "cannot be decoded")
		}
		return domain.Invalid(field, "must be %s, not %s", jsonKind(semantic.GoType.Kind().String()), kindName(semantic.JSONKind))
	default:
		return domain.Invalid("body", "cannot be decoded")
	}
}

// pointerField names the member at a JSON pointer as the walker and the
// domain's item errors do ("records[3].nat_at" for /records/3/nat_at: in a
// feed of 10,000 records the index is what finds the bad one); "body" for
// the whole value.
func pointerField(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if !echoableName(tok, true) {
			break // a name not of the API's shape is not echoed (memberField)
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

// kindName is a JSON value kind as a client would name it.
func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "invalid JSON"
}

// fieldErrors lists every member of body that the strict decoder refuses
// when decoding into a value of type t (a pointer): unknown names (names
// are matched exactly), names given twice and values of the wrong kind, at
// any depth. It explains a failed decodeOne; it is never what accepts a
// body. A syntax error ends the walk with what was found before it.
// At most maxFieldErrors are listed (a body of 5,000 unknown members would
// be answered with 5,000 problems), the last saying how many more there were.
func fieldErrors(body []byte, t reflect.Type) []error {
	w := walker{dec: jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true))}
	w.value(t, "")
	if n := len(w.errs); n > maxFieldErrors {
		w.errs = append(w.errs[:maxFieldErrors:maxFieldErrors],
			domain.Invalid("body", "has %d more refused members, not listed", n-maxFieldErrors))
	}
	return w.errs
}

// maxFieldErrors bounds the members fieldErrors lists.
const maxFieldErrors = 20

type walker struct {
	dec  *jsontext.Decoder
	errs []error
}

// memberField names, in a problem, member name of the object at path: the
// name itself when it is shaped like one of the API's (echoableName), which
// a client's typo is; otherwise not echoed (a name holding an ID number, or
// 60 kB of one), the object's path or "body" instead.
func memberField(path, name string) string {
	switch {
	case !echoableName(name, true) && path != "":
		return path
	case !echoableName(name, true):
		return "body"
	case path != "":
		return path + "." + name
	}
	return name
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// value walks one JSON value that is to decode into t; false once the
// input can no longer be read.
func (w *walker) value(t reflect.Type, path string) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	k := w.dec.PeekKind()
	switch k {
	case 'n', 't', 'f', '"', '0', '{', '[':
	default:
		return false // not the start of a value: a syntax error, for jsonError
	}
	if k == 'n' || t == rawMessageType || t.Kind() == reflect.Interface {
		return w.dec.SkipValue() == nil
	}
	field := path
	if field == "" {
		field = "body"
	}
	want := map[reflect.Kind]jsontext.Kind{reflect.Struct: '{', reflect.Map: '{', reflect.Slice: '[', reflect.Array: '[',
		reflect.String: '"', reflect.Bool: 't'}[t.Kind()]
	if want == 0 {
		want = '0' // the numbers
	}
	if k == 'f' {
		k = 't'
	}
	if k != want {
		w.errs = append(w.errs, domain.Invalid(field, "must be %s, not %s", jsonKind(t.Kind().String()), kindName(k)))
		return w.dec.SkipValue() == nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return w.object(t, path)
	case reflect.Slice, reflect.Array:
		if _, err := w.dec.ReadToken(); err != nil {
			return false
		}
		for i := 0; w.dec.PeekKind() != ']'; i++ {
			if !w.value(t.Elem(), path+"["+strconv.Itoa(i)+"]") {
				return false
			}
		}
		_, err := w.dec.ReadToken()
		return err == nil
	}
	v, err := w.dec.ReadValue()
	if err != nil {
		return false
	}
	var ok bool
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		_, perr := strconv.ParseInt(string(v), 10, t.Bits())
		ok = perr == nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		_, perr := strconv.ParseUint(string(v), 10, t.Bits())
		ok = perr == nil
	case reflect.Float32, reflect.Float64:
		_, perr := strconv.ParseFloat(string(v), t.Bits())
		ok = perr == nil
	default:
		ok = true
	}
	if !ok {
		w.errs = append(w.errs, domain.Invalid(field, "must be a number a %s holds", t.Kind())) // the value is not echoed: it may be a document number
	}
	return true
}

// object walks an object that is to decode into struct type t.
func (w *walker) object(t reflect.Type, path string) bool {
	if _, err := w.dec.ReadToken(); err != nil {
		return false
	}
	seen := map[string]bool{}
	for w.dec.PeekKind() != '}' {
		tok, err := w.dec.ReadToken()
		if err != nil {
			return false
		}
		name := tok.String()
		field := memberField(path, name)
		ft, known := structField(t, name)
		switch {
		case seen[name]:
			w.errs = append(w.errs, domain.Invalid(field, "appears more than once"))
		case !known && !echoableName(name, true): // memberField did not repeat it
			w.errs = append(w.errs, domain.Invalid(field, "has a member whose name is not one of its fields (the name is not repeated here)"))
		case !known:
			w.errs = append(w.errs, domain.Invalid(field, "is not a known field"))
		}
		first := !seen[name]
		seen[name] = true
		if !known || !first {
			if w.dec.SkipValue() != nil {
				return false
			}
			continue
		}
		if !w.value(ft, field) {
			return false
		}
	}
	_, err := w.dec.ReadToken()
	return err == nil
}

// structField finds the field of struct type t whose JSON name is exactly
// name, looking into embedded structs.
func structField(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && tag == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if got, ok := structField(ft, name); ok {
					return got, true
				}
				continue
			}
		}
		if tag == "" {
			tag = f.Name
		}
		if tag == name {
			return f.Type, true
		}
	}
	return nil, false
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
	noteAnswer(w, v)
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

// writeOn answers a write route on /…/{id} whose body is a Req: after
// startWrite, run does the write as the caller and returns the 200 answer.
func writeOn[Req any](s *Server, w http.ResponseWriter, r *http.Request,
	run func(ctx context.Context, a domain.Actor, id uuid.UUID, req Req) (any, error)) error {
	var req Req
	id, err := s.startWrite(w, r, &req)
	if err != nil {
		return err
	}
	answer, err := run(r.Context(), actorOf(r), id, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, answer)
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

// fieldErrs gathers the validation errors of one request, so that every bad
// field is reported at once (errors.Join; problemFor lists each).
type fieldErrs []error

// add records err unless it is nil.
func (e *fieldErrs) add(err error) {
	if err != nil {
		*e = append(*e, err)
	}
}

// err is the joined errors, nil when there are none.
func (e fieldErrs) err() error { return errors.Join(e...) }

// id records a UUID parse's error and returns its value.
func (e *fieldErrs) id(v uuid.UUID, err error) uuid.UUID {
	e.add(err)
	return v
}

// at records a time parse's error and returns its value.
func (e *fieldErrs) at(v time.Time, err error) time.Time {
	e.add(err)
	return v
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

// parseTime parses an RFC 3339 time with a zone; "" (the field left out)
// is the zero time. An explicit zero time (0001-01-01T00:00:00Z) is refused
// rather than read as "left out", and so is an offset outside RFC 3339's
// grammar (+24:00, +23:60) or beyond the offsets zones use (−12:00 to
// +14:00), which time.Parse alone lets through.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, domain.Invalid(field, "must be an RFC 3339 time with a zone, e.g. 2022-05-01T08:00:00+08:00")
	}
	if t.IsZero() {
		return time.Time{}, domain.Invalid(field, "must not be the zero time (0001-01-01T00:00:00Z), which stands for no time")
	}
	if s[len(s)-1] != 'Z' {
		off := s[len(s)-6:] // time.Parse took it: ±hh:mm
		hh, _ := strconv.Atoi(off[1:3])
		mm, _ := strconv.Atoi(off[4:6])
		mins := hh*60 + mm
		if off[0] == '-' {
			mins = -mins
		}
		if hh > 23 || mm > 59 || mins < -12*60 || mins > 14*60 {
			return time.Time{}, domain.Invalid(field, "has an invalid zone offset %s (from -12:00 to +14:00)", off)
		}
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

// waitForLog blocks until the read models have applied the whole log as it
// is now, up to Options.WaitTimeout.
func (s *Server) waitForLog(ctx context.Context) error {
	last, err := s.ledger.LogPosition(ctx)
	if err != nil {
		return fmt.Errorf("log position: %w", err)
	}
	return s.waitFor(ctx, last)
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

// cursor is a position in a list read page by page (a venue's entries,
// the recorded looks, the audit chain): the last entry of the previous
// page, and the list it belongs to (scopeOf: the route, its path and its
// filters), so that a cursor given to another list, or to the same list
// with other filters, is refused rather than answered with a wrong or an
// empty page taken for the end. On the wire it is opaque base64.
type cursor struct {
	at       time.Time
	position uint64
	scope    uint32
}

func (c cursor) String() string {
	var b [20]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.at.UnixNano()))
	binary.BigEndian.PutUint64(b[8:16], c.position)
	binary.BigEndian.PutUint32(b[16:], c.scope)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func parseCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 20 {
		return cursor{}, domain.Invalid("cursor", "is not a cursor this API returned")
	}
	return cursor{
		at:       time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))).UTC(),
		position: binary.BigEndian.Uint64(b[8:16]),
		scope:    binary.BigEndian.Uint32(b[16:]),
	}, nil
}

// scopeOf names the list r reads, for its cursors: the path (the route
// and, for entries, the venue) and every query parameter but the cursor, the page size
// and min_position (how fresh the read models must be), in order.
func scopeOf(r *http.Request) uint32 {
	h := fnv.New32a()
	h.Write([]byte(r.URL.Path)) // the route and its venue: lists are GET routes of their own paths
	q := r.URL.Query()
	keys := slices.Sorted(maps.Keys(q))
	for _, k := range keys {
		if k == "cursor" || k == "limit" || k == "min_position" {
			continue
		}
		for _, v := range q[k] {
			h.Write([]byte{0})
			h.Write([]byte(k))
			h.Write([]byte{'='})
			h.Write([]byte(v))
		}
	}
	return h.Sum32()
}
