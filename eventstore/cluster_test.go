package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/eventstore/eventstoretest"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// cluster is three in-process nats-servers in one JetStream cluster on
// loopback, each with its own temp store.
type cluster struct {
	srvs []*server.Server
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	ports := []int{eventstoretest.FreePort(t), eventstoretest.FreePort(t), eventstoretest.FreePort(t)}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	c := &cluster{}
	for i, p := range ports {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			MaxPayload: 8 << 20,
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "ledger", Host: "127.0.0.1", Port: p},
			Routes:     server.RoutesFromStr(joinRoutes(routes)),
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		c.srvs = append(c.srvs, s)
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	}
	for _, s := range c.srvs {
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatal("server not ready")
		}
	}
	waitFor(t, func() bool {
		for _, s := range c.srvs {
			if !s.JetStreamIsClustered() || !s.JetStreamIsCurrent() {
				return false
			}
		}
		return c.srvs[0].JetStreamIsLeader() || c.srvs[1].JetStreamIsLeader() || c.srvs[2].JetStreamIsLeader()
	})
	return c
}

func joinRoutes(r []string) string {
	var b bytes.Buffer
	for i, s := range r {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}

// url names the running servers, the given one first.
func (c *cluster) url(first int) string {
	var b bytes.Buffer
	for k := range c.srvs {
		s := c.srvs[(first+k)%len(c.srvs)]
		if !s.Running() {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.ClientURL())
	}
	return b.String()
}

// leader returns the index of the stream's leader, -1 when none.
func (c *cluster) leader(stream string) int {
	for i, s := range c.srvs {
		if s.Running() && s.JetStreamIsStreamLeader("$G", stream) {
			return i
		}
	}
	return -1
}

func openCluster(t testing.TB, url string, mod ...func(*eventstore.Options)) (*eventstore.Store, error) {
	t.Helper()
	o := eventstore.Options{URL: url, Replicas: 3, MasterKey: masterKey()}
	for _, m := range mod {
		m(&o)
	}
	s, err := eventstore.Open(context.Background(), o)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

// openPair opens two stores of c with mod, the first on node 0, the other
// on node 1.
func openPair(t testing.TB, c *cluster, mod ...func(*eventstore.Options)) (a, b *eventstore.Store) {
	t.Helper()
	a, err := openCluster(t, c.url(0), mod...)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = openCluster(t, c.url(1), mod...); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func streamReplicas(t testing.TB, js jetstream.JetStream, name string) int {
	t.Helper()
	st, err := js.Stream(ctx(t), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st.CachedInfo().Config.Replicas
}

// Item 1: replicas started together on a fresh cluster all come up.
func TestClusterConcurrentOpen(t *testing.T) {
	c := startCluster(t)
	const n = 3
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*eventstore.Store, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = openCluster(t, c.url(i), func(o *eventstore.Options) { o.StartTimeout = 30 * time.Second })
			if errs[i] == nil {
				_, errs[i] = stores[i].Subscriber().PoisonQueue(ctx(t), 3)
			}
		})
	}
	wg.Wait()
	t.Logf("%d stores opened together in %s", n, time.Since(start))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
	for _, name := range []string{eventstore.StreamName, "KV_" + eventstore.KeyBucket, "POISON"} {
		if r := streamReplicas(t, stores[0].JetStream(), name); r != 3 {
			t.Fatalf("%s has %d replicas, want 3", name, r)
		}
	}
	agg := person()
	if _, err := stores[1].Append(ctx(t), agg, 0, event(agg, 1)); err != nil {
		t.Fatal(err)
	}
}

// Item 2: a read-only open, or one with another --replicas, changes no
// stream's replicas; ApplyReplicas does.
func TestClusterOpenKeepsReplicas(t *testing.T) {
	c := startCluster(t)
	w, err := openCluster(t, c.url(0))
	if err != nil {
		t.Fatal(err)
	}
	js := w.JetStream()
	for _, o := range []struct {
		name string
		mod  func(*eventstore.Options)
	}{
		{"read-only with the default replicas", func(o *eventstore.Options) { o.Replicas, o.ReadOnly = 1, true }},
		{"read-only asking to apply", func(o *eventstore.Options) { o.Replicas, o.ReadOnly, o.ApplyReplicas = 1, true, true }},
		{"writer with another count", func(o *eventstore.Options) { o.Replicas = 1 }},
	} {
		t.Run(o.name, func(t *testing.T) {
			s, err := openCluster(t, c.url(1), o.mod)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.LastPosition(ctx(t)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			for _, name := range []string{eventstore.StreamName, "KV_" + eventstore.KeyBucket} {
				if r := streamReplicas(t, js, name); r != 3 {
					t.Fatalf("%s now has %d replicas, want 3", name, r)
				}
			}
		})
	}
	ro, err := openCluster(t, c.url(2), func(o *eventstore.Options) { o.ReadOnly = true })
	if err != nil {
		t.Fatal(err)
	}
	agg := person()
	if _, err := ro.Append(ctx(t), agg, 0, event(agg, 1)); !errors.Is(err, eventstore.ErrReadOnly) {
		t.Fatalf("append through a read-only store: %v", err)
	}
	if _, err := ro.Record(ctx(t), event(domain.PassAggregate(uuid.New(), uuid.New()), 1)); !errors.Is(err, eventstore.ErrReadOnly) {
		t.Fatalf("record through a read-only store: %v", err)
	}
	a, err := openCluster(t, c.url(1), func(o *eventstore.Options) { o.Replicas, o.ApplyReplicas = 1, true })
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if r := streamReplicas(t, js, eventstore.StreamName); r != 1 {
		t.Fatalf("asked to apply 1 replica: stream has %d", r)
	}
	// A read-only open of a log that does not exist creates nothing.
	if _, err := openCluster(t, c.url(0), func(o *eventstore.Options) {
		o.ReadOnly, o.StartTimeout = true, 5*time.Second
		o.URL = startCluster(t).url(0)
	}); err == nil {
		t.Fatal("a read-only open of a fresh cluster created the log")
	}
}

// Item 3: a key created through one node is found at once through every
// other node's connection, many times over.
func TestClusterKeyReadAfterCreate(t *testing.T) {
	c := startCluster(t)
	var stores []*eventstore.Store
	for i := range 3 {
		s, err := openCluster(t, c.srvs[i].ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	for n := range 300 {
		id := uuid.New()
		w := stores[n%3]
		key, err := w.Key(ctx(t), id, true)
		if err != nil {
			t.Fatal(err)
		}
		for k := 1; k < 3; k++ {
			got, err := stores[(n+k)%3].Key(ctx(t), id, false)
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("key %d read through node %d right after its creation: %v", n, (n+k)%3, err)
			}
		}
	}
	// Never created: missing, not destroyed (which would read as erasure).
	_, err := stores[0].Key(ctx(t), uuid.New(), false)
	if !errors.Is(err, eventstore.ErrKeyMissing) || !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("key never created: %v, want ErrKeyMissing", err)
	}
	id := uuid.New()
	if _, err := stores[0].Key(ctx(t), id, true); err != nil {
		t.Fatal(err)
	}
	if err := stores[0].Destroy(ctx(t), id); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[1].Key(ctx(t), id, false); !errors.Is(err, domain.ErrNotFound) || errors.Is(err, eventstore.ErrKeyMissing) {
		t.Fatalf("destroyed key: %v, want ErrNotFound and not ErrKeyMissing", err)
	}
}

// Item 3: a registration whose key the keyring has no trace of is not
// masked as erased: the opener retries and then reports the error.
func TestMissingKeyIsNotErasure(t *testing.T) {
	s := open(t, "")
	sealed := func(id uuid.UUID) domain.Sealed {
		t.Helper()
		key, err := s.Key(ctx(t), id, true)
		if err != nil {
			t.Fatal(err)
		}
		v, err := pii.Seal(key, "王五")
		if err != nil {
			t.Fatal(err)
		}
		return domain.Sealed(v)
	}
	destroyed := uuid.New()
	pr := &domain.PersonRegistered{PersonID: destroyed, Name: sealed(destroyed), IDNumber: sealed(destroyed)}
	if err := s.Destroy(ctx(t), destroyed); err != nil {
		t.Fatal(err)
	}
	if m, err := projections.Mask(ctx(t), pr, projections.KeyringOpener(s)); err != nil || m != projections.ErasedMasks {
		t.Fatalf("destroyed key: %+v %v, want the erased masks", m, err)
	}
	missing := *pr
	missing.PersonID = uuid.New() // no key was ever stored for this one
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	m, err := projections.Mask(c, &missing, projections.KeyringOpener(s))
	if err == nil || m == projections.ErasedMasks {
		t.Fatalf("missing key: %+v %v, want an error and no erased masks", m, err)
	}

	// The same for a declaration's sealed origin and plate (issue 11).
	declared := func(person uuid.UUID, ev domain.Event) domain.Envelope {
		t.Helper()
		e, err := domain.NewEnvelope(domain.DeclarationAggregate(uuid.New()), ev, domain.Meta{}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.Position = 1
		return e
	}
	erasedArrival := declared(destroyed, &domain.ArrivalDeclared{DeclarationID: uuid.New(), PersonID: destroyed, ArrivalDate: "2022-05-03",
		Origin: pr.Name, DestinationDistrict: "371302", NATResult: domain.NATNone})
	cs, err := projections.Prepare(ctx(t), []domain.Envelope{erasedArrival}, projections.KeyringOpener(s))
	if err != nil || cs[0].Declared.Origin != "" {
		t.Fatalf("origin of an erased declarant: %+v %v, want blank", cs, err)
	}
	missingTruck := declared(missing.PersonID, &domain.TruckPassDeclared{DeclarationID: uuid.New(), PersonID: missing.PersonID,
		PlateNumber: pr.Name, NATProofAt: time.Now(), HealthCodeColour: domain.ColourGreen, LogisticsPark: "园", District: "371311"})
	c2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if cs, err := projections.Prepare(c2, []domain.Envelope{missingTruck}, projections.KeyringOpener(s)); err == nil {
		t.Fatalf("plate of a declarant whose key is missing: %+v, want an error", cs)
	}
}

// Item 4: the stream leader dies while writes stream in: they resume soon
// after a new leader is elected, each acknowledged event is stored once.
func TestClusterLeaderFailover(t *testing.T) {
	c := startCluster(t)
	lead := -1
	var s *eventstore.Store
	// Connect the writer to a node that will not be killed: the leader is
	// known once the stream exists.
	s0, err := openCluster(t, c.url(0))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { lead = c.leader(eventstore.StreamName); return lead >= 0 })
	s0.Close()
	s, err = openCluster(t, c.url((lead+1)%3))
	if err != nil {
		t.Fatal(err)
	}
	venue := uuid.New()
	var (
		mu      sync.Mutex
		acked   = map[uuid.UUID]uint64{}
		lastAck time.Time
		gaps    []time.Duration
		failed  int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				e := event(domain.PassAggregate(venue, uuid.New()), 1)
				var res []ledger.Appended
				var err error
				for range 3 { // a write that timed out is retried with the same id
					if res, err = s.Record(context.Background(), e); err == nil || !errors.Is(err, eventstore.ErrUnavailable) {
						break
					}
				}
				mu.Lock()
				if err != nil {
					failed++
				} else {
					acked[e.ID] = res[0].Position
					now := time.Now()
					if !lastAck.IsZero() {
						gaps = append(gaps, now.Sub(lastAck))
					}
					lastAck = now
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	c.srvs[lead].Shutdown()
	var elected time.Time
	waitFor(t, func() bool {
		if c.leader(eventstore.StreamName) >= 0 {
			elected = time.Now()
			return true
		}
		return false
	})
	var resumed time.Time
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		if lastAck.After(elected) {
			resumed = lastAck
			return true
		}
		return false
	})
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	mu.Lock()
	var longest time.Duration
	for _, g := range gaps {
		longest = max(longest, g)
	}
	mu.Unlock()
	t.Logf("leader killed; new leader after %s; writes resumed %s after the election; longest gap between acks %s; %d acked, %d failed",
		elected.Sub(killed), resumed.Sub(elected), longest, len(acked), failed)
	if d := resumed.Sub(elected); d > 5*time.Second {
		t.Fatalf("writes resumed %s after the new leader was elected, want well under 5s", d)
	}
	if failed != 0 {
		t.Fatalf("%d writes failed even after retries", failed)
	}
	// Every acknowledged event is stored exactly once, at its position.
	seen := map[uuid.UUID]int{}
	if err := s.Read(ctx(t), "pass.>", 0, func(envs []domain.Envelope) error {
		for _, e := range envs {
			seen[e.ID]++
			if p, ok := acked[e.ID]; ok && p != e.Position {
				return fmt.Errorf("event %s at %d, acknowledged at %d", e.ID, e.Position, p)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Fatalf("acknowledged event %s stored %d times", id, seen[id])
		}
	}
}

// Item 7: the same event ids recorded through two stores at once (two
// ledger replicas) are stored once, and both callers get the same position:
// with one writer (the other store forwards to it) and with both writing
// through their chains (NoForward: what happens while their views of the
// writer differ).
func TestClusterDedupAcrossStores(t *testing.T) {
	for _, forward := range []bool{true, false} {
		t.Run(fmt.Sprintf("forward=%v", forward), func(t *testing.T) {
			c := startCluster(t)
			a, b := openPair(t, c, func(o *eventstore.Options) { o.NoForward = !forward })
			if forward {
				awaitWriter(t, a, b)
			}
			dedupAcross(t, a, b)
			if got := a.Forwarded() + b.Forwarded(); forward != (got > 0) {
				t.Fatalf("forward=%v: %d calls forwarded", forward, got)
			}
		})
	}
}

// awaitWriter waits until exactly one of a and b forwards to the other.
func awaitWriter(t *testing.T, a, b *eventstore.Store) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if (a.WriterElsewhere() == "") != (b.WriterElsewhere() == "") {
			return
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("no one writer after 5s: a sees %q, b sees %q", a.WriterElsewhere(), b.WriterElsewhere())
		}
	}
}

func dedupAcross(t *testing.T, a, b *eventstore.Store) {
	venue := uuid.New()
	const n = 400
	evs := passes(venue, n)
	// Each event goes to both stores at the same moment, from many
	// goroutines, so that packs of both contend.
	resA, resB := make([]ledger.Appended, n), make([]ledger.Appended, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				var in sync.WaitGroup
				for k, s := range []*eventstore.Store{a, b} {
					in.Go(func() {
						res, err := s.Record(ctx(t), evs[i])
						if err != nil {
							t.Error(err)
							return
						}
						if k == 0 {
							resA[i] = res[0]
						} else {
							resB[i] = res[0]
						}
					})
				}
				in.Wait()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	dups := 0
	for i := range evs {
		if resA[i].Position != resB[i].Position {
			t.Fatalf("event %d: positions %d and %d", i, resA[i].Position, resB[i].Position)
		}
		if resA[i].Duplicate == resB[i].Duplicate {
			t.Fatalf("event %d: duplicate flags %v and %v, want exactly one duplicate", i, resA[i].Duplicate, resB[i].Duplicate)
		}
		if resA[i].Duplicate {
			dups++
		}
	}
	t.Logf("%d events through two stores: %d first stored by b, %d by a", n, dups, n-dups)
	storedOnce(t, a, evs)
	// A retry later, through either store, gets the same answer.
	for _, s := range []*eventstore.Store{a, b} {
		res, err := s.Record(ctx(t), evs[0])
		if err != nil || res[0].Position != resA[0].Position || !res[0].Duplicate {
			t.Fatalf("retry: %+v %v, want position %d duplicate", res, err, resA[0].Position)
		}
	}
}

// TestClusterQueuedWriteTimesOutOnce: with no quorum, a write queued behind
// a stalled one answers ErrUnavailable within one WriteTimeout of its call,
// not two (an outside tester's second write answered 503 after 20 s).
func TestClusterQueuedWriteTimesOutOnce(t *testing.T) {
	c := startCluster(t)
	const writeTimeout = 2 * time.Second
	s, err := openCluster(t, c.url(0), func(o *eventstore.Options) {
		o.WriteTimeout, o.AckTimeout = writeTimeout, 300*time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	venue := uuid.New()
	if _, err := s.Record(context.Background(), event(domain.PassAggregate(venue, uuid.New()), 1)); err != nil {
		t.Fatal(err)
	}
	c.srvs[1].Shutdown()
	c.srvs[2].Shutdown() // no quorum: every write stalls
	took := make([]time.Duration, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range took {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 200 * time.Millisecond) // each behind the one before
			start := time.Now()
			_, errs[i] = s.Record(context.Background(), event(domain.PassAggregate(venue, uuid.New()), 1))
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i := range took {
		if !errors.Is(errs[i], eventstore.ErrUnavailable) {
			t.Fatalf("write %d: %v, want ErrUnavailable", i, errs[i])
		}
		if took[i] > writeTimeout+time.Second {
			t.Fatalf("write %d answered after %s, want within the write timeout (%s)", i, took[i], writeTimeout)
		}
	}
	t.Logf("answered after %v", took)
}

// Item 9: two stores of a cluster elect one writer and the other forwards
// its Record calls to it. When the writer closes, the other writes itself
// at once, and its first packs need no catch-up: its follower of the log
// kept its chains current while it forwarded (without that, its first pack
// would read every pack the writer stored, one leader get each). A retry
// of a forwarded event through it is still a duplicate.
func TestClusterOneWriter(t *testing.T) {
	c := startCluster(t)
	a, b := openPair(t, c)
	awaitWriter(t, a, b)
	writer, other := a, b
	if a.WriterElsewhere() != "" {
		writer, other = b, a
	}
	// The other follows the log, as a replica's projector does.
	fctx, stop := context.WithCancel(ctx(t))
	defer stop()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		_ = other.Follow(fctx, 0, func([]domain.Envelope) error { return nil })
	}()

	venue := uuid.New()
	const calls = 200 // one at a time: about a pack each
	evs := passes(venue, calls)
	first := make([]ledger.Appended, calls)
	for i := range evs {
		first[i] = record(t, other, evs[i])[0]
	}
	if got := other.Forwarded(); got != calls {
		t.Fatalf("%d of %d calls forwarded to the writer", got, calls)
	}
	if got := writer.Forwarded(); got != 0 {
		t.Fatalf("the writer forwarded %d calls", got)
	}

	// Let the follower read the last packs, then the writer goes.
	time.Sleep(300 * time.Millisecond)
	before := other.CatchUpReads()
	if err := writer.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	more := passes(venue, 20)
	for _, e := range more {
		record(t, other, e)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("20 writes after the writer closed took %s", took)
	}
	if got := other.Forwarded(); got != calls {
		t.Fatalf("%d calls forwarded, want %d: the closed writer was still chosen", got, calls)
	}
	if reads := other.CatchUpReads() - before; reads > 5 {
		t.Fatalf("the first own packs read %d missed packs (the writer stored about %d)", reads, calls)
	}
	// A retry of a forwarded event is answered with its first position.
	for _, i := range []int{0, calls / 2, calls - 1} {
		res := record(t, other, evs[i])
		if res[0].Position != first[i].Position || !res[0].Duplicate {
			t.Fatalf("retry of event %d: %+v, want position %d duplicate", i, res[0], first[i].Position)
		}
	}
	storedOnce(t, other, append(evs, more...))
	stop()
	<-followed
}

// A writer that is heard but does not answer (a frozen process) costs a
// forwarded call forwardWait, after which the store writes it itself and
// stops choosing that writer until it is heard again.
func TestClusterSilentWriter(t *testing.T) {
	c := startCluster(t)
	s, err := openCluster(t, c.url(0), func(o *eventstore.Options) { o.AckTimeout = 250 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	chooseWriter(t, c, s, func(*nats.Msg) {})
	start := time.Now()
	evs := passes(uuid.New(), 2)
	res := record(t, s, evs[0])
	if took := time.Since(start); took < 250*time.Millisecond || took > 3*time.Second {
		t.Fatalf("the call took %s: want the forward's 250ms wait (its AckTimeout), then its own write", took)
	}
	if s.WriterElsewhere() != "" {
		t.Fatalf("the silent writer is still chosen")
	}
	start = time.Now()
	record(t, s, evs[1])
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Fatalf("the next call took %s: it waited for the silent writer again", took)
	}
	if got := record(t, s, evs[0]); got[0].Position != res[0].Position || !got[0].Duplicate {
		t.Fatalf("retry: %+v, want %d duplicate", got[0], res[0].Position)
	}
}

// chooseWriter makes s forward to a writer that takes each request with
// serve. It is heard until s chooses it, then says nothing more (frozen).
func chooseWriter(t *testing.T, c *cluster, s *eventstore.Store, serve nats.MsgHandler) {
	t.Helper()
	nc, err := nats.Connect(c.srvs[0].ClientURL()) // the node every test keeps
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	const writer = "0" // sorts before every store's id: the writer
	if _, err := nc.Subscribe(eventstore.WriterPrefix+writer, serve); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); s.WriterElsewhere() != writer; time.Sleep(50 * time.Millisecond) {
		if err := nc.Publish(eventstore.HeartbeatSubject, []byte(writer)); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the store never chose the writer (sees %q)", s.WriterElsewhere())
		}
	}
}

// B1: the writer stored a forwarded call, then froze before it answered.
// The caller sent the call once, so its own events are new to it, not
// duplicates; an event another caller stored first is still a duplicate,
// and so is a repeat within the call and a later retry.
func TestClusterWriterStoredThenFroze(t *testing.T) {
	c := startCluster(t)
	s, err := openCluster(t, c.url(0), func(o *eventstore.Options) { o.AckTimeout = 250 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	w, err := openCluster(t, c.url(1), func(o *eventstore.Options) { o.NoForward = true })
	if err != nil {
		t.Fatal(err)
	}
	stored := make(chan error, 1)
	chooseWriter(t, c, s, func(m *nats.Msg) { stored <- w.CommitForwarded(m.Data) })
	evs := passes(uuid.New(), 3)
	other := record(t, w, evs[2])
	res := record(t, s, evs[0], evs[1], evs[0], evs[2])
	if err := <-stored; err != nil {
		t.Fatalf("the writer's commit: %v", err)
	}
	for i, dup := range []bool{false, false, true, true} {
		if res[i].Duplicate != dup {
			t.Errorf("event %d: duplicate %v, want %v", i, res[i].Duplicate, dup)
		}
	}
	if res[2].Position != res[0].Position || res[3].Position != other[0].Position {
		t.Errorf("positions %+v: want the repeat at %d and the other caller's at %d", res, res[0].Position, other[0].Position)
	}
	storedOnce(t, s, evs)
	if got := record(t, s, evs[0]); got[0].Position != res[0].Position || !got[0].Duplicate {
		t.Fatalf("retry: %+v, want %d duplicate", got[0], res[0].Position)
	}
}

// storedOnce checks that each of evs is stored exactly once among s's passes.
func storedOnce(t *testing.T, s *eventstore.Store, evs []domain.Envelope) {
	t.Helper()
	seen := map[uuid.UUID]int{}
	if err := s.Read(ctx(t), "pass.>", 0, func(envs []domain.Envelope) error {
		for _, e := range envs {
			seen[e.ID]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if seen[e.ID] != 1 {
			t.Fatalf("event %d (%s) stored %d times", i, e.ID, seen[e.ID])
		}
	}
}

// A follower of the log absorbs another store's pack, holding events of a
// pack this store is about to send, between the pack's compaction and its
// attempt. The attempt must not expect that pack as the subject's last
// with the events still in it: the server would store them twice (an
// outside tester's forwarded batch, the writer frozen just after it came).
func TestClusterAbsorbBeforeAttempt(t *testing.T) {
	c := startCluster(t)
	a, b := openPair(t, c, func(o *eventstore.Options) { o.NoForward = true })
	fctx, stop := context.WithCancel(context.Background())
	followed := make(chan struct{})
	defer func() { stop(); <-followed }()
	go func() {
		defer close(followed)
		_ = a.Follow(fctx, 0, func([]domain.Envelope) error { return nil })
	}()
	evs := passes(uuid.New(), 3)
	var (
		once  sync.Once
		other []ledger.Appended
	)
	a.SetBeforeAttempt(func(subject string) {
		if subject != eventstore.PackPassSubject {
			return
		}
		once.Do(func() {
			before := a.Known(subject)
			other = record(t, b, evs...)
			waitFor(t, func() bool { return a.Known(subject) > before }) // a's follower absorbed b's pack
		})
	})
	res := record(t, a, evs...)
	storedOnce(t, a, evs)
	for i := range evs {
		if !res[i].Duplicate || res[i].Position != other[i].Position {
			t.Fatalf("event %d: %+v, want a duplicate at %d", i, res[i], other[i].Position)
		}
	}
}

// Two replicas anchoring the audit head at once on a replicated key bucket:
// a lost compare-and-set there is code 10164, not the 10071 of one node,
// and each must look again (not fail the anchor), the head ending at the
// newest.
func TestClusterAuditAnchorRace(t *testing.T) {
	c := startCluster(t)
	a, b := openPair(t, c)
	head := func(n uint64) domain.AuditHead { return domain.AuditHead{Seq: n, Hash: fmt.Sprintf("%064d", n)} }
	var wg sync.WaitGroup
	for n := uint64(1); n <= 60; n++ {
		s := a
		if n%2 == 0 {
			s = b
		}
		wg.Go(func() {
			if err := s.AnchorAudit(ctx(t), head(n)); err != nil {
				t.Errorf("anchor %d: %v", n, err)
			}
		})
	}
	wg.Wait()
	for _, s := range []*eventstore.Store{a, b} {
		if got, _, err := s.AuditAnchor(ctx(t)); err != nil || got != head(60) {
			t.Fatalf("after concurrent anchors up to 60 from two replicas: %+v %v", got, err)
		}
	}
}
