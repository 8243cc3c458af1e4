package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The poison queue: the reactions' messages that kept failing, set aside
// until retried. It is a stream of its own, outside the log's subjects.
const (
	// poisonStream is the stream holding the poison queue.
	poisonStream = "POISON"
	// poisonSubject is the poison queue's subject (not under ledger.>).
	poisonSubject = "poison.reactions"
)

// PoisonQueue is the poison queue's stream. Its entries are numbered by
// their stream sequence; their bodies are the caller's.
type PoisonQueue struct {
	s      *Store
	stream jetstream.Stream
}

// PoisonEntry is one entry of the poison queue.
type PoisonEntry struct {
	// Seq numbers the entry.
	Seq uint64
	// Body is what Put stored.
	Body []byte
}

// PoisonQueue finds or creates the poison queue's stream, with replicas
// replicas when it creates it (an existing stream keeps its count unless
// the store's ApplyReplicas is set; see setup.go).
func (sub *Subscriber) PoisonQueue(ctx context.Context, replicas int) (*PoisonQueue, error) {
	if sub.s.isClosed() {
		return nil, ErrClosed
	}
	st, err := sub.s.ensureStream(ctx, jetstream.StreamConfig{
		Name:        poisonStream,
		Description: "check-in ledger: reactions that kept failing, until retried",
		Subjects:    []string{"poison.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	return &PoisonQueue{s: sub.s, stream: st}, nil
}

// Put stores an entry. id is its message id: an entry put twice in quick
// succession (two minutes) is stored once.
func (q *PoisonQueue) Put(ctx context.Context, id string, body []byte) error {
	msg := nats.NewMsg(poisonSubject)
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, id)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := q.s.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish poison entry %s: %w", id, err)
	}
	return nil
}

// Get returns the body of entry seq; domain.ErrNotFound when there is none.
func (q *PoisonQueue) Get(ctx context.Context, seq uint64) ([]byte, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := q.s.getMsg(ctx, q.stream, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && m.Subject != poisonSubject {
		return nil, domain.Errorf(domain.ErrNotFound, "poison entry %d", seq)
	}
	if err != nil {
		return nil, fmt.Errorf("poison entry %d: %w", seq, err)
	}
	return m.Data, nil
}

// List returns up to limit entries, oldest first.
func (q *PoisonQueue) List(ctx context.Context, limit int) ([]PoisonEntry, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var out []PoisonEntry
	for seq := uint64(1); len(out) < limit; {
		m, err := q.s.getMsg(ctx, q.stream, seq, jetstream.WithGetMsgSubject(poisonSubject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("poison queue: %w", err)
		}
		out = append(out, PoisonEntry{Seq: m.Sequence, Body: m.Data})
		seq = m.Sequence + 1
	}
	return out, nil
}

// Delete removes entry seq; one already gone is no error.
func (q *PoisonQueue) Delete(ctx context.Context, seq uint64) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := q.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("remove poison entry %d: %w", seq, err)
	}
	return nil
}
