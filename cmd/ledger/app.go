package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/checkin-ledger/ledger/eventstore"
	ledgerhttp "github.com/checkin-ledger/ledger/http"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/facts"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/reactions"
	"github.com/checkin-ledger/ledger/token"
)

// config is what `ledger serve` is told: its flags and environment, parsed.
type config struct {
	engine engineFlags
	// getenv reads the environment (LEDGER_TOKEN_KEY).
	getenv func(string) string
	// httpAddr is the API's listen address; "127.0.0.1:0" picks a port.
	httpAddr string
	// pprofAddr serves net/http/pprof when not empty.
	pprofAddr    string
	clockSkew    time.Duration
	registerRate int
	familyRate   int
	// readyLag is the most the read models may be behind the log for
	// /readyz to answer ready.
	readyLag time.Duration
	// startupWait bounds how long a command waits for the start-up replay
	// before it answers 503 with Retry-After.
	startupWait time.Duration
	// dwell is the default stay per venue type.
	dwell func(venueType string) time.Duration
	// maxStay is the longest recorded stay per venue type.
	maxStay func(venueType string) time.Duration
	// sweepInterval is how often expired passes leave the read models
	// (0: projections.SweepInterval of the retention; tests shorten it).
	sweepInterval time.Duration
	// location is the city's time zone (the dashboard's day); nil: UTC.
	location *time.Location
	logger   *slog.Logger
}

// app is the service as cmd wires it: the one place where the event store,
// keyring, read models, projector, ledger, token signer, reactions and HTTP
// server are built (open) and started (Run). serve and the end-to-end tests
// use it.
type app struct {
	cfg    config
	log    *slog.Logger
	es     *eventstore.Store     // also the keyring and the log's reading side
	passes *eventstore.PassIndex // the log with each person's passes indexed
	lock   *dataLock             // the data dir's, with the embedded server
	pg     *postgres.Store       // nil: the read models are in memory
	store  projections.Store
	proj   *projections.Projector
	// With PostgreSQL read models the command side decides passes on facts
	// kept in memory by a projector of their own (projections/facts);
	// nil with the memory read models, which answer them themselves.
	facts     *facts.Store
	factsProj *projections.Projector
	ledger    *ledger.Ledger
	signer    *token.Signer
	router    *reactions.Router
	sweeper   *projections.Sweeper // retires expired passes from every read model
	srv       *ledgerhttp.Server
	ln        net.Listener // the API's
	pprof     *http.Server // nil without cfg.pprofAddr
	pprofL    net.Listener
	metrics   *metrics // Prometheus, on a registry of the app's own
}

// open builds the service and binds its listeners; nothing runs until Run.
// On error what was opened is closed again.
func open(ctx context.Context, cfg config) (_ *app, err error) {
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.getenv == nil {
		cfg.getenv = func(string) string { return "" }
	}
	if cfg.readyLag <= 0 {
		cfg.readyLag = 5 * time.Second
	}
	if cfg.startupWait <= 0 {
		cfg.startupWait = 5 * time.Second
	}
	if cfg.location == nil {
		cfg.location = time.UTC
	}
	a := &app{cfg: cfg, log: cfg.logger, metrics: newMetrics(prometheus.NewRegistry())}
	defer func() {
		if err != nil {
			a.Close() // what was opened before the error
		}
	}()

	sec, err := cfg.engine.keys(cfg.getenv, true)
	if err != nil {
		return nil, err
	}
	hasher, err := pii.NewHasher(sec.IDHash)
	if err != nil {
		return nil, err
	}
	if a.signer, err = token.NewSigner(sec.Token, time.Now); err != nil {
		return nil, err
	}
	if a.es, a.lock, err = cfg.engine.openLog(ctx, sec, a.log, a.metrics); err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	if cfg.engine.postgres != "" {
		// The tables keep stays under the rules the traces use.
		rules := domain.StayRules{Dwell: cfg.dwell, MaxStay: cfg.maxStay}
		if a.pg, err = postgres.Open(ctx, postgres.Options{URL: cfg.engine.postgres, Stays: &rules}); err != nil {
			return nil, fmt.Errorf("open read models: %w", err)
		}
		a.store = a.pg
	} else {
		a.store = memory.New(memory.Options{})
	}
	popts := projections.Options{Opener: projections.KeyringOpener(a.es), Logger: a.log}
	var writer projections.Writer = a.store
	var commandReads ledger.ReadModel = a.store
	if a.pg != nil {
		// Tables of another log are refused before anything is served.
		if err := projections.CheckLog(ctx, a.es, a.pg); err != nil {
			return nil, fmt.Errorf("open read models: %w (e.g. `ledger projections rebuild --postgres URL`, with this serve's --nats-url or --data)", err)
		}
		// One replica applies to the shared tables at a time; the
		// others stand by and take over when it goes.
		popts.Lease = a.pg.Lease(postgres.LeaseOptions{})

		// The command side reads its facts from memory, not from the
		// tables: a second follower of the log keeps them (sharing the
		// opener's key cache), and the tracker tells PassFacts how far
		// the tables are, so it never decides on less than a query saw.
		tracker := facts.NewTracker(a.pg)
		popts.Lease = tracker.Lease(popts.Lease)
		writer = tracker
		a.facts = facts.NewStore()
		a.factsProj = projections.New(a.es, a.facts, projections.Options{Name: "command_facts", Opener: popts.Opener, Logger: a.log})
		commandReads = facts.NewReadModel(facts.Options{Tables: a.pg, Store: a.facts, Projector: a.factsProj,
			Tracker: tracker, Older: a.pg.HasPassBefore})
	}
	a.proj = projections.New(a.es, writer, popts)
	if a.factsProj != nil {
		a.metrics.watchProjections(a.proj, a.factsProj)
	} else {
		a.metrics.watchProjections(a.proj)
	}

	a.passes = eventstore.NewPassIndex(a.es)
	// A pass waits for the facts it reads to hold this replica's writes
	// before it (the command side's own follower with PostgreSQL), except
	// while that follower replays the log after a start: the facts are then
	// read from the tables (facts.ReadModel), and a wait would only add its
	// second to every pass.
	follower := a.proj
	if a.factsProj != nil {
		follower = a.factsProj
	}
	a.ledger = &ledger.Ledger{
		Fence:  new(ledger.ErasureFence),
		Own:    &ledger.OwnWrites{Reach: follower.WaitFor, Following: follower.StartupDone},
		Events: a.es,
		Log:    a.passes, // a person's replay from the log reads only their packs
		Audit:  a.es,
		Keys:   a.es,
		Hasher: hasher,
		// Commands wait for the start-up replay (a venue that exists is
		// never "not found" because the tables are still filling).
		Reads:     projections.Gate(commandReads, a.proj, cfg.startupWait),
		Now:       time.Now,
		Retention: cfg.engine.retention,
		ClockSkew: cfg.clockSkew,
		Dwell:     cfg.dwell, // contact tracing ends open stays as occupancy does
		MaxStay:   cfg.maxStay,
		Metrics:   a.metrics,
	}
	if a.pg != nil {
		a.ledger.Stays = a.pg
	}

	// Passes and their alerts leave every read model once expired, while
	// the service runs (the log drops them by its per-message TTL).
	targets := []projections.Retiring{{Name: "read_models", Retirer: a.store}, {Name: "pass_index", Retirer: a.passes}}
	if a.facts != nil {
		targets = append(targets, projections.Retiring{Name: "command_facts", Retirer: a.facts})
	}
	a.sweeper = projections.NewSweeper(projections.SweeperOptions{Retention: cfg.engine.retention,
		Interval: cfg.sweepInterval, Targets: targets, Logger: a.log})

	if cfg.pprofAddr != "" {
		if a.pprofL, err = net.Listen("tcp", cfg.pprofAddr); err != nil {
			return nil, fmt.Errorf("listen %s: %w", cfg.pprofAddr, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		a.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	if a.ln, err = net.Listen("tcp", cfg.httpAddr); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.httpAddr, err)
	}

	// Reactions (alerts, the declaration queue, venue codes) follow the log
	// with durable consumers of their own and write back to it.
	if a.router, err = reactions.Open(ctx, reactions.Options{Log: a.es.Subscriber(), Ledger: a.ledger, Codes: a.signer,
		Replicas: cfg.engine.replicas, Logger: a.log, Metrics: a.metrics}); err != nil {
		return nil, fmt.Errorf("open reactions: %w", err)
	}

	a.srv = ledgerhttp.New(ledgerhttp.Options{
		ClockSkew:      cfg.clockSkew,
		Ledger:         a.ledger,
		Reads:          a.store,
		Poison:         a.router,
		Signer:         a.signer,
		Waiter:         a.proj,
		Ready:          a.ready,
		Dwell:          cfg.dwell,
		Logger:         a.log,
		Now:            time.Now,
		RegisterRate:   cfg.registerRate,
		FamilyRate:     cfg.familyRate,
		Metrics:        a.metrics,
		MetricsHandler: a.metrics.Handler(),
		Location:       cfg.location,
	})
	return a, nil
}

// ready is /readyz: the log answers, the read models' start-up replay is
// done, and they are less than cfg.readyLag behind the log; the error says
// what is missing.
func (a *app) ready(ctx context.Context) error {
	var errs []error
	if err := a.es.Ready(ctx); err != nil {
		errs = append(errs, fmt.Errorf("event store: %w", err))
	}
	if err := a.proj.Ready(ctx, a.cfg.readyLag); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Addr is the API's listen address.
func (a *app) Addr() net.Addr { return a.ln.Addr() }

// Run runs the projector, the reactions, the profiler (if asked for) and
// the API until ctx ends. Then the API stops taking requests and lets those
// in flight finish, and only after that do the reactions and the projector
// stop: what a request appended still reaches them. Run returns the API's
// error, nil after a clean shutdown.
func (a *app) Run(ctx context.Context) error {
	// The projector and the reactions outlive ctx until the API has drained.
	projCtx, stopProj := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProj()
	projDone := make(chan error, 1)
	go func() { projDone <- a.proj.Run(projCtx) }()
	indexDone := make(chan error, 1)
	go func() { indexDone <- a.passes.Run(projCtx) }()
	factsDone := make(chan error, 1)
	if a.factsProj != nil {
		go func() { factsDone <- a.factsProj.Run(projCtx) }()
	} else {
		factsDone <- nil
	}

	sweepDone := make(chan error, 1)
	go func() { sweepDone <- a.sweeper.Run(projCtx) }()

	reactCtx, stopReactions := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReactions()
	reactDone := make(chan error, 1)
	go func() { reactDone <- a.router.Run(reactCtx) }()

	if a.pprof != nil {
		go func() { _ = a.pprof.Serve(a.pprofL) }()
		a.log.Info("profiler serving", "addr", a.pprofL.Addr().String())
	}

	e := a.cfg.engine
	a.log.Info("ledger serving", "http", a.ln.Addr().String(), "data", e.data, "nats", natsMode(e.natsURL), "read_models", storeMode(e.postgres))
	serveErr := a.srv.Serve(ctx, a.ln) // returns once in-flight requests have finished
	// Handlers in flight finish; what they did not acknowledge is
	// redelivered at the next start.
	stopReactions()
	if err := <-reactDone; err != nil {
		a.log.Error("reactions stopped", "err", err)
	}
	stopProj()
	if err := <-projDone; err != nil && !errors.Is(err, context.Canceled) {
		a.log.Error("projector stopped", "err", err)
	}
	if err := <-indexDone; err != nil && !errors.Is(err, context.Canceled) {
		a.log.Error("pass index stopped", "err", err)
	}
	if err := <-factsDone; err != nil && !errors.Is(err, context.Canceled) {
		a.log.Error("command facts projector stopped", "err", err)
	}
	if err := <-sweepDone; err != nil && !errors.Is(err, context.Canceled) {
		a.log.Error("retention sweeper stopped", "err", err)
	}
	a.log.Info("ledger stopped")
	return serveErr
}

// Close releases what open opened: the listeners, the profiler, the read
// models' database and the event store (which closes an embedded server
// last). Call it after Run has returned, or instead of Run.
func (a *app) Close() error {
	var errs []error
	if a.pprof != nil {
		errs = append(errs, a.pprof.Close())
	}
	if a.pprofL != nil {
		if err := a.pprofL.Close(); !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if a.ln != nil {
		// Serve closes it; an app that never ran still holds it.
		if err := a.ln.Close(); !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if a.pg != nil {
		a.pg.Close()
	}
	if a.es != nil {
		errs = append(errs, a.es.Close())
	}
	// Only once the embedded server has closed its files.
	errs = append(errs, a.lock.Unlock())
	return errors.Join(errs...)
}
