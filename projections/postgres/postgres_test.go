package postgres_test

import (
	"testing"

	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) projections.Store { return openStore(t) })
}
