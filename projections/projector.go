package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// Options configure a Projector.
type Options struct {
	// Name is the projection's name in status reports (DefaultName if empty).
	Name string
	// Opener opens sealed personal fields to mask them; nil treats every
	// person as erased.
	Opener Opener
	// MaxBatch caps the events handed to the store in one Apply (default
	// 5,000). Batches delivered while the store is busy are merged up to it.
	MaxBatch int
	// Workers decode in parallel (default GOMAXPROCS).
	Workers int
	// Logger receives store errors that the projector retries (default: discard).
	Logger *slog.Logger
	// Now is the clock for lag in seconds (default time.Now).
	Now func() time.Time
	// CheckEvery is how often a following projector compares the store's
	// position with its own, to notice tables swapped in by a rebuild
	// (default 1 s).
	CheckEvery time.Duration
	// RetryMin and RetryMax bound the backoff after a store or log error
	// (default 100 ms and 5 s).
	RetryMin, RetryMax time.Duration
	// Lease, when set, lets this projector apply only while it holds the
	// lease (one replica at a time per store); nil: it always applies.
	Lease Lease
}

// Projector follows the log into one Writer.
type Projector struct {
	log ledger.Log
	w   Writer
	o   Options

	applied atomic.Uint64

	mu      sync.Mutex
	cp      Checkpoint
	loaded  bool
	lastErr error
	changed chan struct{} // closed and replaced whenever cp moves

	// Start-up (ready.go): the log's position when Run started, and a
	// channel closed once the store has reached it.
	target    uint64
	targetSet bool
	started   chan struct{}
	// caughtUpAt is the last time a status found the store at the log's end.
	caughtUpAt time.Time
	role       string
	parked     int // events parked by this projector since it started
}

// New returns a projector that follows log into w. Call Run to start it.
func New(log ledger.Log, w Writer, o Options) *Projector {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 5000
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Second
	}
	return &Projector{log: log, w: w, o: o, changed: make(chan struct{}), started: make(chan struct{})}
}

// Run follows the log from the store's position until ctx ends, and returns
// ctx's error then. An event that cannot be decoded (unknown type, newer
// schema version, bad payload) stops Run with that error: it is never
// skipped. Store and log errors are logged and retried with backoff from the
// store's recorded position, so nothing is lost or applied twice; a batch
// the store rejects (ErrRejected) is bisected and the one event it cannot
// hold is parked (see park.go), so no single event stops the projection.
//
// Before it applies anything Run records the log's position (the start-up
// target, see StartupDone) and checks that the store follows this log
// (ErrOtherLog stops it). With Options.Lease it applies only while it holds
// the lease; until then it is a standby that follows the store's position
// as another process moves it.
func (p *Projector) Run(ctx context.Context) error {
	if err := p.retry(ctx, p.initTarget); err != nil {
		return err
	}
	if err := p.retry(ctx, p.bindLog); err != nil {
		return err
	}
	if p.o.Lease == nil {
		p.setRole(RoleActive)
		return p.runApplying(ctx)
	}
	for {
		p.setRole(RoleStandby)
		held, release, err := p.standby(ctx)
		if err != nil {
			return err // ctx ended
		}
		p.setRole(RoleActive)
		p.o.Logger.Info("projection lease acquired: applying", "projection", p.o.Name)
		err = p.runApplying(held)
		release()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, context.Canceled) {
			return err // a stop of its own (an unknown event)
		}
		p.o.Logger.Warn("projection lease lost: standing by", "projection", p.o.Name)
	}
}

// retry calls f until it succeeds, ctx ends or f fails permanently
// (ErrOtherLog); other errors are logged and retried with backoff.
func (p *Projector) retry(ctx context.Context, f func(context.Context) error) error {
	delay := p.o.RetryMin
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.setErr(err)
		if errors.Is(err, ErrOtherLog) {
			p.o.Logger.Error("projection refuses its store", "projection", p.o.Name, "err", err)
			return fmt.Errorf("projection %s: %w", p.o.Name, err)
		}
		p.o.Logger.Error("projection cannot start, retrying", "projection", p.o.Name, "err", err, "retry_in", delay)
		if err := pause(ctx, delay); err != nil {
			return err
		}
		delay = min(delay*2, p.o.RetryMax)
	}
}

// pause waits delay, the backoff of retry and runApplying, and returns nil;
// if ctx ends first, it returns ctx's error at once.
func pause(ctx context.Context, delay time.Duration) error {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// runApplying follows the log into the store until ctx ends.
func (p *Projector) runApplying(ctx context.Context) error {
	delay := p.o.RetryMin
	for {
		cp, err := p.w.Checkpoint(ctx)
		if err == nil {
			p.setCheckpoint(cp, true)
			err = p.follow(ctx, cp.Position)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrDecode) || errors.Is(err, domain.ErrUnknownEvent) {
			p.setErr(err)
			return fmt.Errorf("projection %s: %w", p.o.Name, err)
		}
		if errors.Is(err, ErrGap) {
			// The tables were rebuilt or reset under us: start again from
			// what they hold, at once.
			p.o.Logger.Info("projection restarts from the store's position", "projection", p.o.Name, "err", err)
			delay = p.o.RetryMin
			continue
		}
		p.setErr(err)
		p.o.Logger.Error("projection failed, retrying", "projection", p.o.Name, "err", err, "retry_in", delay)
		if err := pause(ctx, delay); err != nil {
			return err
		}
		delay = min(delay*2, p.o.RetryMax)
	}
}

// follow runs one Follow of the log from position from. Decoding happens in
// Follow's callback; applying in a second goroutine, so the next batch is
// decoded while the store writes the previous one, and batches that queue up
// while the store is busy are merged into one Apply.
func (p *Projector) follow(ctx context.Context, from uint64) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan Batch, 4)
	applyErr := make(chan error, 1)
	go func() {
		err := p.applyLoop(ctx, queue)
		if err != nil {
			// Stop Follow, and drain so its callback is not left blocked.
			cancel(err)
			for range queue {
			}
		}
		applyErr <- err
	}()

	// Watch for the tables moving back under us (a rebuild swapped in, or
	// a reset): a live projector with nothing new to apply would otherwise
	// never find out, and the new tables would stay behind the log.
	go func() {
		t := time.NewTicker(p.o.CheckEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// What this projector had applied before the read: a batch
			// committed while the read runs can be past what the read saw
			// (its snapshot may predate the commit), and is no gap.
			p.mu.Lock()
			mine := p.cp.Position
			p.mu.Unlock()
			cp, err := p.w.Checkpoint(ctx)
			if err != nil {
				continue // the apply loop reports store errors
			}
			if cp.Position < mine {
				cancel(fmt.Errorf("store position %d is behind the applied %d: %w", cp.Position, mine, ErrGap))
				return
			}
		}
	}()

	next := from
	err := p.log.Follow(ctx, from, func(envs []domain.Envelope) error {
		for len(envs) > 0 {
			n := min(len(envs), p.o.MaxBatch)
			chunk := envs[:n]
			envs = envs[n:]
			// Follow never hands back what it already delivered; an event
			// at or below next would break that promise.
			if chunk[0].Position <= next {
				return fmt.Errorf("log delivered position %d after %d", chunk[0].Position, next)
			}
			changes, err := prepareParallel(ctx, chunk, p.o.Opener, p.o.Workers)
			if err != nil {
				// Apply what precedes the event that failed, so the
				// projection stops right before it.
				if changes, _ = preparePrefix(ctx, chunk, p.o.Opener); len(changes) > 0 {
					last := changes[len(changes)-1]
					select {
					case queue <- Batch{After: next, Changes: changes, Last: last.Position, LastRecordedAt: last.RecordedAt}:
					case <-ctx.Done():
					}
				}
				return err
			}
			last := chunk[len(chunk)-1]
			b := Batch{After: next, Changes: changes, Last: last.Position, LastRecordedAt: last.RecordedAt}
			next = last.Position
			select {
			case queue <- b:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		return nil
	})
	close(queue)
	aerr := <-applyErr
	if aerr != nil {
		// An apply cut short by the cancel below names its cause (a gap
		// found by the watch above), not "context canceled".
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return aerr
	}
	if err == nil || ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
	}
	return err
}

func (p *Projector) applyLoop(ctx context.Context, queue <-chan Batch) error {
	for b := range queue {
		// Merge what queued up behind b, up to MaxBatch events.
	merge:
		for len(b.Changes) < p.o.MaxBatch {
			select {
			case nb, ok := <-queue:
				if !ok {
					break merge
				}
				b.Changes = append(b.Changes, nb.Changes...)
				b.Last, b.LastRecordedAt = nb.Last, nb.LastRecordedAt
			default:
				break merge
			}
		}
		cp, err := p.apply(ctx, b)
		if err != nil {
			return fmt.Errorf("apply events %d..%d: %w", b.After+1, b.Last, err)
		}
		p.setCheckpoint(cp, false)
		p.applied.Add(uint64(len(b.Changes)))
	}
	return nil
}

// Applied returns how many events this projector has handed to its store
// since it was made (a rebuild's progress).
func (p *Projector) Applied() uint64 { return p.applied.Load() }

// prepareParallel decodes envs with up to workers goroutines.
func prepareParallel(ctx context.Context, envs []domain.Envelope, open Opener, workers int) ([]Change, error) {
	const minPerWorker = 256
	if workers <= 1 || len(envs) < 2*minPerWorker {
		return Prepare(ctx, envs, open)
	}
	workers = min(workers, len(envs)/minPerWorker)
	out := make([]Change, len(envs))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	per := (len(envs) + workers - 1) / workers
	for w := range workers {
		lo, hi := w*per, min((w+1)*per, len(envs))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				if err := prepareOne(ctx, &envs[i], open, &out[i]); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *Projector) setCheckpoint(cp Checkpoint, reload bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cp = cp
	p.loaded = true
	if !reload {
		p.lastErr = nil
	}
	p.checkStartedLocked()
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Projector) setErr(err error) {
	p.mu.Lock()
	p.lastErr = err
	p.mu.Unlock()
}

// Position returns the position the store had applied when the projector
// last heard from it.
func (p *Projector) Position() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cp.Position
}

// WaitFor blocks until the applied position is at least position, or ctx
// ends (its error is returned). It gives read-your-writes to a client that
// sends the position of its own write as min_position.
func (p *Projector) WaitFor(ctx context.Context, position uint64) error {
	for {
		p.mu.Lock()
		if p.loaded && p.cp.Position >= position {
			p.mu.Unlock()
			return nil
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for position %d: %w", position, ctx.Err())
		}
	}
}

// CaughtUp reports whether the store has applied every event the log held
// when it was asked.
func (p *Projector) CaughtUp(ctx context.Context) (bool, error) {
	st, err := p.Status(ctx)
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	loaded := p.loaded
	p.mu.Unlock()
	return loaded && st.LagEvents == 0 && st.Error == "", nil
}

// Status returns the projection's position and lag behind the log, with
// the exact lag in events (one more pass over the log's headers when it is
// behind: for `ledger projections status`, not for a probe; see Ready).
func (p *Projector) Status(ctx context.Context) (ProjectionStatus, error) {
	st, err := p.status(ctx)
	if err != nil {
		return ProjectionStatus{}, err
	}
	if err := LagOf(ctx, p.log, &st); err != nil {
		return ProjectionStatus{}, err
	}
	return st, nil
}

// status is Status without the exact count: LagEvents is a difference of
// positions (an upper bound), LagSeconds as Status gives it.
func (p *Projector) status(ctx context.Context) (ProjectionStatus, error) {
	last, err := p.log.LastPosition(ctx)
	if err != nil {
		return ProjectionStatus{}, fmt.Errorf("projection %s status: %w", p.o.Name, err)
	}
	now := p.o.Now()
	p.mu.Lock()
	cp, lastErr := p.cp, p.lastErr
	st := StatusOf(p.o.Name, cp, last, now)
	// Lag in seconds is how long the store has been behind: not more
	// than since the last status that found it at the log's end (after a
	// quiet hour the first new event is not an hour late).
	if st.LagEvents == 0 && p.loaded {
		p.caughtUpAt = now
	} else if !p.caughtUpAt.IsZero() {
		st.LagSeconds = min(st.LagSeconds, max(now.Sub(p.caughtUpAt).Seconds(), 0))
	}
	st.Role, st.ParkedEvents = p.role, p.parked
	p.mu.Unlock()
	if lastErr != nil {
		st.Error = lastErr.Error()
	}
	return st, nil
}
