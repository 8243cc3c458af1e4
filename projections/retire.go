package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// MaxSweepInterval bounds how long an expired pass may still be served.
const MaxSweepInterval = time.Minute

// SweepInterval is how often a Sweeper retires passes under retention when
// not told otherwise: a sixth of the retention, at most a minute.
func SweepInterval(retention time.Duration) time.Duration {
	return max(min(retention/6, MaxSweepInterval), time.Millisecond)
}

// Retiring names a holder of passes for a Sweeper's logs and errors.
type Retiring struct {
	Name string
	ledger.Retirer
}

// SweeperOptions configure a Sweeper.
type SweeperOptions struct {
	// Retention is how long passes are kept (domain.PassExpiresAt); zero:
	// domain.DefaultRetention.
	Retention time.Duration
	// Interval is the time between sweeps; zero: SweepInterval(Retention).
	Interval time.Duration
	// Targets are swept in order, each with the same cut-off.
	Targets []Retiring
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Sweeper retires expired passes and their alerts from every read model
// while the service runs: at start, then every Interval, each target's
// RetirePasses with domain.RetireBefore(now, Retention).
type Sweeper struct {
	o SweeperOptions
}

// NewSweeper returns a Sweeper; Run starts it.
func NewSweeper(o SweeperOptions) *Sweeper {
	if o.Retention <= 0 {
		o.Retention = domain.DefaultRetention
	}
	if o.Interval <= 0 {
		o.Interval = SweepInterval(o.Retention)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{o: o}
}

// Run sweeps at once and then every Interval until ctx ends (its error). A
// failed sweep is logged and tried again at the next tick: retirement is
// idempotent.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.o.Logger.Warn("retention: sweep failed, trying again at the next one", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Sweep retires, from every target, the passes and alerts expired now.
func (s *Sweeper) Sweep(ctx context.Context) error {
	before := domain.RetireBefore(s.o.Now(), s.o.Retention)
	var errs []error
	for _, t := range s.o.Targets {
		start := time.Now()
		st, err := t.RetirePasses(ctx, before)
		if err != nil {
			errs = append(errs, fmt.Errorf("retire passes of %s: %w", t.Name, err))
			continue
		}
		if st != (ledger.RetireStats{}) {
			s.o.Logger.Info("retention: retired", "from", t.Name, "before", before, "passes", st.Passes,
				"alerts", st.Alerts, "partitions", st.Partitions, "took", time.Since(start))
		}
	}
	return errors.Join(errs...)
}
