package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"time"

	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/checkin-ledger/ledger/eventstore"
	ledgerhttp "github.com/checkin-ledger/ledger/http"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/reactions"
	"github.com/checkin-ledger/ledger/token"
)

// engineFlags are the flags every command that opens the log shares.
type engineFlags struct {
	data      string
	natsURL   string
	replicas  int
	postgres  string
	retention time.Duration
}

func (f *engineFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&f.data, "data", "./data", "data dir: embedded JetStream storage and the signing key")
	fs.StringVar(&f.natsURL, "nats-url", getenv("NATS_URL"), "external NATS/JetStream URL(s); empty runs an embedded server (env NATS_URL)")
	fs.IntVar(&f.replicas, "replicas", 1, "stream replicas (3 in a cluster)")
	fs.StringVar(&f.postgres, "postgres", getenv("DATABASE_URL"), "PostgreSQL URL for the read models; empty keeps them in memory (env DATABASE_URL)")
	fs.DurationVar(&f.retention, "retention", 30*24*time.Hour, "how long passes are kept")
}

// openLog opens the event store the flags name.
func (f *engineFlags) openLog(ctx context.Context, sec secrets, logger *slog.Logger) (*eventstore.Store, error) {
	dir, err := filepath.Abs(f.data)
	if err != nil {
		return nil, err
	}
	return eventstore.Open(ctx, eventstore.Options{
		Dir:           dir,
		URL:           f.natsURL,
		Replicas:      f.replicas,
		PassRetention: f.retention,
		MasterKey:     sec.Master,
		Logger:        logger,
	})
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ef engineFlags
	ef.register(fs, getenv)
	httpAddr := fs.String("http", ":8080", "HTTP listen address")
	skew := fs.Duration("clock-skew", 5*time.Minute, "how far in the future a device's occurred_at may be")
	registerRate := fs.Int("register-rate", 20, "registrations per minute per client IP (0: no limit)")
	pprofAddr := fs.String("pprof", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060; off when empty")
	dwellFlag := fs.String("dwell", "", "default dwell per venue type, e.g. restaurant=2h,hotel=12h")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	sec, err := loadSecrets(ef.data, getenv, true)
	if err != nil {
		return err
	}
	dwell, err := parseDwell(*dwellFlag)
	if err != nil {
		return err
	}
	hasher, err := pii.NewHasher(sec.IDHash)
	if err != nil {
		return err
	}
	signer, err := token.NewSigner(sec.Token, time.Now)
	if err != nil {
		return err
	}

	es, err := ef.openLog(ctx, sec, logger)
	if err != nil {
		return fmt.Errorf("open event store: %w", err)
	}
	defer es.Close()

	var store projections.Store
	if ef.postgres != "" {
		pg, err := postgres.Open(ctx, postgres.Options{URL: ef.postgres})
		if err != nil {
			return fmt.Errorf("open read models: %w", err)
		}
		defer pg.Close()
		store = pg
	} else {
		store = memory.New(memory.Options{})
	}
	proj := projections.New(es, store, projections.Options{Opener: projections.KeyringOpener(es), Logger: logger})
	projCtx, stopProj := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProj()
	projDone := make(chan error, 1)
	go func() { projDone <- proj.Run(projCtx) }()

	ledger := &ledger.Ledger{
		Events:    es,
		Log:       es,
		Keys:      es,
		Hasher:    hasher,
		Reads:     store,
		Now:       time.Now,
		Retention: ef.retention,
		ClockSkew: *skew,
		Dwell:     dwell, // contact tracing ends open stays as occupancy does
	}
	// Reactions (alerts, the declaration queue, venue codes) follow the log
	// with durable consumers of their own and write back to it.
	router, err := reactions.Open(ctx, reactions.Options{Conn: es.Conn(), Ledger: ledger, Codes: signer,
		Replicas: ef.replicas, Logger: logger})
	if err != nil {
		return fmt.Errorf("open reactions: %w", err)
	}
	reactCtx, stopReactions := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReactions()
	reactDone := make(chan error, 1)
	go func() { reactDone <- router.Run(reactCtx) }()

	srv := ledgerhttp.New(ledgerhttp.Options{
		Ledger: ledger,
		Reads:  store,
		Poison: router,
		Signer: signer,
		Waiter: proj,
		Ready: func(ctx context.Context) error {
			if err := es.Ready(ctx); err != nil {
				return err
			}
			ok, err := proj.CaughtUp(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("read models are catching up")
			}
			return nil
		},
		Dwell:        dwell,
		Logger:       logger,
		Now:          time.Now,
		RegisterRate: *registerRate,
	})

	if *pprofAddr != "" {
		pl, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", *pprofAddr, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ps := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ps.Serve(pl) }()
		defer ps.Close()
		logger.Info("profiler serving", "addr", pl.Addr().String())
	}

	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *httpAddr, err)
	}
	logger.Info("ledger serving", "http", ln.Addr().String(), "data", ef.data, "nats", natsMode(ef.natsURL), "read_models", storeMode(ef.postgres))
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())

	serveErr := srv.Serve(ctx, ln) // returns once in-flight requests have finished
	// Handlers in flight finish; what they did not acknowledge is
	// redelivered at the next start.
	stopReactions()
	if err := <-reactDone; err != nil {
		logger.Error("reactions stopped", "err", err)
	}
	stopProj()
	if err := <-projDone; err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("projector stopped", "err", err)
	}
	logger.Info("ledger stopped")
	return serveErr
}

func natsMode(url string) string {
	if url == "" {
		return "embedded"
	}
	return "external"
}

func storeMode(pg string) string {
	if pg == "" {
		return "memory"
	}
	return "postgres"
}
