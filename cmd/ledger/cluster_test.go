package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/eventstore/eventstoretest"
	"github.com/checkin-ledger/ledger/internal/pgtest"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The production shape, as separate processes: three nats-server nodes
// (built from the module version go.mod pins, sync_interval: always) and two
// `ledger serve --replicas 3` replicas started together, PostgreSQL read
// models in a database of their own on the tests' PostgreSQL (internal/pgtest:
// DATABASE_URL, or a throwaway cluster; memory read models where there is
// neither, a failure under CI=true). Passes stream into both replicas (every fifth one sent
// to both at once) and registrations go on, while the stream leader is
// SIGKILLed (and restarted), the next leader is frozen (SIGSTOP until
// writes have resumed without it, then SIGCONT) and one replica is
// SIGKILLed (its writers carry on through the other, resending what was in
// flight with the same event id). Then: every acknowledged pass is in the
// log once, at the position it was acknowledged with; no event id is in the
// log twice; every acknowledged registration is there; the surviving
// replica's entry lists and trace histories equal those of a fresh replica
// that replayed the log into memory; and after each leader loss writes
// resumed within 5 s of the election, the longest gap under 15 s (issue 10,
// item 13). Every answer but 201, 200 and 503 fails it.
func TestClusterFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nats-server and ledger, runs a 3-node cluster and 2 replicas as processes")
	}
	began := time.Now()
	tmp := t.TempDir()
	ledgerBin := buildLedger(t)
	natsBin := filepath.Join(tmp, "nats-server")
	if out, err := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("go build nats-server: %v\n%s", err, out)
	}
	c := startNATSCluster(t, natsBin, tmp)
	// Logs of every process, shown when the test fails.
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(tmp, "*.log"))
			nodes, _ := filepath.Glob(filepath.Join(tmp, "cluster*", "*.log"))
			logs = append(logs, nodes...)
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("--- tail of %s ---\n%s", filepath.Base(l), b)
			}
		}
	})

	key := "cluster-test-root-key-" + hex.EncodeToString(randBytes(16))
	pgURL, store := clusterReadModels(t)
	t.Logf("read models: %s", store)
	env := []string{"LEDGER_TOKEN_KEY=" + key, "DATABASE_URL=", "NATS_URL="}
	serveArgs := func(name, pg string) []string {
		args := []string{"--nats-url", c.urls(), "--replicas", "3", "--data", filepath.Join(tmp, name),
			"--http", "127.0.0.1:0", "--register-rate", "0"}
		if pg != "" {
			args = append(args, "--postgres", pg)
		}
		return args
	}
	// Both replicas at the same moment, on a fresh cluster (item 1).
	procs := []*serveProcess{
		launchServe(t, ledgerBin, env, filepath.Join(tmp, "ledger1.log"), serveArgs("ledger1", pgURL)...),
		launchServe(t, ledgerBin, env, filepath.Join(tmp, "ledger2.log"), serveArgs("ledger2", pgURL)...),
	}
	bases := []string{procs[0].wait(t, 2*time.Minute), procs[1].wait(t, 2*time.Minute)}
	t.Logf("cluster and both replicas ready after %s", time.Since(began).Round(time.Millisecond))

	w := setUpWorld(t, bases, key, 16, 2)

	// Writers: four per replica, one person each, passes with event ids.
	lg := &passLog{}
	var dead [2]atomic.Bool
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	writing := time.Now()
	for i := range 8 {
		wg.Go(func() { w.write(ctx, i, i%2, &dead, lg) })
	}
	// And registrations (versioned appends and key writes), one at a
	// time, alternately through each replica.
	regs := &regLog{}
	wg.Go(func() { w.register(ctx, &dead, regs, lg) })
	stopWriters := func() {
		stop()
		wg.Wait()
	}
	defer stopWriters()
	waitAcks := func(what string, after time.Time, n int, within time.Duration) {
		t.Helper()
		if !ledgertest.Poll(within, func() bool { return lg.countAfter(after) >= n || lg.failed() }) || lg.failed() {
			stopWriters()
			t.Fatalf("%s: %d passes acknowledged since %s (want %d within %s); writer failures: %v",
				what, lg.countAfter(after), after.Format(time.TimeOnly), n, within, lg.failures)
		}
	}
	waitAcks("before the faults", writing, 300, 2*time.Minute)

	// 1. SIGKILL the stream leader; writes resume on the new one. Then the
	// node comes back on its own store and catches up.
	lead := c.streamLeader(t, eventstore.StreamName, time.Minute)
	killedAt := time.Now()
	c.kill(t, lead)
	newLead := c.streamLeader(t, eventstore.StreamName, time.Minute)
	electedAt := time.Now()
	waitAcks("after the leader kill", killedAt, 300, 2*time.Minute)
	killPhaseEnd := time.Now()
	c.start(t, lead)
	c.waitHealthy(t, 2*time.Minute)
	t.Logf("leader %s killed; %s leads after %s", c.nodes[lead].name, c.nodes[newLead].name, electedAt.Sub(killedAt).Round(time.Millisecond))

	// 2. Freeze the stream leader (SIGSTOP) for a while, then let it go.
	frozen := c.streamLeader(t, eventstore.StreamName, time.Minute)
	frozenAt := time.Now()
	c.signal(t, frozen, syscall.SIGSTOP)
	thawLead := c.streamLeader(t, eventstore.StreamName, time.Minute) // a node that is not frozen
	thawElectedAt := time.Now()
	// Writes must resume while the node is still frozen.
	waitAcks("while the leader is frozen", thawElectedAt, 300, 2*time.Minute)
	ledgertest.Poll(10*time.Second, func() bool { return time.Since(frozenAt) >= 10*time.Second })
	c.signal(t, frozen, syscall.SIGCONT)
	thawedAt := time.Now()
	c.waitHealthy(t, 2*time.Minute)
	t.Logf("leader %s frozen for %s; %s leads after %s", c.nodes[frozen].name, thawedAt.Sub(frozenAt).Round(time.Millisecond),
		c.nodes[thawLead].name, thawElectedAt.Sub(frozenAt).Round(time.Millisecond))

	// 3. SIGKILL one replica; its writers go on through the other one.
	replicaKilledAt := time.Now()
	dead[0].Store(true)
	if err := procs[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = procs[0].cmd.Wait()
	waitAcks("after the replica kill", replicaKilledAt, 300, 2*time.Minute)
	ledgertest.Poll(5*time.Second, func() bool { return time.Since(replicaKilledAt) >= 5*time.Second })
	stopWriters()
	if lg.failed() {
		t.Fatalf("writer failures: %v", lg.failures)
	}

	acks := lg.sorted()
	killStall := lg.longestGap(killedAt, killPhaseEnd)
	killResumed := lg.firstAfter(electedAt).Sub(electedAt)
	freezeStall := lg.longestGap(frozenAt, thawedAt)
	freezeResumed := lg.firstAfter(thawElectedAt).Sub(thawElectedAt)
	replicaStall := lg.longestGap(replicaKilledAt, time.Now())
	calm := lg.countAfter(writing) - lg.countAfter(killedAt)
	distinct := map[uuid.UUID]bool{}
	for _, a := range acks {
		distinct[a.id] = true
	}
	t.Logf("%d passes acknowledged (%d answers before the first fault, %.0f/s; %d sent to both replicas at once, both answers at one position; %d resends answered as duplicates), %d answers 503, %d resends after a lost connection, %d passes of the killed replica's writers sent through the other",
		len(distinct), calm, float64(calm)/killedAt.Sub(writing).Seconds(), lg.doubled.Load(), lg.dups, lg.unavailable.Load(), lg.resent.Load(), lg.moved.Load())
	t.Logf("leader kill: longest gap between acknowledged writes %s, writes resumed %s after the new leader was elected",
		killStall.Round(time.Millisecond), killResumed.Round(time.Millisecond))
	t.Logf("leader frozen: longest gap %s, writes resumed %s after the new leader was elected; replica kill: longest gap %s",
		freezeStall.Round(time.Millisecond), freezeResumed.Round(time.Millisecond), replicaStall.Round(time.Millisecond))

	// Every acknowledged pass is in the log exactly once, at its position;
	// no event id is stored twice.
	es, err := eventstore.Open(context.Background(), eventstore.Options{URL: c.urls(), Replicas: 3, ReadOnly: true})
	if err != nil {
		t.Fatalf("open the log: %v", err)
	}
	defer es.Close()
	seen := map[uuid.UUID]int{}
	at := map[uuid.UUID]uint64{}
	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := es.Read(rctx, domain.KindPass+".>", 0, func(envs []domain.Envelope) error {
		for _, e := range envs {
			seen[e.ID]++
			at[e.ID] = e.Position
		}
		return nil
	}); err != nil {
		t.Fatalf("read the log: %v", err)
	}
	var lost, twice, moved int
	for _, a := range acks {
		switch {
		case seen[a.id] == 0:
			lost++
		case at[a.id] != a.pos:
			moved++
		}
	}
	for id, n := range seen {
		if n > 1 {
			twice++
			if twice <= 5 {
				t.Errorf("event %s stored %d times", id, n)
			}
		}
	}
	t.Logf("log: %d passes; acknowledged passes lost %d, at another position than acknowledged %d; stored twice %d", len(seen), lost, moved, twice)
	if lost != 0 || moved != 0 || twice != 0 {
		t.Fatalf("%d acknowledged passes lost, %d at another position, %d stored twice", lost, moved, twice)
	}
	// The stall after a leader dies is the election (nats-server's Raft
	// waits a random 4-9 s without heartbeats before it votes) and then
	// the ledger's own part: a write lost with the leader is resent after
	// AckTimeout (1 s), so writes resume within about a second of the
	// election (issue 10, item 4: within 2 s; bounded here at 5 s for a
	// loaded machine). The gap as a whole is bounded by the longest
	// election and that.
	const resumeBound, stallBound = 5 * time.Second, 15 * time.Second
	for _, f := range []struct {
		what           string
		stall, resumed time.Duration
	}{{"the stream leader was killed", killStall, killResumed}, {"the stream leader was frozen", freezeStall, freezeResumed}} {
		if f.resumed > resumeBound {
			t.Errorf("after %s, writes resumed %s after the election, want under %s", f.what, f.resumed, resumeBound)
		}
		if f.stall > stallBound {
			t.Errorf("after %s, writes stalled %s, want under %s", f.what, f.stall, stallBound)
		}
	}

	// Every acknowledged registration is there.
	for _, p := range regs.acked {
		w.readModel(t, fmt.Sprintf("%s/v1/persons/%s", bases[1], p))
	}
	t.Logf("%d registrations acknowledged through the faults, all there", len(regs.acked))

	// The surviving replica's read models equal a clean replay: a fresh
	// replica with memory read models and an empty data dir.
	last, err := es.LastPosition(rctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh := launchServe(t, ledgerBin, env, filepath.Join(tmp, "ledger3.log"), serveArgs("ledger3", "")...).wait(t, 2*time.Minute)
	survivor := bases[1]
	var entries int
	for _, v := range w.venues {
		got := w.entries(t, survivor, v, last)
		want := w.entries(t, fresh, v, last)
		entries += len(want)
		if !slices.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Errorf("venue %s: the surviving replica lists %d entries, a clean replay %d, and they differ%s", v, len(got), len(want), firstDiff(got, want))
		}
	}
	if entries != len(seen) {
		t.Errorf("the entry lists hold %d passes, the log %d", entries, len(seen))
	}
	from, to := began.Add(-time.Hour).Truncate(time.Second), time.Now().Add(time.Hour).Truncate(time.Second)
	for _, p := range w.persons {
		got, want := w.trace(t, survivor, p, from, to, last), w.trace(t, fresh, p, from, to, last)
		if !bytes.Equal(got, want) {
			t.Errorf("person %s: trace differs between the surviving replica and a clean replay:\n%.400s\n%.400s", p, got, want)
		}
	}
	t.Logf("read models equal a clean replay: %d entries at %d venues, %d trace histories; test took %s",
		entries, len(w.venues), len(w.persons), time.Since(began).Round(time.Second))
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestMain stops the throwaway PostgreSQL the tests may start.
func TestMain(m *testing.M) { pgtest.Main(m) }

// onBothReadModels runs test with memory read models, then with PostgreSQL
// ones in a database of its own (clusterReadModels; skipped where there is
// none), giving it the serve flags of each.
func onBothReadModels(t *testing.T, test func(t *testing.T, flags []string)) {
	t.Run("memory", func(t *testing.T) { test(t, nil) })
	t.Run("postgres", func(t *testing.T) {
		pg, which := clusterReadModels(t)
		if pg == "" {
			t.Skip(which)
		}
		test(t, []string{"--postgres", pg})
	})
}

// clusterReadModels returns a PostgreSQL URL for a database of the test's
// own (dropped at cleanup) on the tests' database (internal/pgtest), or ""
// for memory read models where there is none (a failure under CI=true),
// and says which.
func clusterReadModels(t *testing.T) (string, string) {
	t.Helper()
	base, why := pgtest.Optional(t)
	if base == "" {
		return "", "memory (no PostgreSQL: " + why + ")"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to the tests' database: %v", err)
	}
	defer conn.Close(context.Background())
	name := "ledger_cluster_" + hex.EncodeToString(randBytes(6))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String(), "PostgreSQL, database " + name
}

// natsNode is one nats-server process of the cluster.
type natsNode struct {
	name, conf, log string
	client, mon     string // nats:// and http:// addresses
	cmd             *exec.Cmd
	frozen          bool
}

type natsCluster struct {
	bin   string
	nodes []*natsNode
}

// startNATSCluster starts three nats-server processes in one JetStream
// cluster on loopback (ports chosen free now, sync_interval: always) and
// waits for JetStream on each. A port found free can be taken by another
// test process before a node binds it (CI saw a node never come up once):
// a cluster that does not come up is stopped and started again on other
// ports, in a directory of its own, up to three times, and the last
// failure shows the node's log.
func startNATSCluster(t *testing.T, bin, dir string) *natsCluster {
	t.Helper()
	var why string
	for attempt := 1; attempt <= 3; attempt++ {
		sub := filepath.Join(dir, fmt.Sprintf("cluster%d", attempt))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		c, failed := tryNATSCluster(t, bin, sub)
		if failed == nil {
			return c
		}
		b, _ := os.ReadFile(failed.log)
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		why = fmt.Sprintf("nats-server %s: no JetStream within a minute; its log:\n%s", failed.name, b)
		t.Logf("attempt %d: %s", attempt, why)
		for i := range c.nodes {
			c.kill(t, i)
		}
	}
	t.Fatal(why)
	return nil
}

// tryNATSCluster is one attempt of startNATSCluster in dir: the cluster,
// and the node that did not come up (nil when all did).
func tryNATSCluster(t *testing.T, bin, dir string) (*natsCluster, *natsNode) {
	t.Helper()
	c := &natsCluster{bin: bin}
	var routes []string
	ports := make([][3]int, 3)
	for i := range ports {
		ports[i] = [3]int{eventstoretest.FreePort(t), eventstoretest.FreePort(t), eventstoretest.FreePort(t)}
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i][1]))
	}
	for i, p := range ports {
		n := &natsNode{
			name:   fmt.Sprintf("n%d", i+1),
			conf:   filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1)),
			log:    filepath.Join(dir, fmt.Sprintf("nats%d.log", i+1)),
			client: fmt.Sprintf("nats://127.0.0.1:%d", p[0]),
			mon:    fmt.Sprintf("http://127.0.0.1:%d", p[2]),
		}
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream { store_dir: %q, sync_interval: always }
cluster { name: ledger, listen: 127.0.0.1:%d, routes: [%s] }
`, n.name, p[0], p[2], filepath.Join(dir, n.name), p[1], strings.Join(routes, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	for i := range c.nodes {
		c.start(t, i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.kill(t, i)
		}
	})
	for _, n := range c.nodes {
		if !ledgertest.Poll(time.Minute, func() bool { return monitorOK(n.mon + "/healthz?js-enabled-only=true") }) {
			return c, n
		}
	}
	return c, nil
}

func (c *natsCluster) start(t *testing.T, i int) {
	t.Helper()
	n := c.nodes[i]
	f, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(c.bin, "-c", n.conf)
	n.cmd.Stdout, n.cmd.Stderr = f, f
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start nats-server %s: %v", n.name, err)
	}
	f.Close() // the child holds its own descriptor
	n.frozen = false
}

// kill sends SIGKILL to node i (thawing it first if frozen) and reaps it.
func (c *natsCluster) kill(t *testing.T, i int) {
	n := c.nodes[i]
	if n.cmd == nil {
		return
	}
	if n.frozen {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

func (c *natsCluster) signal(t *testing.T, i int, sig syscall.Signal) {
	t.Helper()
	n := c.nodes[i]
	if err := n.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s to %s: %v", sig, n.name, err)
	}
	n.frozen = sig == syscall.SIGSTOP
}

// urls is every node's client URL: the replicas get all three.
func (c *natsCluster) urls() string {
	var u []string
	for _, n := range c.nodes {
		u = append(u, n.client)
	}
	return strings.Join(u, ",")
}

// waitHealthy waits until every node's /healthz is OK: JetStream up and
// every stream and consumer it holds current.
func (c *natsCluster) waitHealthy(t *testing.T, within time.Duration) {
	t.Helper()
	for _, n := range c.nodes {
		if !ledgertest.Poll(within, func() bool { return monitorOK(n.mon + "/healthz") }) {
			t.Fatalf("nats-server %s not healthy within %s", n.name, within)
		}
	}
}

// monitorClient bounds monitoring requests: a frozen node never answers.
var monitorClient = &http.Client{Timeout: 2 * time.Second}

func monitorOK(u string) bool {
	resp, err := monitorClient.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// streamLeader returns the node that, by its own /jsz, leads stream:
// found through the monitoring endpoint, as an operator would.
func (c *natsCluster) streamLeader(t *testing.T, stream string, within time.Duration) int {
	t.Helper()
	lead := -1
	ok := ledgertest.Poll(within, func() bool {
		for i, n := range c.nodes {
			if n.cmd == nil || n.frozen {
				continue
			}
			resp, err := monitorClient.Get(n.mon + "/jsz?accounts=true&streams=true")
			if err != nil {
				continue
			}
			var jsz struct {
				Accounts []struct {
					Streams []struct {
						Name    string `json:"name"`
						Cluster *struct {
							Leader string `json:"leader"`
						} `json:"cluster"`
					} `json:"stream_detail"`
				} `json:"account_details"`
			}
			err = json.NewDecoder(resp.Body).Decode(&jsz)
			resp.Body.Close()
			if err != nil {
				continue
			}
			for _, a := range jsz.Accounts {
				for _, s := range a.Streams {
					if s.Name == stream && s.Cluster != nil && s.Cluster.Leader == n.name {
						lead = i
						return true
					}
				}
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no leader of stream %s within %s", stream, within)
	}
	return lead
}

// world is what set-up registered through the API.
type world struct {
	bases   []string
	admin   string
	persons []string // person ids
	tokens  []string // their bearer tokens
	venues  []string
	codes   []string // the venues' codes
	client  *http.Client
}

// setUpWorld registers persons (alternately through each replica) and
// venues, approves the venues, and waits until both replicas' read models
// know them.
func setUpWorld(t *testing.T, bases []string, key string, persons, venues int) *world {
	t.Helper()
	env := func(k string) string {
		if k == "LEDGER_TOKEN_KEY" {
			return key
		}
		return ""
	}
	tok := func(args ...string) string {
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"token", "issue", "--data", t.TempDir()}, args...), &out, io.Discard, env); err != nil {
			t.Fatalf("token issue %v: %v", args, err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return lines[len(lines)-1]
	}
	w := &world{
		bases:  bases,
		admin:  tok("--role", "admin", "--subject", "cluster-test"),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	reviewer := tok("--role", "reviewer", "--subject", "cluster-test")
	seed := int(time.Now().UnixNano() % 1_000_000)
	for i := range persons {
		var reg struct {
			PersonID string `json:"person_id"`
			Token    string `json:"token"`
		}
		code, _, raw := call(t, "POST", bases[i%2]+"/v1/persons", "", map[string]any{
			"name": fmt.Sprintf("集群%d", i), "id_type": "resident_id", "id_number": residentID(seed + i), "phone": "13800000000",
		}, &reg)
		if code != http.StatusCreated {
			t.Fatalf("register %d: %d %s", i, code, raw)
		}
		w.persons = append(w.persons, reg.PersonID)
		w.tokens = append(w.tokens, reg.Token)
	}
	for v := range venues {
		var ap struct {
			VenueID string `json:"venue_id"`
		}
		code, _, raw := call(t, "POST", bases[v%2]+"/v1/venues", w.tokens[v], map[string]any{
			"name": fmt.Sprintf("集群场所%d", v), "type": "supermarket", "district": "371302",
			"address": "临沂市兰山区", "lat": 35.05, "lng": 118.35,
		}, &ap)
		if code != http.StatusCreated {
			t.Fatalf("apply venue %d: %d %s", v, code, raw)
		}
		var rv struct {
			Position uint64 `json:"position"`
		}
		code, _, raw = call(t, "POST", bases[(v+1)%2]+"/v1/venues/"+ap.VenueID+"/review", reviewer, map[string]any{"decision": "approve"}, &rv)
		if code/100 != 2 {
			t.Fatalf("approve venue %d: %d %s", v, code, raw)
		}
		var got struct {
			Status string `json:"status"`
			Code   string `json:"code"`
		}
		for _, b := range bases {
			if !ledgertest.Poll(time.Minute, func() bool {
				code, _, _ := call(t, "GET", fmt.Sprintf("%s/v1/venues/%s?min_position=%d", b, ap.VenueID, rv.Position), w.admin, nil, &got)
				return code == http.StatusOK && got.Status == "approved" && got.Code != ""
			}) {
				t.Fatalf("venue %s not approved with a code at %s within a minute: %+v", ap.VenueID, b, got)
			}
		}
		w.venues = append(w.venues, ap.VenueID)
		w.codes = append(w.codes, got.Code)
	}
	return w
}

// ack is an acknowledged pass: its event id, the position it was answered
// with and when the answer came.
type ack struct {
	id  uuid.UUID
	pos uint64
	at  time.Time
}

// passLog gathers what the writers saw.
type passLog struct {
	mu       sync.Mutex
	acks     []ack
	dups     int
	failures []string
	// Counts of what the writers went through.
	unavailable, resent, moved, doubled atomic.Int64
}

func (l *passLog) add(a ack, dup bool) {
	l.mu.Lock()
	l.acks = append(l.acks, a)
	if dup {
		l.dups++
	}
	l.mu.Unlock()
}

func (l *passLog) fail(format string, args ...any) {
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, fmt.Sprintf(format, args...))
	}
	l.mu.Unlock()
}

func (l *passLog) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.failures) > 0
}

func (l *passLog) countAfter(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.acks {
		if a.at.After(t) {
			n++
		}
	}
	return n
}

// firstAfter is when the first pass was acknowledged after t.
func (l *passLog) firstAfter(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, a := range l.acks {
		if a.at.After(t) && (first.IsZero() || a.at.Before(first)) {
			first = a.at
		}
	}
	return first
}

func (l *passLog) sorted() []ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.acks)
	slices.SortFunc(s, func(a, b ack) int { return a.at.Compare(b.at) })
	return s
}

// longestGap is the longest time between two consecutive acknowledgements
// (of any writer) that overlaps [from, to]: from the last one before from
// to the first one after it, and so on up to to.
func (l *passLog) longestGap(from, to time.Time) time.Duration {
	s := l.sorted()
	var longest time.Duration
	for i := 1; i < len(s); i++ {
		if s[i].at.After(from) && s[i-1].at.Before(to) {
			longest = max(longest, s[i].at.Sub(s[i-1].at))
		}
	}
	return longest
}

// write records passes of person i through replica r until ctx ends. Each
// pass keeps its event id and body until it is answered 201 or 200: a 503 is
// retried after a moment, a lost connection is resent, to the other replica
// once r is dead. Every fifth pass is sent to both replicas at once, as a
// client retrying through another replica would: both answers must name one
// position. Anything else is a failure.
func (w *world) write(ctx context.Context, i, r int, dead *[2]atomic.Bool, lg *passLog) {
	tok := w.tokens[i%len(w.tokens)]
	code := w.codes[i%len(w.codes)]
	for n := 0; ctx.Err() == nil; n++ {
		id := uuid.Must(uuid.NewV7())
		dir := "in"
		if n%2 == 1 {
			dir = "out"
		}
		body := fmt.Sprintf(`{"method":"self_scan","venue_code":%q,"direction":%q,"event_id":%q,"occurred_at":%q}`,
			code, dir, id, time.Now().UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano))
		if n%5 != 4 {
			a, dup, ok := w.send(tok, body, id, r, dead, lg)
			if !ok {
				return
			}
			lg.add(a, dup)
			continue
		}
		type answer struct {
			a  ack
			ok bool
		}
		other := make(chan answer, 1)
		go func() {
			a, _, ok := w.send(tok, body, id, 1-r, dead, lg)
			other <- answer{a, ok}
		}()
		a, _, ok := w.send(tok, body, id, r, dead, lg)
		b := <-other
		if !ok || !b.ok {
			return
		}
		if a.pos != b.a.pos {
			lg.fail("pass %s sent to both replicas: answered at %d and at %d", id, a.pos, b.a.pos)
			return
		}
		lg.doubled.Add(1)
		lg.add(a, false) // one of the two is the other's duplicate
		lg.add(b.a, false)
	}
}

// send posts body until it is answered 201 or 200 (or fails: ok false),
// through replica r while it lives and the other one after.
func (w *world) send(tok, body string, id uuid.UUID, r int, dead *[2]atomic.Bool, lg *passLog) (_ ack, dup, ok bool) {
	deadline := time.Now().Add(90 * time.Second)
	for attempt := 0; ; attempt++ {
		if time.Now().After(deadline) {
			lg.fail("pass %s: no answer within 90s", id)
			return ack{}, false, false
		}
		target := r
		if dead[r].Load() {
			target = 1 - r
			if attempt == 0 {
				lg.moved.Add(1)
			}
		}
		status, raw, answered := w.post(target, "/v1/passes", tok, body, lg)
		if !answered {
			continue
		}
		switch status {
		case http.StatusCreated, http.StatusOK:
			var res struct {
				EventID   uuid.UUID `json:"event_id"`
				Position  uint64    `json:"position"`
				Duplicate bool      `json:"duplicate"`
			}
			if err := json.Unmarshal(raw, &res); err != nil || res.EventID != id || res.Position == 0 {
				lg.fail("pass %s: %d %s", id, status, raw)
				return ack{}, false, false
			}
			return ack{id: id, pos: res.Position, at: time.Now()}, res.Duplicate, true
		case http.StatusServiceUnavailable:
			lg.unavailable.Add(1)
			time.Sleep(250 * time.Millisecond)
		default:
			lg.fail("pass %s via %s (attempt %d): %d %s", id, w.bases[target], attempt, status, raw)
			return ack{}, false, false
		}
	}
}

// regLog gathers the registrations acknowledged (201, or 200: the answer
// to a resend) during the faults.
type regLog struct {
	acked []string // person ids
}

// register registers new people, each with an event id, until ctx ends,
// alternately through each live replica; a 503 or a lost connection is
// retried with the same body, whose answer is then the original one.
// Anything else goes to lg's failures.
func (w *world) register(ctx context.Context, dead *[2]atomic.Bool, regs *regLog, lg *passLog) {
	seed := 10_000_000 + int(time.Now().UnixNano()%1_000_000)
	for k := 0; ctx.Err() == nil; k++ {
		body := fmt.Sprintf(`{"name":"故障%d","id_type":"resident_id","id_number":%q,"phone":"13900000000","event_id":%q}`,
			k, residentID(seed+k), uuid.Must(uuid.NewV7()))
		deadline := time.Now().Add(90 * time.Second)
		for attempt := 0; ; attempt++ {
			if time.Now().After(deadline) {
				lg.fail("registration %d: no answer within 90s", k)
				return
			}
			target := (k + attempt) % 2
			if dead[target].Load() {
				target = 1 - target
			}
			status, raw, answered := w.post(target, "/v1/persons", "", body, lg)
			if !answered {
				continue
			}
			switch status {
			case http.StatusCreated, http.StatusOK:
				var reg struct {
					PersonID string `json:"person_id"`
				}
				if err := json.Unmarshal(raw, &reg); err != nil || reg.PersonID == "" {
					lg.fail("registration %d: %s", k, raw)
					return
				}
				regs.acked = append(regs.acked, reg.PersonID)
			case http.StatusServiceUnavailable:
				lg.unavailable.Add(1)
				time.Sleep(250 * time.Millisecond)
				continue
			default:
				lg.fail("registration %d via %s (attempt %d): %d %s", k, w.bases[target], attempt, status, raw)
				return
			}
			break
		}
	}
}

// post posts body, JSON, to path on replica target, with tok as its bearer
// token if there is one, and reads the answer. A lost connection is counted
// in lg's resent and waited on for 100ms before post answers false, to be
// sent again.
func (w *world) post(target int, path, tok, body string, lg *passLog) (status int, raw []byte, answered bool) {
	req, _ := http.NewRequest("POST", w.bases[target]+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		lg.resent.Add(1)
		time.Sleep(100 * time.Millisecond)
		return 0, nil, false
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, raw, true
}

// readModel GETs url until it answers 200 (a read waiting for min_position
// may time out while the replica catches up), within a minute.
func (w *world) readModel(t *testing.T, u string) []byte {
	t.Helper()
	var raw []byte
	var code int
	if !ledgertest.Poll(time.Minute, func() bool {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer "+w.admin)
		resp, err := w.client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ = io.ReadAll(resp.Body)
		code = resp.StatusCode
		return code == http.StatusOK
	}) {
		t.Fatalf("GET %s: %d %s", u, code, raw)
	}
	return raw
}

// entries is a venue's whole entry list at base (every page), each entry
// as the API wrote it.
func (w *world) entries(t *testing.T, base, venue string, minPos uint64) []json.RawMessage {
	t.Helper()
	var all []json.RawMessage
	cursor := ""
	for {
		u := fmt.Sprintf("%s/v1/venues/%s/entries?limit=500&min_position=%d", base, venue, minPos)
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Entries    []json.RawMessage `json:"entries"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(w.readModel(t, u), &page); err != nil {
			t.Fatalf("entries of %s at %s: %v", venue, base, err)
		}
		all = append(all, page.Entries...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// trace is a person's trace history at base over [from, to], without the
// position the answer reflects (each replica's own).
func (w *world) trace(t *testing.T, base, person string, from, to time.Time, minPos uint64) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	u := fmt.Sprintf("%s/v1/persons/%s/trace?min_position=%d&from=%s&to=%s", base, person, minPos,
		from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	if err := json.Unmarshal(w.readModel(t, u), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "position")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func firstDiff(got, want []json.RawMessage) string {
	for i := range min(len(got), len(want)) {
		if !bytes.Equal(got[i], want[i]) {
			return fmt.Sprintf(" first at %d:\n%s\n%s", i, got[i], want[i])
		}
	}
	return ""
}
