package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Deduplication of recorded events.
//
// A pack's Nats-Msg-Id names the pack, so JetStream only drops a pack the
// store itself sent twice; it cannot see that an event inside a new pack was
// stored before. The store keeps its own table: event id → position for
// every event Record stored (or found stored) within the last
// DuplicateWindow, at most MaxDedupEntries of them. The committer consults
// and fills it, so a retry, two concurrent Records of one id, or one id twice
// in a pack all get the first one's position with Duplicate set. Events still
// on their way to the server are in the table as pending, naming the pack
// that carries them: a duplicate of one waits for that pack's answer.
//
// Open rebuilds the table from the packs written in the last
// DuplicateWindow. Older retries are not caught here: the caller checks the
// read model first (ledger.ReadModel.Passes) and projections ignore a second copy
// of an event id.

// dedupChunk is a run of ids added together, evicted together.
type dedupChunk struct {
	ids    []uuid.UUID
	newest time.Time
}

const dedupChunkSize = 1024

// dedupTable is the event id table. Its lock is taken by the committer (to
// look up and add pending events) and by the goroutines that settle packs.
//
// One map holds both kinds of entry, so an event costs three map operations
// (a lookup and an insert when taken, an update when settled): a stored
// event's value is its position; a pending event's value has pendingBit set
// and names its pack (a slot in packs) and its index there. Positions never
// have bit 63 set (sequences stay under 2^47).
type dedupTable struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	ids    map[uuid.UUID]uint64
	chunks []*dedupChunk // stored ids, oldest first
	packs  []*pack       // packs with pending events, by slot
	free   []int         // free slots of packs
}

const pendingBit = 1 << 63

func newDedupTable(window time.Duration, max int) *dedupTable {
	return &dedupTable{window: window, max: max, ids: make(map[uuid.UUID]uint64)}
}

// pendingRef is the value of an event pending at index i of the pack in
// slot.
func pendingRef(slot, i int) uint64 { return pendingBit | uint64(slot)<<indexBits | uint64(i) }

// pendingPack returns the pack and index a pending value names.
func (t *dedupTable) pendingPack(v uint64) (*pack, int) {
	return t.packs[(v&^pendingBit)>>indexBits], int(v & (maxPackEvents - 1))
}

// slotLocked gives p a slot, so that its pending events can name it.
func (t *dedupTable) slotLocked(p *pack) {
	if n := len(t.free); n > 0 {
		p.slot = t.free[n-1]
		t.free = t.free[:n-1]
		t.packs[p.slot] = p
		return
	}
	p.slot = len(t.packs)
	t.packs = append(t.packs, p)
}

// settleLocked turns p's pending events into stored ones at their positions
// (seq's), or drops them when p failed (err), and frees p's slot.
func (t *dedupTable) settleLocked(p *pack, seq uint64, failed bool, at time.Time) {
	for j, id := range p.ids {
		if failed {
			delete(t.ids, id)
			continue
		}
		t.ids[id] = PositionOf(seq, j)
		t.chunkLocked(id, at)
	}
	t.packs[p.slot] = nil
	t.free = append(t.free, p.slot)
	if !failed {
		t.evictLocked(at)
	}
}

// addLocked records id as stored at pos (at time at); an id already known
// keeps its first position. The caller holds mu.
func (t *dedupTable) addLocked(id uuid.UUID, pos uint64, at time.Time) {
	if _, ok := t.ids[id]; ok {
		return
	}
	t.ids[id] = pos
	t.chunkLocked(id, at)
	t.evictLocked(at)
}

// chunkLocked adds a stored id to the newest chunk.
func (t *dedupTable) chunkLocked(id uuid.UUID, at time.Time) {
	var c *dedupChunk
	if n := len(t.chunks); n > 0 && len(t.chunks[n-1].ids) < dedupChunkSize {
		c = t.chunks[n-1]
	} else {
		c = &dedupChunk{ids: make([]uuid.UUID, 0, dedupChunkSize)}
		t.chunks = append(t.chunks, c)
	}
	c.ids = append(c.ids, id)
	if at.After(c.newest) {
		c.newest = at
	}
}

// evictLocked drops the chunks older than the window, and the oldest ones
// while the table is over its size.
func (t *dedupTable) evictLocked(now time.Time) {
	horizon := now.Add(-t.window)
	for len(t.chunks) > 1 {
		c := t.chunks[0]
		if !c.newest.Before(horizon) && len(t.ids)-len(c.ids) < t.max {
			return
		}
		for _, id := range c.ids {
			delete(t.ids, id)
		}
		t.chunks[0] = nil
		t.chunks = t.chunks[1:]
	}
}

// len returns the number of stored ids.
func (t *dedupTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ids)
}

// rebuildDedup fills the table from every pack stored within the last
// DuplicateWindow: a consumer delivering by start time, reading only the
// event ids. It returns, per pack subject, the last sequence whose ids the
// table now holds (or that is older than the window): where the subject's
// chain starts (chain.go). That sequence is read first, so every pack up to
// it is either in the table or too old for it.
func (s *Store) rebuildDedup(ctx context.Context) (map[string]uint64, error) {
	rctx, cancel := withTimeout(ctx)
	defer cancel()
	known := make(map[string]uint64, len(allPackSubjects))
	var (
		end     uint64    // the last pack's sequence: where the rebuild ends
		endTime time.Time // and when it was stored
	)
	for _, subj := range allPackSubjects {
		m, err := s.lastMsg(rctx, subj)
		switch {
		case err == nil:
			known[subj] = m.Sequence
			if m.Sequence > end {
				end, endTime = m.Sequence, m.Time
			}
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return nil, fmt.Errorf("eventstore: rebuild dedup table: last pack on %s: %w", subj, err)
		}
	}
	start := time.Now().Add(-s.o.DuplicateWindow)
	if end == 0 || endTime.Before(start) {
		return known, nil // no pack written within the window
	}
	cons, err := s.js.OrderedConsumer(rctx, StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{packSubjects},
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &start,
		InactiveThreshold: consumerInactive,
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: rebuild dedup table: consumer: %w", err)
	}
	defer s.deleteConsumer(cons)
	var (
		mu     sync.Mutex
		done   = make(chan error, 1)
		finish = func(err error) {
			select {
			case done <- err:
			default:
			}
		}
		stopped bool
	)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		meta, err := msg.Metadata()
		if err != nil {
			stopped = true
			finish(fmt.Errorf("message metadata: %w", err))
			return
		}
		seq := meta.Sequence.Stream
		known[msg.Subject()] = max(known[msg.Subject()], seq)
		s.dedup.mu.Lock()
		_, err = walkPack(msg.Data(), func(i int, d *scanner) error {
			id, err := elemID(d)
			if err != nil {
				return err
			}
			s.dedup.addLocked(id, PositionOf(seq, i), meta.Timestamp)
			return nil
		})
		s.dedup.mu.Unlock()
		if err != nil {
			stopped = true
			finish(fmt.Errorf("pack at %d: %w", seq, err))
			return
		}
		// The end is the leader's last pack, not NumPending == 0: the
		// consumer sits on one replica, which may lag the leader.
		if seq >= end {
			stopped = true
			finish(nil)
		}
	}, jetstream.PullMaxBytes(pullBytes), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, nats.ErrConnectionClosed) {
			finish(err)
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("eventstore: rebuild dedup table: consume: %w", err)
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	cc.Stop()
	mu.Lock()
	stopped = true
	mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("eventstore: rebuild dedup table: %w", err)
	}
	s.log.Debug("dedup table rebuilt", "events", s.dedup.len(), "since", start)
	return known, nil
}

// elemID reads the event id of the pack element at d and moves d past it.
func elemID(d *scanner) (uuid.UUID, error) {
	if raw, ok := d.peekString("id"); ok {
		if id, err := uuid.ParseBytes(raw); err == nil {
			if !d.skipValue() {
				return uuid.Nil, fmt.Errorf("%w: malformed pack element", ErrNotEnvelope)
			}
			return id, nil
		}
	}
	var e domain.Envelope
	if err := decodeAt(d, &e, nil); err != nil {
		return uuid.Nil, err
	}
	return e.ID, nil
}
