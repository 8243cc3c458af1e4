package ledger

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// MayAct decides whether the holder of a valid token may act with it now
// (domain.MayActWithToken): a person's token stops acting once the person
// is erased, on every route, so an erased venue manager or sub-admin no
// longer records passes or reads the venue's lists. The person is read with
// PassFacts, the command side's own read (in memory beside PostgreSQL read
// models too), so the check costs no round trip to the tables.
func (l *Ledger) MayAct(ctx context.Context, a domain.Actor) error {
	if a.Role != domain.RolePerson || a.PersonID == uuid.Nil {
		return nil
	}
	// Under the fence, with its overlay: a token of a person this replica
	// has just erased acts no more, whatever the read models say yet.
	defer l.Fence.write()()
	f, err := l.Reads.PassFacts(ctx, PassFactsQuery{Persons: []uuid.UUID{a.PersonID}})
	if err != nil {
		return fmt.Errorf("read the token holder %s: %w", a.Subject, err)
	}
	l.Fence.overlay(&f)
	p, known := f.Persons[a.PersonID]
	return domain.MayActWithToken(a, p, known)
}
