package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/checkin-ledger/ledger/token"
	"github.com/google/uuid"
)

// Options adjust the stack Start builds. The zero value is what most tests
// want.
type Options struct {
	// MasterKey is the event store's master key (the keyring's data keys
	// derive from it); nil: 32 bytes of 7.
	MasterKey []byte
	// HashKey keys the ID-document hash; nil: 32 bytes of 9.
	HashKey []byte
	// SigningKey is the token signer's key; nil: MasterKey.
	SigningKey []byte
	// Now is the ledger's clock; nil: time.Now.
	Now func() time.Time
	// SignerNow is the token signer's clock, so a test can let tokens and
	// codes expire; nil: time.Now.
	SignerNow func() time.Time
	// ClockSkew is how far in the future a device's occurred_at may be;
	// zero: a minute.
	ClockSkew time.Duration
	// Retention is how long passes are kept; zero: domain.DefaultRetention.
	Retention time.Duration
	// Dwell is the ledger's default stay per venue type; nil: the ledger's
	// default.
	Dwell func(venueType string) time.Duration
	// NoProjector leaves the projector out (Env.Projector is nil and
	// nothing feeds Env.Reads), for tests that run their own projector or
	// none.
	NoProjector bool
	// NATSURL points the event store at a NATS server of the test's own
	// (empty: the store's embedded one), for a test that must also write
	// to the log as an outsider.
	NATSURL string
	// DuplicateWindow is the event store's duplicate window; zero: its
	// default.
	DuplicateWindow time.Duration
}

// Env is the stack as cmd wires it, in the test process: an embedded
// JetStream in a temporary directory, the memory read models and the
// projector that feeds them, the ledger and a token signer.
type Env struct {
	Store     *eventstore.Store
	Reads     *memory.Store
	Projector *projections.Projector // nil with Options.NoProjector
	Ledger    *ledger.Ledger
	Signer    *token.Signer
}

// Start builds the stack for one test and runs the projector. The test's
// cleanup stops the projector (failing the test if it stopped with an error)
// and closes the event store.
func Start(tb testing.TB, opts Options) *Env {
	tb.Helper()
	master := opts.MasterKey
	if master == nil {
		master = bytes.Repeat([]byte{7}, 32)
	}
	hashKey := opts.HashKey
	if hashKey == nil {
		hashKey = bytes.Repeat([]byte{9}, 32)
	}
	signingKey := opts.SigningKey
	if signingKey == nil {
		signingKey = master
	}
	if opts.ClockSkew == 0 {
		opts.ClockSkew = time.Minute
	}
	if opts.Retention == 0 {
		opts.Retention = domain.DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}

	hasher, err := pii.NewHasher(hashKey)
	if err != nil {
		tb.Fatalf("ledgertest: %v", err)
	}
	signer, err := token.NewSigner(signingKey, opts.SignerNow)
	if err != nil {
		tb.Fatalf("ledgertest: %v", err)
	}
	// StoreDir is the test's temp dir: nothing outlives the test, and
	// parallel tests never share a stream.
	es, err := eventstore.Open(context.Background(), eventstore.Options{Dir: tb.TempDir(), URL: opts.NATSURL, MasterKey: master,
		DuplicateWindow: opts.DuplicateWindow})
	if err != nil {
		tb.Fatalf("ledgertest: open event store: %v", err)
	}
	reads := memory.New(memory.Options{})
	e := &Env{
		Store:  es,
		Reads:  reads,
		Signer: signer,
		Ledger: &ledger.Ledger{
			Fence:     new(ledger.ErasureFence),
			Events:    es,
			Log:       es,
			Keys:      es,
			Hasher:    hasher,
			Reads:     reads,
			Now:       opts.Now,
			Retention: opts.Retention,
			ClockSkew: opts.ClockSkew,
			Dwell:     opts.Dwell,
			Audit:     es,
		},
	}

	tb.Cleanup(func() {
		if err := es.Close(); err != nil {
			tb.Errorf("ledgertest: close event store: %v", err)
		}
	})
	if !opts.NoProjector {
		// Go's cleanup, registered after the close, stops it first.
		e.Projector = projections.New(es, reads, projections.Options{Opener: projections.KeyringOpener(es)})
		Go(tb, Wait, func(ctx context.Context) error {
			if err := e.Projector.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("projector: %w", err)
			}
			return nil
		})
	}
	return e
}

// WaitApplied waits (up to Wait) until the read models have applied
// position, and fails the test if they do not.
func (e *Env) WaitApplied(tb testing.TB, position uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := e.Projector.WaitFor(ctx, position); err != nil {
		tb.Fatalf("read models did not reach %d: %v", position, err)
	}
}

// LastPosition is the log's newest position.
func (e *Env) LastPosition(tb testing.TB) uint64 {
	tb.Helper()
	p, err := e.Store.LastPosition(context.Background())
	if err != nil {
		tb.Fatalf("last position: %v", err)
	}
	return p
}

// Seal seals plain with person's data key (created when they have none
// yet), as a registration's personal fields are sealed in the log.
func (e *Env) Seal(tb testing.TB, person uuid.UUID, plain string) domain.Sealed {
	tb.Helper()
	key, err := e.Store.Key(context.Background(), person, true)
	if err != nil {
		tb.Fatalf("data key of %s: %v", person, err)
	}
	sealed, err := domain.SealField(key, plain)
	if err != nil {
		tb.Fatalf("seal: %v", err)
	}
	return sealed
}

// LateFamilyMember appends straight to the log the registration of a
// family member named name under guardian (their name sealed with a key of
// their own), as AddFamilyMember does when it decided on a guardian whose
// erasure landed since. It returns the member's id and the appended
// envelope, position included.
func (e *Env) LateFamilyMember(tb testing.TB, guardian uuid.UUID, name string) (uuid.UUID, domain.Envelope) {
	tb.Helper()
	member := uuid.New()
	sealed := e.Seal(tb, member, name)
	env, err := domain.NewEnvelope(domain.PersonAggregate(member), domain.PersonRegistered{PersonID: member, IDType: idcard.ResidentID,
		IDHash: "hash-" + member.String(), Name: sealed, IDNumber: sealed, GuardianID: guardian, Relation: domain.RelationChild},
		domain.Meta{Actor: "person:" + guardian.String()}, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	appended, err := e.Store.Append(context.Background(), env.Aggregate, 0, env)
	if err != nil {
		tb.Fatalf("append the registration of %s: %v", member, err)
	}
	env.Position = appended[0].Position
	return member, env
}

// Wait is how long Eventually and WaitApplied wait before failing a test.
const Wait = 10 * time.Second

// pollInterval is how often Poll checks its condition.
const pollInterval = 5 * time.Millisecond

// Poll checks cond every few milliseconds until it holds or within has
// passed, and reports whether it held. cond runs on the caller's goroutine,
// so it may call t.Fatal.
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
	return true
}

// Eventually polls cond until it holds, and fails the test if it does not
// within Wait: a test waits for what happens in the background (reactions,
// projections) by polling a condition with a deadline, never by sleeping.
func Eventually(tb testing.TB, cond func() bool) {
	tb.Helper()
	if !Poll(Wait, cond) {
		tb.Fatalf("condition not met within %s", Wait)
	}
}

// Go runs run on a goroutine of its own until the test ends or the
// returned stop is called (stop may be called more than once). stop cancels
// run's context and waits up to within for run to return; an error, or no
// return within that time, fails the test.
func Go(tb testing.TB, within time.Duration, run func(ctx context.Context) error) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("ledgertest.Go: run returned %v", err)
				}
			case <-time.After(within):
				tb.Errorf("ledgertest.Go: run did not return within %s of its stop", within)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// Logs collects log lines written from many goroutines at once (a
// service's, its handlers', its reactions'), for a test to read back.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Bytes is a copy of what was written so far.
func (l *Logs) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// String is what was written so far.
func (l *Logs) String() string { return string(l.Bytes()) }
