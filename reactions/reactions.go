// Package reactions runs the ledger's side effects as watermill handlers:
// reactions to events already in the log, each writing its outcome back to
// the log as an event of its own.
//
//   - an abnormal pass (denied, yellow or red code, positive test) raises an
//     alert for its venue's district (AlertRaised);
//   - a submitted declaration joins its district's review queue
//     (DeclarationQueued);
//   - an approved venue has its code issued (VenueCodeIssued);
//   - an erased person's data key is destroyed (the erasure's own command
//     destroys it right after its event; this finishes an erasure that
//     stopped in between, so a crash never leaves the data readable), and
//     a family member registered while their guardian's erasure ran is
//     erased too.
//   - an audited event (a look at a person's movements, an administrative
//     decision: domain.IsAudited) takes its place in the audit chain
//     (AuditRecorded, ledger.RecordAudit).
//
// A watermill Router runs one handler per reaction, each subscribed through
// the event store's watermill subscriber (eventstore.Subscriber) with a
// durable consumer of its own (reactions_<name>) over the kinds it reacts
// to, so a restart resumes where the last run acknowledged. The router's
// middleware retries a failing handler with backoff, turns a panic into an
// error (Recoverer), and sets a message that keeps failing aside in the
// event store's poison queue, outside the log. Entries there are listed and
// retried with Poisoned and RetryPoisoned (ledger.PoisonQueue).
//
// Reactions are idempotent: each event they write has an id derived from
// its source event's id (uuid.NewSHA1), and the declaration and venue
// reactions decide on the aggregate's state, appended at its version, so a
// redelivered source changes nothing twice. Alerts are recorded by group
// commit: a redelivery inside the event store's duplicate window stores
// nothing; one after it (a consumer reset) appends the same alert id again,
// which the read models count once (they are keyed by event id).
package reactions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger"
)

// Names of the reactions (handler names, and the poison entries' Reaction).
const (
	ReactionAlerts       = "alerts"
	ReactionDeclarations = "declarations"
	ReactionVenueCodes   = "venue-codes"
	ReactionErasures     = "erasures"
	ReactionAudit        = "audit"
)

// Names are every reaction's name (the router's reactions, keyed by them).
var Names = []string{ReactionAlerts, ReactionDeclarations, ReactionVenueCodes, ReactionErasures, ReactionAudit}

// Defaults for Options' zero values.
const (
	// DefaultDurable prefixes the durable consumer names: reactions_alerts, ….
	DefaultDurable         = "reactions"
	DefaultMaxRetries      = 5
	DefaultRetryInterval   = 100 * time.Millisecond
	DefaultMaxInterval     = 5 * time.Second
	DefaultAckWait         = 2 * time.Minute
	DefaultCloseTimeout    = 15 * time.Second
	defaultPullMaxMessages = 16
	requestTimeout         = 10 * time.Second
	// poisonTopic is the watermill topic of the poison queue (the
	// publisher puts everything in the event store's one poison queue).
	poisonTopic = "poison"
)

// CodeIssuer issues an approved venue's printable code (token.Signer).
type CodeIssuer interface {
	IssueVenueCode(venueID uuid.UUID) string
}

// Options configure Open. Log, Ledger and Codes are required.
type Options struct {
	// Log is the event store's Subscriber (eventstore.Store.Subscriber):
	// the durable consumers, their decoding and the poison queue.
	Log *eventstore.Subscriber
	// Ledger runs the reactions' commands.
	Ledger *ledger.Ledger
	// Codes issues venue codes.
	Codes CodeIssuer
	// Durable prefixes the consumer names (default DefaultDurable).
	Durable string
	// Replicas of the poison stream (default 1).
	Replicas int
	// MaxRetries is how often a failing handler is retried before its
	// message goes to the poison queue (default DefaultMaxRetries; negative:
	// none).
	MaxRetries int
	// RetryInterval and MaxInterval bound the exponential backoff between
	// retries (defaults DefaultRetryInterval, DefaultMaxInterval).
	RetryInterval, MaxInterval time.Duration
	// AckWait is how long a message may stay unacknowledged before JetStream
	// redelivers it; it must exceed a handler's retries (default
	// DefaultAckWait).
	AckWait time.Duration
	// CloseTimeout bounds how long Close waits for handlers in flight
	// (default DefaultCloseTimeout).
	CloseTimeout time.Duration
	// Logger receives failed attempts and the router's own log lines
	// (default: discarded).
	Logger *slog.Logger
	// Now is the clock of the poison queue (default time.Now).
	Now func() time.Time
	// Metrics is told of failed attempts and poisoned messages (nil: none).
	Metrics Metrics
}

// Metrics is told what the reactions go through, for monitoring (cmd
// wires it to Prometheus). Its methods must be safe for concurrent use.
type Metrics interface {
	// Failed is told of every failed attempt of a reaction (each is
	// retried, until the message is poisoned).
	Failed(reaction string)
	// Poisoned is told of every message a reaction set aside.
	Poisoned(reaction string)
}

// reaction is one handler: what it reads and what it does.
type reaction struct {
	name string
	// kinds are the aggregate kinds its consumer reads (empty: the whole log).
	kinds  []string
	maybe  prefilter
	pick   selector
	handle handleFunc
}

// handleFunc is a reaction's step on the events it picked from one message.
type handleFunc func(ctx context.Context, events []domain.Envelope) error

// Router runs the reactions. It implements ledger.PoisonQueue.
type Router struct {
	o         Options
	log       *slog.Logger
	wm        *message.Router
	reactions map[string]*reaction
	poison    *eventstore.PoisonQueue
	gate      *gate
}

var _ ledger.PoisonQueue = (*Router)(nil)

// Open creates or updates the poison stream and builds the router with its
// handlers and middleware. Run starts it.
func Open(ctx context.Context, o Options) (*Router, error) {
	if o.Log == nil || o.Ledger == nil || o.Codes == nil {
		return nil, errors.New("reactions: Log, Ledger and Codes are required")
	}
	if o.Durable == "" {
		o.Durable = DefaultDurable
	}
	orDefault(&o.Replicas, 1)
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	orDefault(&o.RetryInterval, DefaultRetryInterval)
	orDefault(&o.MaxInterval, DefaultMaxInterval)
	orDefault(&o.AckWait, DefaultAckWait)
	orDefault(&o.CloseTimeout, DefaultCloseTimeout)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Router{o: o, log: o.Logger, gate: &gate{}}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var err error
	if r.poison, err = o.Log.PoisonQueue(cctx, o.Replicas); err != nil {
		return nil, fmt.Errorf("reactions: %w", err)
	}

	logger := watermill.NewSlogLoggerWithLevelMapping(o.Logger, map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug, // watermill logs every message at info
	})
	r.wm, err = message.NewRouter(message.RouterConfig{CloseTimeout: o.CloseTimeout}, logger)
	if err != nil {
		return nil, fmt.Errorf("reactions: router: %w", err)
	}
	poison, err := middleware.PoisonQueueWithFilter(poisonPublisher{r}, poisonTopic, func(err error) bool {
		// A handler stopped by shutdown is redelivered, not poisoned.
		return !errors.Is(err, context.Canceled)
	})
	if err != nil {
		return nil, fmt.Errorf("reactions: poison queue: %w", err)
	}
	retry := middleware.Retry{
		MaxRetries:          o.MaxRetries,
		InitialInterval:     o.RetryInterval,
		MaxInterval:         o.MaxInterval,
		Multiplier:          2,
		RandomizationFactor: 0.2,
		ShouldRetry:         func(p middleware.RetryParams) bool { return !permanent(p.Err) },
	}
	// The first added runs outermost: poison(retry(recoverer(handler))).
	r.wm.AddMiddleware(poison, retry.Middleware, middleware.Recoverer)

	r.reactions = map[string]*reaction{
		ReactionAlerts: {
			name: ReactionAlerts,
			// The whole log: passes, and whatever else may one day make
			// an alert.
			kinds:  nil,
			maybe:  mayBeAbnormalPass,
			pick:   abnormalPasses,
			handle: batch("raise alerts", o.Ledger.RaiseAlerts),
		},
		ReactionDeclarations: {
			name:  ReactionDeclarations,
			kinds: []string{domain.KindDeclaration},
			maybe: mayBeDeclaration,
			pick:  submittedDeclarations,
			handle: each("queue the declaration", func(ctx context.Context, e domain.Envelope) error {
				_, err := o.Ledger.QueueDeclaration(ctx, domain.ReactionsActor, e)
				return err
			}),
		},
		ReactionVenueCodes: {
			name:   ReactionVenueCodes,
			kinds:  []string{domain.KindVenue},
			maybe:  mayBeVenueReview,
			pick:   venueApprovals,
			handle: r.issueVenueCodes,
		},
		ReactionErasures: {
			name:   ReactionErasures,
			kinds:  []string{domain.KindPerson},
			maybe:  mayBeErasure,
			pick:   erasures,
			handle: each("complete the erasure", o.Ledger.CompleteErasure),
		},
		ReactionAudit: {
			name: ReactionAudit,
			// Where audited events live: looks (packed TraceRequested)
			// and the decisions on persons, venues and declarations.
			kinds:  []string{domain.KindAudit, domain.KindPerson, domain.KindVenue, domain.KindDeclaration},
			maybe:  mayBeAudited,
			pick:   audited,
			handle: batch("record audit", o.Ledger.RecordAudit),
		},
	}
	if len(r.reactions) != len(Names) {
		return nil, fmt.Errorf("reactions: %d reactions, %d in Names", len(r.reactions), len(Names))
	}
	for _, n := range Names {
		if r.reactions[n] == nil {
			return nil, fmt.Errorf("reactions: %q is in Names and not among the reactions", n)
		}
	}
	for _, re := range r.reactions {
		sub, err := o.Log.Watermill(eventstore.WatermillOptions{
			Logger:         logger,
			AckWait:        o.AckWait,
			Consumer:       r.consumer,
			ConsumeOptions: []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(defaultPullMaxMessages)},
			Unmarshaler:    unmarshaler{reaction: re.name, maybe: re.maybe, pick: re.pick},
		})
		if err != nil {
			return nil, fmt.Errorf("reactions: subscriber %s: %w", re.name, err)
		}
		r.wm.AddConsumerHandler(re.name, re.name, sub, r.handler(re))
	}
	return r, nil
}

// orDefault sets *v to def when it is not set (zero or less).
func orDefault[T cmp.Ordered](v *T, def T) {
	var zero T
	if *v <= zero {
		*v = def
	}
}

// permanent reports whether a handler's error cannot go away by retrying.
func permanent(err error) bool {
	return errors.Is(err, errUndecodable) || errors.Is(err, domain.ErrUnknownEvent) || errors.Is(err, domain.ErrInvalid)
}

// consumerName is the durable consumer of a reaction.
func (r *Router) consumerName(reaction string) string { return r.o.Durable + "_" + reaction }

// consumer gives the watermill subscriber a topic's consumer: the topic is
// the reaction's name, and its durable consumer is created, or updated and
// resumed.
func (r *Router) consumer(ctx context.Context, topic string) (jetstream.Consumer, error) {
	re, ok := r.reactions[topic]
	if !ok {
		return nil, fmt.Errorf("reactions: no reaction %q", topic)
	}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	cons, err := r.o.Log.Consumer(cctx, eventstore.Durable{
		Name:        r.consumerName(re.name),
		Description: "check-in ledger reaction: " + re.name,
		Kinds:       re.kinds,
		AckWait:     r.o.AckWait + 30*time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("reactions: %w", err)
	}
	return gatedConsumer{Consumer: cons, g: r.gate}, nil
}

// gate stops deliveries before the router closes. The watermill-nats
// subscriber closes its output channel when its context ends while a
// delivery may still be sending on it (a "send on closed channel" panic);
// shutting the gate first waits for the delivery in flight to be handled
// and acknowledged, and turns later ones away.
type gate struct {
	mu      sync.RWMutex
	stopped bool
}

// shut waits for the deliveries in flight and turns later ones away.
func (g *gate) shut() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

// gatedConsumer is a JetStream consumer whose deliveries pass the gate.
type gatedConsumer struct {
	jetstream.Consumer
	g *gate
}

// Consume implements jetstream.Consumer: a message delivered once the gate
// is shut is handed back (Nak) for the next run.
func (c gatedConsumer) Consume(handler jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	return c.Consumer.Consume(func(m jetstream.Msg) {
		c.g.mu.RLock()
		defer c.g.mu.RUnlock()
		if c.g.stopped {
			_ = m.Nak()
			return
		}
		handler(m)
	}, opts...)
}

// handler runs a reaction on the events a message carries. Every failed
// attempt is logged; the middleware retries and, in the end, poisons.
func (r *Router) handler(re *reaction) message.NoPublishHandlerFunc {
	return func(m *message.Message) error {
		events, err := eventsOf(m)
		if err == nil && len(events) > 0 {
			err = re.handle(m.Context(), events)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			if r.o.Metrics != nil {
				r.o.Metrics.Failed(re.name)
			}
			r.log.Warn("reaction attempt failed", "reaction", re.name,
				"subject", m.Metadata.Get(metaSubject), "sequence", m.Metadata.Get(metaSequence), "err", err)
		}
		return err
	}
}

// Run runs the handlers until ctx ends or Close is called, and returns once
// the handlers in flight have finished (up to Options.CloseTimeout).
func (r *Router) Run(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			if err := r.Close(); err != nil {
				r.log.Warn("reactions: close router", "err", err)
			}
		case <-done:
		}
	}()
	// The router's context must not end before the gate is shut (see gate):
	// Close ends it.
	if err := r.wm.Run(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("reactions: run: %w", err)
	}
	return nil
}

// Running is closed once every handler has subscribed.
func (r *Router) Running() <-chan struct{} { return r.wm.Running() }

// Close stops the handlers, waiting for those in flight. Unacknowledged
// messages are redelivered to the next run.
func (r *Router) Close() error {
	r.gate.shut()
	if err := r.wm.Close(); err != nil {
		return fmt.Errorf("reactions: close: %w", err)
	}
	return nil
}

// ConsumerNames returns the durable consumers of the reactions.
func (r *Router) ConsumerNames() []string {
	return []string{r.consumerName(ReactionAlerts), r.consumerName(ReactionDeclarations), r.consumerName(ReactionVenueCodes),
		r.consumerName(ReactionErasures), r.consumerName(ReactionAudit)}
}

// batch is the handler of a ledger step that takes the events at once
// (what names it in errors).
func batch(what string, step func(context.Context, domain.Actor, []domain.Envelope) (int, error)) handleFunc {
	return func(ctx context.Context, events []domain.Envelope) error {
		if _, err := step(ctx, domain.ReactionsActor, events); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
}

// each is the handler of a ledger step that takes one event at a time
// (what names it in errors, with the event).
func each(what string, step func(context.Context, domain.Envelope) error) handleFunc {
	return func(ctx context.Context, events []domain.Envelope) error {
		for _, e := range events {
			if err := step(ctx, e); err != nil {
				return fmt.Errorf("%s of event %s: %w", what, e.ID, err)
			}
		}
		return nil
	}
}

// issueVenueCodes records the code issued to each approved venue.
func (r *Router) issueVenueCodes(ctx context.Context, events []domain.Envelope) error {
	for _, e := range events {
		ev, err := domain.Decode(e)
		if err != nil {
			return err
		}
		rev, ok := ev.(*domain.VenueReviewed)
		if !ok {
			return domain.Errorf(domain.ErrInvalid, "event %s is a %s, not a venue review", e.ID, e.Type)
		}
		code := r.o.Codes.IssueVenueCode(rev.VenueID)
		if _, err := r.o.Ledger.IssueVenueCode(ctx, domain.ReactionsActor, e, code); err != nil {
			return fmt.Errorf("issue the code of venue %s: %w", rev.VenueID, err)
		}
	}
	return nil
}
