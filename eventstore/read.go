package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// deliverBatch is the most events handed to fn at once.
	deliverBatch = 1000
	// pullMessages is how many messages the ordered consumer asks for at a
	// time; larger keeps the server busy while fn runs.
	pullMessages = 4096
	// consumerInactive is how long the server keeps a scan's consumer
	// after its reader went away without deleting it.
	consumerInactive = 30 * time.Second
)

// Load returns one aggregate's events in order and its version: the position
// of its last event, 0 when it has none.
//
// It walks the aggregate's subject with "next message on subject" gets
// answered by the stream leader, one request per event: aggregates with
// rules hold a handful of events, and a leader read never misses an event
// acknowledged before Load was called (a replica's direct get could).
func (s *Store) Load(ctx context.Context, aggregate string) ([]domain.Envelope, uint64, error) {
	if s.isClosed() {
		return nil, 0, ErrClosed
	}
	subj, err := subject(aggregate)
	if err != nil {
		return nil, 0, fmt.Errorf("load: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var out []domain.Envelope
	for seq := uint64(1); ; {
		m, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("load %s: get from %d: %w", subj, seq, err)
		}
		var e domain.Envelope
		if err := decodeEnvelope(m.Data, &e, nil); err != nil {
			return nil, 0, fmt.Errorf("load %s: position %d: %w", subj, m.Sequence, err)
		}
		e.Position = m.Sequence
		out = append(out, e)
		seq = m.Sequence + 1
	}
	if len(out) == 0 {
		return nil, 0, nil
	}
	return out, out[len(out)-1].Position, nil
}

// Read delivers the events whose aggregate matches filter (NATS wildcards
// over aggregate names: "pass.*.<person>", "venue.>") with position > from,
// in order and in batches, up to the end of the log when Read was called.
func (s *Store) Read(ctx context.Context, filter string, from uint64, fn func([]domain.Envelope) error) error {
	if err := checkTokens(filter, true); err != nil {
		return fmt.Errorf("read: %w", domain.Invalid("filter", "%q: %v", filter, err))
	}
	subj := SubjectPrefix + filter
	last, err := s.LastPosition(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", subj, err)
	}
	if last <= from {
		return nil
	}
	if err := s.scan(ctx, subj, from, true, last, fn); err != nil {
		return fmt.Errorf("read %s: %w", subj, err)
	}
	return nil
}

// Follow delivers every event with position > from, in order and in batches
// (up to 1000, or what is there when the log's end is reached), first from
// history and then live, with no gap and no duplicate, until ctx ends (its
// error is returned), fn returns an error (returned as is) or the store is
// closed (ErrClosed). fn is called from one goroutine at a time and never
// after Follow returned; it may keep the slice.
func (s *Store) Follow(ctx context.Context, from uint64, fn func([]domain.Envelope) error) error {
	return s.scan(ctx, "", from, false, 0, fn)
}

// errStop ends a scan without an error.
var errStop = errors.New("stop")

// scan runs an ordered consumer over filter (all subjects when empty) from
// position from+1. Bounded, it ends after the last matching event at or
// before upTo; unbounded, it follows the log until ctx ends or fn fails.
func (s *Store) scan(ctx context.Context, filter string, from uint64, bounded bool, upTo uint64, fn func([]domain.Envelope) error) error {
	if s.isClosed() {
		return ErrClosed
	}
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Deleted at the end of the scan; this bounds what a crashed
		// process leaves behind (the server allows 1,000 consumers per
		// stream).
		InactiveThreshold: consumerInactive,
	}
	if filter != "" {
		cfg.FilterSubjects = []string{filter}
	}
	if from > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from + 1
	}
	cctx, cancel := withTimeout(ctx)
	cons, err := s.js.OrderedConsumer(cctx, StreamName, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("ordered consumer: %w", err)
	}
	defer s.deleteConsumer(cons)
	if info := cons.CachedInfo(); bounded && info != nil && info.NumPending == 0 {
		return nil
	}

	var (
		mu      sync.Mutex // held while the handler runs
		stopped atomic.Bool
		done    = make(chan error, 1)
		last    = from
		buf     []domain.Envelope
		in      = make(interner)
	)
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
		if seq <= last {
			return // redelivered after a consumer reset
		}
		if bounded && seq > upTo {
			finish(flush())
			return
		}
		if buf == nil {
			buf = make([]domain.Envelope, 0, min(deliverBatch, int(meta.NumPending)+1))
		}
		buf = append(buf, domain.Envelope{})
		e := &buf[len(buf)-1]
		if err := decodeEnvelope(msg.Data(), e, in); err != nil {
			finish(fmt.Errorf("position %d (%s): %w", seq, msg.Subject(), err))
			return
		}
		e.Position = seq
		last = seq
		end := bounded && (meta.NumPending == 0 || seq >= upTo)
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
		jetstream.PullMaxMessages(pullMessages),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConsumerNotFound) && s.isClosed() {
				finish(ErrClosed)
				return
			}
			s.log.Debug("ordered consumer", "filter", filter, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		stopped.Store(true)
		err = ctx.Err()
	case <-s.done:
		stopped.Store(true)
		err = ErrClosed
	}
	cc.Stop()
	// Wait until a handler that is running has returned, so fn is never
	// called after scan returns.
	mu.Lock()
	mu.Unlock() //nolint:staticcheck // empty critical section: a barrier
	return err
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
	if position == 0 {
		return domain.Envelope{}, fmt.Errorf("get position 0: %w", domain.ErrNotFound)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := s.stream.GetMsg(ctx, position)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return domain.Envelope{}, fmt.Errorf("get position %d: %w", position, domain.ErrNotFound)
		}
		return domain.Envelope{}, fmt.Errorf("get position %d: %w", position, err)
	}
	var e domain.Envelope
	if err := decodeEnvelope(m.Data, &e, nil); err != nil {
		return domain.Envelope{}, fmt.Errorf("get position %d (%s): %w", position, m.Subject, err)
	}
	e.Position = m.Sequence
	return e, nil
}

// LastPosition returns the position of the newest event in the log (0 when
// it is empty).
func (s *Store) LastPosition(ctx context.Context) (uint64, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("last position: stream info: %w", err)
	}
	return info.State.LastSeq, nil
}
