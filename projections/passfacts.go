package projections

import (
	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// NewPassFacts returns the empty answer to q that a Store's PassFacts fills
// in: every map made, so that what is not found is absent from an empty map
// in every store, and sized for what q asks.
func NewPassFacts(q ledger.PassFactsQuery) domain.PassFacts {
	return domain.PassFacts{
		Venues:   make(map[uuid.UUID]domain.VenueView, len(q.Venues)),
		Persons:  make(map[uuid.UUID]domain.PersonView, len(q.Persons)+len(q.IDHashes)),
		ByIDHash: make(map[string]uuid.UUID, len(q.IDHashes)),
		Health:   make(map[string][]domain.HealthRecordFact),
		Stored:   make(map[uuid.UUID]domain.PassView),
	}
}
