package eventstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Group commit.
//
// Record hands its prepared messages to one committer goroutine
// (commitLoop). The committer gathers what callers hand it for up to
// GroupCommitWait or until MaxBatch events, waits for a free in-flight slot
// (topping the batch up with whatever arrived meanwhile), and publishes the
// batch as one JetStream atomic batch: every message on its own subject with
// its own Nats-Msg-Id, the last one carrying the commit header and a reply
// subject. The server stores the whole batch with one fsync and answers with
// the last sequence; the batch's events sit at consecutive positions. A
// goroutine per batch in flight awaits that answer and hands every caller its
// results. Publishing happens on the committer only, so batches reach the
// server, and are stored, in the order they were gathered.

// recordReq is one Record call.
type recordReq struct {
	msgs []*nats.Msg
	res  []domain.Appended
	left atomic.Int32
	mu   sync.Mutex
	err  error
	done chan struct{}
}

func (r *recordReq) settle(i int, a domain.Appended, err error) {
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

// Record appends events with no version check, gathered with the events of
// other concurrent callers into one atomic batch, so that many events share
// one fsync (group commit). It returns after the server acknowledged them
// durably, with one result per event in order; an event whose id is already
// stored is reported as Duplicate with its original position.
//
// When ctx ends before the answer, the events may or may not be stored:
// retry with the same event ids.
func (s *Store) Record(ctx context.Context, events ...domain.Envelope) ([]domain.Appended, error) {
	if len(events) == 0 {
		return nil, nil
	}
	r := &recordReq{
		msgs: make([]*nats.Msg, len(events)),
		res:  make([]domain.Appended, len(events)),
		done: make(chan struct{}),
	}
	for i, e := range events {
		m, err := s.prepare(e)
		if err != nil {
			return nil, fmt.Errorf("record event %d (%s): %w", i, e.ID, err)
		}
		r.msgs[i] = m
	}
	r.left.Store(int32(len(events)))

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

// slot is one message of a batch: event i of request req.
type slot struct {
	req *recordReq
	i   int
}

// batch is what the committer gathered.
type batch struct {
	msgs  []*nats.Msg
	slots []slot
	index map[string]int // msg id → index in msgs
	// dups are events whose id already is in this batch: they get the
	// position of that one (index), flagged Duplicate.
	dups []dupSlot
}

type dupSlot struct {
	slot
	of int
}

func (b *batch) size() int { return len(b.msgs) + len(b.dups) }

// add takes events of r from index from on, up to max events in the batch;
// it returns the index of the first event not taken.
func (b *batch) add(r *recordReq, from, max int) int {
	for i := from; i < len(r.msgs); i++ {
		if b.size() >= max {
			return i
		}
		m := r.msgs[i]
		id := m.Header.Get(hdrMsgID)
		if j, ok := b.index[id]; ok {
			b.dups = append(b.dups, dupSlot{slot{r, i}, j})
			continue
		}
		b.index[id] = len(b.msgs)
		b.msgs = append(b.msgs, m)
		b.slots = append(b.slots, slot{r, i})
	}
	return len(r.msgs)
}

func (s *Store) commitLoop() {
	defer s.commitWG.Done()
	var (
		carry  *recordReq // request partly taken into the previous batch
		from   int
		closed bool
		timer  = time.NewTimer(time.Hour)
	)
	timer.Stop()
	max := s.o.MaxBatch
	take := func(b *batch, r *recordReq) {
		if n := b.add(r, from, max); n < len(r.msgs) {
			carry, from = r, n
		} else {
			carry, from = nil, 0
		}
	}
	for {
		b := &batch{index: make(map[string]int, 64)}
		if carry != nil {
			take(b, carry)
		} else if !closed {
			r, ok := <-s.recq
			if !ok {
				return
			}
			take(b, r)
		}
		if b.size() == 0 {
			return
		}
		// Gather for up to GroupCommitWait.
		if carry == nil && !closed && s.o.GroupCommitWait > 0 {
			timer.Reset(s.o.GroupCommitWait)
		gather:
			for carry == nil && b.size() < max {
				select {
				case r, ok := <-s.recq:
					if !ok {
						closed = true
						break gather
					}
					take(b, r)
				case <-timer.C:
					break gather
				}
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		// Wait for a slot, then top up with what queued meanwhile.
		s.slots <- struct{}{}
	topUp:
		for carry == nil && !closed && b.size() < max {
			select {
			case r, ok := <-s.recq:
				if !ok {
					closed = true
					break topUp
				}
				take(b, r)
			default:
				break topUp
			}
		}
		s.flights.Add(1)
		s.sendBatch(b, 0)
	}
}

// sendBatch publishes b and starts a goroutine that awaits its answer. The
// caller holds an in-flight slot, released when b is settled.
func (s *Store) sendBatch(b *batch, attempt int) {
	n := len(b.msgs)
	if n < s.o.MinBatch || n == 1 {
		// Cheaper one by one: see MinBatch. Sent here, so batches reach
		// the server in order; awaited elsewhere.
		await := s.sendEach(b.msgs)
		go func() { s.settleBatch(b, await(), nil) }()
		return
	}
	reply, ch := s.replies.expect()
	id := nuid.Next()
	var err error
	for i, m := range b.msgs {
		m.Header[hdrBatchID] = []string{id}
		m.Header[hdrBatchSeq] = []string{strconv.Itoa(i + 1)}
		if i == n-1 {
			m.Header[hdrBatchCommit] = []string{"1"}
			m.Reply = reply
		}
		if err = s.nc.PublishMsg(m); err != nil {
			break
		}
	}
	if err != nil {
		s.replies.forget(reply)
		s.settleBatch(b, nil, fmt.Errorf("publish batch: %w", err))
		return
	}
	go s.awaitBatch(b, reply, ch, attempt)
}

func (s *Store) awaitBatch(b *batch, reply string, ch chan *nats.Msg, attempt int) {
	t := time.NewTimer(requestTimeout)
	defer t.Stop()
	var msg *nats.Msg
	select {
	case msg = <-ch:
	case <-t.C:
		s.replies.forget(reply)
		s.settleBatch(b, nil, fmt.Errorf("batch of %d events: no answer within %s", len(b.msgs), requestTimeout))
		return
	}
	ack, err := parseAck(msg)
	if err == nil {
		n := len(b.msgs)
		if ack.Count != n {
			s.settleBatch(b, nil, fmt.Errorf("batch of %d events acknowledged as %d", n, ack.Count))
			return
		}
		s.settleBatch(b, consecutive(ack.Seq, n), nil)
		return
	}
	switch apiCode(err) {
	case errCodeBatchContainsDup:
		// Some event was stored before: the atomic batch refuses as a
		// whole. Publish its events one by one; each gets its own answer.
		s.settleBatch(b, s.publishEach(b.msgs), nil)
		return
	case errCodeBatchIncomplete, errCodeBatchTooManyInflight, errCodeDuplicateInProcess:
		// Nothing was stored: try again, a few times.
		if attempt < 3 {
			s.log.Warn("group commit batch retried", "events", len(b.msgs), "attempt", attempt+1, "err", err)
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			s.sendBatch(b, attempt+1)
			return
		}
	}
	s.settleBatch(b, nil, fmt.Errorf("batch of %d events: %w", len(b.msgs), err))
}

// resultErr is the outcome of one message published on its own.
type resultErr struct {
	a   domain.Appended
	err error
}

// publishEach publishes msgs one at a time (all sent, then all awaited),
// without batch headers, and returns each one's outcome.
func (s *Store) publishEach(msgs []*nats.Msg) []resultErr {
	return s.sendEach(msgs)()
}

// sendEach sends msgs one by one, without batch headers, and returns the
// function that awaits their answers.
func (s *Store) sendEach(msgs []*nats.Msg) (await func() []resultErr) {
	out := make([]resultErr, len(msgs))
	chans := make([]chan *nats.Msg, len(msgs))
	for i, m := range msgs {
		delete(m.Header, hdrBatchID)
		delete(m.Header, hdrBatchSeq)
		delete(m.Header, hdrBatchCommit)
		chans[i], out[i].err = s.send(m)
	}
	return func() []resultErr {
		deadline := time.Now().Add(requestTimeout)
		for i := range msgs {
			if out[i].err == nil {
				out[i] = s.awaitOne(msgs[i], chans[i], deadline)
			}
		}
		return out
	}
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

// awaitOne waits for the answer to m, sent on its own.
func (s *Store) awaitOne(m *nats.Msg, ch chan *nats.Msg, deadline time.Time) resultErr {
	for attempt := 0; ; attempt++ {
		t := time.NewTimer(time.Until(deadline))
		select {
		case reply := <-ch:
			t.Stop()
			ack, err := parseAck(reply)
			if apiCode(err) == errCodeDuplicateInProcess && attempt < 3 {
				// Clustered: the same id is being stored by another
				// batch right now. Ask again shortly.
				time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
				if ch, err = s.send(m); err != nil {
					return resultErr{err: err}
				}
				continue
			}
			return resultErr{domain.Appended{Position: ack.Seq, Duplicate: ack.Duplicate}, err}
		case <-t.C:
			s.replies.forget(m.Reply)
			return resultErr{err: fmt.Errorf("no answer within %s", requestTimeout)}
		}
	}
}

// settleBatch hands every caller of b its results and frees the slot. res
// is one of nil (err for all), []domain.Appended or []resultErr, in the
// order of b.msgs.
func (s *Store) settleBatch(b *batch, res any, err error) {
	outcome := func(j int) (domain.Appended, error) {
		switch r := res.(type) {
		case []domain.Appended:
			return r[j], nil
		case []resultErr:
			return r[j].a, r[j].err
		}
		return domain.Appended{}, err
	}
	for j, sl := range b.slots {
		a, e := outcome(j)
		sl.req.settle(sl.i, a, e)
	}
	for _, d := range b.dups {
		a, e := outcome(d.of)
		a.Duplicate = true
		d.req.settle(d.i, a, e)
	}
	<-s.slots
	s.flights.Done()
}
