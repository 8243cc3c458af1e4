package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
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
// Failover: an attempt that gets no answer within AckTimeout is sent again
// with the same Nats-Msg-Id (and the expected sequence read again, see
// writePack; the pack changes only where a catch-up or a follower found
// some of its events stored, and then gets a new id): a pack lost with a
// stream leader that died is written as soon as a new leader answers, and a
// pack that was stored after all comes back as "wrong last sequence" and is
// found, with its Nats-Msg-Id, by the catch-up: stored once, callers get
// its positions. After WriteTimeout the callers get ErrUnavailable; a retry
// with the same ids finds the pack if it was stored late.

// chain sends the packs of one pack subject.
type chain struct {
	subject string
	q       chan *pack
	// mu guards known and sent: the chain's goroutine and the followers
	// of the log (absorb) both move known.
	mu    sync.Mutex
	known uint64 // last sequence of subject whose ids the table holds
	// sent are the Nats-Msg-Ids the pack being sent went out with.
	sent []string
}

// expect returns the sequence the next attempt expects as the subject's last.
func (c *chain) expect() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.known
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
		m    *nats.Msg
		wait = 10 * time.Millisecond
	)
	defer func() {
		c.mu.Lock()
		c.sent = nil
		c.mu.Unlock()
	}()
	for {
		// The expected sequence is read before the pack is compacted: a
		// follower's absorb moves known and queues the removals of the
		// pack it read in one step (under c.mu), so every removal of a
		// pack at or before expected is in p by now, and compact takes
		// it out. A pack absorbed after this read lies beyond expected,
		// and the server refuses the attempt ("wrong last sequence").
		// Read after the message was built, an absorb in between made
		// the attempt expect a pack whose events it still held, and the
		// server stored them twice (an outside tester's forwarded batch
		// of 1,000 passes, the writer frozen just after it came).
		expected := c.expect()
		if s.compact(p) || m == nil {
			if len(p.ids) == 0 {
				s.settlePack(p, 0, false, nil) // every event was stored by another pack
				return
			}
			id := uuid.NewString()
			c.mu.Lock()
			c.sent = append(c.sent, id)
			c.mu.Unlock()
			h := make(nats.Header, 5)
			h[hdrMsgID] = []string{id}
			h[hdrPackCount] = []string{strconv.Itoa(len(p.ids))}
			if packExpires(p.subject) {
				h[hdrTTL] = []string{s.ttlOf(p.latest)}
			}
			m = &nats.Msg{Subject: p.subject, Header: h, Data: appendPackEnd(p.body)}
		}
		if s.beforeAttempt != nil {
			s.beforeAttempt(p.subject)
		}
		m.Header[hdrExpectedSubSeq] = []string{strconv.FormatUint(expected, 10)}
		ack, err := s.attempt(m, deadline)
		if err == nil {
			c.mu.Lock()
			c.known = max(c.known, ack.Seq)
			c.mu.Unlock()
			s.settlePack(p, ack.Seq, false, nil)
			return
		}
		code := apiCode(err)
		switch {
		case code == errCodeWrongLastSeq || code == errCodeWrongLastSeqConstant:
			// Another pack was stored on the subject, or is being
			// stored (constant): read what we missed (a follower of
			// the log may have read it already).
			if cerr := s.catchUp(c, deadline); cerr != nil {
				if !transient(cerr) {
					s.settlePack(p, 0, false, fmt.Errorf("%s: catch up after %v: %w", p.subject, err, cerr))
					return
				}
				// The reads of a catch-up meet a failover too (no
				// leader, "temporarily unavailable"): what was read
				// is kept, the pack is sent again and refused again
				// until the catch-up gets through or time is up.
				err = fmt.Errorf("catch up after %v: %w", err, cerr)
			} else if c.expect() != expected {
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
// they already hold (absorb).
func (s *Store) catchUp(c *chain, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(s.o.AckTimeout))
	defer cancel()
	for {
		// Each read waits AckTimeout at most, as a write attempt does:
		// one sent to a leader that died is not waited for until the
		// deadline.
		after := c.expect()
		gctx, gcancel := context.WithTimeout(ctx, s.o.AckTimeout)
		m, err := s.stream.GetMsg(gctx, after+1, jetstream.WithGetMsgSubject(c.subject))
		gcancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get after %d: %w", after, err)
		}
		s.catchUps.Add(1)
		ids, err := packIDs(m.Data)
		if err != nil {
			return fmt.Errorf("pack at %d: %w", m.Sequence, err)
		}
		s.absorb(c, m.Sequence, m.Time, m.Header.Get(hdrMsgID), ids, true)
		s.counts.put(m.Sequence, int(max(1, countHeader(m.Header))))
	}
}

// absorb takes the pack stored at seq on c's subject (its Nats-Msg-Id and
// its events' ids) into the table, unless c.known is already at or past it,
// and moves c.known to seq. An event pending in a pack of the subject is
// taken out of it (compact answers its callers with the stored position):
// as a duplicate when the pack was another's, as first stored when it is
// an earlier attempt of the pack being sent. A follower of the log (caught
// is false) leaves the pack being sent alone when it meets that pack
// stored: the attempt's answer, or its resend's (the server knows its
// Nats-Msg-Id), settles it.
//
// The catch-up after a refused attempt calls it, and so does every
// follower of the whole log (Follow), so a store that has not written for
// a while (another replica was the writer, forward.go) holds a known that
// is current and its first own pack needs no catch-up.
func (s *Store) absorb(c *chain, seq uint64, at time.Time, msgID string, ids []uuid.UUID, caught bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq <= c.known {
		return
	}
	c.known = seq
	own := slices.Contains(c.sent, msgID)
	if own && !caught {
		return
	}
	t := s.dedup
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, id := range ids {
		pos := PositionOf(seq, i)
		if v, ok := t.ids[id]; ok && v&pendingBit != 0 {
			q, j := t.pendingPack(v)
			if q.subject == c.subject {
				q.removed = append(q.removed, removal{index: j, pos: pos, dup: !own})
				t.ids[id] = pos
				t.chunkLocked(id, at)
			}
			continue
		}
		t.addLocked(id, pos, at)
	}
}

// packIDs returns the event ids of a pack's elements, in order.
func packIDs(body []byte) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	_, err := walkPack(body, func(_ int, d *scanner) error {
		id, err := elemID(d)
		ids = append(ids, id)
		return err
	})
	return ids, err
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
