package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/checkin-ledger/ledger/cmd/internal/secrets"
	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
)

// engineFlags are the flags every command that opens the log shares.
type engineFlags struct {
	data string
	// keyFile is the root key's file outside the data dir (--key-file).
	keyFile   string
	natsURL   string
	replicas  int
	postgres  string
	retention time.Duration
	// applyReplicas changes existing streams to replicas (--apply-replicas);
	// without it a mismatch is only logged.
	applyReplicas bool
	// readOnly opens the log without creating or changing anything: set by
	// the commands that only read it (projections status, rebuild).
	readOnly bool
}

func (f *engineFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&f.data, "data", "./data", "data dir: embedded JetStream storage (and, without --key-file or LEDGER_TOKEN_KEY, the root key)")
	fs.StringVar(&f.keyFile, "key-file", "", "the root key's file (hex, 32 bytes or more), kept outside the data dir and readable by its owner only (chmod 600: another mode is refused); required with --nats-url unless LEDGER_TOKEN_KEY is set")
	fs.StringVar(&f.natsURL, "nats-url", getenv("NATS_URL"), "external NATS/JetStream URL(s); empty runs an embedded server (env NATS_URL)")
	fs.IntVar(&f.replicas, "replicas", 1, "stream replicas when creating them (3 in a cluster); an existing stream keeps its count")
	fs.BoolVar(&f.applyReplicas, "apply-replicas", false, "change existing streams to --replicas (without it a mismatch is logged, not applied)")
	fs.StringVar(&f.postgres, "postgres", getenv("DATABASE_URL"), "PostgreSQL URL for the read models; empty keeps them in memory (env DATABASE_URL)")
	fs.DurationVar(&f.retention, "retention", domain.DefaultRetention, "how long passes and their alerts are kept, counted from each pass's occurred_at")
}

// keys loads the root key the flags and the environment name (creating the
// data dir's on first start when create is set, for the embedded default
// only).
func (f *engineFlags) keys(getenv func(string) string, create bool) (secrets.Keys, error) {
	return secrets.Load(secrets.Source{DataDir: f.data, KeyFile: f.keyFile, Getenv: getenv, Create: create, External: f.natsURL != ""})
}

// openLog opens the event store the flags name. With the embedded server it
// first takes the data dir's lock (lockData), held until the returned lock
// is released, so that no second process opens the same JetStream files; a
// dir in use is errDataInUse. The lock is nil with an external NATS.
func (f *engineFlags) openLog(ctx context.Context, sec secrets.Keys, logger *slog.Logger, m eventstore.Metrics) (*eventstore.Store, *dataLock, error) {
	dir, err := filepath.Abs(f.data)
	if err != nil {
		return nil, nil, err
	}
	var lock *dataLock
	if f.natsURL == "" {
		if lock, err = lockData(dir); err != nil {
			return nil, nil, err
		}
	}
	es, err := eventstore.Open(ctx, eventstore.Options{
		Dir:           dir,
		URL:           f.natsURL,
		Replicas:      f.replicas,
		ApplyReplicas: f.applyReplicas,
		ReadOnly:      f.readOnly,
		PassRetention: f.retention,
		MasterKey:     sec.Master,
		Logger:        logger,
		Metrics:       m,
	})
	if err != nil {
		lock.Unlock()
		return nil, nil, err
	}
	return es, lock, nil
}

// serve is `ledger serve`: it parses the flags into a config and runs the
// app until ctx ends.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parseServe(args, stderr, getenv)
	if err != nil {
		return err
	}
	a, err := open(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening on %s\n", a.Addr())
	runErr := a.Run(ctx)
	if err := a.Close(); err != nil {
		// The exit status is the API's; a store that does not close
		// cleanly is worth a line in the log.
		cfg.logger.Error("close", "err", err)
	}
	return runErr
}

// parseServe reads `ledger serve`'s flags (and the environment variables
// they default to) into a config that logs to stderr.
func parseServe(args []string, stderr io.Writer, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config{getenv: getenv}
	cfg.engine.register(fs, getenv)
	fs.StringVar(&cfg.httpAddr, "http", ":8080", "HTTP listen address")
	fs.DurationVar(&cfg.clockSkew, "clock-skew", 5*time.Minute, "how far in the future a device's occurred_at may be")
	fs.IntVar(&cfg.registerRate, "register-rate", 20, "registrations per minute per client IP (0: no limit)")
	fs.IntVar(&cfg.familyRate, "family-rate", 5, "family members one guardian may register per hour (0: no limit)")
	fs.DurationVar(&cfg.readyLag, "ready-lag", 5*time.Second, "/readyz answers ready while the read models are less than this behind the log")
	fs.DurationVar(&cfg.startupWait, "startup-wait", 5*time.Second, "how long a write waits for the read models' start-up replay before it answers 503 with Retry-After")
	fs.StringVar(&cfg.pprofAddr, "pprof", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060; off when empty")
	dwellFlag := fs.String("dwell", "", "the stay assumed per venue type where an entry or exit is missing, e.g. restaurant=2h,hotel=12h")
	tzFlag := fs.String("time-zone", "Asia/Shanghai", "the city's time zone (IANA name): the dashboard's day and hours")
	logFormat := fs.String("log-format", "text", "log lines as text or json (log/slog)")
	maxStayFlag := fs.String("max-stay", "", "the longest stay an entry and its exit close per venue type, e.g. hotel=336h (a later exit is taken for a missed entry's)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	// The log's TTL takes whole seconds, at least one; zero would keep
	// passes for ever in the log and refuse none, against the sweeper.
	if cfg.engine.retention < time.Second {
		return config{}, fmt.Errorf("--retention %s: must be at least 1s (passes and their alerts are kept this long from their occurred_at)", cfg.engine.retention)
	}
	var err error
	if cfg.dwell, err = parseDwell(*dwellFlag); err != nil {
		return config{}, err
	}
	if cfg.maxStay, err = parseMaxStay(*maxStayFlag); err != nil {
		return config{}, err
	}
	if cfg.location, err = time.LoadLocation(*tzFlag); err != nil {
		return config{}, fmt.Errorf("--time-zone %q: %w", *tzFlag, err)
	}
	if err := domain.CheckDashboardZone(cfg.location, time.Now()); err != nil {
		return config{}, fmt.Errorf("--time-zone %q: %w", *tzFlag, err)
	}
	switch *logFormat {
	case "text":
		cfg.logger = slog.New(slog.NewTextHandler(stderr, nil))
	case "json":
		cfg.logger = slog.New(slog.NewJSONHandler(stderr, nil))
	default:
		return config{}, fmt.Errorf("--log-format %q: want text or json", *logFormat)
	}
	return cfg, nil
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
