package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// JetStream headers this package writes.
const (
	hdrMsgID          = jetstream.MsgIDHeader               // Nats-Msg-Id
	hdrExpectedSubSeq = jetstream.ExpectedLastSubjSeqHeader // Nats-Expected-Last-Subject-Sequence
	hdrTTL            = jetstream.MsgTTLHeader              // Nats-TTL
	hdrBatchID        = "Nats-Batch-Id"
	hdrBatchSeq       = "Nats-Batch-Sequence"
	hdrBatchCommit    = "Nats-Batch-Commit"
)

// JetStream API error codes this package acts on (nats-server errors.json).
const (
	errCodeWrongLastSeq         = 10071 // wrong last sequence: {seq}
	errCodeDuplicateInProcess   = 10158 // duplicate message id is in process (clustered)
	errCodeWrongLastSeqConstant = 10164 // wrong last sequence
	errCodeBatchContainsDup     = 10201 // atomic publish batch contains duplicate message id
)

// apiError is the error object of a JetStream API answer.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("jetstream: %s (%d/%d)", e.Description, e.Code, e.ErrCode)
}

// pubAck is the answer to a publish or to an atomic batch's commit: Seq is
// the (last) stored sequence, Count the batch's size.
type pubAck struct {
	Error     *apiError `json:"error"`
	Stream    string    `json:"stream"`
	Seq       uint64    `json:"seq"`
	Duplicate bool      `json:"duplicate"`
	Count     int       `json:"count"`
}

// parseAck reads a publish answer; an API error is returned as *apiError.
func parseAck(m *nats.Msg) (pubAck, error) {
	if len(m.Data) == 0 {
		if st := m.Header.Get("Status"); st == "503" {
			return pubAck{}, fmt.Errorf("%w: stream %s", nats.ErrNoResponders, StreamName)
		}
		return pubAck{}, errors.New("eventstore: empty publish answer")
	}
	var a pubAck
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return pubAck{}, fmt.Errorf("eventstore: bad publish answer %q: %w", m.Data, err)
	}
	if a.Error != nil {
		return a, a.Error
	}
	if a.Stream == "" {
		return a, fmt.Errorf("eventstore: bad publish answer %q", m.Data)
	}
	return a, nil
}

func apiCode(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.ErrCode
	}
	return 0
}

// subject maps an aggregate name to its subject, checking that it names one
// concrete subject.
func subject(aggregate string) (string, error) {
	if err := checkAggregate(aggregate); err != nil {
		return "", err
	}
	return SubjectPrefix + aggregate, nil
}

// checkAggregate checks that an aggregate name could be a subject of its
// own.
func checkAggregate(aggregate string) error {
	if err := checkTokens(aggregate, false); err != nil {
		return domain.Invalid("aggregate", "%q: %v", aggregate, err)
	}
	if domain.AggregateKind(aggregate) == packKind {
		return domain.Invalid("aggregate", "%q: kind %q is the store's own", aggregate, packKind)
	}
	return nil
}

// checkTokens checks a dot-separated aggregate name or filter: no empty
// token, no white space, and wildcards ('*' a whole token, '>' the whole
// last one) only when allowed. It does not allocate: it runs for every
// event recorded.
func checkTokens(name string, wildcards bool) error {
	if name == "" {
		return errors.New("empty")
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) {
			switch name[i] {
			case '.':
			case ' ', '\t', '\r', '\n':
				return errors.New("white space")
			default:
				continue
			}
		}
		tok := name[start:i]
		switch {
		case tok == "":
			return errors.New("empty token")
		case tok == "*" && wildcards:
		case tok == ">" && wildcards && i == len(name):
		case strings.IndexByte(tok, '*') >= 0 || strings.IndexByte(tok, '>') >= 0:
			return errors.New("misplaced wildcard")
		}
		start = i + 1
	}
	return nil
}

// encode validates an event and encodes its envelope, with RecordedAt set
// from the store's clock. A body over limit bytes is invalid.
func (s *Store) encode(e domain.Envelope, limit int) ([]byte, error) {
	if err := checkAggregate(e.Aggregate); err != nil {
		return nil, err
	}
	if e.ID == uuid.Nil {
		return nil, domain.Invalid("id", "event id missing")
	}
	if e.Type == "" {
		return nil, domain.Invalid("type", "event type missing")
	}
	if len(e.Payload) > 0 && !json.Valid(e.Payload) {
		return nil, domain.Invalid("payload", "not JSON")
	}
	e.RecordedAt = s.now().UTC()
	e.OccurredAt = e.OccurredAt.UTC()
	body := appendEnvelope(make([]byte, 0, 256+len(e.Payload)), &e)
	if len(body) > limit {
		return nil, domain.Invalid("payload", "event of %d bytes is over the %d the server takes", len(body), limit)
	}
	return body, nil
}

// prepare validates an event and builds its own message: body, Nats-Msg-Id
// and, for passes and alerts, Nats-TTL.
func (s *Store) prepare(e domain.Envelope) (*nats.Msg, error) {
	body, err := s.encode(e, s.packBytes)
	if err != nil {
		return nil, err
	}
	subj := SubjectPrefix + e.Aggregate
	h := make(nats.Header, 4)
	h[hdrMsgID] = []string{e.ID.String()}
	if expires(domain.AggregateKind(e.Aggregate)) {
		h[hdrTTL] = []string{s.ttlOf(e.OccurredAt.UnixNano())}
	}
	return &nats.Msg{Subject: subj, Header: h, Data: body}, nil
}

// Append appends events to one aggregate if its version (the position of its
// last event, as Load returns it) is still expectedVersion; 0 means the
// aggregate must have no events yet. Each event is its own message on the
// aggregate's subject, so its position is PositionOf(seq, 0). A stale version returns an error wrapping domain.ErrConflict
// and appends nothing. Several events are written as one atomic batch: all or
// none. Retrying an append whose events were already stored (same event ids)
// returns their original positions with Duplicate set.
//
// Events may leave Aggregate empty; one naming another aggregate is invalid.
func (s *Store) Append(ctx context.Context, aggregate string, expectedVersion uint64, events ...domain.Envelope) (_ []ledger.Appended, err error) {
	defer func(start time.Time) { s.observe("append", len(events), start, err) }(time.Now())
	if s.isClosed() {
		return nil, ErrClosed
	}
	if s.o.ReadOnly {
		return nil, ErrReadOnly
	}
	subj, err := subject(aggregate)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("append %s: %w", subj, domain.Invalid("events", "none given"))
	}
	if len(events) > serverMaxBatch {
		return nil, fmt.Errorf("append %s: %w", subj, domain.Invalid("events", "%d events, at most %d in one append", len(events), serverMaxBatch))
	}
	msgs := make([]*nats.Msg, len(events))
	seen := make(map[uuid.UUID]bool, len(events))
	for i, e := range events {
		if e.Aggregate == "" {
			e.Aggregate = aggregate
		} else if e.Aggregate != aggregate {
			return nil, fmt.Errorf("append %s: %w", subj, domain.Invalid("aggregate", "event %d is for %q", i, e.Aggregate))
		}
		if seen[e.ID] {
			return nil, fmt.Errorf("append %s: %w", subj, domain.Invalid("id", "event id %s given twice", e.ID))
		}
		seen[e.ID] = true
		if msgs[i], err = s.prepare(e); err != nil {
			return nil, fmt.Errorf("append %s: %w", subj, err)
		}
	}
	// An event id names one fact: one a pack holds already (a pass, an
	// alert…) is not stored again under another aggregate.
	if id, pos, used := s.usedByPack(events); used {
		if len(events) == 1 {
			seq, _ := SeqOf(pos)
			if res, ok := s.storedAt(ctx, subj, seq, id); ok {
				return res, nil // a retry, found with one read
			}
		}
		if res, ok := s.storedBefore(ctx, aggregate, events); ok {
			return res, nil // a retry of events this aggregate holds
		}
		return nil, domain.Errorf(domain.ErrConflict, "event id %s was already used for another event", id) // the caller names the aggregate; a subject is the store's own
	}
	expectedSeq, index := SeqOf(expectedVersion)
	if index != 0 {
		// Versions of aggregates written by Append are whole messages.
		return nil, fmt.Errorf("append %s at version %d: %w: the version names an event inside a pack", subj, expectedVersion, domain.ErrConflict)
	}
	msgs[0].Header.Set(hdrExpectedSubSeq, strconv.FormatUint(expectedSeq, 10))

	ack, err := s.publish(ctx, msgs)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err == nil {
		if len(msgs) == 1 && ack.Duplicate {
			// JetStream knows the id from its duplicate window, stream-wide,
			// and answers the original's sequence: a retry only when the
			// event is in this aggregate. One read of that message tells
			// (a long aggregate, the audit chain, is not walked), the walk
			// stays for an answer without it.
			if res, ok := s.storedAt(ctx, subj, ack.Seq, events[0].ID); ok {
				return res, nil
			}
			if res, ok := s.storedBefore(ctx, aggregate, events); ok {
				return res, nil
			}
			return nil, domain.Errorf(domain.ErrConflict, "event id %s was already used for another event", events[0].ID)
		}
		var res []ledger.Appended
		if len(msgs) == 1 {
			s.counts.put(ack.Seq, 1)
			res = []ledger.Appended{{Position: PositionOf(ack.Seq, 0)}}
		} else {
			if ack.Count != len(msgs) {
				return nil, fmt.Errorf("append %s: batch of %d acknowledged as %d", subj, len(msgs), ack.Count)
			}
			res = consecutive(ack.Seq, len(msgs))
		}
		s.rememberAppended(events, res)
		return res, nil
	}
	switch apiCode(err) {
	case errCodeWrongLastSeq, errCodeWrongLastSeqConstant, errCodeBatchContainsDup, errCodeDuplicateInProcess:
		// A stale version, or (checked first by the server) a retry of
		// events already stored: find out which. The audit chain is long
		// and its writers race all the time: an earlier attempt of this
		// append landed after the version it was decided on, so only that
		// part is read (the redelivery of an older entry is the chain's
		// decide's and the duplicate window's business).
		if domain.AggregateKind(aggregate) == domain.KindAuditChain {
			if res, ok := s.storedAfter(ctx, aggregate, expectedSeq+1, events); ok {
				return res, nil
			}
		} else if res, ok := s.storedBefore(ctx, aggregate, events); ok {
			return res, nil
		}
		if apiCode(err) == errCodeBatchContainsDup || apiCode(err) == errCodeDuplicateInProcess {
			return nil, fmt.Errorf("append %s: %w: some event ids are already stored: %v", subj, domain.ErrConflict, err)
		}
		return nil, fmt.Errorf("append %s at version %d: %w: %v", subj, expectedVersion, domain.ErrConflict, err)
	}
	return nil, fmt.Errorf("append %s: %w", subj, err)
}

// storedAt reports whether the message at stream sequence seq is the
// event id on subject subj, and where.
func (s *Store) storedAt(ctx context.Context, subj string, seq uint64, id uuid.UUID) ([]ledger.Appended, bool) {
	if seq == 0 {
		return nil, false
	}
	m, err := s.getMsg(ctx, s.stream, seq)
	if err != nil || m.Subject != subj {
		return nil, false
	}
	var e domain.Envelope
	if err := decodeEnvelope(m.Data, &e, nil); err != nil || e.ID != id {
		return nil, false
	}
	return []ledger.Appended{{Position: PositionOf(m.Sequence, 0), Duplicate: true}}, true
}

// storedBefore reports whether every event is already in the aggregate's
// history, and where. It also answers retries older than the duplicate
// window.
func (s *Store) storedBefore(ctx context.Context, aggregate string, events []domain.Envelope) ([]ledger.Appended, bool) {
	return s.storedAfter(ctx, aggregate, 1, events)
}

// storedAfter is storedBefore over the aggregate's messages from stream
// sequence seq on.
func (s *Store) storedAfter(ctx context.Context, aggregate string, seq uint64, events []domain.Envelope) ([]ledger.Appended, bool) {
	subj, err := subject(aggregate)
	if err != nil {
		return nil, false
	}
	history, err := s.loadFrom(ctx, subj, seq)
	if err != nil {
		return nil, false
	}
	at := make(map[uuid.UUID]uint64, len(history))
	for _, h := range history {
		at[h.ID] = h.Position
	}
	res := make([]ledger.Appended, len(events))
	for i, e := range events {
		pos, ok := at[e.ID]
		if !ok {
			return nil, false
		}
		res[i] = ledger.Appended{Position: pos, Duplicate: true}
	}
	return res, true
}

// consecutive returns the positions of n one-event messages stored at
// consecutive sequences ending at last.
func consecutive(last uint64, n int) []ledger.Appended {
	res := make([]ledger.Appended, n)
	for i := range res {
		res[i].Position = PositionOf(last-uint64(n-1-i), 0)
	}
	return res
}

// publish writes one message with a request, or several as one atomic
// batch: all but the last published without reply, the last (with the
// commit header) as the request whose answer is the batch's PubAck.
//
// An attempt that gets no answer within AckTimeout, or is told there is no
// stream leader (no responders, a 503 API error), is sent again (the same message ids and expected version:
// one that was stored after all comes back as a conflict or a duplicate,
// which Append answers as the original) until WriteTimeout, after which
// the error wraps ErrUnavailable. The caller's context ending first gives
// its error.
func (s *Store) publish(ctx context.Context, msgs []*nats.Msg) (pubAck, error) {
	deadline := time.Now().Add(s.o.WriteTimeout)
	wait := 10 * time.Millisecond
	for {
		ack, err := s.publishOnce(ctx, msgs, deadline)
		if err == nil || ctx.Err() != nil {
			return ack, err
		}
		if !transient(err) {
			return ack, err
		}
		if time.Now().After(deadline) {
			return pubAck{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			sleep(wait, deadline)
			wait = min(2*wait, 250*time.Millisecond)
		}
	}
}

func (s *Store) publishOnce(ctx context.Context, msgs []*nats.Msg, deadline time.Time) (pubAck, error) {
	last := msgs[len(msgs)-1]
	if len(msgs) > 1 {
		id := nuid.Next()
		for i, m := range msgs {
			m.Header.Set(hdrBatchID, id)
			m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
			if m == last {
				m.Header.Set(hdrBatchCommit, "1")
				break
			}
			if err := s.nc.PublishMsg(m); err != nil {
				return pubAck{}, err
			}
		}
	}
	actx, cancel := context.WithTimeout(ctx, max(min(s.o.AckTimeout, time.Until(deadline)), time.Millisecond))
	defer cancel()
	reply, err := s.nc.RequestMsgWithContext(actx, last)
	if err != nil {
		return pubAck{}, err
	}
	return parseAck(reply)
}

// usedByPack reports the first of events whose id the table of recent ids
// holds (a packed event, or one appended earlier: the caller tells a retry
// from another fact), if any, with its position (0 while it is still on its
// way). Before the table is rebuilt after a start nothing is reported.
func (s *Store) usedByPack(events []domain.Envelope) (uuid.UUID, uint64, bool) {
	select {
	case <-s.dedupDone:
	default:
		return uuid.Nil, 0, false
	}
	s.dedup.mu.Lock()
	defer s.dedup.mu.Unlock()
	for _, e := range events {
		if v, ok := s.dedup.ids[e.ID]; ok {
			if v&pendingBit != 0 {
				v = 0 // still on its way: no position yet
			}
			return e.ID, v, true
		}
	}
	return uuid.Nil, 0, false
}

// rememberAppended adds appended events to the table of recent ids, so that
// a pass (or another packed event) recorded under one of their ids is
// answered as a duplicate of them (and refused by the ledger as another
// fact) instead of being stored again.
func (s *Store) rememberAppended(events []domain.Envelope, res []ledger.Appended) {
	now := time.Now()
	s.dedup.mu.Lock()
	defer s.dedup.mu.Unlock()
	for i, e := range events {
		s.dedup.addLocked(e.ID, res[i].Position, now)
	}
}
