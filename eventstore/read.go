package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/internal/jsonscan"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// deliverBatch is the most events handed to fn at once.
	deliverBatch = 1000
	// pullBytes is how many bytes of messages a scan's consumer asks for
	// at a time: enough to keep the server busy while fn runs, and well
	// under the 64 MB a subscription may hold before the client drops
	// messages as a slow consumer (a pack is up to 8 MB; counting
	// messages instead would let a few thousand packs overflow it).
	pullBytes = 24 << 20
	// pullHeaders is how many headers-only messages CountAfter asks for
	// at a time.
	pullHeaders = 4096
	// consumerInactive is how long the server keeps a scan's consumer
	// after its reader went away without deleting it.
	consumerInactive = 30 * time.Second

	// quietCheck is how long a bounded scan waits on a consumer that has
	// delivered everything it has, short of the scan's end, before it asks
	// the leader whether that end is still there.
	quietCheck = 250 * time.Millisecond
)

// Load returns one aggregate's events in order and its version: the position
// of its last event, 0 when it has none.
//
// An aggregate of a kind written by Append (person, venue, declaration) is
// walked with "next message on subject" gets answered by the stream leader,
// one request per event: such aggregates hold a handful of events, and a
// leader read never misses an event acknowledged before Load was called (a
// replica's direct get could). An aggregate of a packed kind (pass, alert,
// health, audit) has no subject of its own: Load returns what Read gives for
// it, and the version is just the position of its last event (Record does
// not check versions).
func (s *Store) Load(ctx context.Context, aggregate string) ([]domain.Envelope, uint64, error) {
	subj, packed, err := s.aggregateSubject(aggregate)
	if err != nil {
		return nil, 0, fmt.Errorf("load: %w", err)
	}
	if packed {
		var out []domain.Envelope
		if err := s.Read(ctx, aggregate, 0, func(evs []domain.Envelope) error {
			out = append(out, evs...)
			return nil
		}); err != nil {
			return nil, 0, fmt.Errorf("load %s: %w", aggregate, err)
		}
		if len(out) == 0 {
			return nil, 0, nil
		}
		return out, out[len(out)-1].Position, nil
	}
	out, err := s.loadFrom(ctx, subj, 1)
	if err != nil || len(out) == 0 {
		return nil, 0, err
	}
	return out, out[len(out)-1].Position, nil
}

// aggregateSubject returns aggregate's subject, and whether its kind is
// packed (its events are in packs, on no subject of their own); ErrClosed
// on a closed store.
func (s *Store) aggregateSubject(aggregate string) (subj string, packed bool, err error) {
	if s.isClosed() {
		return "", false, ErrClosed
	}
	if subj, err = subject(aggregate); err != nil {
		return "", false, err
	}
	return subj, packSubjectOf(domain.AggregateKind(aggregate)) != "", nil
}

// loadFrom returns the events on subject subj from stream sequence seq on,
// one leader read each.
func (s *Store) loadFrom(ctx context.Context, subj string, seq uint64) ([]domain.Envelope, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var out []domain.Envelope
	for {
		m, err := s.getMsg(ctx, s.stream, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("load %s: get from %d: %w", subj, seq, err)
		}
		e, err := envelopeOf(m)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", subj, err)
		}
		out = append(out, e)
		seq = m.Sequence + 1
	}
	return out, nil
}

// envelopeOf decodes m, a message of one event (an Append's), at its
// position.
func envelopeOf(m *jetstream.RawStreamMsg) (domain.Envelope, error) {
	var e domain.Envelope
	if err := decodeEnvelope(m.Data, &e, nil); err != nil {
		return e, fmt.Errorf("position %d: %w", PositionOf(m.Sequence, 0), err)
	}
	e.Position = PositionOf(m.Sequence, 0)
	return e, nil
}

// selection is what a scan reads: the subjects the server filters on (all
// when empty) and, for packs and for plain messages when plain is set, the
// pattern their aggregates must match in Go (all when nil).
type selection struct {
	subjects []string
	match    pattern
	plain    bool
}

// selectFilter turns a Read filter into a selection. A filter over a packed
// kind reads that kind's own subjects and its pack subject, and picks the
// matching events out of the packs; a filter whose kind is a wildcard reads
// the whole log and matches every event.
func selectFilter(filter string) (selection, error) {
	if err := checkTokens(filter, true); err != nil {
		return selection{}, err
	}
	kind := domain.AggregateKind(filter)
	switch kind {
	case packKind:
		return selection{}, fmt.Errorf("kind %q is the store's own", packKind)
	case "*", ">":
		return selection{match: newPattern(filter), plain: true}, nil
	}
	sel := selection{subjects: []string{SubjectPrefix + filter}}
	if ps := packSubjectOf(kind); ps != "" {
		sel.subjects = append(sel.subjects, ps)
		sel.match = newPattern(filter)
	}
	return sel, nil
}

// Read delivers the events whose aggregate matches filter (NATS wildcards
// over aggregate names: "pass.*.<person>", "venue.>") with position > from,
// in order and in batches, up to the end of the log when Read was called.
//
// Filters over packed kinds (pass, alert, health, audit) read every pack of
// that kind and match the aggregates in Go: reading one person's passes
// costs a scan of all stored passes.
func (s *Store) Read(ctx context.Context, filter string, from uint64, fn func([]domain.Envelope) error) error {
	sel, err := selectFilter(filter)
	if err != nil {
		return fmt.Errorf("read: %w", domain.Invalid("filter", "%q: %v", filter, err))
	}
	if s.isClosed() {
		return ErrClosed
	}
	last, err := s.lastOf(ctx, sel)
	if err != nil {
		return fmt.Errorf("read %s: %w", filter, err)
	}
	if fromSeq, _ := SeqOf(from); last < fromSeq || last == 0 {
		return nil
	}
	if err := s.scan(ctx, sel, from, true, last, fn); err != nil {
		return fmt.Errorf("read %s: %w", filter, err)
	}
	return nil
}

// ReadPassesOf implements ledger.Log: it delivers the events of personID's
// pass aggregates (domain.PassAggregate(venue, personID), any venue) with
// position > from, as Read does for the filter "pass.*.<person>": a scan of
// every stored pack of passes.
func (s *Store) ReadPassesOf(ctx context.Context, personID uuid.UUID, from uint64, fn func([]domain.Envelope) error) error {
	return s.Read(ctx, domain.KindPass+".*."+personID.String(), from, fn)
}

// Follow delivers every event with position > from, in order and in batches
// (about 1000 events, or what is there when the log's end is reached; the
// events of one pack always in one batch, so a reader that checkpoints after
// each batch never stops inside a pack), first from history and then live,
// with no gap and no duplicate, until ctx ends (its error is returned), fn
// returns an error (returned as is) or the store is closed (ErrClosed). fn is
// called from one goroutine at a time and never after Follow returned; it
// may keep the slice.
//
// from may be any position, also one inside a pack: Follow resumes with the
// event right after it.
func (s *Store) Follow(ctx context.Context, from uint64, fn func([]domain.Envelope) error) error {
	return s.scan(ctx, selection{}, from, false, 0, fn)
}

// errStop ends a scan or a walk without an error.
var errStop = errors.New("stop")

// scan runs an ordered consumer over sel from position from+1. Bounded, it
// ends after the last matching message at or before stream sequence upTo;
// unbounded, it follows the log until ctx ends or fn fails.
func (s *Store) scan(ctx context.Context, sel selection, from uint64, bounded bool, upTo uint64, fn func([]domain.Envelope) error) error {
	if s.isClosed() {
		return ErrClosed
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: sel.subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		// Deleted at the end of the scan; this bounds what a crashed
		// process leaves behind (the server allows 1,000 consumers per
		// stream).
		InactiveThreshold: consumerInactive,
	}
	// The message holding position from may have events after it.
	if fromSeq, _ := SeqOf(from); fromSeq > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = fromSeq
	}
	cons, err := s.orderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("ordered consumer: %w", err)
	}
	defer s.deleteConsumer(cons)

	var (
		mu      sync.Mutex // held while the handler runs
		stopped atomic.Bool
		done    = make(chan error, 1)
		last    = from    // position of the last event handled
		seen    uint64    // stream sequence of the last message handled
		heard   time.Time // when the last message was handled (or the scan began)
		buf     []domain.Envelope
		in      = make(interner)
	)
	if fromSeq, _ := SeqOf(from); fromSeq > 0 {
		seen = fromSeq - 1
	}
	follow := !bounded && sel.subjects == nil // the whole log: absorb its packs
	heard = time.Now()
	finish := func(err error) {
		if stopped.CompareAndSwap(false, true) {
			done <- err
		}
	}
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		evs := buf
		buf = nil
		return fn(evs)
	}
	handler := func(msg jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if stopped.Load() {
			return
		}
		meta, err := msg.Metadata()
		if err != nil {
			finish(fmt.Errorf("message metadata: %w", err))
			return
		}
		seq := meta.Sequence.Stream
		if lastSeq, _ := SeqOf(last); seq < lastSeq {
			return // redelivered after a consumer reset
		}
		seen = seq
		if bounded {
			defer func() { heard = time.Now() }() // after fn: a slow reader is no quiet consumer
		}
		if bounded && seq > upTo {
			finish(flush())
			return
		}
		if buf == nil {
			// About a batch: a pack's events, or messages still pending.
			n := 1
			if c, err := strconv.Atoi(msg.Headers().Get(hdrPackCount)); err == nil && c > 0 {
				n = c
			}
			if sel.match != nil {
				n = 16 // few of a pack's events may match
			}
			buf = make([]domain.Envelope, 0, max(n, min(deliverBatch, n*(int(meta.NumPending)+1))))
		}
		var n int
		before := len(buf)
		if buf, n, err = decodeMsg(msg, seq, sel, last, buf, in); err != nil {
			finish(err)
			return
		}
		if follow {
			s.absorbFollowed(msg, seq, meta.Timestamp, buf[before:])
		}
		if p := PositionOf(seq, n-1); p > last {
			last = p
		}
		// A bounded scan ends at upTo, never on NumPending alone: the
		// consumer sits on one replica, which may not have all that
		// the leader acknowledged yet (its pending count is its own).
		end := bounded && seq >= upTo
		if len(buf) >= deliverBatch || meta.NumPending == 0 || end {
			if err := flush(); err != nil {
				finish(err)
				return
			}
		}
		if end {
			finish(nil)
		}
	}
	cc, err := cons.Consume(handler,
		jetstream.PullMaxBytes(pullBytes),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConsumerNotFound) && s.isClosed() {
				finish(ErrClosed)
				return
			}
			s.log.Debug("ordered consumer", "subjects", sel.subjects, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	// A bounded scan whose consumer has delivered nothing for quietCheck,
	// short of upTo, asks the leader again: upTo may have expired or been
	// retired since (a replica that lags catches up on its own, and is
	// only waited for). A scan that is delivering asks nothing.
	var check <-chan time.Time
	if bounded {
		t := time.NewTicker(quietCheck)
		defer t.Stop()
		check = t.C
	}
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-ctx.Done():
			stopped.Store(true)
			err = ctx.Err()
			break wait
		case <-s.done:
			stopped.Store(true)
			err = ErrClosed
			break wait
		case <-check:
			mu.Lock()
			since, at := heard, seen
			mu.Unlock()
			if time.Since(since) < quietCheck || at >= upTo {
				continue
			}
			now, lerr := s.lastOf(ctx, sel)
			mu.Lock()
			switch {
			case lerr != nil:
				finish(lerr)
			case now <= seen:
				finish(flush())
			}
			mu.Unlock()
		}
	}
	cc.Stop()
	// Wait until a handler that is running has returned, so fn is never
	// called after scan returns.
	mu.Lock()
	mu.Unlock() //nolint:staticcheck // empty critical section: a barrier
	return err
}

// absorbFollowed hands a pack delivered to a follower of the whole log to
// its chain (absorb), so that the chain's known stays current while other
// replicas write. evs are its events as decoded (all of them but where a
// follower started inside the pack: then its ids are read again).
func (s *Store) absorbFollowed(msg jetstream.Msg, seq uint64, at time.Time, evs []domain.Envelope) {
	select {
	case <-s.dedupDone: // chains are set, or will never be
	default:
		return
	}
	c := s.chains[msg.Subject()]
	if c == nil || seq <= c.expect() {
		return // not a pack, or absorbed already (by another follower, or the chain's own write)
	}
	var (
		ids = make([]uuid.UUID, 0, len(evs))
		err error
	)
	if count := countHeader(msg.Headers()); count == int64(len(evs)) {
		for i := range evs {
			ids = append(ids, evs[i].ID)
		}
	} else if ids, err = packIDs(msg.Data()); err != nil {
		return // the follower's own decode reports it
	}
	s.absorb(c, seq, at, msg.Headers().Get(hdrMsgID), ids, false)
}

// decodeMsg appends the events of the message at seq that sel selects and
// that lie after position after to buf; n is the number of events the
// message holds.
func decodeMsg(msg jetstream.Msg, seq uint64, sel selection, after uint64, buf []domain.Envelope, in interner) (_ []domain.Envelope, n int, _ error) {
	subj := msg.Subject()
	if !isPackSubject(subj) {
		pos := PositionOf(seq, 0)
		if pos <= after || sel.plain && !sel.match.match(subj[len(SubjectPrefix):]) {
			return buf, 1, nil
		}
		buf = append(buf, domain.Envelope{})
		e := &buf[len(buf)-1]
		if err := decodeEnvelope(msg.Data(), e, in); err != nil {
			return buf, 1, fmt.Errorf("position %d (%s): %w", pos, subj, err)
		}
		e.Position = pos
		return buf, 1, nil
	}
	n, err := walkPack(msg.Data(), func(i int, d *scanner) error {
		pos := PositionOf(seq, i)
		if pos <= after {
			return skipElem(d)
		}
		if sel.match != nil {
			if agg, ok := d.peekString("aggregate"); ok {
				if !matchTokens(sel.match, agg) {
					return skipElem(d)
				}
				// Matches: decode below.
			} else {
				// Odd element: decode it and match what it says.
				var e domain.Envelope
				if err := decodeAt(d, &e, in); err != nil {
					return fmt.Errorf("position %d (%s): %w", pos, subj, err)
				}
				if sel.match.match(e.Aggregate) {
					e.Position = pos
					buf = append(buf, e)
				}
				return nil
			}
		}
		buf = append(buf, domain.Envelope{})
		e := &buf[len(buf)-1]
		if err := decodeAt(d, e, in); err != nil {
			return fmt.Errorf("position %d (%s): %w", pos, subj, err)
		}
		e.Position = pos
		return nil
	})
	return buf, max(n, 1), err
}

// skipElem moves d past a pack element.
func skipElem(d *scanner) error {
	if !d.skipValue() {
		return fmt.Errorf("%w: malformed pack element", ErrNotEnvelope)
	}
	return nil
}

// orderedConsumer creates an ordered consumer of the stream with cfg,
// within the store's timeout; deleteConsumer removes it.
func (s *Store) orderedConsumer(ctx context.Context, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	return s.js.OrderedConsumer(ctx, StreamName, cfg)
}

// deleteConsumer removes a scan's consumer (the ordered consumer only
// deletes the ones it replaces).
func (s *Store) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil || s.nc.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.js.DeleteConsumer(ctx, StreamName, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		s.log.Debug("delete consumer", "consumer", info.Name, "err", err)
	}
}

// Get returns the event at a position; domain.ErrNotFound when there is none
// (never written, or a pass past its retention).
func (s *Store) Get(ctx context.Context, position uint64) (domain.Envelope, error) {
	if s.isClosed() {
		return domain.Envelope{}, ErrClosed
	}
	seq, index := SeqOf(position)
	if seq == 0 {
		return domain.Envelope{}, fmt.Errorf("get position %d: %w", position, domain.ErrNotFound)
	}
	m, elems, ok := s.recent.get(seq, time.Now())
	if !ok {
		ctx, cancel := withTimeout(ctx)
		defer cancel()
		var err error
		if m, err = s.getMsg(ctx, s.stream, seq); err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return domain.Envelope{}, fmt.Errorf("get position %d: %w", position, domain.ErrNotFound)
			}
			return domain.Envelope{}, fmt.Errorf("get position %d: %w", position, err)
		}
		s.gets.Add(1)
		if isPackSubject(m.Subject) {
			if elems, err = packElems(m.Data); err != nil {
				return domain.Envelope{}, fmt.Errorf("get position %d (%s): %w", position, m.Subject, err)
			}
		}
		s.recent.put(m, elems, time.Now())
	}
	var e domain.Envelope
	if !isPackSubject(m.Subject) {
		if index != 0 {
			return domain.Envelope{}, fmt.Errorf("get position %d: %w", position, domain.ErrNotFound)
		}
		if err := decodeEnvelope(m.Data, &e, nil); err != nil {
			return domain.Envelope{}, fmt.Errorf("get position %d (%s): %w", position, m.Subject, err)
		}
		e.Position, e.Payload = position, bytes.Clone(e.Payload) // m is shared (recent)
		return e, nil
	}
	if index >= len(elems) {
		return domain.Envelope{}, fmt.Errorf("get position %d: %w", position, domain.ErrNotFound)
	}
	if err := decodeAt(&scanner{jsonscan.Scanner{B: m.Data, I: elems[index]}}, &e, nil); err != nil {
		return domain.Envelope{}, fmt.Errorf("get position %d (%s): %w", position, m.Subject, err)
	}
	// The payload aliases m, which later Gets share (recent): a caller's
	// copy is its own, as when each Get read its message.
	e.Position, e.Payload = position, bytes.Clone(e.Payload)
	return e, nil
}

// packElems returns where each element of a pack body starts: Get decodes
// the one it asks for from there, so the Gets of a batch's events (a
// thousand in one pack) walk the pack once, not once each.
func packElems(body []byte) ([]int, error) {
	var elems []int
	_, err := walkPack(body, func(_ int, d *scanner) error {
		elems = append(elems, d.I)
		return skipElem(d)
	})
	return elems, err
}

// LastPosition returns the position of the newest event in the log (0 when
// it is empty): the last event of the stream's last message.
func (s *Store) LastPosition(ctx context.Context) (uint64, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	last, err := s.lastSeq(ctx)
	if err != nil || last == 0 {
		return 0, err
	}
	n, err := s.countAt(ctx, last)
	if err != nil {
		return 0, fmt.Errorf("last position: %w", err)
	}
	return PositionOf(last, max(n, 1)-1), nil
}

// lastOf returns the stream sequence of the last message sel reads (0 when
// there is none), from the stream's leader: a bounded scan's end.
func (s *Store) lastOf(ctx context.Context, sel selection) (uint64, error) {
	if len(sel.subjects) == 0 {
		return s.lastSeq(ctx)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var last uint64
	for _, subj := range sel.subjects {
		m, err := s.lastMsg(ctx, subj)
		switch {
		case err == nil:
			last = max(last, m.Sequence)
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return 0, fmt.Errorf("last message on %s: %w", subj, err)
		}
	}
	return last, nil
}

// lastSeq returns the stream's last sequence.
func (s *Store) lastSeq(ctx context.Context) (uint64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := s.streamInfo(ctx, s.stream)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// countAt returns the number of events in the message at seq (0 when it is
// gone), from the cache of messages this store wrote or the message itself.
func (s *Store) countAt(ctx context.Context, seq uint64) (int, error) {
	if n, ok := s.counts.get(seq); ok {
		return n, nil
	}
	m, err := s.getMsg(ctx, s.stream, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get %d: %w", seq, err)
	}
	n := 1
	if isPackSubject(m.Subject) {
		if n, err = strconv.Atoi(m.Header.Get(hdrPackCount)); err != nil || n < 1 {
			if n, err = walkPack(m.Data, func(_ int, d *scanner) error { return skipElem(d) }); err != nil {
				return 0, fmt.Errorf("pack at %d: %w", seq, err)
			}
		}
	}
	s.counts.put(seq, n)
	return n, nil
}

// CountAfter returns the number of events with a position after position:
// the lag, in events, of a reader that has handled everything up to
// position. One-event messages count 1, packs their Ledger-Pack-Count (read
// through a headers-only consumer over the packs). While events are being
// written the answer may miss the events of packs stored during the call.
func (s *Store) CountAfter(ctx context.Context, position uint64) (uint64, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	seq, index := SeqOf(position)
	rctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := s.streamInfo(rctx, s.stream)
	if err != nil {
		return 0, fmt.Errorf("count after %d: stream info: %w", position, err)
	}
	last := info.State.LastSeq
	if last == 0 || seq > last {
		return 0, nil
	}
	var total uint64
	// The rest of the message holding position.
	if seq > 0 {
		n, err := s.countAt(rctx, seq)
		if err != nil {
			return 0, fmt.Errorf("count after %d: %w", position, err)
		}
		if n-1 > index {
			total += uint64(n - 1 - index)
		}
	}
	if seq == last {
		return total, nil
	}
	// Every message after seq counts 1 ...
	start := func(c *jetstream.OrderedConsumerConfig) {
		c.HeadersOnly = true
		c.InactiveThreshold = consumerInactive
		if seq > 0 {
			c.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			c.OptStartSeq = seq + 1
		}
	}
	packs := jetstream.OrderedConsumerConfig{FilterSubjects: []string{packSubjects}}
	start(&packs)
	pc, err := s.js.OrderedConsumer(rctx, StreamName, packs)
	if err != nil {
		return 0, fmt.Errorf("count after %d: consumer: %w", position, err)
	}
	defer s.deleteConsumer(pc)
	var k uint64
	if ci := pc.CachedInfo(); ci != nil {
		k = ci.NumPending
	}
	msgs := info.State.Msgs
	if seq >= info.State.FirstSeq {
		var all jetstream.OrderedConsumerConfig
		start(&all)
		ac, err := s.js.OrderedConsumer(rctx, StreamName, all)
		if err != nil {
			return 0, fmt.Errorf("count after %d: consumer: %w", position, err)
		}
		if ci := ac.CachedInfo(); ci != nil {
			msgs = ci.NumPending
		}
		s.deleteConsumer(ac)
	}
	total += msgs
	// ... and a pack its count: add count-1 for each of the k packs.
	if k == 0 {
		return total, nil
	}
	extra, err := s.sumPackCounts(ctx, pc, k)
	if err != nil {
		return 0, fmt.Errorf("count after %d: %w", position, err)
	}
	return total + extra, nil
}

// sumPackCounts reads the first k messages of a headers-only consumer over
// the packs and returns the sum of their counts minus one each.
func (s *Store) sumPackCounts(ctx context.Context, cons jetstream.Consumer, k uint64) (uint64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	it, err := cons.Messages(jetstream.PullMaxMessages(pullHeaders))
	if err != nil {
		return 0, fmt.Errorf("consume: %w", err)
	}
	defer it.Stop()
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	var extra uint64
	for seen := uint64(0); seen < k; seen++ {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("pack headers: %w", err)
		}
		n, err := strconv.Atoi(msg.Headers().Get(hdrPackCount))
		if err != nil || n < 1 {
			return 0, fmt.Errorf("pack %s: bad %s header %q", msg.Subject(), hdrPackCount, msg.Headers().Get(hdrPackCount))
		}
		extra += uint64(n - 1)
	}
	return extra, nil
}

// getMsg reads one message of st from its leader, through a failover: an
// attempt that meets no leader is tried again (untilAnswered), and past
// WriteTimeout the error wraps ErrUnavailable (a 503 to the caller, not a
// 500). jetstream.ErrMsgNotFound comes back at once.
func (s *Store) getMsg(ctx context.Context, st jetstream.Stream, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	var m *jetstream.RawStreamMsg
	err := s.untilAnswered(ctx, func(ctx context.Context) (err error) {
		m, err = st.GetMsg(ctx, seq, opts...)
		return err
	})
	return m, err
}

// lastMsg reads the last message on subj from the stream's leader, through
// a failover as getMsg does; jetstream.ErrMsgNotFound when there is none.
func (s *Store) lastMsg(ctx context.Context, subj string) (*jetstream.RawStreamMsg, error) {
	var m *jetstream.RawStreamMsg
	err := s.untilAnswered(ctx, func(ctx context.Context) (err error) {
		m, err = s.stream.GetLastMsgForSubject(ctx, subj)
		return err
	})
	return m, err
}

// streamInfo reads st's state from its leader, through a failover as
// getMsg does.
func (s *Store) streamInfo(ctx context.Context, st jetstream.Stream) (*jetstream.StreamInfo, error) {
	var info *jetstream.StreamInfo
	err := s.untilAnswered(ctx, func(ctx context.Context) (err error) {
		info, err = st.Info(ctx)
		return err
	})
	return info, err
}

// recentMsgs keeps the last few messages Get read, for a second
// (recentFor): Gets of many events of one pack come together (the
// originals of a batch that lost a race to another replica, read one by
// one: 6 s for 1,000 through a cluster when each was a read of the
// stream), and a pack holds up to thousands of events. A message never
// changes once stored; it is kept this briefly so that one retention
// removed is not served much longer.
type recentMsgs struct {
	mu   sync.Mutex
	msgs [4]recentMsg
	next int
}

type recentMsg struct {
	m     *jetstream.RawStreamMsg
	elems []int // a pack's element offsets (packElems); nil for one event
	at    time.Time
}

const recentFor = time.Second

func (r *recentMsgs) get(seq uint64, now time.Time) (*jetstream.RawStreamMsg, []int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.msgs {
		if e.m != nil && e.m.Sequence == seq && now.Sub(e.at) < recentFor {
			return e.m, e.elems, true
		}
	}
	return nil, nil, false
}

func (r *recentMsgs) put(m *jetstream.RawStreamMsg, elems []int, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs[r.next] = recentMsg{m, elems, now}
	r.next = (r.next + 1) % len(r.msgs)
}
