// Package eventstore is the check-in ledger's log of record on NATS
// JetStream: it sets up the stream and the key bucket, appends events with an
// expected per-aggregate version and idempotent event ids, gathers
// concurrent unversioned events into packs, one durable message for many
// events (group commit), reads one aggregate or a subject filter, follows the
// whole log from history into live events, keeps the per-person data keys,
// and runs the embedded nats-server when no external one is given.
// Followers with durable consumers of their own (the reactions) get a
// Subscriber: the consumers, the decoding of their messages (DecodeMessage),
// a watermill subscriber and the POISON stream of messages that kept failing.
//
// All events live in one stream, LEDGER: events with a version on subjects
// "ledger.<aggregate>", one message each; passes, alerts, health records and
// audit entries in packs on "ledger.pack.pass", "ledger.pack.alert" (these
// two expire: Nats-TTL from their events' occurred_at) and
// "ledger.pack.event". An
// event's position, one global order for every read model, is its message's
// stream sequence and its index in the message (PositionOf). See DESIGN.md
// for the reasoning and the measurements.
package eventstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Names of what the store creates in JetStream.
const (
	// StreamName is the one stream holding every event.
	StreamName = "LEDGER"
	// SubjectPrefix is prepended to an aggregate name to make its subject.
	SubjectPrefix = "ledger."
	// KeyBucket is the KV bucket holding the sealed per-person data keys.
	KeyBucket = "LEDGER_KEYS"
)

// The ports this package implements.
var (
	_ ledger.EventStore = (*Store)(nil)
	_ ledger.Log        = (*Store)(nil)
	_ ledger.Keyring    = (*Store)(nil)
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("eventstore: store closed")

// ErrReadOnly is returned by Append and Record of a store opened ReadOnly.
var ErrReadOnly = errors.New("eventstore: store opened read-only")

// ErrUnavailable is wrapped by the error of a write that JetStream did not
// acknowledge within the store's WriteTimeout (no stream leader, no
// quorum, no server reachable). The write may or may not have been stored:
// retrying it with the same event ids is safe and gets the original answer.
// Its Unavailable method lets a caller that does not import this package
// (the HTTP layer answers 503 with Retry-After) recognise it.
var ErrUnavailable error = unavailableError{}

type unavailableError struct{}

func (unavailableError) Error() string {
	return "eventstore: JetStream did not acknowledge the write in time; retry with the same event ids"
}

// Unavailable marks the error as a temporary unavailability.
func (unavailableError) Unavailable() bool { return true }

// Options configure Open. The zero value of every field but Dir (or URL)
// and MasterKey has a sensible default.
type Options struct {
	// Dir is the data dir of the embedded server: JetStream file storage
	// goes under Dir/jetstream. Ignored when URL is set.
	Dir string
	// URL names an external NATS/JetStream (cluster), e.g.
	// "nats://n1:4222,nats://n2:4222". Empty runs an embedded nats-server
	// that opens no port (DontListen) and fsyncs before every ack.
	URL string
	// Replicas is the replica count of the stream and the bucket when Open
	// creates them: 1 (default), 3 in a cluster. An existing stream keeps
	// its count: a different Replicas is logged, not applied, unless
	// ApplyReplicas is set (a command that forgot the flag must not shrink a
	// cluster).
	Replicas int
	// ApplyReplicas makes Open change the replica count of an existing
	// stream and bucket to Replicas (the operator asked for it).
	ApplyReplicas bool
	// ReadOnly opens the log for reading only: Open creates and updates
	// nothing (the stream must exist), the table of recent event ids is not
	// rebuilt, and Append and Record fail. For commands that only read.
	ReadOnly bool
	// StartTimeout bounds how long Open keeps trying to find or create the
	// stream and the bucket while the cluster forms or another replica
	// creates them at the same moment (default 60s).
	StartTimeout time.Duration
	// AckTimeout is how long one attempt to write waits for the server's
	// acknowledgement before it is sent again with the same message ids
	// (JetStream's dedup stores it once), default 1s: a write lost with a
	// stream leader that died is resent as soon as a new leader is up.
	AckTimeout time.Duration
	// WriteTimeout bounds a write's attempts when the caller's context has
	// no earlier deadline (default 10s); after it the write fails with
	// ErrUnavailable.
	WriteTimeout time.Duration
	// DuplicateWindow is how long retries are dropped: JetStream remembers
	// message ids (events written by Append, packs) this long, and the
	// store remembers the ids of the events Record wrote this long
	// (default 10 minutes).
	DuplicateWindow time.Duration
	// PassRetention is how long pass and alert events are kept, counted from
	// their occurred_at (default domain.DefaultRetention, 28 days):
	// the messages holding them carry a per-message TTL (Nats-TTL header)
	// of their latest occurred_at + PassRetention − now, at least 1 s.
	PassRetention time.Duration
	// MasterKey (32 bytes) wraps the per-person data keys of the Keyring.
	// Without it Key and Destroy fail; the log itself works.
	MasterKey []byte
	// GroupCommitWait bounds how long Record, with nothing on its way to
	// the server, waits for as many callers as the last pack answered
	// before writing what it gathered (default 1ms; negative: do not wait).
	// While a pack is on its way the next one fills regardless.
	GroupCommitWait time.Duration
	// MaxPack is the most events in one pack (default 4096, at most
	// 65536). A pack is also kept under the connection's max payload.
	MaxPack int
	// MaxInflight is how many groups of packs (what one gather sealed:
	// its pass pack and its other pack) may be on their way to the server
	// at once (default 1: the server stores one stream's messages one
	// after the other, and more in flight splits the same callers into
	// more packs, each with its own fsync; see DESIGN.md. More may help
	// with an external cluster, where the network round trip counts).
	MaxInflight int
	// MaxDedupEntries bounds the table of recently recorded event ids
	// (default 1,000,000, about 60 MB): under a load that records more
	// within DuplicateWindow, the oldest ids leave the table early, and a
	// retry of one of those is caught by the read models instead (see
	// DESIGN.md).
	MaxDedupEntries int
	// NoForward makes this store write its own packs even while another
	// store of the cluster is the writer (forward.go): the chains alone
	// then keep one event id stored once, at two writers' cost. For tests
	// and measurements.
	NoForward bool
	// Now is the clock for RecordedAt (default time.Now).
	Now func() time.Time
	// Logger receives the store's and the embedded server's log lines
	// (default: discarded).
	Logger *slog.Logger
	// Metrics receives the store's measurements (nil: none).
	Metrics Metrics
}

// Metrics is told what the store writes, for monitoring (cmd wires it to
// Prometheus). Its methods must be quick and safe for concurrent use.
type Metrics interface {
	// Appended is told of every Append ("append") and Record ("record")
	// call: how many events, how long it took, whether it failed.
	Appended(kind string, events int, took time.Duration, err error)
	// PackSent is told the number of events of each pack group-committed
	// in one message.
	PackSent(events int)
}

// observe tells the store's Metrics of a write of kind that started at start.
func (s *Store) observe(kind string, events int, start time.Time, err error) {
	if s.o.Metrics != nil {
		s.o.Metrics.Appended(kind, events, time.Since(start), err)
	}
}

// Store is the event store. It implements ledger.EventStore, ledger.Log and
// ledger.Keyring. It is safe for concurrent use.
type Store struct {
	// beforeAttempt, when set (the store's own tests), is called by
	// writePack before each attempt at a pack of the subject.
	beforeAttempt func(subject string)

	o         Options
	log       *slog.Logger
	srv       *server.Server // nil with an external server
	nc        *nats.Conn
	js        jetstream.JetStream
	stream    jetstream.Stream
	kv        jetstream.KeyValue
	now       func() time.Time
	retention time.Duration // of passes and alerts, from their occurred_at (ttlOf)

	// Group commit (record.go).
	closeMu   sync.RWMutex
	closed    bool
	recq      chan *recordReq
	acks      chan int // per group of packs settled, its most Record calls
	packBytes int      // the most bytes of one pack's body
	commitWG  sync.WaitGroup
	flights   sync.WaitGroup
	replies   *replyMux
	dedup     *dedupTable
	counts    countCache
	// dedupDone is closed once the dedup table is rebuilt from the log
	// (dedupErr says how that went). Open does not wait for it: a restart
	// reads the log for the read models at the same time. Record waits.
	dedupDone   chan struct{}
	chains      map[string]*chain // per pack subject (chain.go)
	catchUps    atomic.Int64      // messages the chains' catch-ups read
	gets        atomic.Int64      // messages Get read from the stream
	recent      recentMsgs        // Get's last messages
	writers     *writers          // the election of one writer (forward.go), with chains
	dedupErr    error
	stopRebuild context.CancelFunc

	done      chan struct{} // closed when Close starts
	closeOnce sync.Once
	closeErr  error
}

const (
	defaultDuplicateWindow = 10 * time.Minute
	defaultPassRetention   = domain.DefaultRetention
	defaultGroupCommitWait = time.Millisecond
	defaultMaxPack         = 4096
	defaultMaxInflight     = 1
	defaultMaxDedup        = 1_000_000
	// serverMaxBatch is the server's limit on an atomic batch (Append).
	serverMaxBatch = 1000
	// embeddedMaxPayload is the embedded server's max payload: packs of
	// thousands of events fit (an external server's default is 1 MB).
	embeddedMaxPayload = 8 << 20
	// packHeadroom is kept free of a pack's body for its headers.
	packHeadroom = 1024
	// requestTimeout bounds a request when the caller's context has no deadline.
	requestTimeout      = 10 * time.Second
	defaultStartTimeout = 60 * time.Second
	defaultAckTimeout   = time.Second
	defaultWriteTimeout = 10 * time.Second
	// Client liveness towards an external server: a frozen node (SIGSTOP)
	// answers no ping; after pingInterval × maxPingsOut without a pong the
	// client drops it and reconnects to another node of the cluster.
	pingInterval   = time.Second
	maxPingsOut    = 3
	reconnectWait  = 250 * time.Millisecond
	connectTimeout = 2 * time.Second
)

// orDefault sets *v to def when it is not set (zero or less).
func orDefault[T cmp.Ordered](v *T, def T) {
	var zero T
	if *v <= zero {
		*v = def
	}
}

// Open starts the embedded server when no URL is given, connects, and
// creates or updates the stream and the key bucket.
func Open(ctx context.Context, o Options) (*Store, error) {
	orDefault(&o.Replicas, 1)
	orDefault(&o.DuplicateWindow, defaultDuplicateWindow)
	orDefault(&o.PassRetention, defaultPassRetention)
	if o.PassRetention < time.Second {
		return nil, fmt.Errorf("eventstore: pass retention %s is under the 1s JetStream allows", o.PassRetention)
	}
	if o.GroupCommitWait == 0 {
		o.GroupCommitWait = defaultGroupCommitWait
	}
	orDefault(&o.MaxPack, defaultMaxPack)
	if o.MaxPack > maxPackEvents {
		return nil, fmt.Errorf("eventstore: max pack %d is over the %d a position can index", o.MaxPack, maxPackEvents)
	}
	orDefault(&o.MaxInflight, defaultMaxInflight)
	orDefault(&o.MaxDedupEntries, defaultMaxDedup)
	if o.MasterKey != nil && len(o.MasterKey) != 32 {
		return nil, fmt.Errorf("eventstore: master key has %d bytes, want 32", len(o.MasterKey))
	}
	orDefault(&o.StartTimeout, defaultStartTimeout)
	orDefault(&o.AckTimeout, defaultAckTimeout)
	orDefault(&o.WriteTimeout, defaultWriteTimeout)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		o:         o,
		log:       o.Logger,
		now:       o.Now,
		retention: o.PassRetention,
		recq:      make(chan *recordReq, 4096),
		done:      make(chan struct{}),
		acks:      make(chan int, o.MaxInflight),
		dedup:     newDedupTable(o.DuplicateWindow, o.MaxDedupEntries),
	}
	if err := s.connect(); err != nil {
		s.shutdown()
		return nil, err
	}
	if err := s.setup(ctx); err != nil {
		s.shutdown()
		return nil, err
	}
	replies, err := newReplyMux(s.nc)
	if err != nil {
		s.shutdown()
		return nil, err
	}
	s.replies = replies
	s.packBytes = int(s.nc.MaxPayload()) - packHeadroom
	rebuildCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopRebuild, s.dedupDone = stop, make(chan struct{})
	s.commitWG.Add(1)
	go func() {
		if o.ReadOnly {
			s.dedupErr = ErrReadOnly
		} else {
			var known map[string]uint64
			if known, s.dedupErr = s.rebuildDedup(rebuildCtx); s.dedupErr == nil && o.URL != "" {
				// Other ledger replicas may write the pack subjects of an
				// external server: packs are chained (chain.go). The
				// embedded server has no port, so this store is its only
				// writer and its packs stay pipelined.
				s.startChains(known)
				if err := s.startForwarding(); err != nil {
					// Without it this store writes through its chain:
					// correct, at two writers' cost.
					s.log.Warn("one writer: not taking part", "err", err)
				}
			}
		}
		if s.dedupErr != nil && rebuildCtx.Err() == nil && !o.ReadOnly {
			// Record refuses passes and Ready says why until a restart.
			s.log.Error("the table of recent event ids could not be rebuilt; passes are refused", "err", s.dedupErr)
		}
		close(s.dedupDone)
		s.commitLoop()
	}()
	return s, nil
}

// dedupReady waits until the dedup table is rebuilt and says whether it was.
func (s *Store) dedupReady(ctx context.Context) error {
	select {
	case <-s.dedupDone:
		return s.dedupErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) connect() error {
	name := nats.Name("ledger-eventstore")
	if s.o.URL != "" {
		nc, err := nats.Connect(s.o.URL, name, nats.MaxReconnects(-1),
			nats.PingInterval(pingInterval), nats.MaxPingsOutstanding(maxPingsOut),
			nats.ReconnectWait(reconnectWait), nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
			nats.Timeout(connectTimeout), nats.RetryOnFailedConnect(false),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				s.log.Warn("nats disconnected", "err", err)
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				s.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			}))
		if err != nil {
			return fmt.Errorf("eventstore: connect %s: %w", s.o.URL, err)
		}
		// Older servers accept the stream config but silently ignore what
		// the ledger depends on (per-message TTL, atomic batches, consumers
		// with several filter subjects): refuse them instead.
		if !versionAtLeast(nc.ConnectedServerVersion(), 2, 12) {
			v := nc.ConnectedServerVersion()
			nc.Close()
			return fmt.Errorf("eventstore: %s runs nats-server %s; the ledger needs 2.12 or newer (per-message TTL, atomic batch publish)", s.o.URL, v)
		}
		s.nc = nc
	} else {
		if s.o.Dir == "" {
			return errors.New("eventstore: neither Dir nor URL set")
		}
		srv, err := server.NewServer(&server.Options{
			ServerName: "ledger",
			JetStream:  true,
			StoreDir:   filepath.Join(s.o.Dir, "jetstream"),
			DontListen: true,
			MaxPayload: embeddedMaxPayload,
			// fsync before every ack: acknowledged means on disk. The
			// default (a sync every 2 minutes) loses acknowledged writes
			// on power loss.
			SyncAlways: true,
			NoSigs:     true,
		})
		if err != nil {
			return fmt.Errorf("eventstore: embedded server: %w", err)
		}
		srv.SetLoggerV2(serverLogger{s.log.With("component", "nats-server")}, false, false, false)
		srv.Start()
		s.srv = srv
		if !srv.ReadyForConnections(30 * time.Second) {
			return errors.New("eventstore: embedded server not ready after 30s")
		}
		nc, err := nats.Connect("", name, nats.InProcessServer(srv))
		if err != nil {
			return fmt.Errorf("eventstore: connect to embedded server: %w", err)
		}
		s.nc = nc
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("eventstore: jetstream: %w", err)
	}
	s.js = js
	return nil
}

// versionAtLeast reports whether a server version "major.minor.patch[-…]"
// is at least major.minor.
func versionAtLeast(v string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(v, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// streamConfig is the LEDGER stream: every event, file storage, kept
// forever except passes (per-message TTL), atomic batches allowed.
func (s *Store) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               StreamName,
		Description:        "check-in ledger: every event, subject ledger.<aggregate>",
		Subjects:           []string{SubjectPrefix + ">"},
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardOld,
		Storage:            jetstream.FileStorage,
		Replicas:           s.o.Replicas,
		Duplicates:         s.o.DuplicateWindow,
		AllowMsgTTL:        true,
		AllowAtomicPublish: true,
		DenyDelete:         true,
	}
}

// Close stops taking events, waits for the packs already gathered to be
// acknowledged, ends running Follow and Read calls (they return ErrClosed),
// and shuts the embedded server down cleanly (which flushes its files). It
// is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopRebuild()
		s.closeMu.Lock()
		s.closed = true
		close(s.recq)
		close(s.done)
		s.closeMu.Unlock()
		s.commitWG.Wait()
		s.flights.Wait()
		s.closeErr = s.shutdown()
	})
	return s.closeErr
}

func (s *Store) shutdown() error {
	var err error
	if s.replies != nil {
		s.replies.close()
	}
	if s.nc != nil {
		if ferr := s.nc.FlushTimeout(5 * time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
			err = fmt.Errorf("eventstore: flush: %w", ferr)
		}
		s.nc.Close()
	}
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
	return err
}

// Ready reports whether NATS is reachable, the stream answers and the dedup
// table is rebuilt (Record takes passes).
func (s *Store) Ready(ctx context.Context) error {
	if s.isClosed() {
		return ErrClosed
	}
	select {
	case <-s.dedupDone:
		if s.dedupErr != nil && !s.o.ReadOnly {
			return s.dedupErr
		}
	default:
		return errors.New("eventstore: rebuilding the table of recent event ids")
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("eventstore: nats connection is %s", st)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := s.stream.Info(ctx); err != nil {
		return fmt.Errorf("eventstore: stream %s info: %w", StreamName, err)
	}
	return nil
}

func (s *Store) isClosed() bool {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	return s.closed
}

// withTimeout gives ctx a deadline when it has none, so no request waits
// forever on a server that went away.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// serverLogger sends the embedded server's log lines to slog.
type serverLogger struct{ l *slog.Logger }

func (g serverLogger) Noticef(format string, v ...any) { g.l.Info(fmt.Sprintf(format, v...)) }
func (g serverLogger) Warnf(format string, v ...any)   { g.l.Warn(fmt.Sprintf(format, v...)) }
func (g serverLogger) Fatalf(format string, v ...any)  { g.l.Error(fmt.Sprintf(format, v...)) }
func (g serverLogger) Errorf(format string, v ...any)  { g.l.Error(fmt.Sprintf(format, v...)) }
func (g serverLogger) Debugf(format string, v ...any)  { g.l.Debug(fmt.Sprintf(format, v...)) }
func (g serverLogger) Tracef(format string, v ...any)  { g.l.Debug(fmt.Sprintf(format, v...)) }

// replyMux receives the replies to requests whose answer is awaited later
// than the request is sent (group-commit packs): one wildcard
// subscription, a token per request.
type replyMux struct {
	prefix string
	sub    *nats.Subscription
	mu     sync.Mutex
	wait   map[string]chan *nats.Msg
	done   bool
}

func newReplyMux(nc *nats.Conn) (*replyMux, error) {
	m := &replyMux{prefix: nats.NewInbox() + ".", wait: make(map[string]chan *nats.Msg)}
	sub, err := nc.Subscribe(m.prefix+"*", func(msg *nats.Msg) {
		token := msg.Subject[len(m.prefix):]
		m.mu.Lock()
		ch := m.wait[token]
		delete(m.wait, token)
		m.mu.Unlock()
		if ch != nil {
			ch <- msg
		}
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: reply subscription: %w", err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, fmt.Errorf("eventstore: reply subscription: %w", err)
	}
	m.sub = sub
	return m, nil
}

// expect returns a reply subject and the channel its one reply arrives on.
func (m *replyMux) expect() (string, chan *nats.Msg) {
	token := nuid.Next()
	ch := make(chan *nats.Msg, 1)
	m.mu.Lock()
	m.wait[token] = ch
	m.mu.Unlock()
	return m.prefix + token, ch
}

// forget drops a reply subject that timed out.
func (m *replyMux) forget(subject string) {
	m.mu.Lock()
	delete(m.wait, subject[len(m.prefix):])
	m.mu.Unlock()
}

func (m *replyMux) close() {
	m.mu.Lock()
	m.done = true
	m.mu.Unlock()
	_ = m.sub.Unsubscribe()
}

// ttlOf is the Nats-TTL of a message whose latest event occurred at
// latest (Unix nanoseconds): until that event expires
// (domain.PassExpiresAt), in whole seconds rounded up, at least the 1 s
// JetStream takes. Every other event of the message occurred earlier, so
// none is kept longer than its retention by more than the gap to the
// latest (the read models drop each on its own time).
func (s *Store) ttlOf(latest int64) string {
	left := domain.PassExpiresAt(time.Unix(0, latest), s.retention).Sub(s.now())
	secs := max(int64((left+time.Second-1)/time.Second), 1)
	return strconv.FormatInt(secs, 10) + "s"
}
