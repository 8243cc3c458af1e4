// Package http is the ledger's HTTP API: chi routes, JSON in and out, bearer
// token authentication, and application/problem+json errors. Writes go to
// the command side (ledger.Ledger); reads come from the read models
// (ledger.ReadModel) and say which log position they reflect.
//
// Code that imports this package names it ledgerhttp.
package http

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/token"
)

// Waiter blocks until the read models have applied the event at a position
// (read-your-writes). The projector implements it.
type Waiter interface {
	WaitFor(ctx context.Context, position uint64) error
}

// Defaults for the zero values of Options' fields.
const (
	DefaultMaxBodyBytes      = 64 << 10
	DefaultMaxBatchBodyBytes = 8 << 20
	DefaultWaitTimeout       = 5 * time.Second
	DefaultShutdownTimeout   = 15 * time.Second
)

// Options holds what the server needs. Ledger, Reads and Signer are required.
type Options struct {
	// ClockSkew is how far a device's clock may be off: a personal code a
	// scanner read offline is checked at the pass's occurred_at, this much
	// either side.
	ClockSkew time.Duration
	// Ledger runs commands (the write side).
	Ledger *ledger.Ledger
	// Reads answers queries (the read side).
	Reads ledger.ReadModel
	// Poison is the reactions' poison queue (GET /v1/admin/poison); nil:
	// those routes answer 503.
	Poison ledger.PoisonQueue
	// Signer issues and checks bearer tokens and codes.
	Signer *token.Signer
	// Waiter serves min_position; nil polls Reads.Position instead.
	Waiter Waiter
	// Ready reports whether the service can serve (/readyz); nil: always ready.
	Ready func(ctx context.Context) error
	// Dwell is how long a person with no exit is taken to stay at a venue
	// of a type; nil: domain.DefaultDwell.
	Dwell func(venueType string) time.Duration
	// Logger receives internal errors; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Metrics is told of every request and problem (nil: none).
	Metrics Metrics
	// MetricsHandler serves GET /metrics (Prometheus's exposition); nil:
	// the route answers 404.
	MetricsHandler http.Handler
	// Location is the city's time zone: the dashboard's day and hours are
	// its; nil: time.Local.
	Location *time.Location
	// MaxBodyBytes limits a request body (0: DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// MaxBatchBodyBytes limits the body of batch routes (0: DefaultMaxBatchBodyBytes).
	MaxBatchBodyBytes int64
	// RegisterRate is how many registrations (POST /v1/persons) one client
	// IP may make per minute; 0: no limit. The IP is the connection's
	// remote address: behind a proxy, put the limit there.
	RegisterRate int
	// FamilyRate is how many family members one guardian may register an
	// hour (POST /v1/persons/{id}/family-members); 0: no limit. With the
	// cap (domain.MaxFamilyMembers) it keeps one account from squatting
	// many strangers' documents, and makes "already registered" answers
	// useless for finding out who is registered.
	FamilyRate int
	// WaitTimeout bounds a min_position wait (0: DefaultWaitTimeout).
	WaitTimeout time.Duration
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context ends (0: DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// BearerTTL is the lifetime of the token POST /v1/persons returns
	// (0: token.DefaultBearerTTL).
	BearerTTL time.Duration
}

// Server is the HTTP API.
type Server struct {
	opts   Options
	ledger *ledger.Ledger
	reads  ledger.ReadModel
	signer *token.Signer
	log    *slog.Logger
	now    func() time.Time
	dwell  func(string) time.Duration
	router chi.Router
	hub    *dashHub // the dashboard streams'
}

// New returns a server for opts.
func New(opts Options) *Server {
	opts.Logger = cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))
	opts.Location = cmp.Or(opts.Location, time.Local)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Dwell == nil {
		opts.Dwell = domain.DefaultDwell
	}
	positiveOr(&opts.MaxBodyBytes, DefaultMaxBodyBytes)
	positiveOr(&opts.MaxBatchBodyBytes, DefaultMaxBatchBodyBytes)
	positiveOr(&opts.WaitTimeout, DefaultWaitTimeout)
	positiveOr(&opts.ShutdownTimeout, DefaultShutdownTimeout)
	s := &Server{
		opts:   opts,
		ledger: opts.Ledger,
		reads:  opts.Reads,
		signer: opts.Signer,
		log:    opts.Logger,
		now:    opts.Now,
		dwell:  opts.Dwell,
		hub:    &dashHub{reads: opts.Reads, waiter: opts.Waiter, tick: make(chan struct{}), closing: make(chan struct{})},
	}
	s.router = s.routes()
	return s
}

// positiveOr sets *v to def unless it is positive.
func positiveOr[T int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Handler returns the server's routes as one handler.
func (s *Server) Handler() http.Handler { return s.router }

// routes lists every route with who may call it.
func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	// GetHead answers HEAD on every GET route with its status and headers;
	// net/http drops the body.
	r.Use(s.observe, s.recoverer, s.oneQuery, middleware.GetHead)
	r.NotFound(s.handle(func(http.ResponseWriter, *http.Request) error { return errRouteNotFound }))
	r.MethodNotAllowed(s.handle(s.methodNotAllowed))

	r.Get("/healthz", s.handle(s.healthz))
	r.Get("/readyz", s.handle(s.readyz))
	r.Get("/openapi.yaml", s.handle(s.openAPI))
	r.Get("/analyst", s.handle(s.analystConsole))  // a page; its traces go through POST /v1/traces
	r.Get("/metrics", s.handle(s.metrics))         // Prometheus; put it behind the network's edge
	r.Get("/dashboard", s.handle(s.dashboardPage)) // the page holds no data: it asks for a token
	r.Get("/dashboard/assets/{name}", s.handle(s.dashboardAsset))

	// Each route names who may call it: roles(set, why) refuses a caller
	// outside the set before anything is read; a nil gate only
	// authenticates, and the handler decides with the resource (domain.May*,
	// the ledger's rules). One table, so every route × role reads at a
	// glance.
	type middleware = func(http.Handler) http.Handler
	roles := func(rs domain.Roles, why string, more ...middleware) []middleware {
		return append([]middleware{s.roles(rs, why)}, more...)
	}
	public := func(ms ...middleware) []middleware { return ms }
	// Why a caller outside the set is refused, for a set several routes share.
	const (
		codeShowers  = "only the person or their guardian may show a personal code"
		poisonAdmins = "only an admin may see the poison queue"
		auditReaders = "the audit trail is for admins and auditors"
	)
	r.Route("/v1", func(r chi.Router) {
		// Each route with the query parameters it takes (the same as its
		// operation's in openapi.yaml: TestRoutesTakeTheirParameters);
		// any other is refused before the route's gate, where a typo
		// ("distrct") would otherwise be silently ignored.
		type params = []string
		for _, rt := range []struct {
			method, pattern string
			params          params
			gate            []middleware
			h               handlerFunc
		}{
			{"POST", "/persons", nil, public(s.registerLimit()), s.registerPerson}, // anyone may register
			{"GET", "/persons/{id}", params{"min_position"}, roles(domain.PersonReaders, "only the person, their guardian, a reviewer or an admin may read a person"), s.getPerson},
			{"POST", "/persons/{id}/verification", nil, roles(domain.Reviewers, "only a reviewer or an admin may verify a person"), s.verifyPerson},
			{"POST", "/persons/{id}/release", nil, roles(domain.Reviewers, "only a reviewer or an admin may release a registration"), s.releasePerson},
			{"POST", "/persons/{id}/erasure", nil, roles(domain.Admins, "only an admin may erase a person"), s.erasePerson},
			{"POST", "/persons/{id}/family-members", nil, roles(domain.Persons, familyOnly, s.familyLimit()), s.addFamilyMember},
			{"GET", "/persons/{id}/code", params{"min_position"}, roles(domain.Persons, codeShowers), s.personCode},
			{"GET", "/persons/{id}/code.png", params{"min_position"}, roles(domain.Persons, codeShowers), s.personCodePNG},
			{"GET", "/persons/{id}/trace", params{"from", "to", "source", "reason", "min_position"}, roles(domain.HistoryReaders, "a trace history is for the person themself, their guardian, an admin or an analyst"), s.personTrace},
			{"POST", "/venues", nil, roles(domain.Persons, "only a registered person may apply for a venue code"), s.applyVenue},
			{"GET", "/venues", params{"district", "status", "limit", "min_position"}, roles(domain.CityReaders, "the venue registry is for reviewers, admins, dashboards and analysts"), s.listVenues},
			{"GET", "/venues/{id}", params{"min_position"}, nil, s.getVenue},
			{"POST", "/venues/{id}/review", nil, roles(domain.Reviewers, "only a reviewer or an admin may review a venue"), s.reviewVenue},
			{"GET", "/venues/{id}/code.png", params{"min_position"}, nil, s.venueCodePNG},
			{"POST", "/venues/{id}/admins", nil, roles(domain.SubAdminManagers, "only the venue's manager may add sub-admins"), s.addSubAdmin},
			{"DELETE", "/venues/{id}/admins/{person_id}", nil, roles(domain.SubAdminManagers, "only the venue's manager may remove sub-admins"), s.removeSubAdmin},
			{"GET", "/venues/{id}/entries", params{"from", "to", "direction", "decision", "limit", "cursor", "min_position"}, nil, s.venueEntries},
			{"GET", "/venues/{id}/occupancy", params{"min_position"}, nil, s.venueOccupancy},
			{"POST", "/passes", nil, nil, s.recordPass},
			{"POST", "/passes/batch", nil, nil, s.recordPassBatch},
			{"POST", "/health-status", nil, roles(domain.HealthFeeds, "only the health data feed may record health status"), s.recordHealth},
			{"GET", "/alerts", params{"district", "limit", "min_position"}, roles(domain.CityReaders, "alerts are for reviewers, admins, dashboards and analysts"), s.listAlerts},
			{"POST", "/declarations/arrival", nil, roles(domain.Persons, "only a registered person may declare an arrival"), s.declareArrival},
			{"POST", "/declarations/truck", nil, roles(domain.Persons, "only a registered person may file a truck pass"), s.declareTruck},
			{"GET", "/declarations", params{"district", "status", "kind", "limit", "min_position"}, roles(domain.Reviewers, "the review queue is for reviewers and admins"), s.listDeclarations},
			{"GET", "/declarations/{id}", params{"min_position"}, roles(domain.DeclarationReaders, declarationReaders), s.getDeclaration},
			{"POST", "/declarations/{id}/review", nil, roles(domain.Reviewers, "only a reviewer or an admin may review a declaration"), s.reviewDeclaration},
			{"GET", "/admin/poison", params{"limit"}, roles(domain.Admins, poisonAdmins), s.listPoison},
			{"POST", "/admin/poison/{id}/retry", nil, roles(domain.Admins, poisonAdmins), s.retryPoison},
			{"POST", "/traces", nil, roles(domain.Tracers, "contact tracing is for analysts and admins"), s.createTrace},
			{"GET", "/audit", params{"person", "kind", "actor", "since", "until", "limit", "cursor", "min_position"}, roles(domain.AuditReaders, auditReaders), s.listAuditChain},
			{"GET", "/audit/verify", nil, roles(domain.AuditReaders, auditReaders), s.verifyAudit},
			{"GET", "/audit/looks", params{"from", "to", "limit", "cursor", "min_position"}, roles(domain.AuditReaders, auditReaders), s.listAudit},
			{"GET", "/dashboard/summary", params{"district"}, roles(domain.Dashboards, dashboardsOnly), s.dashboardSummary},
			// EventSource sends no headers: the token may come in the query, here only.
			{"GET", "/dashboard/stream", params{"district", "access_token"}, append([]middleware{queryToken}, roles(domain.Dashboards, dashboardsOnly)...), s.dashboardStream},
		} {
			gate := rt.gate
			if gate == nil {
				gate = []middleware{s.authenticated}
			}
			r.With(append([]middleware{s.takes(rt.params)}, gate...)...).Method(rt.method, rt.pattern, s.handle(rt.h))
		}
		// A GET that audits the look takes no HEAD: a look with no
		// answer would still be recorded.
		for _, pattern := range []string{"/persons/{id}/trace"} {
			r.Head(pattern, s.handle(func(w http.ResponseWriter, _ *http.Request) error {
				w.Header().Set("Allow", http.MethodGet)
				return errMethodNotAllowed
			}))
		}
	})
	return r
}

// methodNotAllowed answers a known path asked with another method: 405,
// with the methods the path takes in Allow (RFC 9110, 15.5.6). HEAD goes
// with GET (middleware.GetHead) unless the path has a HEAD of its own (a
// refusal: the audited looks in routes).
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if s.router.Match(chi.NewRouteContext(), m, r.URL.Path) {
			allow = append(allow, m)
			if m == http.MethodGet && !s.router.Match(chi.NewRouteContext(), http.MethodHead, r.URL.Path) {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	return errMethodNotAllowed
}

// handlerFunc is a handler that returns its error instead of answering it:
// parse, call, render, and return whatever went wrong.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts h to net/http: an error h returns becomes its problem+json
// answer (pkgsite's errorHandler). h must not have written anything when it
// returns an error.
func (s *Server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// oneQuery refuses, before any route reads it, a query string that does
// not decode (url.Values drops the pair it cannot decode: "cursor=%%%"
// would silently not apply) or that gives a parameter twice
// ("district=371302&district=371311": only the first would count).
func (s *Server) oneQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" { // a pass: nothing to parse, no map made
			next.ServeHTTP(w, r)
			return
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			s.writeError(w, r, domain.Invalid("query", "is not a valid URL query: %v", err))
			return
		}
		for _, k := range slices.Sorted(maps.Keys(q)) {
			if n := len(q[k]); n > 1 {
				field := k
				if !paramName(k) { // not ours: not echoed (a NUL, a kilobyte of it)
					field = "query"
				}
				s.writeError(w, r, domain.Invalid(field, "gives a parameter %d times; give it once", n))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// paramName reports whether k has the shape of the API's query parameters
// (lower-case letters, digits and underscores, at most 40, starting with a
// letter), the names a problem may echo: a client's typo is, a name
// holding a document number (digits) or a NUL is not.
func paramName(k string) bool { return echoableName(k, false) }

// echoableName is paramName, upper-case letters allowed with upper (a body
// member's name spelt in the wrong case is still a typo of ours). At most
// ten digits: more may be an ID or phone number.
func echoableName(k string, upper bool) bool {
	if k == "" || len(k) > 40 || !isLetter(k[0], upper) {
		return false
	}
	digits := 0
	for _, c := range []byte(k) {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c != '_' && !isLetter(c, upper):
			return false
		}
	}
	return digits <= 10
}

func isLetter(c byte, upper bool) bool {
	return (c >= 'a' && c <= 'z') || (upper && c >= 'A' && c <= 'Z')
}

// registerLimit limits registrations per client IP.
func (s *Server) registerLimit() func(http.Handler) http.Handler {
	return s.rateLimit(s.opts.RegisterRate, time.Minute, clientIP)
}

// familyLimit limits family registrations per guardian (Options.FamilyRate
// an hour). It runs after the route's role gate, which names the caller.
func (s *Server) familyLimit() func(http.Handler) http.Handler {
	return s.rateLimit(s.opts.FamilyRate, time.Hour, func(r *http.Request) (string, error) {
		return actorOf(r).PersonID.String(), nil
	})
}

// rateLimit lets rate requests a window through per key and answers the
// rest with errRateLimited; a rate of 0 (or less) is no limit.
func (s *Server) rateLimit(rate int, window time.Duration, key httprate.KeyFunc) func(http.Handler) http.Handler {
	if rate <= 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	return httprate.LimitBy(rate, window, key,
		httprate.WithLimitHandler(s.handle(func(http.ResponseWriter, *http.Request) error { return errRateLimited })))
}

// clientIP keys the rate limit by the connection's address (IPv6 by /64).
func clientIP(r *http.Request) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return httprate.CanonicalizeIP(host), nil
}

// recoverer turns a panic in a handler into a logged internal error.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Serve answers requests on ln until ctx ends, then shuts down gracefully:
// it stops accepting, lets in-flight requests finish (up to
// Options.ShutdownTimeout) and returns. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(s.hub.shutdown) // open dashboard streams end at once
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		hs.Close()
		return fmt.Errorf("shut down http: %w", err)
	}
	return nil
}

// metrics is GET /metrics: the Prometheus exposition of Options.MetricsHandler.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if s.opts.MetricsHandler == nil {
		return errRouteNotFound
	}
	s.opts.MetricsHandler.ServeHTTP(w, r)
	return nil
}

type statusResponse struct {
	Status   string `json:"status"`
	Position uint64 `json:"position,omitempty"`
}

// healthz is GET /healthz: the process is up.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, statusResponse{Status: "ok"})
}

// readyz is GET /readyz: NATS reachable and the read models caught up.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.opts.Ready(ctx); err != nil {
			writeProblem(w, Problem{Type: ProblemUnavailable, Title: "Not ready", Status: http.StatusServiceUnavailable,
				Detail: err.Error()})
			return nil
		}
	}
	pos, err := s.reads.Position(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, statusResponse{Status: "ready", Position: pos})
}

// specFS holds the hand-written OpenAPI description served at /openapi.yaml.
//
//go:embed openapi.yaml
var specFS embed.FS

// openAPI is GET /openapi.yaml: the hand-written description of every route.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	spec, err := specFS.ReadFile("openapi.yaml")
	if err != nil {
		return fmt.Errorf("read embedded openapi.yaml: %w", err)
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	w.Write(spec)
	return nil
}
