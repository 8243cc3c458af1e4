// Package facts keeps what the command side decides passes on in memory,
// beside read models kept in PostgreSQL.
//
// With PostgreSQL read models every pass call used to read its facts
// (venues, persons, health records, stored passes by event id) from the
// tables: one round trip per call, and most of PostgreSQL's CPU under
// ingest. Here a Store (a memory store in its facts-only mode: passes held
// by event id, not listed per venue and person) is fed by a projector of
// its own that follows the log, warmed from the log's start at every start
// like the embedded default; ReadModel answers PassFacts from it and every
// other read from the tables, which stay the truth for queries.
//
// A command must never decide on a state older than what its caller could
// have seen: a venue approved a moment ago, shown approved by a query, must
// take passes. Queries read the tables, so PassFacts first makes sure the
// Store holds at least the tables' position. A Tracker wraps the tables'
// writer and knows that position without asking while this process is
// their only writer (it holds the lease, and has read their checkpoint since
// taking it): every position it commits is raised before the commit, every
// checkpoint it reads is noted. Otherwise (a standby replica, while another
// applies) PassFacts reads the tables' position, one small query. When the
// Store is behind that position PassFacts waits for it (up to Options.Wait)
// and else answers from the tables, so a lagging or still warming Store
// costs speed, never correctness.
//
// The log keeps passes for the retention only (per-message TTL) while the
// tables keep them all; a Store replayed from a log that has lost passes
// cannot vouch that an event id it does not know was never stored, and then
// looks those ids up in the tables (Options.Older tells it, once).
package facts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/google/uuid"
)

// Store is the command side's copy of the facts: a projections.Writer for
// its own projector, and the PassFacts read. It records the position of the
// first change it applied (see Options.Older).
type Store struct {
	mem *memory.Store

	mu    sync.Mutex
	first uint64 // position of the first change applied; 0: none yet
}

// NewStore returns an empty Store at position 0.
func NewStore() *Store {
	return &Store{mem: memory.New(memory.Options{FactsOnly: true})}
}

// Apply implements projections.Writer.
func (s *Store) Apply(ctx context.Context, b projections.Batch) (projections.Checkpoint, error) {
	if len(b.Changes) > 0 {
		s.mu.Lock()
		if s.first == 0 {
			s.first = b.Changes[0].Position
		}
		s.mu.Unlock()
	}
	return s.mem.Apply(ctx, b)
}

// Checkpoint implements projections.Writer.
func (s *Store) Checkpoint(ctx context.Context) (projections.Checkpoint, error) {
	return s.mem.Checkpoint(ctx)
}

// Position returns the position of the last event applied.
func (s *Store) Position(ctx context.Context) (uint64, error) { return s.mem.Position(ctx) }

// PassFacts answers from memory (see memory.Store.PassFacts).
func (s *Store) PassFacts(ctx context.Context, q ledger.PassFactsQuery) (domain.PassFacts, error) {
	return s.mem.PassFacts(ctx, q)
}

// RetirePasses implements ledger.Retirer: the expired passes leave the
// command side's facts as they leave the tables (a retry of an expired
// pass is refused by its time before any lookup).
func (s *Store) RetirePasses(ctx context.Context, before time.Time) (ledger.RetireStats, error) {
	return s.mem.RetirePasses(ctx, before)
}

func (s *Store) firstApplied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

// Tracker wraps the writer of the tables the queries read, so that the
// command side knows their position without asking them (see the package
// comment). Give it to the tables' projector in place of their writer, and
// wrap that projector's lease with Lease.
type Tracker struct {
	w projections.Writer

	mu sync.Mutex
	// high is at least every position the tables were seen at or were
	// committed at by this process.
	high uint64
	// sole: this process is the tables' only writer (no lease: always;
	// with one, while it is held) ...
	sole bool
	// ... and known: it has read their checkpoint since it became so, so
	// high covers what others committed before.
	known bool
	gen   uint64 // counts changes of sole, so a checkpoint read across one is not trusted
}

// NewTracker wraps w, the tables' writer. Without Lease the process is
// taken to be their only writer.
func NewTracker(w projections.Writer) *Tracker {
	return &Tracker{w: w, sole: true}
}

// Apply implements projections.Writer. The position is raised before the
// commit, so no reader can see the tables beyond what the tracker knows.
func (t *Tracker) Apply(ctx context.Context, b projections.Batch) (projections.Checkpoint, error) {
	t.raise(b.Last)
	cp, err := t.w.Apply(ctx, b)
	if err == nil {
		t.raise(cp.Position)
	}
	return cp, err
}

// Checkpoint implements projections.Writer.
func (t *Tracker) Checkpoint(ctx context.Context) (projections.Checkpoint, error) {
	t.mu.Lock()
	gen, sole := t.gen, t.sole
	t.mu.Unlock()
	cp, err := t.w.Checkpoint(ctx)
	if err != nil {
		return cp, err
	}
	t.mu.Lock()
	t.high = max(t.high, cp.Position)
	if sole && gen == t.gen {
		t.known = true
	}
	t.mu.Unlock()
	return cp, nil
}

func (t *Tracker) raise(pos uint64) {
	t.mu.Lock()
	t.high = max(t.high, pos)
	t.mu.Unlock()
}

// bound returns a position the tables are not beyond, when the tracker
// knows one.
func (t *Tracker) bound() (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.high, t.sole && t.known
}

func (t *Tracker) setSole(sole bool) {
	t.mu.Lock()
	t.sole, t.known = sole, false
	t.gen++
	t.mu.Unlock()
}

// Lease wraps the tables' lease: while it is not held another process may
// move the tables, and the tracker does not claim to know their position.
// As the lease itself, it is no guard against a holder that has not yet
// noticed it lost its connection and commits once more: that rare window is
// the lease's (see projections.Lease).
func (t *Tracker) Lease(l projections.Lease) projections.Lease {
	t.setSole(false)
	return &lease{t: t, l: l}
}

type lease struct {
	t *Tracker
	l projections.Lease
}

func (l *lease) Acquire(ctx context.Context) (context.Context, func(), error) {
	held, release, err := l.l.Acquire(ctx)
	if err != nil {
		return held, release, err
	}
	l.t.setSole(true)
	var once sync.Once
	lost := func() { once.Do(func() { l.t.setSole(false) }) }
	stop := context.AfterFunc(held, lost)
	return held, func() {
		stop()
		lost()
		release()
	}, nil
}

// Options configure a ReadModel.
type Options struct {
	// Tables are the read models the queries read (PostgreSQL); they answer
	// everything but PassFacts, and PassFacts when the Store cannot.
	Tables projections.Store
	// Store is the facts; Projector, the projector that feeds them (nil:
	// PassFacts never waits for the Store).
	Store     *Store
	Projector Follower
	// Tracker knows the tables' position while this process writes them
	// (nil: PassFacts reads it from the tables each time).
	Tracker *Tracker
	// Older reports whether the tables hold a pass at a position below
	// position; asked once, with the first position the Store applied. Nil:
	// the Store is taken to hold every pass the tables hold.
	Older func(ctx context.Context, position uint64) (bool, error)
	// Wait bounds how long PassFacts waits for the Store to reach the
	// tables' position before it reads the tables instead (default 1 s).
	Wait time.Duration
}

// Follower is what ReadModel needs of the Store's projector
// (*projections.Projector).
type Follower interface {
	// StartupDone reports whether the start-up replay is over.
	StartupDone() bool
	// WaitFor returns once the Store holds position, or ctx's error.
	WaitFor(ctx context.Context, position uint64) error
}

// ReadModel is the tables with PassFacts answered from the Store.
type ReadModel struct {
	ledger.ReadModel
	o Options

	mu       sync.Mutex
	complete int8 // 0: not known yet; 1: the Store holds every stored pass; -1: it may not
	// positions shares the reads of the tables' position among concurrent
	// calls, while this process does not write the tables.
	positions sharedReads
}

// sharedReads shares one read of a value that changes (the tables'
// position) among the callers that wait for it at the same time: a caller
// gets the answer of a read that started after it asked, so it sees at
// least what it would have seen reading alone. One read runs at a time;
// who asks while it runs waits for the next, which all of them share. So a
// replica that does not hold the projection lease asks PostgreSQL once per
// round trip, not once per pass.
type sharedReads struct {
	mu      sync.Mutex
	running bool
	next    *readRound // the round that starts when the running one ends
}

type readRound struct {
	done chan struct{}
	pos  uint64
	err  error
}

// sharedReadTimeout bounds one shared read: it runs for every caller
// waiting on it, so no single caller's context bounds it.
const sharedReadTimeout = 5 * time.Second

func (s *sharedReads) read(ctx context.Context, read func(context.Context) (uint64, error)) (uint64, error) {
	s.mu.Lock()
	r := s.next
	if r == nil {
		r = &readRound{done: make(chan struct{})}
		s.next = r
	}
	if !s.running {
		s.running, s.next = true, nil
		go s.run(r, read)
	}
	s.mu.Unlock()
	select {
	case <-r.done:
		return r.pos, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run reads for r, then for the rounds that gathered meanwhile.
func (s *sharedReads) run(r *readRound, read func(context.Context) (uint64, error)) {
	for r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedReadTimeout)
		r.pos, r.err = read(ctx)
		cancel()
		close(r.done)
		s.mu.Lock()
		r, s.next = s.next, nil
		s.running = r != nil
		s.mu.Unlock()
	}
}

// NewReadModel returns the tables with PassFacts answered from o.Store.
func NewReadModel(o Options) *ReadModel {
	if o.Wait <= 0 {
		o.Wait = time.Second
	}
	return &ReadModel{ReadModel: o.Tables, o: o}
}

// errBehind says the Store could not be used for one call.
var errBehind = errors.New("facts: the command-side store is behind the read models")

// PassFacts implements ledger.ReadModel: from the Store once it holds at
// least the tables' position, else from the tables.
func (r *ReadModel) PassFacts(ctx context.Context, q ledger.PassFactsQuery) (domain.PassFacts, error) {
	f, err := r.fromStore(ctx, q)
	if errors.Is(err, errBehind) {
		return r.o.Tables.PassFacts(ctx, q)
	}
	return f, err
}

func (r *ReadModel) fromStore(ctx context.Context, q ledger.PassFactsQuery) (domain.PassFacts, error) {
	bound, ok := uint64(0), false
	if r.o.Tracker != nil {
		bound, ok = r.o.Tracker.bound()
	}
	if !ok {
		var err error
		if bound, err = r.positions.read(ctx, r.o.Tables.Position); err != nil {
			return domain.PassFacts{}, fmt.Errorf("pass facts: %w", err)
		}
	}
	if err := r.reach(ctx, bound); err != nil {
		return domain.PassFacts{}, err
	}
	f, err := r.o.Store.PassFacts(ctx, q)
	if err != nil || len(q.EventIDs) == 0 {
		return f, err
	}
	complete, err := r.completeStore(ctx)
	if err != nil || complete {
		return f, err
	}
	// The log has lost passes the tables hold: an id the Store does not
	// know may still be stored.
	var missing []uuid.UUID
	for _, id := range q.EventIDs {
		if _, ok := f.Stored[id]; !ok && id != uuid.Nil {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return f, nil
	}
	older, err := r.o.Tables.Passes(ctx, missing)
	if err != nil {
		return domain.PassFacts{}, fmt.Errorf("pass facts: stored passes: %w", err)
	}
	for id, pv := range older {
		f.Stored[id] = pv
	}
	return f, nil
}

// reach returns once the Store holds bound, or errBehind: at once while its
// projector is still replaying the log after a start, after Options.Wait
// otherwise.
func (r *ReadModel) reach(ctx context.Context, bound uint64) error {
	if pos, err := r.o.Store.Position(ctx); err != nil {
		return err
	} else if pos >= bound {
		return nil
	}
	if r.o.Projector == nil || !r.o.Projector.StartupDone() {
		return errBehind
	}
	wctx, cancel := context.WithTimeout(ctx, r.o.Wait)
	defer cancel()
	if err := r.o.Projector.WaitFor(wctx, bound); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errBehind
	}
	return nil
}

// completeStore reports whether the Store holds every pass the tables hold
// (asked of Options.Older once).
func (r *ReadModel) completeStore(ctx context.Context) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.complete != 0 {
		return r.complete > 0, nil
	}
	if r.o.Older == nil {
		r.complete = 1
		return true, nil
	}
	first := r.o.Store.firstApplied()
	if first == 0 {
		// Nothing applied yet (an empty log): any pass in the tables is
		// one the Store does not have.
		first = ^uint64(0)
	}
	older, err := r.o.Older(ctx, first)
	if err != nil {
		return false, fmt.Errorf("pass facts: %w", err)
	}
	if older {
		r.complete = -1
	} else {
		r.complete = 1
	}
	return r.complete > 0, nil
}
