package eventstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/checkin-ledger/ledger/ledger"
)

// One writer (issue 10): replicas that share a cluster forward their Record
// calls to one of them.
//
// Two replicas that both write pay twice: each one's packs are half as
// large (the server's cost is per message), and every pack the other stored
// in between is a refused attempt, a catch-up read and a resend (chain.go).
// So the stores of a cluster elect a writer and the others hand it their
// encoded events:
//
//   - Election without a new asset: every store says its id on a core NATS
//     subject (outside the stream) every heartbeatEvery; the writer is the
//     smallest id heard within writerSilence, the store itself included.
//     Views may differ for a moment (a store that just started hears no one
//     yet): both then write through their chains, which stays correct.
//   - Forwarding: Record of a store that is not the writer sends the call's
//     encoded events to the writer's subject as one request; the writer
//     commits them as a Record call of its own (they ride in its packs,
//     checked against its table) and answers each event's position. No
//     answer within forwardWait, or a writer that is closing: the store
//     writes them itself, through its chain. A forward
//     the writer stored before it went silent is found there (the follower
//     of the log has put the writer's packs in the table, or the chain's
//     catch-up finds them) at the stored position, and answered as new when
//     the stored envelope is this call's own (ownForwards).
//   - The fallback's first pack needs no long catch-up: every follower of
//     the whole log (Follow) takes the packs it delivers into the table and
//     the chains' known (absorb), so a store that forwarded for an hour is
//     as current as the log it follows.
//
// Only the stores of an external server take part (the embedded server has
// no port: its store is its only writer), and only Record is forwarded:
// Append's versioned events are rare and check their own expected version.

const (
	// heartbeatSubject carries every store's id; writerPrefix + id is the
	// subject a store takes forwarded calls on. Both lie outside the
	// stream's subjects ("ledger.>"): nothing of this is stored.
	heartbeatSubject = "_ledger.writers"
	writerPrefix     = "_ledger.writer."
	// byePrefix marks a heartbeat of a store that is closing.
	byePrefix      = "bye "
	heartbeatEvery = 250 * time.Millisecond
	writerSilence  = time.Second
)

// writers is a store's view of the cluster's writer.
type writers struct {
	self string
	mu   sync.Mutex
	// heard is when each other store's id was last heard.
	heard map[string]time.Time
	// forwarded counts the Record calls sent to another store.
	forwarded int
	subs      []*nats.Subscription
	chosen    string // the writer last chosen, to log a change
	log       *slog.Logger
	q         chan *forwardCall // to forwardLoop
}

// startForwarding joins the election and takes forwarded calls. Called once
// the chains are started (the store can write).
func (s *Store) startForwarding() error {
	if s.o.NoForward {
		return nil
	}
	w := &writers{self: nuid.Next(), heard: make(map[string]time.Time), log: s.log, q: make(chan *forwardCall, 4096)}
	hb, err := s.nc.Subscribe(heartbeatSubject, func(m *nats.Msg) { w.hear(string(m.Data), time.Now()) })
	if err != nil {
		return fmt.Errorf("eventstore: heartbeat subscription: %w", err)
	}
	fw, err := s.nc.Subscribe(writerPrefix+w.self, func(m *nats.Msg) { go s.serveForward(m) })
	if err != nil {
		_ = hb.Unsubscribe()
		return fmt.Errorf("eventstore: forward subscription: %w", err)
	}
	w.subs = []*nats.Subscription{hb, fw}
	s.writers = w
	s.commitWG.Add(2)
	go s.forwardLoop()
	go func() {
		defer s.commitWG.Done()
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			if err := s.nc.Publish(heartbeatSubject, []byte(w.self)); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				s.log.Debug("heartbeat", "err", err)
			}
			select {
			case <-t.C:
			case <-s.done:
				for _, sub := range w.subs {
					_ = sub.Unsubscribe()
				}
				_ = s.nc.Publish(heartbeatSubject, []byte(byePrefix+w.self))
				return
			}
		}
	}()
	return nil
}

// hear takes one heartbeat.
func (w *writers) hear(msg string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if id, ok := strings.CutPrefix(msg, byePrefix); ok {
		delete(w.heard, id)
		return
	}
	if msg != w.self {
		w.heard[msg] = at
	}
}

// writer returns the id of the writer when it is another store, else "".
func (w *writers) writer(now time.Time) string {
	if w == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	best := w.self
	for id, at := range w.heard {
		if now.Sub(at) > writerSilence {
			delete(w.heard, id)
			continue
		}
		best = min(best, id)
	}
	if best != w.chosen {
		w.chosen = best
		if w.log != nil {
			w.log.Info("one writer: the cluster's writer changed", "writer", best, "self", w.self)
		}
	}
	if best == w.self {
		return ""
	}
	return best
}

// writerElsewhere returns the id of the writer when it is another store,
// else "" (also while the table is rebuilt: commit waits for it).
func (s *Store) writerElsewhere() string {
	select {
	case <-s.dedupDone: // writers is set, or will never be
		return s.writers.writer(time.Now())
	default:
		return ""
	}
}

// forget drops a writer that did not answer, so that the next calls do not
// wait for it again until it is heard anew.
func (w *writers) forget(id string) {
	w.mu.Lock()
	delete(w.heard, id)
	w.mu.Unlock()
}

// forwardWait is how long a forwarded call waits for the writer's answer
// before the store writes it itself: the writer answers within its own
// group commit, unless it is gone or its stream has no leader (then the
// fallback waits for that leader as the writer would, and the chain keeps
// the event stored once). One AckTimeout: a killed writer stalls the
// other replica's writes about that long (2 s at twice it, measured).
//
// Waiting longer for a writer that is still heard (it answers
// "unavailable" at the end of its WriteTimeout during an outage, so there
// would be one writer for the outage, not two) was tried on 2026-12-03 and
// taken out: a writer that is heard but stalled (its node frozen, its
// packs waiting for their acknowledgements) then held the other replica's
// writes too. In TestClusterFaults, 7 rounds against 7 of the build
// before, alternating, the longest gap while the stream leader was frozen
// went from a median 5.2 to 6.9 s, and writes resumed 628 ms after the
// election instead of 448 ms: within this machine's noise (the build
// before gave 7.0-7.8 s in a later run), but no gain to show for the risk.
func (s *Store) forwardWait() time.Duration { return s.o.AckTimeout }

// forwardInflight is how many forwards may wait for the writer at once;
// calls that come meanwhile go together in the next (natural batching, as
// the committer's: one request for many calls, not two messages a pass).
const forwardInflight = 4

// forwardCall is one Record call on its way to the writer. ok false: the
// caller writes it itself.
type forwardCall struct {
	r    *recordReq
	res  []ledger.Appended
	err  error
	ok   bool
	done chan struct{}
}

func (c *forwardCall) answer(res []ledger.Appended, err error, ok bool) {
	c.res, c.err, c.ok = res, err, ok
	close(c.done)
}

// forward hands r to the forwarding loop and waits for the writer's answer.
// ok is false when the caller must write r itself (no answer, a writer that
// is closing or no longer the writer, an answer it cannot read).
func (s *Store) forward(ctx context.Context, r *recordReq) (_ []ledger.Appended, err error, ok bool) {
	c := &forwardCall{r: r, done: make(chan struct{})}
	select {
	case s.writers.q <- c:
	case <-ctx.Done():
		return nil, fmt.Errorf("record: %w", ctx.Err()), true
	case <-s.done:
		return nil, nil, false
	}
	select {
	case <-c.done:
		return c.res, c.err, c.ok
	case <-ctx.Done():
		return nil, fmt.Errorf("record: %w (events may have been stored; retry with the same ids)", ctx.Err()), true
	case <-s.done:
		return nil, nil, false // commit says ErrClosed
	}
}

// forwardLoop sends the queued calls to the writer, as many together as
// came while forwardInflight forwards were on their way, within the
// connection's max payload.
func (s *Store) forwardLoop() {
	defer s.commitWG.Done()
	w := s.writers
	slots := make(chan struct{}, forwardInflight)
	var next *forwardCall // taken, not sent: it did not fit
	for {
		first := next
		if first == nil {
			select {
			case first = <-w.q:
			case <-s.done:
				return
			}
		}
		select {
		case slots <- struct{}{}:
		case <-s.done:
			first.answer(nil, nil, false)
			return
		}
		batch, size := []*forwardCall{first}, forwardSize(first.r.evs)
		next = nil
	gather:
		for {
			select {
			case c := <-w.q:
				if n := forwardSize(c.r.evs); size+n <= int(s.nc.MaxPayload()) {
					batch, size = append(batch, c), size+n
					continue
				}
				next = c
			default:
			}
			break gather
		}
		go func() {
			defer func() { <-slots }()
			s.sendForward(batch, size)
		}()
	}
}

// sendForward sends batch to the writer as one request and answers its
// calls.
func (s *Store) sendForward(batch []*forwardCall, size int) {
	fallback := func() {
		for _, c := range batch {
			c.answer(nil, nil, false)
		}
	}
	to := s.writers.writer(time.Now())
	if to == "" || size > int(s.nc.MaxPayload()) {
		fallback()
		return
	}
	body := binary.AppendUvarint(make([]byte, 0, size), uint64(len(batch)))
	for _, c := range batch {
		body = appendForward(body, c.r.evs)
	}
	m, err := s.nc.Request(writerPrefix+to, body, s.forwardWait())
	if err != nil {
		s.writers.forget(to)
		s.log.Debug("forward to the writer", "writer", to, "calls", len(batch), "err", err)
		fallback()
		return
	}
	r := &forwardReader{b: m.Data}
	if n := r.uvarint(); r.err != nil || n != uint64(len(batch)) {
		fallback() // an answer this store cannot read: write it yourself
		return
	}
	s.writers.mu.Lock()
	s.writers.forwarded += len(batch)
	s.writers.mu.Unlock()
	for _, c := range batch {
		res, err, ok := readAnswer(r, len(c.r.evs))
		c.answer(res, err, ok)
	}
}

// Answers of a forwarded call: the first byte.
const (
	fwdOK          = 0 // then per event: uvarint position, a duplicate byte
	fwdUnavailable = 1 // then the error's text (uvarint length and bytes)
	fwdFallback    = 2 // the writer is closing: write it yourself
	fwdFailed      = 3 // then the error's text
)

// serveForward commits the calls another store forwarded, all at once (they
// ride in the same packs), and answers them.
func (s *Store) serveForward(m *nats.Msg) {
	calls, err := readForwards(m.Data)
	if err != nil {
		// Another build's request: an answer for no call makes the
		// sender write its calls itself at once.
		s.log.Warn("a forwarded request that cannot be read", "err", err)
		if err := m.Respond(binary.AppendUvarint(nil, 0)); err != nil {
			s.log.Debug("answer a forwarded call", "err", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.o.WriteTimeout)
	defer cancel()
	res := make([][]ledger.Appended, len(calls))
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, evs := range calls {
		wg.Go(func() { res[i], errs[i] = s.commit(ctx, newRecordReq(evs)) })
	}
	wg.Wait()
	answer := binary.AppendUvarint(nil, uint64(len(calls)))
	for i := range calls {
		answer = appendAnswer(answer, res[i], errs[i])
	}
	if err := m.Respond(answer); err != nil {
		s.log.Debug("answer a forwarded call", "err", err)
	}
}

func appendAnswer(b []byte, res []ledger.Appended, err error) []byte {
	text := func(kind byte) []byte {
		b = append(b, kind)
		b = binary.AppendUvarint(b, uint64(len(err.Error())))
		return append(b, err.Error()...)
	}
	switch {
	case err == nil:
		b = append(b, fwdOK)
		for _, a := range res {
			b = binary.AppendUvarint(b, a.Position)
			b = append(b, boolByte(a.Duplicate))
		}
		return b
	case errors.Is(err, ErrClosed):
		return append(b, fwdFallback)
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return text(fwdUnavailable)
	}
	return text(fwdFailed)
}

// readAnswer reads the writer's answer to a call of n events.
func readAnswer(r *forwardReader, n int) (_ []ledger.Appended, err error, ok bool) {
	kind := r.bytes(1)
	if r.err != nil {
		return nil, nil, false
	}
	switch kind[0] {
	case fwdOK:
		res := make([]ledger.Appended, n)
		for i := range res {
			res[i].Position = r.uvarint()
			d := r.bytes(1)
			if r.err != nil {
				return nil, nil, false
			}
			res[i].Duplicate = d[0] == 1
		}
		return res, nil, true
	case fwdUnavailable, fwdFailed:
		text := r.bytes(r.uvarint())
		if r.err != nil {
			return nil, nil, false
		}
		if kind[0] == fwdUnavailable {
			return nil, fmt.Errorf("record: %w (the writer: %s)", ErrUnavailable, text), true
		}
		return nil, fmt.Errorf("record (the writer): %s", text), true
	}
	return nil, nil, false // closing, or an answer of a later build
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// A forwarded request: uvarint count of calls, then each call: uvarint
// count of events, then per event its id (16 bytes), its occurred_at
// (varint Unix nanoseconds), its subject and its body (each a uvarint
// length and the bytes) and a packed byte. Its answer: uvarint count of
// calls, then each call's answer (appendAnswer).

func forwardSize(evs []recEvent) int {
	n := binary.MaxVarintLen64
	for _, e := range evs {
		n += 16 + 3*binary.MaxVarintLen64 + len(e.subject) + len(e.body) + 1
	}
	return n
}

func appendForward(b []byte, evs []recEvent) []byte {
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for _, e := range evs {
		b = append(b, e.id[:]...)
		b = binary.AppendVarint(b, e.at)
		b = binary.AppendUvarint(b, uint64(len(e.subject)))
		b = append(b, e.subject...)
		b = binary.AppendUvarint(b, uint64(len(e.body)))
		b = append(b, e.body...)
		b = append(b, boolByte(e.packed))
	}
	return b
}

// errShortForward is a forwarded call or answer cut short.
var errShortForward = errors.New("cut short")

// forwardReader reads the fields of a forwarded call or answer; the first
// error sticks.
type forwardReader struct {
	b   []byte
	err error
}

func (r *forwardReader) uvarint() uint64 { return readNumber(r, binary.Uvarint) }

func (r *forwardReader) varint() int64 { return readNumber(r, binary.Varint) }

// readNumber reads one number with read (binary.Uvarint or binary.Varint).
func readNumber[T int64 | uint64](r *forwardReader, read func([]byte) (T, int)) T {
	if r.err != nil {
		return 0
	}
	v, n := read(r.b)
	if n <= 0 {
		r.err = errShortForward
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *forwardReader) bytes(n uint64) []byte {
	if r.err != nil || uint64(len(r.b)) < n {
		r.err = errShortForward
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// readForwards reads a forwarded request: each call's events.
func readForwards(b []byte) ([][]recEvent, error) {
	r := &forwardReader{b: b}
	n := r.uvarint()
	if r.err != nil || n == 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("%d calls in %d bytes", n, len(b))
	}
	calls := make([][]recEvent, n)
	for i := range calls {
		evs, err := readCall(r)
		if err != nil {
			return nil, fmt.Errorf("call %d: %w", i, err)
		}
		calls[i] = evs
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d bytes after the last call", len(r.b))
	}
	return calls, nil
}

// readCall reads one call's events.
func readCall(r *forwardReader) ([]recEvent, error) {
	n := r.uvarint()
	if r.err != nil || n == 0 || n > uint64(len(r.b)) {
		return nil, fmt.Errorf("%d events in %d bytes", n, len(r.b))
	}
	evs := make([]recEvent, n)
	for i := range evs {
		e := &evs[i]
		id := r.bytes(16)
		e.at = r.varint()
		e.subject = string(r.bytes(r.uvarint()))
		e.body = r.bytes(r.uvarint())
		packed := r.bytes(1)
		if r.err != nil {
			return nil, fmt.Errorf("event %d: %w", i, r.err)
		}
		e.id, e.packed = uuid.UUID(id), packed[0] == 1
	}
	return evs, nil
}
