package memory

import (
	"context"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/checkin-ledger/ledger/ledger"
)

var _ ledger.Retirer = (*Store)(nil)

// RetirePasses implements ledger.Retirer: under the writer's lock it drops
// every pass with occurred_at before before (from the table, the event-id
// index and the venue and person lists, whose expired entries are a
// prefix: they are sorted by at) and every alert older than before (an
// alert carries its pass's occurred_at), and remembers before so that a
// replay does not bring them back. Chunks of the table whose passes all
// expired are released. Only the chunks holding a pass older than before
// are read.
func (s *Store) RetirePasses(_ context.Context, before time.Time) (ledger.RetireStats, error) {
	cut := nanos(before)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cut > s.retiredBefore {
		s.retiredBefore = cut
	}
	var st ledger.RetireStats
	venues := map[int32]struct{}{}
	persons := map[int32]struct{}{}
	t := &s.passes
	for c := range t.chunks {
		if t.live[c] == 0 || t.minAt[c] >= cut {
			continue
		}
		earliest := int64(math.MaxInt64)
		ch := t.chunks[c]
		for k := range ch {
			p := &ch[k]
			if p.pos == 0 {
				continue // retired before
			}
			if p.at >= cut {
				earliest = min(earliest, p.at)
				continue
			}
			delete(s.passByID, p.id)
			if !s.factsOnly {
				// Counted under its venue's district when applied.
				s.dash.held[s.venues[p.venue].view.District]--
			}
			venues[p.venue] = struct{}{}
			persons[p.person] = struct{}{}
			*p = pass{} // pos 0: dead; its strings' indexes released
			t.live[c]--
			st.Passes++
		}
		t.minAt[c] = earliest
		if t.live[c] == 0 && c < len(t.chunks)-1 {
			t.chunks[c] = nil // every pass in it expired: release it (never appended to again)
		}
	}
	if !s.factsOnly {
		for v := range venues {
			s.venues[v].passes.dropBefore(cut)
		}
		for p := range persons {
			s.people[p].passes.dropBefore(cut)
		}
	}
	for d, list := range s.alerts {
		k := sort.Search(len(list), func(j int) bool { return list[j].at >= cut })
		if k == 0 {
			continue
		}
		st.Alerts += int64(k)
		if k == len(list) {
			delete(s.alerts, d)
			continue
		}
		s.alerts[d] = slices.Clone(list[k:])
	}
	return st, nil
}
