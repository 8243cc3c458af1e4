package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/checkin-ledger/ledger/domain"
)

// Durable consumers. Reactions follow the log with durable JetStream
// consumers of their own; this file is where their messages become events,
// so that no other package reads the store's bytes or computes positions.

// DecodeMessage returns the events of the log message at stream sequence seq
// on subject, with their positions. A body that is a JSON array is a pack
// (an envelope is an object; subject only names the message in errors). A
// one-event message is always decoded (a body that is not an envelope is an
// error). A pack's elements are
// decoded only when keep lets their encoded envelope through; keep must say
// true whenever an element may be one the caller wants, and be monotone
// (true for a part of a body means true for the whole, as a test of
// contained substrings is): a pack it refuses as a whole is skipped without
// being split. A nil keep keeps everything. Payloads alias body.
func DecodeMessage(subject string, seq uint64, body []byte, keep func(raw []byte) bool) ([]domain.Envelope, error) {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 || body[0] != '[' {
		var e domain.Envelope
		if err := decodeEnvelope(body, &e, nil); err != nil {
			return nil, fmt.Errorf("message at %d (%s): %w", seq, subject, err)
		}
		e.Position = PositionOf(seq, 0)
		return []domain.Envelope{e}, nil
	}
	if keep != nil && !keep(body) {
		// No element can pass: most packs of passes are all green.
		return nil, nil
	}
	var envs []domain.Envelope
	_, err := walkPack(body, func(i int, d *scanner) error {
		if keep != nil {
			start := d.I
			if err := skipElem(d); err != nil {
				return err
			}
			if !keep(d.B[start:d.I]) {
				return nil
			}
			d.I = start
		}
		var e domain.Envelope
		if err := decodeAt(d, &e, nil); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		e.Position = PositionOf(seq, i)
		envs = append(envs, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pack at %d (%s): %w", seq, subject, err)
	}
	return envs, nil
}

// Subscriber is what the store hands a follower of the log with durable
// consumers of its own (the reactions): the consumers, a watermill
// subscriber over them, a way to read a message again, and the poison
// queue. The stream and subject names stay in this package, and so does the
// connection.
type Subscriber struct{ s *Store }

// Subscriber returns the store's Subscriber.
func (s *Store) Subscriber() *Subscriber { return &Subscriber{s: s} }

// Durable describes a durable consumer of the log.
type Durable struct {
	// Name is the consumer's durable name.
	Name string
	// Description is shown by the JetStream tools.
	Description string
	// Kinds are the aggregate kinds whose events it reads (domain.KindVenue,
	// …); none: the whole log. A kind Record packs (pass, alert, health,
	// audit) brings the whole packs, with the other kinds they hold.
	Kinds []string
	// AckWait is how long a delivery may stay unacknowledged before the
	// server delivers it again.
	AckWait time.Duration
}

// config is d's consumer: every event from the log's beginning, each
// acknowledged, redelivered for as long as it fails.
func (d Durable) config() jetstream.ConsumerConfig {
	var filters []string
	for _, k := range d.Kinds {
		filters = append(filters, SubjectPrefix+k+".>")
		if ps := packSubjectOf(k); ps != "" && !slices.Contains(filters, ps) {
			filters = append(filters, ps)
		}
	}
	return jetstream.ConsumerConfig{
		Durable:        d.Name,
		Description:    d.Description,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        d.AckWait,
		MaxDeliver:     -1,
		FilterSubjects: filters,
	}
}

// Consumer creates the durable consumer d, or updates it: it resumes after
// what it had acknowledged.
func (sub *Subscriber) Consumer(ctx context.Context, d Durable) (jetstream.Consumer, error) {
	if sub.s.isClosed() {
		return nil, ErrClosed
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	c, err := sub.s.js.CreateOrUpdateConsumer(ctx, StreamName, d.config())
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", d.Name, err)
	}
	return c, nil
}

// ConsumerInfo returns the state of the durable consumer name.
func (sub *Subscriber) ConsumerInfo(ctx context.Context, name string) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	c, err := sub.s.js.Consumer(ctx, StreamName, name)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", name, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", name, err)
	}
	return info, nil
}

// DeleteConsumer removes the durable consumer name: the next one of that
// name starts from the log's beginning.
func (sub *Subscriber) DeleteConsumer(ctx context.Context, name string) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := sub.s.js.DeleteConsumer(ctx, StreamName, name); err != nil {
		return fmt.Errorf("delete consumer %s: %w", name, err)
	}
	return nil
}

// Reread reads the log message at stream sequence seq again (a delivery's
// sequence) and returns its events as DecodeMessage does with keep. A body
// that cannot be decoded gives an error wrapping ErrNotEnvelope.
func (sub *Subscriber) Reread(ctx context.Context, seq uint64, keep func(raw []byte) bool) ([]domain.Envelope, error) {
	if sub.s.isClosed() {
		return nil, ErrClosed
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := sub.s.getMsg(ctx, sub.s.stream, seq)
	if err != nil {
		return nil, fmt.Errorf("read log message %d: %w", seq, err)
	}
	return DecodeMessage(m.Subject, seq, m.Data, keep)
}

// WatermillOptions configure Subscriber.Watermill.
type WatermillOptions struct {
	// Logger receives the subscriber's log lines.
	Logger watermill.LoggerAdapter
	// AckWait is how long the subscriber waits for the handler to
	// acknowledge a message.
	AckWait time.Duration
	// ConsumeOptions tune the pull consumers.
	ConsumeOptions []jetstream.PullConsumeOpt
	// Consumer returns the consumer a topic reads (Subscriber.Consumer,
	// which the caller may wrap).
	Consumer func(ctx context.Context, topic string) (jetstream.Consumer, error)
	// Unmarshaler turns a delivery into a watermill message; it reads the
	// body with DecodeMessage.
	Unmarshaler wmjs.Unmarshaler
}

// Watermill returns a watermill-nats subscriber on the store's connection.
// It is built here because watermill-nats wants the connection itself, and
// the connection stays the store's: closing the subscriber leaves it open
// (watermill-nats would drain it); its subscriptions end with the context
// they were made with.
func (sub *Subscriber) Watermill(o WatermillOptions) (message.Subscriber, error) {
	if o.Consumer == nil || o.Unmarshaler == nil {
		return nil, errors.New("eventstore: watermill subscriber: Consumer and Unmarshaler are required")
	}
	w, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:           sub.s.nc,
		Logger:         o.Logger,
		AckWaitTimeout: o.AckWait,
		ResourceInitializer: func(ctx context.Context, _ jetstream.JetStream, topic string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
			c, err := o.Consumer(ctx, topic)
			return c, nil, err // durable: kept when the subscriber stops
		},
		ConsumeOptions: o.ConsumeOptions,
		Unmarshaler:    o.Unmarshaler,
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: watermill subscriber: %w", err)
	}
	return sharedConn{w}, nil
}

// sharedConn keeps watermill from closing the store's connection.
type sharedConn struct{ message.Subscriber }

// Close implements message.Subscriber without closing the connection.
func (sharedConn) Close() error { return nil }
