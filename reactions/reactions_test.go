package reactions_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/checkin-ledger/ledger/reactions"
)

var testKey = bytes.Repeat([]byte{7}, 32)

// harness is the ledger as cmd wires it (ledgertest.Start), with the log
// lines of the routers it starts.
type harness struct {
	*ledgertest.Env
	t      *testing.T
	ctx    context.Context
	logs   *ledgertest.Logs
	serial int
}

// logged counts the log lines holding every one of parts.
func (h *harness) logged(parts ...string) int {
	n := 0
	for _, line := range strings.Split(h.logs.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

func newHarness(t *testing.T, withProjector bool) *harness {
	t.Helper()
	return newHarnessOn(t, withProjector, "")
}

// newHarnessOn is newHarness on the NATS server at url (empty: the event
// store's embedded one).
func newHarnessOn(t *testing.T, withProjector bool, url string) *harness {
	t.Helper()
	env := ledgertest.Start(t, ledgertest.Options{MasterKey: testKey, HashKey: testKey, NoProjector: !withProjector, NATSURL: url})
	return &harness{Env: env, t: t, ctx: t.Context(), logs: &ledgertest.Logs{}}
}

// start opens a router with o (Log, Ledger, Codes and Logger filled in)
// and runs it until the test ends or the returned stop is called.
func (h *harness) start(o reactions.Options) (*reactions.Router, func()) {
	h.t.Helper()
	o.Log, o.Ledger, o.Codes = h.Store.Subscriber(), h.Ledger, h.Signer
	o.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := reactions.Open(h.ctx, o)
	if err != nil {
		h.t.Fatalf("reactions.Open: %v", err)
	}
	stop := ledgertest.Go(h.t, 30*time.Second, r.Run)
	select {
	case <-r.Running():
	case <-time.After(10 * time.Second):
		stop()
		h.t.Fatal("router not running after 10s")
	}
	return r, stop
}

// eventually polls cond until it holds or the deadline passes.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	if !ledgertest.Poll(15*time.Second, cond) {
		h.t.Fatalf("not within 15s: %s", what)
	}
}

// types counts the log's events by type.
func (h *harness) types() map[string]int {
	h.t.Helper()
	n := map[string]int{}
	err := h.Store.Read(h.ctx, ">", 0, func(envs []domain.Envelope) error {
		for _, e := range envs {
			n[e.Type]++
		}
		return nil
	})
	if err != nil {
		h.t.Fatalf("read the log: %v", err)
	}
	return n
}

func (h *harness) caughtUp() {
	h.t.Helper()
	h.WaitApplied(h.t, h.LastPosition(h.t))
}

func (h *harness) register(name string) uuid.UUID {
	h.t.Helper()
	h.serial++
	first := "37130219850101" + string(rune('0'+h.serial/100%10)) + string(rune('0'+h.serial/10%10)) + string(rune('0'+h.serial%10))
	c, _ := idcard.CheckChar(first)
	res, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, domain.RegisterPerson{
		Name: name, IDType: idcard.ResidentID, IDNumber: first + string(c), Phone: "13800138000"})
	if err != nil {
		h.t.Fatalf("RegisterPerson: %v", err)
	}
	if name == "红码" {
		if _, err := h.Ledger.RecordHealth(h.ctx, domain.Actor{Role: domain.RoleHealthFeed}, []domain.HealthRecord{{
			IDType: idcard.ResidentID, IDNumber: first + string(c), CodeColour: domain.ColourRed, NATResult: domain.NATNone}}); err != nil {
			h.t.Fatalf("RecordHealth: %v", err)
		}
	}
	return res.ID
}

func person(id uuid.UUID) domain.Actor {
	return domain.Actor{Role: domain.RolePerson, PersonID: id, Subject: "person:" + id.String()}
}

var reviewer = domain.Actor{Role: domain.RoleReviewer, Subject: "reviewer"}

// consumersIdle reports whether every reaction consumer has delivered and
// had acknowledged everything in the log.
func (h *harness) consumersIdle(r *reactions.Router) bool {
	for _, name := range r.ConsumerNames() {
		info, err := h.Store.Subscriber().ConsumerInfo(h.ctx, name)
		if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
			return false
		}
	}
	return true
}

// TestReactionsWriteEachEventOnce runs the three reactions on real events,
// then deletes the durable consumers and starts again, so that every source
// event is delivered a second time: nothing is written twice.
func TestReactionsWriteEachEventOnce(t *testing.T) {
	h := newHarness(t, true)
	manager := h.register("王经理")
	red := h.register("红码")
	venue, err := h.Ledger.ApplyVenue(h.ctx, person(manager), domain.ApplyVenue{Name: "兰山超市", Type: domain.VenueSupermarket,
		District: "371302", Address: "兰山区解放路1号", Lat: 35.06, Lng: 118.35})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Ledger.ReviewVenue(h.ctx, reviewer, venue.ID, domain.ReviewVenue{Decision: domain.ReviewApprove}); err != nil {
		t.Fatal(err)
	}
	arrival, err := h.Ledger.DeclareArrival(h.ctx, person(red), domain.DeclareArrival{ArrivalDate: time.Now().Format(time.DateOnly),
		Origin: "上海市", DestinationDistrict: "371302", NATResult: domain.NATNone})
	if err != nil {
		t.Fatal(err)
	}
	truck, err := h.Ledger.DeclareTruckPass(h.ctx, person(manager), domain.DeclareTruckPass{PlateNumber: "鲁Q12345",
		NATProofAt: time.Now().Add(-time.Hour), ItineraryOK: true, HealthCodeColour: domain.ColourGreen,
		LogisticsPark: "临沂商城国际物流园", District: "371311", ContactName: "赵调度", ContactPhone: "13900001111"})
	if err != nil {
		t.Fatal(err)
	}
	h.caughtUp()
	denied, err := h.Ledger.RecordPass(h.ctx, person(red), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: venue.ID, Direction: domain.DirectionIn})
	if err != nil || denied.Decision != domain.DecisionDeny {
		t.Fatalf("red pass = %+v, %v", denied, err)
	}
	if _, err := h.Ledger.RecordPass(h.ctx, person(manager), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: venue.ID, Direction: domain.DirectionIn}); err != nil {
		t.Fatal(err)
	}

	analyst := domain.Actor{Role: domain.RoleAnalyst, Subject: "analyst:li"}
	if _, err := h.Ledger.History(h.ctx, analyst, ledger.HistoryQuery{PersonID: red, Reason: "cluster 7"}); err != nil {
		t.Fatal(err)
	}

	// The venue's review and the analyst's look are audited.
	want := map[string]int{domain.TypeAlertRaised: 1, domain.TypeDeclarationQueued: 2, domain.TypeVenueCodeIssued: 1, domain.TypeAuditRecorded: 2}
	check := func(stage string) {
		t.Helper()
		got := h.types()
		for typ, n := range want {
			if got[typ] != n {
				t.Fatalf("%s: %d %s events in the log, want %d (%v)", stage, got[typ], typ, n, got)
			}
		}
	}
	r, stop := h.start(reactions.Options{})
	h.eventually("every reaction has run", func() bool { return h.consumersIdle(r) })
	check("first delivery")

	events, _, err := h.Store.Load(h.ctx, domain.VenueAggregate(venue.ID))
	if err != nil {
		t.Fatal(err)
	}
	v, err := domain.ReplayVenue(events)
	if err != nil || v.Code() != h.Signer.IssueVenueCode(venue.ID) {
		t.Fatalf("venue code %q, want the signer's (%v)", v.Code(), err)
	}
	h.caughtUp()
	alerts, err := h.Reads.Alerts(h.ctx, "371302", 10)
	if err != nil || len(alerts) != 1 || alerts[0].EventID != domain.AlertEventID(denied.EventID) || alerts[0].PersonID != red {
		t.Fatalf("alerts = %+v, %v", alerts, err)
	}
	queue, err := h.Reads.Declarations(h.ctx, domain.DeclarationFilter{Status: domain.DeclarationPending})
	if err != nil || len(queue) != 2 || queue[0].ID != arrival.ID || queue[1].ID != truck.ID {
		t.Fatalf("review queue = %+v, %v", queue, err)
	}

	// Redeliver everything: a new run with the consumers gone starts from
	// the log's beginning.
	stop()
	for _, name := range r.ConsumerNames() {
		if err := h.Store.Subscriber().DeleteConsumer(h.ctx, name); err != nil {
			t.Fatalf("delete consumer %s: %v", name, err)
		}
	}
	r2, _ := h.start(reactions.Options{})
	h.eventually("every source redelivered and handled", func() bool { return h.consumersIdle(r2) })
	check("redelivery")
	for _, name := range r2.ConsumerNames() {
		info, err := h.Store.Subscriber().ConsumerInfo(h.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Consumer == 0 {
			t.Fatalf("consumer %s was delivered nothing the second time", name)
		}
	}
	if n := h.logged("reaction attempt failed"); n != 0 {
		t.Fatalf("%d failed attempts logged", n)
	}
	report, err := h.Ledger.VerifyAudit(h.ctx)
	if err != nil || !report.OK() || report.Entries != 2 || report.AnchorLag != 0 {
		t.Fatalf("audit chain after the redelivery: %+v (%v), %v", report, report.Broken, err)
	}
	if p, err := r2.Poisoned(h.ctx, 10); err != nil || len(p) != 0 {
		t.Fatalf("poison queue = %+v, %v", p, err)
	}
}

// abnormalPass records a denied pass of a red-coded person at venue
// straight into the log, as a scanner's batch would land.
func (h *harness) abnormalPass(venue uuid.UUID) domain.Envelope {
	h.t.Helper()
	personID := uuid.New()
	env, err := domain.NewEnvelope(domain.PassAggregate(venue, personID), domain.PassRecorded{
		VenueID: venue, PersonID: personID, Direction: domain.DirectionIn, Method: domain.MethodStaffScan,
		Decision: domain.DecisionDeny, Reason: "red health code",
		Screen: domain.Screen{CodeColour: domain.ColourRed, VenueID: venue, Decision: domain.DecisionDeny},
	}, domain.Meta{Actor: "scanner"}, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.Store.Record(h.ctx, env); err != nil {
		h.t.Fatalf("record pass: %v", err)
	}
	return env
}

// applyVenue appends a venue application for id straight to the log.
func (h *harness) applyVenue(id uuid.UUID, district string) {
	h.t.Helper()
	env, err := domain.NewEnvelope(domain.VenueAggregate(id), domain.VenueApplied{VenueID: id, Name: "罗庄物流园",
		Type: domain.VenueLogistics, District: district, Address: "罗庄区", ManagerID: uuid.New()}, domain.Meta{Actor: "import"}, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.Store.Append(h.ctx, domain.VenueAggregate(id), 0, env); err != nil {
		h.t.Fatalf("append venue: %v", err)
	}
}

// alertsFor returns the alerts in the log raised by pass.
func (h *harness) alertsFor(pass uuid.UUID) []domain.Envelope {
	h.t.Helper()
	var out []domain.Envelope
	err := h.Store.Read(h.ctx, "alert.>", 0, func(envs []domain.Envelope) error {
		for _, e := range envs {
			if e.ID == domain.AlertEventID(pass) {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// TestPoisonQueue: a reaction that keeps failing (a pass at a venue the log
// does not know yet) is retried, then set aside in the poison queue while
// the router goes on; it is listed with its reason and event, a retry before
// the cause is fixed keeps it there, and one after succeeds and removes it.
func TestPoisonQueue(t *testing.T) {
	h := newHarness(t, false)
	const retries = 2
	r, _ := h.start(reactions.Options{MaxRetries: retries, RetryInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond})

	missing := uuid.New()
	pass := h.abnormalPass(missing)
	var entries []ledger.PoisonMessage
	h.eventually("the pass lands in the poison queue", func() bool {
		var err error
		entries, err = r.Poisoned(h.ctx, 10)
		return err == nil && len(entries) == 1
	})
	e := entries[0]
	if e.Reaction != reactions.ReactionAlerts || !strings.Contains(e.Reason, "unknown") || e.ID == 0 ||
		e.Sequence == 0 || !strings.HasPrefix(e.Subject, eventstore.SubjectPrefix) || e.PoisonedAt.IsZero() ||
		len(e.Events) != 1 || e.Events[0].EventID != pass.ID || e.Events[0].Type != domain.TypePassRecorded || len(e.Events[0].Payload) == 0 {
		t.Fatalf("poison entry = %+v", e)
	}
	if n := h.logged("reaction attempt failed", "reaction=alerts"); n != retries+1 {
		t.Fatalf("%d failed attempts logged, want %d", n, retries+1)
	}

	// The router goes on with the next messages.
	known := uuid.New()
	h.applyVenue(known, "371311")
	next := h.abnormalPass(known)
	h.eventually("the next pass raises its alert", func() bool { return len(h.alertsFor(next.ID)) == 1 })

	// A retry while the cause is still there fails and keeps the entry.
	err := r.RetryPoisoned(h.ctx, e.ID)
	if !errors.Is(err, domain.ErrConflict) || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("retry before the fix: %v, want a conflict naming the cause", err)
	}
	if entries, err := r.Poisoned(h.ctx, 10); err != nil || len(entries) != 1 {
		t.Fatalf("after a failed retry: %+v, %v", entries, err)
	}

	// Fix the cause: the venue's application reaches the log.
	h.applyVenue(missing, "371302")
	if err := r.RetryPoisoned(h.ctx, e.ID); err != nil {
		t.Fatalf("retry after the fix: %v", err)
	}
	alerts := h.alertsFor(pass.ID)
	if len(alerts) != 1 || alerts[0].Aggregate != domain.AlertAggregate("371302") {
		t.Fatalf("alerts after the retry: %+v", alerts)
	}
	if entries, err := r.Poisoned(h.ctx, 10); err != nil || len(entries) != 0 {
		t.Fatalf("poison queue after the retry: %+v, %v", entries, err)
	}
	if err := r.RetryPoisoned(h.ctx, e.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("retry of a removed entry: %v, want not found", err)
	}
	if h.types()[domain.TypeAlertRaised] != 2 {
		t.Fatalf("log holds %v", h.types())
	}
}

// TestUndecodableMessageIsPoisoned: a message in the log that is not an
// event envelope is set aside at once (retrying cannot help) by the
// reactions that read it, and listed with the reason.
func TestUndecodableMessageIsPoisoned(t *testing.T) {
	// A foreign writer on the store's server: the store itself never
	// writes such a message, nor hands out its connection.
	srv := natstest.RunServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir()})
	t.Cleanup(srv.Shutdown)
	h := newHarnessOn(t, false, srv.ClientURL())
	r, _ := h.start(reactions.Options{MaxRetries: 3, RetryInterval: 5 * time.Millisecond})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(h.ctx, eventstore.SubjectPrefix+"venue."+uuid.NewString(), []byte("not an envelope")); err != nil {
		t.Fatal(err)
	}
	var entries []ledger.PoisonMessage
	h.eventually("the three reactions reading venues poison it", func() bool {
		var err error
		entries, err = r.Poisoned(h.ctx, 10)
		return err == nil && len(entries) == 3
	})
	got := map[string]bool{}
	for _, e := range entries {
		got[e.Reaction] = true
		if !strings.Contains(e.Reason, "cannot be decoded") || len(e.Events) != 0 {
			t.Fatalf("poison entry = %+v", e)
		}
	}
	if !got[reactions.ReactionAlerts] || !got[reactions.ReactionVenueCodes] || !got[reactions.ReactionAudit] {
		t.Fatalf("poisoned by %v", got)
	}
	if n := h.logged("reaction attempt failed", "reaction=venue-codes"); n != 1 {
		t.Fatalf("%d attempts at an undecodable message, want 1 (no retries)", n)
	}
	if err := r.RetryPoisoned(h.ctx, entries[0].ID); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("retry of an undecodable message: %v", err)
	}
}

// crashingKeys is a keyring whose Destroy fails: the process stops between
// an erasure's event and its key destruction.
type crashingKeys struct{ ledger.Keyring }

func (crashingKeys) Destroy(context.Context, uuid.UUID) error { return errors.New("process killed") }

// TestErasureReactionDestroysTheKey: an erasure whose command stopped after
// its event (the key still there) is finished by the erasure reaction,
// which was not running at the time: a router started later destroys the key.
func TestErasureReactionDestroysTheKey(t *testing.T) {
	h := newHarness(t, true)
	res, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, domain.RegisterPerson{Name: "沙悟净", IDType: "resident_id",
		IDNumber: idcard.Sample(77), Phone: "13800000077"})
	if err != nil {
		t.Fatal(err)
	}
	crashing := *h.Ledger
	crashing.Keys = crashingKeys{h.Store}
	if _, err := crashing.ErasePerson(h.ctx, domain.Actor{Role: domain.RoleAdmin, Subject: "admin:a"}, res.ID, domain.ErasePerson{Reason: "asked"}); err == nil {
		t.Fatal("the erasure answered success without destroying the key")
	}
	if _, err := h.Store.Key(h.ctx, res.ID, false); err != nil {
		t.Fatalf("the key before the reaction: %v, want it still there", err)
	}
	h.start(reactions.Options{})
	h.eventually("the key destroyed by the erasure reaction", func() bool {
		_, err := h.Store.Key(h.ctx, res.ID, false)
		return errors.Is(err, domain.ErrNotFound)
	})

	// A family member whose registration landed after their guardian's
	// erasure (it was decided on the guardian before) is erased too.
	kid, _ := h.LateFamilyMember(t, res.ID, "沙小净")
	h.eventually("the late family member erased by the erasure reaction", func() bool {
		events, _, err := h.Store.Load(h.ctx, domain.PersonAggregate(kid))
		if err != nil || len(events) != 2 || events[1].Type != domain.TypePersonErased {
			return false
		}
		_, err = h.Store.Key(h.ctx, kid, false)
		return errors.Is(err, domain.ErrNotFound)
	})
}
