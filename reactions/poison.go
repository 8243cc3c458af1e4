package reactions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger"
)

// maxReasonBytes bounds the reason kept with a poison entry (a panic's
// reason carries its stack).
const maxReasonBytes = 8 << 10

// poisonRecord is the body of a poison queue entry.
type poisonRecord struct {
	Reaction   string    `json:"reaction"`
	Reason     string    `json:"reason"`
	PoisonedAt time.Time `json:"poisoned_at"`
	// Subject and Sequence locate the original message in the ledger's stream.
	Subject  string `json:"subject"`
	Sequence uint64 `json:"sequence"`
	// DecodeError is set when the original message could not be read;
	// Payload is then its raw body.
	DecodeError string `json:"decode_error,omitempty"`
	// Payload is the watermill payload: the events the reaction acts on.
	Payload []byte `json:"payload"`
}

// poisonPublisher writes the messages the PoisonQueue middleware sets aside
// to the event store's poison queue, whatever the topic. It implements
// message.Publisher.
type poisonPublisher struct{ r *Router }

// Publish stores each message as a poison entry. The message's id (the
// reaction and the original sequence) is the entry's Nats-Msg-Id, so a
// message poisoned twice in quick succession is stored once.
func (p poisonPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		seq, _ := strconv.ParseUint(m.Metadata.Get(metaSequence), 10, 64)
		reason := m.Metadata.Get(middleware.ReasonForPoisonedKey)
		if len(reason) > maxReasonBytes {
			reason = reason[:maxReasonBytes] + "…"
		}
		if p.r.o.Metrics != nil {
			p.r.o.Metrics.Poisoned(m.Metadata.Get(middleware.PoisonedHandlerKey))
		}
		rec := poisonRecord{
			Reaction:    m.Metadata.Get(middleware.PoisonedHandlerKey),
			Reason:      reason,
			PoisonedAt:  p.r.o.Now().UTC(),
			Subject:     m.Metadata.Get(metaSubject),
			Sequence:    seq,
			DecodeError: m.Metadata.Get(metaDecodeError),
			Payload:     m.Payload,
		}
		body, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("encode poison entry: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		err = p.r.poison.Put(ctx, m.UUID, body)
		cancel()
		if err != nil {
			return err
		}
		p.r.log.Error("reaction poisoned", "reaction", rec.Reaction, "subject", rec.Subject,
			"sequence", rec.Sequence, "reason", rec.Reason)
	}
	return nil
}

// Close implements message.Publisher; the connection is shared and stays open.
func (poisonPublisher) Close() error { return nil }

// entry reads the poison entry at seq.
func (r *Router) entry(ctx context.Context, seq uint64) (poisonRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	body, err := r.poison.Get(ctx, seq)
	if err != nil {
		return poisonRecord{}, err
	}
	var rec poisonRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return poisonRecord{}, fmt.Errorf("poison entry %d: %w", seq, err)
	}
	return rec, nil
}

// view turns an entry into what the admin API shows.
func (rec poisonRecord) view(id uint64) ledger.PoisonMessage {
	pm := ledger.PoisonMessage{ID: id, Reaction: rec.Reaction, Reason: rec.Reason, PoisonedAt: rec.PoisonedAt,
		Subject: rec.Subject, Sequence: rec.Sequence, Events: []ledger.PoisonEvent{}}
	if rec.DecodeError != "" {
		return pm
	}
	envs, err := decodeEvents(rec.Payload)
	if err != nil {
		return pm
	}
	for _, e := range envs {
		pm.Events = append(pm.Events, ledger.PoisonEvent{EventID: e.ID, Type: e.Type, Aggregate: e.Aggregate,
			Position: e.Position, OccurredAt: e.OccurredAt, Payload: e.Payload})
	}
	return pm
}

// Poisoned implements ledger.PoisonQueue: up to limit entries, oldest first.
func (r *Router) Poisoned(ctx context.Context, limit int) ([]ledger.PoisonMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	entries, err := r.poison.List(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := []ledger.PoisonMessage{}
	for _, e := range entries {
		var rec poisonRecord
		if err := json.Unmarshal(e.Body, &rec); err != nil {
			return nil, fmt.Errorf("poison entry %d: %w", e.Seq, err)
		}
		out = append(out, rec.view(e.Seq))
	}
	return out, nil
}

// RetryPoisoned implements ledger.PoisonQueue: it runs the entry's reaction
// again, here and now, and removes the entry when it succeeds. An entry
// whose original message could not be decoded is read again from the log,
// so a build that has learnt its event type can handle it. When the
// reaction fails again the entry stays, and the error (a conflict) says why.
func (r *Router) RetryPoisoned(ctx context.Context, id uint64) error {
	rec, err := r.entry(ctx, id)
	if err != nil {
		return err
	}
	re, ok := r.reactions[rec.Reaction]
	if !ok {
		return domain.Errorf(domain.ErrConflict, "poison entry %d names reaction %q, which this build does not run", id, rec.Reaction)
	}
	var events []domain.Envelope
	if rec.DecodeError != "" {
		events, err = r.reread(ctx, rec.Sequence, re)
	} else {
		events, err = decodeEvents(rec.Payload)
	}
	if err == nil && len(events) > 0 {
		err = re.handle(ctx, events)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return domain.Errorf(domain.ErrConflict, "reaction %s failed again, entry %d stays in the poison queue: %s", rec.Reaction, id, err.Error())
	}
	dctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := r.poison.Delete(dctx, id); err != nil {
		return err
	}
	r.log.Info("poisoned reaction retried", "reaction", rec.Reaction, "entry", id, "sequence", rec.Sequence)
	return nil
}

// reread reads the original log message at seq again and picks the events
// re acts on.
func (r *Router) reread(ctx context.Context, seq uint64, re *reaction) ([]domain.Envelope, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	envs, err := r.o.Log.Reread(ctx, seq, re.maybe)
	if errors.Is(err, eventstore.ErrNotEnvelope) {
		return nil, fmt.Errorf("%w: %w", err, errUndecodable)
	}
	if err != nil {
		return nil, err
	}
	var picked []domain.Envelope
	for _, e := range envs {
		if re.pick(e) {
			picked = append(picked, e)
		}
	}
	return picked, nil
}
