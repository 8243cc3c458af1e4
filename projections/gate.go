package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/google/uuid"
)

// StartingError is what a Gate answers while the start-up replay is not
// done: errors.Is(err, ErrStarting); RetryAfter says when to try again (the
// HTTP layer answers 503 with Retry-After).
type StartingError struct {
	Position, Target uint64
	After            time.Duration
}

func (e *StartingError) Error() string {
	return fmt.Sprintf("read models are replaying the log after a start (at position %d of %d): retry in %s", e.Position, e.Target, e.After)
}

// Is makes errors.Is(err, ErrStarting) true.
func (e *StartingError) Is(target error) bool { return target == ErrStarting }

// RetryAfter is how long the caller should wait before trying again.
func (e *StartingError) RetryAfter() time.Duration { return e.After }

// Gate is the read models as the command side sees them: every read waits
// (up to wait) for the projector's start-up replay, so a command never
// decides on tables that do not yet hold what the log held when the service
// started (a venue that exists answered "not found"). After wait it fails
// with a *StartingError. Once the replay is done a read costs one channel
// check. Queries do not need it: /readyz keeps traffic away until then.
func Gate(rm ledger.ReadModel, p *Projector, wait time.Duration) ledger.ReadModel {
	return &gate{rm: rm, p: p, wait: wait}
}

type gate struct {
	rm   ledger.ReadModel
	p    *Projector
	wait time.Duration
}

func (g *gate) ready(ctx context.Context) error {
	if g.p.StartupDone() {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, g.wait)
	defer cancel()
	if err := g.p.WaitStartup(wctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		g.p.mu.Lock()
		pos, target := g.p.cp.Position, g.p.target
		g.p.mu.Unlock()
		return &StartingError{Position: pos, Target: target, After: 2 * time.Second}
	}
	return nil
}

// gated answers read once g is ready, or ready's error: every read of the
// gate but Health (which answers three values) goes through it.
func gated[T any](ctx context.Context, g *gate, read func() (T, error)) (T, error) {
	if err := g.ready(ctx); err != nil {
		var zero T
		return zero, err
	}
	return read()
}

func (g *gate) Position(ctx context.Context) (uint64, error) {
	return gated(ctx, g, func() (uint64, error) { return g.rm.Position(ctx) })
}

func (g *gate) Person(ctx context.Context, id uuid.UUID) (domain.PersonView, error) {
	return gated(ctx, g, func() (domain.PersonView, error) { return g.rm.Person(ctx, id) })
}

func (g *gate) PersonByIDHash(ctx context.Context, idHash string) (domain.PersonView, error) {
	return gated(ctx, g, func() (domain.PersonView, error) { return g.rm.PersonByIDHash(ctx, idHash) })
}

func (g *gate) Health(ctx context.Context, idHash string) (domain.HealthView, bool, error) {
	if err := g.ready(ctx); err != nil {
		return domain.HealthView{}, false, err
	}
	return g.rm.Health(ctx, idHash)
}

func (g *gate) Venue(ctx context.Context, id uuid.UUID) (domain.VenueView, error) {
	return gated(ctx, g, func() (domain.VenueView, error) { return g.rm.Venue(ctx, id) })
}

func (g *gate) Venues(ctx context.Context, f domain.VenueFilter) ([]domain.VenueView, error) {
	return gated(ctx, g, func() ([]domain.VenueView, error) { return g.rm.Venues(ctx, f) })
}

func (g *gate) Entries(ctx context.Context, q domain.EntryQuery) ([]domain.Entry, error) {
	return gated(ctx, g, func() ([]domain.Entry, error) { return g.rm.Entries(ctx, q) })
}

func (g *gate) Trace(ctx context.Context, personID uuid.UUID, from, to time.Time) ([]domain.Visit, error) {
	return gated(ctx, g, func() ([]domain.Visit, error) { return g.rm.Trace(ctx, personID, from, to) })
}

func (g *gate) Occupancy(ctx context.Context, venueID uuid.UUID, now time.Time, dwell time.Duration) (int, error) {
	return gated(ctx, g, func() (int, error) { return g.rm.Occupancy(ctx, venueID, now, dwell) })
}

func (g *gate) Alerts(ctx context.Context, district string, limit int) ([]domain.Alert, error) {
	return gated(ctx, g, func() ([]domain.Alert, error) { return g.rm.Alerts(ctx, district, limit) })
}

func (g *gate) Dashboard(ctx context.Context, q domain.DashboardQuery) (domain.Dashboard, error) {
	return gated(ctx, g, func() (domain.Dashboard, error) { return g.rm.Dashboard(ctx, q) })
}

func (g *gate) PassFacts(ctx context.Context, q ledger.PassFactsQuery) (domain.PassFacts, error) {
	return gated(ctx, g, func() (domain.PassFacts, error) { return g.rm.PassFacts(ctx, q) })
}

func (g *gate) PassesOfPersons(ctx context.Context, personIDs []uuid.UUID, from, to, asOf time.Time) ([]domain.PassPoint, error) {
	return gated(ctx, g, func() ([]domain.PassPoint, error) { return g.rm.PassesOfPersons(ctx, personIDs, from, to, asOf) })
}

func (g *gate) PassesAtVenues(ctx context.Context, windows []domain.VenueWindow, asOf time.Time) ([]domain.PassPoint, error) {
	return gated(ctx, g, func() ([]domain.PassPoint, error) { return g.rm.PassesAtVenues(ctx, windows, asOf) })
}

func (g *gate) PersonNames(ctx context.Context, personIDs []uuid.UUID) (map[uuid.UUID]string, error) {
	return gated(ctx, g, func() (map[uuid.UUID]string, error) { return g.rm.PersonNames(ctx, personIDs) })
}

func (g *gate) VenuesByID(ctx context.Context, venueIDs []uuid.UUID) (map[uuid.UUID]domain.VenueView, error) {
	return gated(ctx, g, func() (map[uuid.UUID]domain.VenueView, error) { return g.rm.VenuesByID(ctx, venueIDs) })
}

func (g *gate) Audit(ctx context.Context, q domain.AuditQuery) ([]domain.AuditEntry, error) {
	return gated(ctx, g, func() ([]domain.AuditEntry, error) { return g.rm.Audit(ctx, q) })
}

func (g *gate) AuditChain(ctx context.Context, q domain.AuditChainQuery) ([]domain.AuditChainEntry, error) {
	return gated(ctx, g, func() ([]domain.AuditChainEntry, error) { return g.rm.AuditChain(ctx, q) })
}

func (g *gate) Declaration(ctx context.Context, id uuid.UUID) (domain.DeclarationView, error) {
	return gated(ctx, g, func() (domain.DeclarationView, error) { return g.rm.Declaration(ctx, id) })
}

func (g *gate) Declarations(ctx context.Context, f domain.DeclarationFilter) ([]domain.DeclarationView, error) {
	return gated(ctx, g, func() ([]domain.DeclarationView, error) { return g.rm.Declarations(ctx, f) })
}
