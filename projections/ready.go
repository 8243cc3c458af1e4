package projections

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Roles of a projector (ProjectionStatus.Role).
const (
	// RoleActive: this process applies the projection.
	RoleActive = "active"
	// RoleStandby: another process holds the lease and applies it; this
	// one follows the store's position and takes over when the lease frees.
	RoleStandby = "standby"
)

// ErrStarting is returned by Gate while the read models are still
// replaying what the log held when the service started.
var ErrStarting = errors.New("projections: read models are replaying the log (start-up)")

// initTarget records the log's position at start: the start-up replay is
// done once the store has reached it.
func (p *Projector) initTarget(ctx context.Context) error {
	p.mu.Lock()
	set := p.targetSet
	p.mu.Unlock()
	if set {
		return nil
	}
	last, err := p.log.LastPosition(ctx)
	if err != nil {
		return fmt.Errorf("projection %s: log position at start: %w", p.o.Name, err)
	}
	p.mu.Lock()
	p.target, p.targetSet = last, true
	p.checkStartedLocked()
	p.mu.Unlock()
	return nil
}

// checkStartedLocked closes started once the store holds the start-up target.
func (p *Projector) checkStartedLocked() {
	if !p.targetSet || !p.loaded || p.cp.Position < p.target {
		return
	}
	select {
	case <-p.started:
	default:
		close(p.started)
	}
}

// StartupDone reports whether the store has reached the log's position of
// the moment Run started (the start-up replay is over).
func (p *Projector) StartupDone() bool {
	select {
	case <-p.started:
		return true
	default:
		return false
	}
}

// WaitStartup blocks until StartupDone or ctx ends (ctx's error).
func (p *Projector) WaitStartup(ctx context.Context) error {
	select {
	case <-p.started:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Projector) setRole(r string) {
	p.mu.Lock()
	p.role = r
	p.mu.Unlock()
}

// Ready is the projection's part of a readiness probe: nil when the start-up
// replay is done, the projector has not stopped and the store is less than
// maxLag behind the log; otherwise an error that says which (a probe shows
// it). It is cheap: no count of the events behind.
func (p *Projector) Ready(ctx context.Context, maxLag time.Duration) error {
	st, err := p.status(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	target, targetSet := p.target, p.targetSet
	p.mu.Unlock()
	switch {
	case !targetSet:
		return fmt.Errorf("projection %s: not started (the log's position is not known yet): %s", st.Name, st.Error)
	case st.Error != "" && !p.StartupDone() || errors.Is(p.lastError(), ErrOtherLog):
		return fmt.Errorf("projection %s: %s", st.Name, st.Error)
	case !p.StartupDone():
		return fmt.Errorf("projection %s: start-up replay at position %d of %d", st.Name, st.Position, target)
	case st.LagSeconds > maxLag.Seconds():
		msg := fmt.Sprintf("projection %s: %.1f s behind the log (bound %s), at position %d of %d", st.Name, st.LagSeconds, maxLag, st.Position, st.LogPosition)
		if st.Error != "" {
			msg += ": " + st.Error
		}
		return errors.New(msg)
	}
	return nil
}

func (p *Projector) lastError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}
