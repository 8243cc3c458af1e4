package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/facts"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/google/uuid"
)

// factsOverTables is the production shape of the command side with
// PostgreSQL read models (cmd/ledger wires it): PassFacts from the
// in-memory facts store, everything else from the tables. Batches reach the
// facts store first, as its own projector is ahead of the tables'.
type factsOverTables struct {
	*facts.ReadModel
	tables  *postgres.Store // the passes by id, as the contract suite reads them
	store   *facts.Store
	tracker *facts.Tracker
}

func (s *factsOverTables) Pass(ctx context.Context, id uuid.UUID) (domain.PassView, bool, error) {
	return s.tables.Pass(ctx, id)
}

func (s *factsOverTables) Passes(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]domain.PassView, error) {
	return s.tables.Passes(ctx, ids)
}

func (s *factsOverTables) Apply(ctx context.Context, b projections.Batch) (projections.Checkpoint, error) {
	if _, err := s.store.Apply(ctx, b); err != nil {
		return projections.Checkpoint{}, err
	}
	return s.tracker.Apply(ctx, b)
}

func (s *factsOverTables) RetirePasses(ctx context.Context, before time.Time) (ledger.RetireStats, error) {
	if _, err := s.store.RetirePasses(ctx, before); err != nil {
		return ledger.RetireStats{}, err
	}
	return s.tables.RetirePasses(ctx, before)
}

func (s *factsOverTables) Checkpoint(ctx context.Context) (projections.Checkpoint, error) {
	return s.tracker.Checkpoint(ctx)
}

// TestContractFacts runs the contract suite on the tables with PassFacts
// answered from the facts store.
func TestContractFacts(t *testing.T) {
	storetest.Run(t, func(t *testing.T) projections.Store {
		pg := openStore(t)
		fs := facts.NewStore()
		tr := facts.NewTracker(pg)
		return &factsOverTables{
			ReadModel: facts.NewReadModel(facts.Options{Tables: pg, Store: fs, Tracker: tr, Older: pg.HasPassBefore}),
			tables:    pg, store: fs, tracker: tr,
		}
	})
}
