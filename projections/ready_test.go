package projections_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/google/uuid"
)

// held is a writer whose applies wait until released: a start-up replay
// that takes its time.
type held struct {
	projections.Writer
	release chan struct{}
}

func (w *held) Apply(ctx context.Context, b projections.Batch) (projections.Checkpoint, error) {
	select {
	case <-w.release:
	case <-ctx.Done():
		return projections.Checkpoint{}, ctx.Err()
	}
	return w.Writer.Apply(ctx, b)
}

// While the start-up replay runs, commands' reads wait and then fail with a
// retryable error (never a "not found" for a venue that exists), and the
// readiness probe says why; once it is done both pass.
func TestStartupGatesCommandsAndReadiness(t *testing.T) {
	es := openLog(t)
	ctx := context.Background()
	venue := uuid.New()
	applied := envelope(t, domain.VenueAggregate(venue), &domain.VenueApplied{VenueID: venue, Name: "沂河超市", Type: "supermarket",
		District: "371302", Address: "兰山区沂河路1号", Lat: 35.05, Lng: 118.35, ManagerID: uuid.New()})
	target := record(t, es, applied)

	mem := memory.New(memory.Options{})
	w := &held{Writer: mem, release: make(chan struct{})}
	p, _ := start(t, es, w)
	gated := projections.Gate(mem, p, 100*time.Millisecond)

	_, err := gated.Venue(ctx, venue)
	var starting *projections.StartingError
	if !errors.As(err, &starting) || !errors.Is(err, projections.ErrStarting) || starting.RetryAfter() <= 0 || errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("venue during the start-up replay: %v, want a StartingError", err)
	}
	if _, err := mem.Venue(ctx, venue); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("the store itself: %v (the test needs it still empty)", err)
	}
	if err := p.Ready(ctx, time.Hour); err == nil || !strings.Contains(err.Error(), "start-up replay") {
		t.Fatalf("ready during the start-up replay: %v", err)
	}
	if p.StartupDone() {
		t.Fatal("start-up done before anything was applied")
	}

	// A read that waits long enough gets the answer.
	slow := projections.Gate(mem, p, 10*time.Second)
	got := make(chan error, 1)
	go func() {
		_, err := slow.Venue(ctx, venue)
		got <- err
	}()
	close(w.release)
	if err := <-got; err != nil {
		t.Fatalf("venue after the replay: %v", err)
	}
	waitFor(t, p, target)
	if err := p.Ready(ctx, 5*time.Second); err != nil {
		t.Fatalf("ready after the replay: %v", err)
	}
	if _, err := gated.Venue(ctx, venue); err != nil {
		t.Fatalf("gated venue after the replay: %v", err)
	}
}

// Lag is how long the store has been behind, not how old its last event is:
// the first event after a quiet spell does not make it unready, a store
// that stopped applying does.
func TestReadinessLagBound(t *testing.T) {
	es := openLog(t)
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	venue := uuid.New()
	record(t, es, envelope(t, domain.VenueAggregate(venue), &domain.VenueApplied{VenueID: venue, Name: "a", Type: "supermarket",
		District: "371302", Address: "b", Lat: 35, Lng: 118, ManagerID: uuid.New()}))
	mem := memory.New(memory.Options{})
	w := &held{Writer: mem, release: make(chan struct{})}
	close(w.release)
	p := projections.New(es, w, projections.Options{Now: func() time.Time { return clock() }})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, p, 1)
	if err := p.Ready(ctx, 5*time.Second); err != nil {
		t.Fatalf("ready: %v", err)
	}
	// An hour later (the probe polled all along) the store is stopped and
	// a new event arrives.
	now = now.Add(time.Hour)
	if err := p.Ready(ctx, 5*time.Second); err != nil {
		t.Fatalf("ready after a quiet hour: %v", err)
	}
	cancel()
	<-done
	done <- nil
	record(t, es, envelope(t, domain.VenueAggregate(venue), &domain.VenueReviewed{VenueID: venue, Decision: "approve"}))
	if err := p.Ready(ctx, 5*time.Second); err != nil {
		t.Fatalf("ready right after the first event of a quiet hour: %v", err)
	}
	now = now.Add(6 * time.Second)
	if err := p.Ready(ctx, 5*time.Second); err == nil || !strings.Contains(err.Error(), "behind the log") {
		t.Fatalf("ready 6 s behind, bound 5 s: %v", err)
	}
}
