// Package tampertest changes what the event store wrote the way an outsider
// with access to the NATS server could: it removes, replaces and reorders
// the audit chain's messages and deletes its anchor, for the tests that
// check the chain finds it. JetStream cannot change a message in place and
// the stream denies deleting one, so a rewrite purges the chain's subject
// (which the stream allows, as whoever holds the NATS credentials can) and
// publishes the new bodies, in order, at the end of the stream. Only tests import it; the stream and
// subject names stay under eventstore/.
package tampertest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
)

// Log is a connection to the server an event store writes to.
type Log struct {
	tb     testing.TB
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Connect connects to the NATS server at url, closed when the test ends.
func Connect(tb testing.TB, url string) *Log {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatalf("tampertest: connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("tampertest: %v", err)
	}
	st, err := js.Stream(context.Background(), eventstore.StreamName)
	if err != nil {
		tb.Fatalf("tampertest: stream: %v", err)
	}
	return &Log{tb: tb, js: js, stream: st}
}

const timeout = 10 * time.Second

// chainSubject is the audit chain's subject.
const chainSubject = eventstore.SubjectPrefix + domain.AuditChainAggregate

// AuditEntries returns the audit chain's messages, oldest first, as
// envelopes (their Position unset).
func (l *Log) AuditEntries() []domain.Envelope {
	l.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []domain.Envelope
	for _, m := range l.messages(ctx) {
		out = append(out, m.env)
	}
	return out
}

type message struct {
	seq uint64
	env domain.Envelope
}

func (l *Log) messages(ctx context.Context) []message {
	l.tb.Helper()
	var out []message
	for seq := uint64(1); ; {
		m, err := l.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(chainSubject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			l.tb.Fatalf("tampertest: read the audit chain: %v", err)
		}
		var e domain.Envelope
		if err := json.Unmarshal(m.Data, &e); err != nil {
			l.tb.Fatalf("tampertest: message %d: %v", m.Sequence, err)
		}
		out = append(out, message{seq: m.Sequence, env: e})
		seq = m.Sequence + 1
	}
}

// RewriteAuditChain deletes every message of the audit chain and publishes
// entries in their place, in order.
func (l *Log) RewriteAuditChain(entries []domain.Envelope) {
	l.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := l.stream.Purge(ctx, jetstream.WithPurgeSubject(chainSubject)); err != nil {
		l.tb.Fatalf("tampertest: purge the audit chain: %v", err)
	}
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			l.tb.Fatalf("tampertest: %v", err)
		}
		if _, err := l.js.Publish(ctx, chainSubject, b); err != nil {
			l.tb.Fatalf("tampertest: publish: %v", err)
		}
	}
}

// DeleteAuditAnchor deletes the anchored audit head from the key bucket.
func (l *Log) DeleteAuditAnchor() {
	l.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := l.bucket(ctx).Delete(ctx, eventstore.AuditAnchorKey); err != nil {
		l.tb.Fatalf("tampertest: delete the anchor: %v", err)
	}
}

// WriteAuditAnchor puts value in place of the anchored audit head, as
// someone without the master key could.
func (l *Log) WriteAuditAnchor(value []byte) {
	l.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := l.bucket(ctx).Put(ctx, eventstore.AuditAnchorKey, value); err != nil {
		l.tb.Fatalf("tampertest: write the anchor: %v", err)
	}
}

func (l *Log) bucket(ctx context.Context) jetstream.KeyValue {
	l.tb.Helper()
	kv, err := l.js.KeyValue(ctx, eventstore.KeyBucket)
	if err != nil {
		l.tb.Fatalf("tampertest: bucket: %v", err)
	}
	return kv
}
