package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/checkin-ledger/ledger/ledger"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Chains: per-event dedup across ledger replicas.
//
// A pack's Nats-Msg-Id only names the pack, and each store's dedup table
// only knows what that store has seen, so two replicas could both store an
// event retried to both (issue 10). Every pack is therefore published with
// Nats-Expected-Last-Subject-Sequence: the last sequence of its pack subject
// whose event ids this store's table holds. The server stores it only if no
// other pack was stored on that subject since; otherwise it answers "wrong
// last sequence", and the store reads the packs it missed (leader gets,
// "next message on the subject"), adds their ids to its table, takes out of
// its own packs the events they already hold (answered with the stored
// position, Duplicate), and sends the rest again. So the packs stored on a
// subject form one chain in which every pack was checked against all
// before it: one event id, one stored event, whichever replica takes it, and
// both callers get the same position.
//
// Each pack subject has one goroutine that sends its packs one at a time,
// in the order the committer sealed them (the chain needs the previous
// pack's sequence). One replica alone pays only the header: its expected
// sequence is always right.
//
// Failover: an attempt that gets no answer within AckTimeout is sent again,
// unchanged (same Nats-Msg-Id, same expected sequence): a pack lost with a
// stream leader that died is written as soon as a new leader answers, and a
// pack that was stored after all comes back as "wrong last sequence" and is
// found, with its Nats-Msg-Id, by the catch-up: stored once, callers get
// its positions. After WriteTimeout the callers get ErrUnavailable; a retry
// with the same ids finds the pack if it was stored late.

// chain sends the packs of one pack subject.
type chain struct {
	subject string
	q       chan *pack
	known   uint64 // last sequence of subject whose ids the table holds
}

// removal is an event of a pending pack found stored by another pack.
type removal struct {
	index int
	pos   uint64
	dup   bool // stored by another pack than this one's own earlier attempt
}

func (s *Store) startChains(known map[string]uint64) {
	s.chains = make(map[string]*chain, len(allPackSubjects))
	for _, subj := range allPackSubjects {
		c := &chain{subject: subj, q: make(chan *pack, 1024), known: known[subj]}
		s.chains[subj] = c
		s.commitWG.Add(1)
		go func() {
			defer s.commitWG.Done()
			for p := range c.q {
				s.writePack(c, p)
			}
		}()
	}
}

func (s *Store) stopChains() {
	for _, c := range s.chains {
		close(c.q)
	}
}

// writePack stores p as the next link of c, as the comment above says, and
// settles its callers.
func (s *Store) writePack(c *chain, p *pack) {
	if s.expired(p) {
		return
	}
	deadline := p.deadline
	var (
		ids  []string // the Nats-Msg-Ids p was sent with
		m    *nats.Msg
		wait = 10 * time.Millisecond
	)
	for {
		if s.compact(p) || m == nil {
			if len(p.ids) == 0 {
				s.settlePack(p, 0, false, nil) // every event was stored by another pack
				return
			}
			ids = append(ids, uuid.NewString())
			h := make(nats.Header, 5)
			h[hdrMsgID] = []string{ids[len(ids)-1]}
			h[hdrPackCount] = []string{strconv.Itoa(len(p.ids))}
			if packExpires(p.subject) {
				h[hdrTTL] = []string{s.ttlOf(p.latest)}
			}
			m = &nats.Msg{Subject: p.subject, Header: h, Data: appendPackEnd(p.body)}
		}
		m.Header[hdrExpectedSubSeq] = []string{strconv.FormatUint(c.known, 10)}
		ack, err := s.attempt(m, deadline)
		if err == nil {
			c.known = ack.Seq
			s.settlePack(p, ack.Seq, false, nil)
			return
		}
		code := apiCode(err)
		switch {
		case code == errCodeWrongLastSeq || code == errCodeWrongLastSeqConstant:
			// Another pack was stored on the subject, or is being
			// stored (constant): read what we missed.
			before := c.known
			if cerr := s.catchUp(c, ids, deadline); cerr != nil {
				if !transient(cerr) {
					s.settlePack(p, 0, false, fmt.Errorf("%s: catch up after %v: %w", p.subject, err, cerr))
					return
				}
				// The reads of a catch-up meet a failover too (no
				// leader, "temporarily unavailable"): what was read
				// is kept, the pack is sent again and refused again
				// until the catch-up gets through or time is up.
				err = fmt.Errorf("catch up after %v: %w", err, cerr)
			} else if c.known != before {
				wait = 10 * time.Millisecond
				continue // compact and send again at once
			}
		case transient(err):
			// No leader (yet), or the answer was lost: send the same again.
		default:
			s.settlePack(p, 0, false, fmt.Errorf("%s: %w", p.subject, err))
			return
		}
		if !s.retryPack(p, err, &wait, deadline) {
			return
		}
		s.log.Debug("group commit pack sent again", "events", len(p.ids), "err", err)
	}
}

// retryPack ends an attempt at p that failed with err, an error p may be sent
// again after: past deadline it settles p with ErrUnavailable and reports
// false; otherwise it waits *wait (not after an attempt that got no answer:
// that one has waited its AckTimeout already), doubles *wait up to 250ms and
// reports true. writePack and awaitMessage retry through it.
func (s *Store) retryPack(p *pack, err error, wait *time.Duration, deadline time.Time) bool {
	if time.Now().After(deadline) {
		s.settlePack(p, 0, false, fmt.Errorf("%s: %w: %w", p.subject, ErrUnavailable, err))
		return false
	}
	if !errors.Is(err, errAttemptTimeout) {
		sleep(*wait, deadline)
		*wait = min(*wait*2, 250*time.Millisecond)
	}
	return true
}

// errAttemptTimeout is an attempt that got no answer within AckTimeout.
var errAttemptTimeout = errors.New("no answer")

// transient reports whether err says that nothing was done because the
// stream has no leader that answers now (a failover): no answer within the
// attempt's time, no responders, the same message id in process on
// another leader, or a JetStream API error with status 503 ("JetStream
// system temporarily unavailable", 10008, while a new leader takes over).
// Such a write or read is tried again until WriteTimeout.
func transient(err error) bool {
	var ae *apiError
	var jae *jetstream.APIError
	switch {
	case errors.Is(err, errAttemptTimeout), errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &ae):
		return ae.ErrCode == errCodeDuplicateInProcess || ae.Code == 503
	case errors.As(err, &jae):
		return jae.Code == 503
	}
	return false
}

// untilAnswered runs op, a read or write that must reach a stream leader
// (a key bucket read or create, a Load), until it is answered: an attempt that meets a failover (transient: no answer within
// AckTimeout, no responders, a 503 while the bucket's new leader takes
// over) is tried again with backoff until WriteTimeout or ctx's deadline,
// whichever comes first, after which the error wraps ErrUnavailable (the
// HTTP layer answers 503 with Retry-After, not a bare timeout). A create
// tried again after a lost answer that was stored after all comes back as
// ErrKeyExists, and Key reads the stored key.
func (s *Store) untilAnswered(ctx context.Context, op func(context.Context) error) error {
	deadline := time.Now().Add(s.o.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	wait := 10 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, min(s.o.AckTimeout, time.Until(deadline)))
		err := op(actx)
		cancel()
		if err == nil || !transient(err) { // a cancelled ctx is not transient
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		sleep(wait, deadline)
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// attempt publishes m once and waits up to AckTimeout (and at most until
// deadline) for its answer.
func (s *Store) attempt(m *nats.Msg, deadline time.Time) (pubAck, error) {
	ch, err := s.send(m)
	if err != nil {
		return pubAck{}, err
	}
	return s.answer(m, ch, deadline)
}

// answer waits up to AckTimeout (and at most until deadline) for the answer
// to m, published with reply channel ch.
func (s *Store) answer(m *nats.Msg, ch chan *nats.Msg, deadline time.Time) (pubAck, error) {
	t := time.NewTimer(max(min(s.o.AckTimeout, time.Until(deadline)), time.Millisecond))
	defer t.Stop()
	select {
	case reply := <-ch:
		return parseAck(reply)
	case <-t.C:
		s.replies.forget(m.Reply)
		return pubAck{}, fmt.Errorf("%w within %s", errAttemptTimeout, s.o.AckTimeout)
	}
}

func sleep(d time.Duration, deadline time.Time) {
	time.Sleep(max(0, min(d, time.Until(deadline))))
}

// catchUp reads the packs stored on c's subject after c.known, adds their
// ids to the table, and marks the events of pending packs of the subject
// they already hold. ownIDs are the Nats-Msg-Ids of the pack being sent: a
// pack with one of them is its own earlier attempt, stored after all.
func (s *Store) catchUp(c *chain, ownIDs []string, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(s.o.AckTimeout))
	defer cancel()
	for {
		// Each read waits AckTimeout at most, as a write attempt does:
		// one sent to a leader that died is not waited for until the
		// deadline.
		gctx, gcancel := context.WithTimeout(ctx, s.o.AckTimeout)
		m, err := s.stream.GetMsg(gctx, c.known+1, jetstream.WithGetMsgSubject(c.subject))
		gcancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get after %d: %w", c.known, err)
		}
		own := slices.Contains(ownIDs, m.Header.Get(hdrMsgID))
		seq := m.Sequence
		t := s.dedup
		t.mu.Lock()
		_, err = walkPack(m.Data, func(i int, d *scanner) error {
			id, err := elemID(d)
			if err != nil {
				return err
			}
			pos := PositionOf(seq, i)
			if v, ok := t.ids[id]; ok && v&pendingBit != 0 {
				q, j := t.pendingPack(v)
				if q.subject == c.subject {
					q.removed = append(q.removed, removal{index: j, pos: pos, dup: !own})
					t.ids[id] = pos
					t.chunkLocked(id, m.Time)
				}
				return nil
			}
			t.addLocked(id, pos, m.Time)
			return nil
		})
		t.mu.Unlock()
		if err != nil {
			return fmt.Errorf("pack at %d: %w", seq, err)
		}
		s.counts.put(seq, int(max(1, countHeader(m.Header))))
		c.known = seq
	}
}

func countHeader(h nats.Header) int64 {
	n, _ := strconv.ParseInt(h.Get(hdrPackCount), 10, 64)
	return n
}

// compact takes out of p the events a catch-up found stored, answering
// their callers (and their copies waiting on them) with the stored
// position. It reports whether p changed.
func (s *Store) compact(p *pack) bool {
	t := s.dedup
	t.mu.Lock()
	if len(p.removed) == 0 {
		t.mu.Unlock()
		return false
	}
	type answer struct {
		slot
		a ledger.Appended
	}
	var answers []answer
	gone := make(map[int]removal, len(p.removed))
	for _, r := range p.removed {
		gone[r.index] = r
	}
	p.removed = nil
	remap := make([]int, len(p.ids))
	ids, slots := p.ids[:0:0], p.slots[:0:0]
	body := appendPackStart(make([]byte, 0, len(p.body)))
	for j, id := range p.ids {
		if r, ok := gone[j]; ok {
			remap[j] = -1
			answers = append(answers, answer{p.slots[j], ledger.Appended{Position: r.pos, Duplicate: r.dup}})
			continue
		}
		remap[j] = len(ids)
		sl := p.slots[j]
		body = appendPackElem(body, len(ids) == 0, sl.req.evs[sl.i].body)
		t.ids[id] = pendingRef(p.slot, len(ids))
		ids = append(ids, id)
		slots = append(slots, sl)
	}
	dups := p.dups[:0]
	for _, d := range p.dups {
		if remap[d.of] < 0 {
			answers = append(answers, answer{d.slot, ledger.Appended{Position: gone[d.of].pos, Duplicate: true}})
			continue
		}
		d.of = remap[d.of]
		dups = append(dups, d)
	}
	p.ids, p.slots, p.body, p.dups = ids, slots, body, dups
	t.mu.Unlock()
	for _, a := range answers {
		a.req.settle(a.i, a.a, nil)
	}
	return true
}
