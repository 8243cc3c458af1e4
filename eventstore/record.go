package eventstore

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// Group commit.
//
// Record encodes its events in the caller's goroutine and hands them to one
// committer goroutine (commitLoop). The committer checks every event id
// against the dedup table (dedup.go) and puts the new events into packs: one
// JetStream message holding many events, on ledger.pack.pass for passes and
// ledger.pack.alert for alerts (both with a Nats-TTL counted from the pack's
// latest occurred_at, Store.ttlOf) and ledger.pack.event for health records
// and audit entries. What one gather collected (its packs of each subject, or
// the several packs a large call fills) is sent together, a group. While a
// group is on its way the next one fills (natural batching); it is sent,
// when fewer than MaxInflight groups are on their way, as soon as
//
//   - a pack is full (MaxPack events, or the connection's max payload), or
//   - as many Record calls have joined it as the last acknowledged group
//     answered (the callers that group released are back, or as many new
//     ones came: the load of the moment), or
//   - nothing is on its way and GroupCommitWait has passed since its first
//     event (the load fell).
//
// The second rule is what lets callers that resubmit at once (a scanner's
// next pass) ride in one pack instead of the first of them leaving alone the
// moment the previous answer frees the way. The server stores a pack with
// one fsync and answers with its stream sequence; event i of the pack is at
// PositionOf(seq, i). A goroutine per pack awaits that
// answer and hands every caller its results. Publishing happens on the
// committer only, so packs reach the server, and are stored, in the order
// they were gathered.
//
// Events of kinds that are not packed (person, venue, declaration, …) are
// rare in Record; each is sent as its own message on its aggregate's
// subject, with its event id as Nats-Msg-Id, through the same committer.

// recEvent is one event of a Record call, encoded by the caller.
type recEvent struct {
	id      uuid.UUID
	subject string // the pack subject, or the aggregate's own subject
	packed  bool
	body    []byte // the envelope as JSON
	at      int64  // its occurred_at in Unix nanoseconds (a pack's TTL counts from its latest)
}

// recordReq is one Record call.
type recordReq struct {
	evs  []recEvent
	res  []ledger.Appended
	left atomic.Int32
	mu   sync.Mutex
	err  error
	done chan struct{}
}

func (r *recordReq) settle(i int, a ledger.Appended, err error) {
	if err != nil {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	} else {
		r.res[i] = a
	}
	if r.left.Add(-1) == 0 {
		close(r.done)
	}
}

// Record appends events with no version check. Events from concurrent
// callers are gathered into packs, one JetStream message and one fsync for
// many events (group commit; see the package's DESIGN.md). It returns after
// the server acknowledged them durably, with one result per event in order.
// An event whose id was recorded within the DuplicateWindow (or appears
// earlier in the same call) is reported as Duplicate with the first one's
// position, and stored once.
//
// Positions grow in the order Record calls return; within one call they
// grow per pack subject (the passes of a call come before its other events).
//
// When ctx ends before the answer, the events may or may not be stored:
// retry with the same event ids.
func (s *Store) Record(ctx context.Context, events ...domain.Envelope) (_ []ledger.Appended, err error) {
	if len(events) == 0 {
		return nil, nil
	}
	defer func(start time.Time) { s.observe("record", len(events), start, err) }(time.Now())
	r := newRecordReq(make([]recEvent, len(events)))
	for i := range events {
		e := &events[i]
		body, err := s.encode(*e, s.packBytes-2)
		if err != nil {
			return nil, fmt.Errorf("record event %d (%s): %w", i, e.ID, err)
		}
		ev := recEvent{id: e.ID, subject: packSubjectOf(domain.AggregateKind(e.Aggregate)), body: body, at: e.OccurredAt.UnixNano()}
		if ev.subject != "" {
			ev.packed = true
		} else {
			ev.subject = SubjectPrefix + e.Aggregate
		}
		r.evs[i] = ev
	}
	if s.writerElsewhere() == "" {
		return s.commit(ctx, r)
	}
	if res, err, ok := s.forward(ctx, r); ok {
		return res, err
	}
	res, err := s.commit(ctx, r)
	if err == nil {
		s.ownForwards(ctx, r.evs, res)
	}
	return res, err
}

// ownForwards clears the Duplicate flag of the events of a call that the
// writer stored from this very call's forward before it went silent: the
// caller sent them once, so they are new to it (issue 10, B1). The stored
// envelope is this call's own when its server time (RecordedAt, set when
// this store encoded it, to the nanosecond) and its payload are; a retry
// through another replica was encoded there at another moment and stays a
// duplicate, so the caller's changed-body check (the ledger's) still runs.
// Only the first event of an id is the call's own; a failed read leaves
// the flag set (the answer is then what it was before this check).
func (s *Store) ownForwards(ctx context.Context, evs []recEvent, res []ledger.Appended) {
	seen := make(map[uuid.UUID]bool, len(evs))
	for i := range res {
		first := !seen[evs[i].id]
		seen[evs[i].id] = true
		if !first || !res[i].Duplicate {
			continue
		}
		var mine domain.Envelope
		if decodeEnvelope(evs[i].body, &mine, nil) != nil {
			continue
		}
		stored, err := s.Get(ctx, res[i].Position)
		if err != nil {
			continue
		}
		if stored.ID == mine.ID && stored.RecordedAt.Equal(mine.RecordedAt) && bytes.Equal(stored.Payload, mine.Payload) {
			res[i].Duplicate = false
		}
	}
}

// newRecordReq is a Record call of evs.
func newRecordReq(evs []recEvent) *recordReq {
	r := &recordReq{evs: evs, res: make([]ledger.Appended, len(evs)), done: make(chan struct{})}
	r.left.Store(int32(len(evs)))
	return r
}

// commit hands r to the committer and waits for its answer.
func (s *Store) commit(ctx context.Context, r *recordReq) ([]ledger.Appended, error) {
	// Before the lock: Close must not wait for a rebuild it is stopping.
	if err := s.dedupReady(ctx); err != nil {
		if s.isClosed() {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("record: %w", err)
	}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case s.recq <- r:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return nil, fmt.Errorf("record: %w", ctx.Err())
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("record: %w (events may have been stored; retry with the same ids)", ctx.Err())
	}
	if r.err != nil {
		return nil, fmt.Errorf("record: %w", r.err)
	}
	return r.res, nil
}

// slot is event i of request req.
type slot struct {
	req *recordReq
	i   int
}

// pack is one message on its way: events of one pack subject, or a single
// event of an unpacked kind on its aggregate's subject.
type pack struct {
	subject string
	packed  bool
	body    []byte // pack: "[" and the elements so far, without "]"
	ids     []uuid.UUID
	slots   []slot
	latest  int64 // the latest occurred_at of its events (Unix nanoseconds), for Nats-TTL
	// deadline is WriteTimeout after the pack was opened (its first caller
	// began to wait): a pack queued behind a stalled one does not start a
	// WriteTimeout of its own when its turn comes (its callers would wait
	// twice as long for their 503).
	deadline time.Time
	calls    int        // Record calls with events in the pack
	last     *recordReq // the call that added the last event
	group    *group     // the packs sent with this one
	slot     int        // in the dedup table's packs, while pending
	// dups are later copies of an event in this pack: they get its
	// position, flagged Duplicate. Guarded by the dedup table's lock.
	dups []dupSlot
	// removed are events a catch-up found stored by another pack
	// (chain.go), taken out before p is sent. Guarded by the same lock.
	removed []removal
}

// group is the packs sent together: the committer hears of it, with the
// most calls any of its packs answered, when the last one is settled.
type group struct {
	left  atomic.Int32
	calls atomic.Int32
}

type dupSlot struct {
	slot
	of int // index of the original in the pack
}

// gatherer holds what the committer has taken and not yet sent.
type gatherer struct {
	maxPack, maxBytes  int
	writeTimeout       time.Duration // Options.WriteTimeout, for each pack's deadline
	pass, alert, event *pack         // packs being filled
	singles            []*pack       // one-event messages
	ready              []*pack       // sealed, waiting to be sent, in order
	calls              int           // Record calls taken since the last seal
	lastBytes          int           // body size of the last pack sealed
}

// waiting reports whether events are gathered but not sealed.
func (g *gatherer) waiting() bool {
	return g.pass != nil || g.alert != nil || g.event != nil || len(g.singles) > 0
}

// seal moves every gathered message to the ready list: passes first, then
// the other packs, then one-event messages.
func (g *gatherer) seal() {
	if g.pass != nil {
		g.lastBytes = len(g.pass.body)
		g.ready = append(g.ready, g.pass)
		g.pass = nil
	}
	if g.alert != nil {
		g.ready = append(g.ready, g.alert)
		g.alert = nil
	}
	if g.event != nil {
		g.ready = append(g.ready, g.event)
		g.event = nil
	}
	g.ready = append(g.ready, g.singles...)
	g.singles = nil
	g.calls = 0
}

// packFor returns the message ev goes into, sealing a pack that is full. A
// new message gets a slot in t (whose lock the caller holds).
func (g *gatherer) packFor(t *dedupTable, ev *recEvent) *pack {
	if !ev.packed {
		p := &pack{subject: ev.subject, deadline: time.Now().Add(g.writeTimeout)}
		t.slotLocked(p)
		g.singles = append(g.singles, p)
		return p
	}
	cur := &g.event
	switch ev.subject {
	case packPassSubject:
		cur = &g.pass
	case packAlertSubject:
		cur = &g.alert
	}
	if p := *cur; p != nil && (len(p.ids) >= g.maxPack || len(p.body)+1+len(ev.body)+1 > g.maxBytes) {
		g.lastBytes = len(p.body)
		g.ready = append(g.ready, p)
		*cur = nil
	}
	if *cur == nil {
		// About the size of the last pack, so that a pack under load
		// is not copied over and over as it grows.
		size := 4 << 10
		if ev.subject == packPassSubject {
			size = min(g.maxBytes+1, max(64<<10, g.lastBytes+g.lastBytes/4))
		}
		*cur = &pack{subject: ev.subject, packed: true, body: appendPackStart(make([]byte, 0, size)), deadline: time.Now().Add(g.writeTimeout)}
		t.slotLocked(*cur)
	}
	return *cur
}

// take puts the events of r into packs. Events already stored are answered
// at once; copies of events in a pack not yet acknowledged wait for it.
func (g *gatherer) take(t *dedupTable, r *recordReq) {
	type knownSlot struct {
		slot
		pos uint64
	}
	var known []knownSlot
	joined := false
	t.mu.Lock()
	for i := range r.evs {
		ev := &r.evs[i]
		if v, ok := t.ids[ev.id]; ok {
			if v&pendingBit == 0 {
				known = append(known, knownSlot{slot{r, i}, v})
			} else {
				p, j := t.pendingPack(v)
				p.dups = append(p.dups, dupSlot{slot{r, i}, j})
			}
			continue
		}
		p := g.packFor(t, ev)
		t.ids[ev.id] = pendingRef(p.slot, len(p.ids))
		if p.packed {
			p.body = appendPackElem(p.body, len(p.ids) == 0, ev.body)
		} else {
			p.body = ev.body
		}
		p.ids = append(p.ids, ev.id)
		p.slots = append(p.slots, slot{r, i})
		if len(p.ids) == 1 || ev.at > p.latest {
			p.latest = ev.at
		}
		joined = true
		if p.last != r {
			p.calls++
			p.last = r
		}
	}
	t.mu.Unlock()
	if joined {
		g.calls++
	}
	for _, k := range known {
		k.req.settle(k.i, ledger.Appended{Position: k.pos, Duplicate: true}, nil)
	}
}

func (s *Store) commitLoop() {
	defer s.commitWG.Done()
	defer s.stopChains()
	g := gatherer{maxPack: s.o.MaxPack, maxBytes: s.packBytes, writeTimeout: s.o.WriteTimeout}
	var (
		inflight int
		closed   bool
		expired  bool // GroupCommitWait passed since the gather began
		target   = 1  // Record calls the last acknowledged group answered
		recq     = s.recq
		timer    = time.NewTimer(time.Hour)
		timerC   <-chan time.Time
	)
	timer.Stop()
	for {
		if g.waiting() && inflight < s.o.MaxInflight && (g.calls >= target || expired && inflight == 0 || closed) {
			g.seal()
			expired = false
			if timerC != nil {
				timer.Stop()
				timerC = nil
			}
		}
		if inflight < s.o.MaxInflight && len(g.ready) > 0 {
			grp := &group{}
			grp.left.Store(int32(len(g.ready)))
			for i, p := range g.ready {
				p.group = grp
				s.sendPack(p)
				g.ready[i] = nil
			}
			g.ready = g.ready[:0]
			inflight++
		}
		if closed && !g.waiting() && len(g.ready) == 0 && inflight == 0 {
			return
		}
		in := recq
		if len(g.ready) > 0 {
			in = nil // full packs wait for a slot: push back on callers
		}
		select {
		case r, ok := <-in:
			if !ok {
				closed, recq = true, nil
				continue
			}
			was := g.waiting()
			g.take(s.dedup, r)
			if !was && g.waiting() {
				if s.o.GroupCommitWait > 0 {
					timer.Reset(s.o.GroupCommitWait)
					timerC = timer.C
				} else {
					expired = true
				}
			}
		case <-timerC:
			timerC = nil
			expired = true
		case calls := <-s.acks:
			inflight--
			target = max(calls, 1)
		}
	}
}

// sendPack hands a pack to its subject's chain (chain.go) when other
// ledger replicas may write the same subjects, or publishes it (or a
// one-event message) and starts a goroutine that awaits its answer, so
// several packs are in flight at once. The caller counts p's group as in
// flight until its number of calls comes back on s.acks.
func (s *Store) sendPack(p *pack) {
	s.flights.Add(1)
	if s.o.Metrics != nil && p.packed {
		s.o.Metrics.PackSent(len(p.ids))
	}
	if p.packed && s.chains != nil {
		s.chains[p.subject].q <- p
		return
	}
	if s.expired(p) {
		return
	}
	h := make(nats.Header, 4)
	m := &nats.Msg{Subject: p.subject, Header: h}
	if p.packed {
		m.Data = appendPackEnd(p.body)
		h[hdrMsgID] = []string{uuid.NewString()}
		h[hdrPackCount] = []string{strconv.Itoa(len(p.ids))}
		if packExpires(p.subject) {
			h[hdrTTL] = []string{s.ttlOf(p.latest)}
		}
	} else {
		m.Data = p.body
		h[hdrMsgID] = []string{p.ids[0].String()}
	}
	// Publish now, in the committer's order, so the log holds the packs in
	// the order they were sealed; await the answer aside.
	ch, err := s.send(m)
	go s.awaitMessage(p, m, ch, err)
}

// expired settles p with ErrUnavailable, unsent, when it waited its whole
// WriteTimeout for its turn (behind a stalled group or chained pack), and
// reports whether it did.
func (s *Store) expired(p *pack) bool {
	if !time.Now().After(p.deadline) {
		return false
	}
	s.settlePack(p, 0, false, fmt.Errorf("%s: %w: waited %s behind earlier writes", p.subject, ErrUnavailable, s.o.WriteTimeout))
	return true
}

// send publishes m with a fresh reply subject.
func (s *Store) send(m *nats.Msg) (chan *nats.Msg, error) {
	reply, ch := s.replies.expect()
	m.Reply = reply
	if err := s.nc.PublishMsg(m); err != nil {
		s.replies.forget(reply)
		return nil, fmt.Errorf("publish: %w", err)
	}
	return ch, nil
}

// awaitMessage waits for the answer to m, p's message, first sent on first
// (or failed to send with sendErr): an attempt that gets no answer
// within AckTimeout is sent again with the same Nats-Msg-Id, so the server
// stores it once; answers that say nothing was stored (no stream leader
// yet, the same id being stored by another request) are retried too, until
// WriteTimeout (then ErrUnavailable). A pack that comes back as a duplicate
// is this pack stored by an earlier attempt: its positions stand.
func (s *Store) awaitMessage(p *pack, m *nats.Msg, first chan *nats.Msg, sendErr error) {
	deadline := p.deadline
	wait := 10 * time.Millisecond
	for {
		var (
			ack pubAck
			err error
		)
		switch {
		case first != nil:
			ack, err = s.answer(m, first, deadline)
			first = nil
		case sendErr != nil:
			err, sendErr = sendErr, nil
		default:
			ack, err = s.attempt(m, deadline)
		}
		if err == nil {
			s.settlePack(p, ack.Seq, ack.Duplicate && !p.packed, nil)
			return
		}
		if !transient(err) {
			s.settlePack(p, 0, false, fmt.Errorf("%s: %w", p.subject, err))
			return
		}
		if !s.retryPack(p, err, &wait, deadline) {
			return
		}
	}
}

// settlePack hands every caller of p its results, records p's events in the
// dedup table and, for the last pack of its group, frees the group's
// in-flight slot. serverDup is JetStream's
// duplicate flag for a one-event message.
func (s *Store) settlePack(p *pack, seq uint64, serverDup bool, err error) {
	t := s.dedup
	t.mu.Lock()
	t.settleLocked(p, seq, err != nil, time.Now())
	dups := p.dups
	p.dups = nil
	t.mu.Unlock()
	if err == nil {
		s.counts.put(seq, len(p.ids))
	}
	for j, sl := range p.slots {
		sl.req.settle(sl.i, ledger.Appended{Position: PositionOf(seq, j), Duplicate: serverDup}, err)
	}
	for _, d := range dups {
		d.req.settle(d.i, ledger.Appended{Position: PositionOf(seq, d.of), Duplicate: true}, err)
	}
	grp := p.group
	for {
		c := grp.calls.Load()
		if int32(p.calls) <= c || grp.calls.CompareAndSwap(c, int32(p.calls)) {
			break
		}
	}
	if grp.left.Add(-1) == 0 {
		s.acks <- int(grp.calls.Load())
	}
	s.flights.Done()
}

// countCache remembers how many events the last messages this store wrote
// hold, so LastPosition needs no read of a large pack.
type countCache struct {
	mu sync.Mutex
	e  [64]struct {
		seq uint64
		n   int
	}
}

func (c *countCache) put(seq uint64, n int) {
	c.mu.Lock()
	c.e[seq%uint64(len(c.e))] = struct {
		seq uint64
		n   int
	}{seq, n}
	c.mu.Unlock()
}

func (c *countCache) get(seq uint64) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.e[seq%uint64(len(c.e))]
	return e.n, e.seq == seq && seq != 0
}
