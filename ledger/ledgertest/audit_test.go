package ledgertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore/tampertest"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
)

// auditSources makes n audited events as the log holds them: looks and
// venue reviews by two holders, with their server time set.
func auditSources(t testing.TB, n int) []domain.Envelope {
	t.Helper()
	now := time.Now().UTC()
	out := make([]domain.Envelope, n)
	for i := range out {
		var ev domain.Event = &domain.TraceRequested{TraceID: uuid.New(), Analyst: "analyst:li", PersonID: uuid.New(),
			Reason: fmt.Sprintf("cluster %d", i), Kind: domain.LookHistory}
		actor := "analyst:li"
		if i%2 == 1 {
			ev, actor = &domain.VenueReviewed{VenueID: uuid.New(), Decision: domain.ReviewApprove}, "reviewer:371302:wang"
		}
		e, err := domain.NewEnvelope("x.y", ev, domain.Meta{Actor: actor}, now)
		if err != nil {
			t.Fatal(err)
		}
		e.RecordedAt = now.Add(time.Duration(i) * time.Millisecond)
		out[i] = e
	}
	return out
}

// natsServer runs a JetStream server of the test's own, so that two stacks
// (two replicas) can share it and the test can tamper with what they wrote.
func natsServer(t *testing.T) string {
	t.Helper()
	srv := natstest.RunServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir()})
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

func recordAudit(t *testing.T, env *ledgertest.Env, srcs []domain.Envelope) int {
	t.Helper()
	n, err := env.Ledger.RecordAudit(context.Background(), domain.ReactionsActor, srcs)
	if err != nil {
		t.Fatalf("record audit: %v", err)
	}
	return n
}

func verifyAudit(t *testing.T, env *ledgertest.Env) domain.AuditReport {
	t.Helper()
	r, err := env.Ledger.VerifyAudit(context.Background())
	if err != nil {
		t.Fatalf("verify audit: %v", err)
	}
	return r
}

// TestAuditChainRecords: each audited event gets one entry, anchored; a
// redelivered source (at the head, or below it within the duplicate
// window) appends nothing; an event that is not audited is skipped.
func TestAuditChainRecords(t *testing.T) {
	env := ledgertest.Start(t, ledgertest.Options{NoProjector: true})
	srcs := auditSources(t, 5)
	pass, _ := domain.NewEnvelope("x.y", &domain.PassRecorded{VenueID: uuid.New()}, domain.Meta{}, time.Now())
	if n := recordAudit(t, env, append(srcs[:2:2], pass)); n != 2 {
		t.Fatalf("appended %d, want 2 (the pass is not audited)", n)
	}
	if n := recordAudit(t, env, srcs[2:]); n != 3 {
		t.Fatalf("appended %d, want 3", n)
	}
	r := verifyAudit(t, env)
	if !r.OK() || r.Entries != 5 || r.Head.Seq != 5 || r.AnchorState != domain.AnchorStored || r.Anchor != r.Head || r.AnchorLag != 0 {
		t.Fatalf("report %+v (%v)", r, r.Broken)
	}
	if n := recordAudit(t, env, srcs[4:]); n != 0 {
		t.Fatalf("the head's source again appended %d", n)
	}
	if n := recordAudit(t, env, srcs[1:2]); n != 0 {
		t.Fatalf("an older source again appended %d", n)
	}
	if r := verifyAudit(t, env); !r.OK() || r.Entries != 5 {
		t.Fatalf("after redeliveries: %+v (%v)", r, r.Broken)
	}
}

// TestAuditChainTwoReplicas: two stacks on one JetStream (two replicas),
// four writers each, append at once; the chain stays linear: seq 1…n with
// no gap and no repeat, every source once, and it verifies.
func TestAuditChainTwoReplicas(t *testing.T) {
	url := natsServer(t)
	replicas := []*ledgertest.Env{
		ledgertest.Start(t, ledgertest.Options{NoProjector: true, NATSURL: url}),
		ledgertest.Start(t, ledgertest.Options{NoProjector: true, NATSURL: url}),
	}
	const writers, each = 8, 8
	srcs := auditSources(t, writers*each)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := replicas[w%2]
			for _, s := range srcs[w*each : (w+1)*each] {
				if _, err := env.Ledger.RecordAudit(context.Background(), domain.ReactionsActor, []domain.Envelope{s}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a writer failed: %v", err)
	}
	for i, env := range replicas {
		r := verifyAudit(t, env)
		if !r.OK() || r.Entries != writers*each || r.AnchorLag != 0 {
			t.Fatalf("replica %d: %+v (%v)", i, r, r.Broken)
		}
	}
	seen := map[uuid.UUID]bool{}
	for i, e := range tampertest.Connect(t, url).AuditEntries() {
		a := decodeEntry(t, e)
		if a.Seq != uint64(i+1) || seen[a.SourceEventID] {
			t.Fatalf("message %d: seq %d, source %s seen before: %v", i, a.Seq, a.SourceEventID, seen[a.SourceEventID])
		}
		seen[a.SourceEventID] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d sources chained, want %d", len(seen), writers*each)
	}
}

func decodeEntry(t *testing.T, e domain.Envelope) *domain.AuditRecorded {
	t.Helper()
	ev, err := domain.Decode(e)
	if err != nil {
		t.Fatal(err)
	}
	return ev.(*domain.AuditRecorded)
}

// TestAuditVerifyFindsTampering: a changed, a removed, a reordered and a
// truncated entry, and a deleted anchor, each written straight into
// JetStream as an outsider would, are found at their first broken link.
func TestAuditVerifyFindsTampering(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(*tampertest.Log, []domain.Envelope)
		seq     uint64
		problem string
	}{
		{"changed", func(l *tampertest.Log, es []domain.Envelope) {
			var a domain.AuditRecorded
			if err := json.Unmarshal(es[2].Payload, &a); err != nil {
				t.Fatal(err)
			}
			a.Reason = "routine"
			es[2].Payload, _ = json.Marshal(a)
			l.RewriteAuditChain(es)
		}, 3, "changed"},
		{"removed", func(l *tampertest.Log, es []domain.Envelope) {
			l.RewriteAuditChain(append(es[:1:1], es[2:]...))
		}, 2, "missing"},
		{"reordered", func(l *tampertest.Log, es []domain.Envelope) {
			es[1], es[2] = es[2], es[1]
			l.RewriteAuditChain(es)
		}, 2, "missing"},
		{"truncated", func(l *tampertest.Log, es []domain.Envelope) {
			l.RewriteAuditChain(es[:3])
		}, 4, "truncated"},
		{"anchor deleted", func(l *tampertest.Log, es []domain.Envelope) {
			l.DeleteAuditAnchor()
		}, 6, "deleted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := natsServer(t)
			env := ledgertest.Start(t, ledgertest.Options{NoProjector: true, NATSURL: url})
			recordAudit(t, env, auditSources(t, 5))
			if r := verifyAudit(t, env); !r.OK() {
				t.Fatalf("before tampering: %v", r.Broken)
			}
			log := tampertest.Connect(t, url)
			c.tamper(log, log.AuditEntries())
			r := verifyAudit(t, env)
			if r.OK() {
				t.Fatalf("not found: %+v", r)
			}
			if r.Broken.Seq != c.seq || !strings.Contains(r.Broken.Problem, c.problem) {
				t.Fatalf("first broken link %v, want seq %d (%s)", r.Broken, c.seq, c.problem)
			}
		})
	}
}

// TestAuditAnchorLagsAfterACrash: a crash between an entry's append and its
// anchor's update leaves a chain that verifies with the anchor one entry
// behind (reported, not a break); the source's redelivery (or the next
// entry) moves the anchor up without a second entry.
func TestAuditAnchorLagsAfterACrash(t *testing.T) {
	env := ledgertest.Start(t, ledgertest.Options{NoProjector: true})
	ctx := context.Background()
	srcs := auditSources(t, 5)
	recordAudit(t, env, srcs[:3])

	// What RecordAudit does for srcs[3], up to the crash: decide and append.
	last, version, err := env.Store.LoadLast(ctx, domain.AuditChainAggregate)
	if err != nil {
		t.Fatal(err)
	}
	head, err := domain.ReplayAuditChain(last)
	if err != nil {
		t.Fatal(err)
	}
	entry, _, err := domain.AuditEntryOf(srcs[3])
	if err != nil {
		t.Fatal(err)
	}
	evs, err := domain.DecideAuditEntry(head, entry)
	if err != nil {
		t.Fatal(err)
	}
	e, err := domain.NewEnvelope(domain.AuditChainAggregate, evs[0], domain.Meta{ID: domain.AuditEventID(srcs[3].ID)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Store.Append(ctx, domain.AuditChainAggregate, version, e); err != nil {
		t.Fatal(err)
	}

	r := verifyAudit(t, env)
	if !r.OK() || r.Head.Seq != 4 || r.Anchor.Seq != 3 || r.AnchorLag != 1 {
		t.Fatalf("after the crash: %+v (%v)", r, r.Broken)
	}
	if n := recordAudit(t, env, srcs[3:4]); n != 0 {
		t.Fatalf("the redelivery appended %d", n)
	}
	if r := verifyAudit(t, env); !r.OK() || r.Entries != 4 || r.AnchorLag != 0 {
		t.Fatalf("after the redelivery: %+v (%v)", r, r.Broken)
	}
	recordAudit(t, env, srcs[4:])
	if r := verifyAudit(t, env); !r.OK() || r.Entries != 5 || r.AnchorLag != 0 {
		t.Fatalf("after the next entry: %+v (%v)", r, r.Broken)
	}
}

// TestAuditAnchorRemovedIsNotWrittenOver: a deleted or forged anchor is
// never written over by the next entry (that would hide a truncation made
// with it): the entry is appended, anchoring it fails with
// ErrAuditAnchorRemoved and verify keeps reporting it, until the operator's
// reanchor, which anchors a chain whose entries hold and refuses one whose
// entries do not.
func TestAuditAnchorRemovedIsNotWrittenOver(t *testing.T) {
	url := natsServer(t)
	env := ledgertest.Start(t, ledgertest.Options{NoProjector: true, NATSURL: url})
	ctx := context.Background()
	log := tampertest.Connect(t, url)
	srcs := auditSources(t, 6)
	recordAudit(t, env, srcs[:3])

	log.DeleteAuditAnchor()
	if _, err := env.Ledger.RecordAudit(ctx, domain.ReactionsActor, srcs[3:4]); !errors.Is(err, ledger.ErrAuditAnchorRemoved) {
		t.Fatalf("an entry after the anchor was deleted: %v, want ErrAuditAnchorRemoved", err)
	}
	if r := verifyAudit(t, env); r.OK() || !strings.Contains(r.Broken.Problem, "deleted") || r.Entries != 4 {
		t.Fatalf("after the deletion: %+v (%v)", r, r.Broken)
	}
	r, err := env.Ledger.ReanchorAudit(ctx)
	if err != nil || !r.OK() || r.Anchor.Seq != 4 || r.Entries != 4 {
		t.Fatalf("reanchor: %+v (%v), %v", r, r.Broken, err)
	}
	recordAudit(t, env, srcs[4:5])
	if r := verifyAudit(t, env); !r.OK() || r.Anchor.Seq != 5 {
		t.Fatalf("after the reanchor: %+v (%v)", r, r.Broken)
	}

	log.WriteAuditAnchor([]byte(`{"seq":5,"hash":"forged"}`))
	if _, err := env.Ledger.RecordAudit(ctx, domain.ReactionsActor, srcs[5:6]); !errors.Is(err, ledger.ErrAuditAnchorRemoved) {
		t.Fatalf("an entry after the anchor was forged: %v, want ErrAuditAnchorRemoved", err)
	}
	if r := verifyAudit(t, env); r.OK() || r.AnchorState != domain.AnchorAltered || !strings.Contains(r.Broken.Problem, "does not open with the master key") {
		t.Fatalf("verify with a forged anchor: %+v (%v)", r, r.Broken)
	}

	// A chain whose entries were changed is not anchored again.
	entries := log.AuditEntries()
	entries[1].Payload = []byte(strings.Replace(string(entries[1].Payload), `"approve"`, `"reject"`, 1))
	log.RewriteAuditChain(entries)
	if r, err := env.Ledger.ReanchorAudit(ctx); err != nil || r.OK() || r.Broken.Seq != 2 {
		t.Fatalf("reanchor of a changed chain: %+v (%v), %v", r, r.Broken, err)
	}
	if r := verifyAudit(t, env); r.AnchorState != domain.AnchorAltered {
		t.Fatalf("the refused reanchor wrote an anchor: %+v", r)
	}
}

// TestAuditChainSameSourceTwice: two replicas handed the same audited
// events at once (a redelivery racing the first delivery) chain each once.
func TestAuditChainSameSourceTwice(t *testing.T) {
	url := natsServer(t)
	replicas := []*ledgertest.Env{
		ledgertest.Start(t, ledgertest.Options{NoProjector: true, NATSURL: url}),
		ledgertest.Start(t, ledgertest.Options{NoProjector: true, NATSURL: url}),
	}
	srcs := auditSources(t, 20)
	var wg sync.WaitGroup
	for _, env := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, s := range srcs {
				if _, err := env.Ledger.RecordAudit(context.Background(), domain.ReactionsActor, []domain.Envelope{s}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r := verifyAudit(t, replicas[0])
	if !r.OK() || r.Entries != 20 || r.AnchorLag != 0 {
		t.Fatalf("report %+v (%v), want 20 entries", r, r.Broken)
	}
	seen := map[uuid.UUID]bool{}
	for _, e := range tampertest.Connect(t, url).AuditEntries() {
		a := decodeEntry(t, e)
		if seen[a.SourceEventID] {
			t.Fatalf("source %s chained twice", a.SourceEventID)
		}
		seen[a.SourceEventID] = true
	}
}

// TestAuditChainSourceAfterWindow: sources delivered again after the event
// store's duplicate window, to a replica that never saw them appended (a
// reaction that crashed before its ack and came back later, or another
// replica taking over), none of them the head but the last, append nothing:
// the read models list each entry by its source.
func TestAuditChainSourceAfterWindow(t *testing.T) {
	const window = time.Second
	url := natsServer(t)
	first := ledgertest.Start(t, ledgertest.Options{NoProjector: true, NATSURL: url, DuplicateWindow: window})
	srcs := auditSources(t, 3)
	if n := recordAudit(t, first, srcs); n != 3 {
		t.Fatalf("appended %d, want 3", n)
	}
	other := ledgertest.Start(t, ledgertest.Options{NATSURL: url, DuplicateWindow: window})
	deadline := time.Now().Add(10 * time.Second)
	for {
		listed, err := other.Reads.AuditChain(context.Background(), domain.AuditChainQuery{Source: srcs[0].ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(listed) == 1 && listed[0].Seq == 1 && listed[0].SourceEventID == srcs[0].ID {
			break
		}
		if len(listed) > 1 || time.Now().After(deadline) {
			t.Fatalf("the read models list %d entries of the first source: %+v", len(listed), listed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(window + 500*time.Millisecond)
	if n := recordAudit(t, other, srcs); n != 0 {
		t.Fatalf("sources again after the duplicate window appended %d entries", n)
	}
	if r := verifyAudit(t, other); !r.OK() || r.Entries != 3 || r.AnchorLag != 0 {
		t.Fatalf("after the redelivery: %+v (%v)", r, r.Broken)
	}
}

// failingAuditReads are read models whose audit chain cannot be read.
type failingAuditReads struct{ ledger.ReadModel }

func (failingAuditReads) AuditChain(context.Context, domain.AuditChainQuery) ([]domain.AuditChainEntry, error) {
	return nil, errors.New("read models away")
}

// TestAuditChainReadsAway: read models that cannot say whether a source has
// its entry do not hold the audit back (it would reach the poison queue in
// a database outage): the entries are appended and the chain verifies.
func TestAuditChainReadsAway(t *testing.T) {
	env := ledgertest.Start(t, ledgertest.Options{NoProjector: true})
	env.Ledger.Reads = failingAuditReads{env.Ledger.Reads}
	srcs := auditSources(t, 3)
	if n := recordAudit(t, env, srcs); n != 3 {
		t.Fatalf("appended %d, want 3", n)
	}
	if r := verifyAudit(t, env); !r.OK() || r.Entries != 3 || r.AnchorLag != 0 {
		t.Fatalf("report %+v (%v)", r, r.Broken)
	}
}
