package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// PassIndex is the log with an index of where each person's passes are:
// person → the stream sequences of the messages (packs) holding them. Its
// ReadPassesOf (what `GET /v1/persons/{id}/trace?source=log` replays) reads
// those messages and then only the part of the log the index has not seen,
// instead of every pack of passes.
//
// The index is in memory, built by Run from the log itself (it reads the
// pass packs, peeking at each event's aggregate without decoding it) and
// kept current the same way, so it needs nothing from the write path and
// holds on every replica: about 8 bytes per pass and pack, plus one map
// entry per person. Until Run has caught up, ReadPassesOf reads what the
// index has and scans the rest; without Run it is Store.ReadPassesOf.
type PassIndex struct {
	*Store

	mu       sync.RWMutex
	upTo     uint64 // the last stream sequence indexed
	byPerson map[uuid.UUID][]uint64

	gets atomic.Int64 // messages fetched by ReadPassesOf (tests)
	// retired is the cut-off of the last RetirePasses (Unix nanoseconds;
	// 0: none): ReadPassesOf leaves out the passes before it.
	retired atomic.Int64
}

var (
	_ ledger.Log     = (*PassIndex)(nil)
	_ ledger.Retirer = (*PassIndex)(nil)
)

// NewPassIndex returns an index over s; call Run to build and follow it.
func NewPassIndex(s *Store) *PassIndex {
	return &PassIndex{Store: s, byPerson: make(map[uuid.UUID][]uint64)}
}

// passSubjects are the subjects passes live on: packs, and one-event
// messages on their aggregate's subject (not written by Record today, read
// as Read reads them).
var passSubjects = []string{packPassSubject, SubjectPrefix + domain.KindPass + ".>"}

// Run indexes the log from its start and follows it until ctx ends (its
// error) or the store closes. Every minute it drops the sequences of
// messages gone from the stream (passes past their retention).
func (x *PassIndex) Run(ctx context.Context) error {
	for {
		err := x.follow(ctx)
		if ctx.Err() != nil || errors.Is(err, ErrClosed) || x.isClosed() {
			return err
		}
		x.log.Warn("pass index: follow failed, retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (x *PassIndex) follow(ctx context.Context) error {
	x.mu.RLock()
	from := x.upTo
	x.mu.RUnlock()
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: passSubjects, DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: consumerInactive}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from+1
	}
	cons, err := x.orderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("pass index: consumer: %w", err)
	}
	defer x.deleteConsumer(cons)
	failed := make(chan error, 1)
	var persons []uuid.UUID
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			select {
			case failed <- err:
			default:
			}
			return
		}
		seq := meta.Sequence.Stream
		persons = personsIn(msg.Subject(), msg.Data(), persons[:0])
		x.mu.Lock()
		if seq > x.upTo {
			for _, p := range persons {
				seqs := x.byPerson[p]
				if n := len(seqs); n == 0 || seqs[n-1] < seq {
					x.byPerson[p] = append(seqs, seq)
				}
			}
			x.upTo = seq
		}
		x.mu.Unlock()
	}, jetstream.PullMaxBytes(pullBytes))
	if err != nil {
		return fmt.Errorf("pass index: consume: %w", err)
	}
	defer cc.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-x.done:
			return ErrClosed
		case err := <-failed:
			return fmt.Errorf("pass index: %w", err)
		case <-cc.Closed():
			return errors.New("pass index: consumer closed")
		case <-prune.C:
			x.prune(ctx)
		}
	}
}

// personsIn returns the persons whose passes the message holds (a pack:
// peeked from each element's aggregate; odd elements are decoded).
func personsIn(subject string, data []byte, out []uuid.UUID) []uuid.UUID {
	add := func(agg string) {
		// pass.<venue>.<person>
		i := strings.LastIndexByte(agg, '.')
		if i < 0 || !strings.HasPrefix(agg, domain.KindPass+".") {
			return
		}
		if p, err := uuid.Parse(agg[i+1:]); err == nil && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if !isPackSubject(subject) {
		add(strings.TrimPrefix(subject, SubjectPrefix))
		return out
	}
	_, _ = walkPack(data, func(_ int, d *scanner) error {
		if agg, ok := d.peekString("aggregate"); ok {
			add(string(agg))
			return skipElem(d)
		}
		var e domain.Envelope
		if err := decodeAt(d, &e, nil); err == nil {
			add(e.Aggregate)
		}
		return nil
	})
	return out
}

// prune drops the sequences below the stream's first one.
func (x *PassIndex) prune(ctx context.Context) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := x.streamInfo(ctx, x.stream)
	if err != nil {
		return
	}
	first := info.State.FirstSeq
	x.mu.Lock()
	defer x.mu.Unlock()
	for p, seqs := range x.byPerson {
		i, _ := slices.BinarySearch(seqs, first)
		switch {
		case i == len(seqs):
			delete(x.byPerson, p)
		case i > 0:
			x.byPerson[p] = slices.Clone(seqs[i:])
		}
	}
}

// ReadPassesOf implements ledger.Log: the events of personID's pass
// aggregates with position > from, in order and in batches, up to the log's
// end when it was called. It reads the messages the index names, then scans
// what the index has not seen yet.
func (x *PassIndex) ReadPassesOf(ctx context.Context, personID uuid.UUID, from uint64, fn func([]domain.Envelope) error) error {
	if x.isClosed() {
		return ErrClosed
	}
	fn = x.unexpired(fn)
	x.mu.RLock()
	upTo := x.upTo
	seqs := slices.Clone(x.byPerson[personID])
	x.mu.RUnlock()
	fromSeq, _ := SeqOf(from)
	i, _ := slices.BinarySearch(seqs, fromSeq)
	seqs = seqs[i:]
	match := newPattern(domain.KindPass + ".*." + personID.String())
	// The person's packs are fetched a few at a time (each is one round
	// trip and up to a few MB) and delivered in order.
	const window = 8
	type result struct {
		evs []domain.Envelope
		err error
	}
	results := make([]chan result, len(seqs))
	for k := range results {
		results[k] = make(chan result, 1)
	}
	sem := make(chan struct{}, window)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for k, seq := range seqs {
			select {
			case sem <- struct{}{}:
			case <-fctx.Done():
				return
			}
			go func() {
				evs, err := x.fetch(fctx, seq, match, from)
				results[k] <- result{evs, err}
				<-sem
			}()
		}
	}()
	for k, seq := range seqs {
		var r result
		select {
		case r = <-results[k]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			return fmt.Errorf("read passes of %s: get %d: %w", personID, seq, r.err)
		}
		if len(r.evs) > 0 {
			if err := fn(r.evs); err != nil {
				return err
			}
		}
	}
	// What the index has not seen: every event of message upTo has a
	// position at most PositionOf(upTo, maxPackEvents-1).
	rest := from
	if upTo > 0 {
		rest = max(from, PositionOf(upTo, maxPackEvents-1))
	}
	return x.Store.ReadPassesOf(ctx, personID, rest, fn)
}

// RetirePasses implements ledger.Retirer: from now on ReadPassesOf leaves
// out the passes before before (a message of passes stays in the log until
// its latest pass expires), and the index forgets the messages already gone
// from the stream. It counts nothing in the stats: the index holds
// messages, not passes.
func (x *PassIndex) RetirePasses(ctx context.Context, before time.Time) (ledger.RetireStats, error) {
	cut := before.UnixNano()
	for {
		old := x.retired.Load()
		if cut <= old || x.retired.CompareAndSwap(old, cut) {
			break
		}
	}
	x.prune(ctx)
	return ledger.RetireStats{}, nil
}

// unexpired wraps fn so that it gets no pass older than the last
// retirement's cut-off.
func (x *PassIndex) unexpired(fn func([]domain.Envelope) error) func([]domain.Envelope) error {
	cut := x.retired.Load()
	if cut == 0 {
		return fn
	}
	return func(evs []domain.Envelope) error {
		kept := make([]domain.Envelope, 0, len(evs))
		for _, e := range evs {
			if e.Type != domain.TypePassRecorded || e.OccurredAt.UnixNano() >= cut {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			return nil
		}
		return fn(kept)
	}
}

// fetch returns the events of personID (match) in the message at seq with
// a position after from; none when the message is gone (past retention).
// Payloads are copied: the message's buffer is not kept.
func (x *PassIndex) fetch(ctx context.Context, seq uint64, match pattern, from uint64) ([]domain.Envelope, error) {
	x.gets.Add(1)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := x.getMsg(ctx, x.stream, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	evs, err := matching(m, match, from)
	for i := range evs {
		evs[i].Payload = bytes.Clone(evs[i].Payload)
	}
	return evs, err
}

// matching returns the events of message m whose aggregate matches p, with
// a position after from.
func matching(m *jetstream.RawStreamMsg, p pattern, from uint64) ([]domain.Envelope, error) {
	var out []domain.Envelope
	if !isPackSubject(m.Subject) {
		pos := PositionOf(m.Sequence, 0)
		if pos <= from || !p.match(strings.TrimPrefix(m.Subject, SubjectPrefix)) {
			return nil, nil
		}
		var e domain.Envelope
		if err := decodeEnvelope(m.Data, &e, nil); err != nil {
			return nil, fmt.Errorf("position %d (%s): %w", pos, m.Subject, err)
		}
		e.Position = pos
		return append(out, e), nil
	}
	_, err := walkPack(m.Data, func(i int, d *scanner) error {
		pos := PositionOf(m.Sequence, i)
		if pos <= from {
			return skipElem(d)
		}
		if agg, ok := d.peekString("aggregate"); ok && !matchTokens(p, agg) {
			return skipElem(d)
		}
		var e domain.Envelope
		if err := decodeAt(d, &e, nil); err != nil {
			return fmt.Errorf("position %d (%s): %w", pos, m.Subject, err)
		}
		if p.match(e.Aggregate) {
			e.Position = pos
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// IndexedUpTo returns the last stream sequence the index has seen.
func (x *PassIndex) IndexedUpTo() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.upTo
}
