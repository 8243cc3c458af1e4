package ledgertest_test

// The rules an outsider broke once, each tested as a class: an event id names
// one fact; stays and exits; identity checks; family members; offline passes.

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/ledger"
)

// An event id names one fact: on every route that takes a client event id,
// the same id with other content is a conflict, never a success, inside
// the dedup window and beyond it, concurrently and per batch item.

// TestPassEventIDAcrossVenuesConcurrently posts the same event id at two
// venues at once, by two venues' staff for two people: one pass is stored,
// the other caller gets a conflict, never the winner's screen.
func TestPassEventIDAcrossVenuesConcurrently(t *testing.T) {
	h := newHarness(t)
	v1, m1 := h.approvedVenue(domain.ApplyVenue{})
	v2, m2 := h.approvedVenue(domain.ApplyVenue{})
	p1, _ := h.register("张三")
	p2, _ := h.register("李四")
	h.caughtUp(h.lastPosition())
	const pairs = 40
	type caller struct{ staff, venue, person uuid.UUID }
	callers := [2]caller{{m1, v1, p1}, {m2, v2, p2}}
	cmd := func(c caller, id uuid.UUID) domain.RecordPass {
		return domain.RecordPass{EventID: id, Method: domain.MethodStaffScan, VenueID: c.venue, PersonID: c.person, Direction: domain.DirectionIn}
	}
	type outcome struct {
		id            uuid.UUID
		winner, loser int
		pos           uint64
	}
	var outcomes []outcome
	for range pairs {
		id, _ := uuid.NewV7()
		var wg sync.WaitGroup
		var res [2]ledger.PassResult
		var errs [2]error
		for i, c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i], errs[i] = h.Ledger.RecordPass(h.ctx, person(c.staff), cmd(c, id))
			}()
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatal("both callers succeeded with one event id")
				}
				winner = i
				if res[i].Duplicate || res[i].Screen.VenueID != callers[i].venue {
					t.Fatalf("caller %d got another caller's answer: %+v", i, res[i])
				}
			case !errors.Is(err, domain.ErrConflict):
				t.Fatalf("caller %d: %v, want a conflict", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("neither caller succeeded with a fresh event id")
		}
		outcomes = append(outcomes, outcome{id: id, winner: winner, loser: 1 - winner, pos: res[winner].Position})
	}
	// Beyond the dedup window's reach (answered from the read model): the
	// loser's request is still a conflict, the winner's a retry.
	h.caughtUp(h.lastPosition())
	for _, o := range outcomes {
		l := callers[o.loser]
		if _, err := h.Ledger.RecordPass(h.ctx, person(l.staff), cmd(l, o.id)); !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("the losing request again, from the read model: %v, want a conflict", err)
		}
		w := callers[o.winner]
		if again, err := h.Ledger.RecordPass(h.ctx, person(w.staff), cmd(w, o.id)); err != nil || !again.Duplicate || again.Position != o.pos {
			t.Fatalf("the winning request again: %+v %v, want the original at %d", again, err, o.pos)
		}
	}
}

// TestBatchItemsReusingAnEventID: in a batch, an item whose event id is
// stored for another pass is rejected with a conflict, the others accepted.
func TestBatchItemsReusingAnEventID(t *testing.T) {
	h := newHarness(t)
	v, m := h.approvedVenue(domain.ApplyVenue{})
	p1, _ := h.register("张三")
	p2, _ := h.register("李四")
	h.caughtUp(h.lastPosition())
	used, _ := uuid.NewV7()
	pass := func(id, who uuid.UUID, dir string) domain.RecordPass {
		return domain.RecordPass{EventID: id, Method: domain.MethodStaffScan, VenueID: v, PersonID: who, Direction: dir,
			OccurredAt: time.Now().Add(-time.Minute).Truncate(time.Second)}
	}
	first := pass(used, p1, domain.DirectionIn)
	if _, err := h.Ledger.RecordPass(h.ctx, person(m), first); err != nil {
		t.Fatal(err)
	}
	for _, window := range []string{"inside the dedup window", "from the read model"} {
		if window == "from the read model" {
			h.caughtUp(h.lastPosition())
		}
		fresh, _ := uuid.NewV7()
		for _, call := range []struct {
			items []domain.RecordPass
			want  []string
		}{
			{[]domain.RecordPass{pass(used, p2, domain.DirectionIn), pass(fresh, p2, domain.DirectionIn)},
				[]string{domain.BatchRejected, domain.BatchAccepted}}, // another person
			{[]domain.RecordPass{pass(used, p1, domain.DirectionOut)}, []string{domain.BatchRejected}}, // another direction
			{[]domain.RecordPass{first}, []string{domain.BatchDuplicate}},                              // the same again: a retry
			// Within one call: a repeat of an item answers as it, another body under its id conflicts.
			{[]domain.RecordPass{pass(fresh, p2, domain.DirectionIn), pass(fresh, p2, domain.DirectionIn), pass(fresh, p1, domain.DirectionIn)},
				[]string{domain.BatchDuplicate, domain.BatchDuplicate, domain.BatchRejected}},
		} {
			items, err := h.Ledger.RecordPasses(h.ctx, person(m), call.items)
			if err != nil {
				t.Fatal(err)
			}
			for i, it := range items {
				if it.Status != call.want[i] {
					t.Fatalf("%s: item %d status %s (%v), want %s", window, i, it.Status, it.Err, call.want[i])
				}
				if it.Status == domain.BatchRejected && !errors.Is(it.Err, domain.ErrConflict) {
					t.Fatalf("%s: item %d: %v, want a conflict", window, i, it.Err)
				}
			}
		}
	}
}

// TestRegistrationEventIDNamesOneRegistration: a registration retried with
// the same event id and document but another name or phone is a conflict,
// not the victim's registration (nor a token for them).
func TestRegistrationEventIDNamesOneRegistration(t *testing.T) {
	h := newHarness(t)
	id, _ := uuid.NewV7()
	reg := domain.RegisterPerson{EventID: id, Name: "王小明", IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Phone: "13800000001"}
	first, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, reg)
	if err != nil || !again.Duplicate || again.ID != first.ID || again.Position != first.Position {
		t.Fatalf("retry: %+v %v, want the original %+v", again, err, first)
	}
	for _, edit := range []func(*domain.RegisterPerson){
		func(r *domain.RegisterPerson) { r.Name = "攻击者" },
		func(r *domain.RegisterPerson) { r.Phone = "13900000009" },
		// Another document nobody holds yet: inside the duplicate window
		// JetStream knows the id, but it names another registration.
		func(r *domain.RegisterPerson) { r.IDNumber = h.newResidentID() },
	} {
		other := reg
		edit(&other)
		if res, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, other); !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("the same event id with another body: %+v, %v; want a conflict", res, err)
		}
	}
}

// TestDeclarationEventIDNamesOneDeclaration: the same event id with another
// declaration, or from another person, is a conflict.
func TestDeclarationEventIDNamesOneDeclaration(t *testing.T) {
	h := newHarness(t)
	a, _ := h.register("张三")
	b, _ := h.register("李四")
	id, _ := uuid.NewV7()
	cmd := arrival()
	cmd.EventID = id
	first, err := h.Ledger.DeclareArrival(h.ctx, person(a), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := h.Ledger.DeclareArrival(h.ctx, person(a), cmd); err != nil || !again.Duplicate || again.ID != first.ID {
		t.Fatalf("retry: %+v %v", again, err)
	}
	other := cmd
	other.Origin = "北京市"
	if _, err := h.Ledger.DeclareArrival(h.ctx, person(a), other); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("another origin under the same event id: %v, want a conflict", err)
	}
	if _, err := h.Ledger.DeclareArrival(h.ctx, person(b), cmd); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("another declarant under the same event id: %v, want a conflict", err)
	}
	tp := truck()
	tp.EventID, _ = uuid.NewV7()
	if _, err := h.Ledger.DeclareTruckPass(h.ctx, person(a), tp); err != nil {
		t.Fatal(err)
	}
	if again, err := h.Ledger.DeclareTruckPass(h.ctx, person(a), tp); err != nil || !again.Duplicate {
		t.Fatalf("truck retry: %+v %v", again, err)
	}
	tp.ContactPhone = "13900009999"
	if _, err := h.Ledger.DeclareTruckPass(h.ctx, person(a), tp); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("another contact under the same event id: %v, want a conflict", err)
	}
}

// TestExitIsNeverDenied: a person whose code turned red while inside is let
// out (the exit closes the stay) and the screen still shows red; the entry
// they would try now is denied.
func TestExitIsNeverDenied(t *testing.T) {
	h := newHarness(t)
	vid, manager := h.approvedVenue(domain.ApplyVenue{})
	p, number := h.register("张三")
	h.health(number, domain.ColourRed, domain.NATPositive, time.Now().Add(-time.Hour))
	h.caughtUp(h.lastPosition())
	for _, tc := range []struct{ dir, want string }{{domain.DirectionOut, domain.DecisionPass}, {domain.DirectionIn, domain.DecisionDeny}} {
		res, err := h.Ledger.RecordPass(h.ctx, person(manager), domain.RecordPass{Method: domain.MethodStaffScan, VenueID: vid, PersonID: p, Direction: tc.dir})
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision != tc.want || res.Screen.CodeColour != domain.ColourRed || res.Screen.Direction != tc.dir {
			t.Fatalf("%s: %+v, want decision %s with the red code shown", tc.dir, res, tc.want)
		}
	}
}

// TestRecordedStayLongerThanDwell: a recorded 6-hour restaurant stay (dwell
// 2 h) is one stay: a person there in its middle hour is a contact.
func TestRecordedStayLongerThanDwell(t *testing.T) {
	h := newHarness(t)
	vid, manager := h.approvedVenue(domain.ApplyVenue{Name: "沂河饭店", Type: domain.VenueRestaurant, District: "371302",
		Address: "兰山区沂河路2号", Lat: 35.05, Lng: 118.35})
	long, _ := h.register("张三")
	middle, _ := h.register("李四")
	h.caughtUp(h.lastPosition())
	t0 := time.Now().Add(-10 * time.Hour).Truncate(time.Second)
	for _, p := range []struct {
		who uuid.UUID
		dir string
		at  time.Time
	}{
		{long, domain.DirectionIn, t0}, {long, domain.DirectionOut, t0.Add(6 * time.Hour)},
		{middle, domain.DirectionIn, t0.Add(3 * time.Hour)}, {middle, domain.DirectionOut, t0.Add(3*time.Hour + 40*time.Minute)},
	} {
		if _, err := h.Ledger.RecordPass(h.ctx, person(manager), domain.RecordPass{Method: domain.MethodStaffScan, VenueID: vid,
			PersonID: p.who, Direction: p.dir, OccurredAt: p.at}); err != nil {
			t.Fatal(err)
		}
	}
	h.caughtUp(h.lastPosition())
	res, err := h.Ledger.Trace(h.ctx, domain.Actor{Role: domain.RoleAnalyst, Subject: "analyst:test"}, domain.TraceQuery{
		PersonID: long, From: t0.Add(-time.Hour), To: t0.Add(7 * time.Hour), Depth: 1, MinOverlap: 30 * time.Minute, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Contacts) != 1 || res.Contacts[0].PersonID != middle || res.Contacts[0].OverlapMinutes != 40 {
		t.Fatalf("contacts of a 6-hour stay: %+v, want the person of its middle hour, 40 minutes", res.Contacts)
	}
	if len(res.Visits) != 1 || !res.Visits[0].Start.Equal(t0) || !res.Visits[0].End.Equal(t0.Add(6*time.Hour)) {
		t.Fatalf("stays: %+v, want one from entry to exit", res.Visits)
	}
}

// TestOfflinePassDecidedOnTheStatusKnownThen: a pass uploaded later by a
// scanner that was offline is decided on the health status the ledger knew
// at its occurred_at, as an online scanner would have been.
func TestOfflinePassDecidedOnTheStatusKnownThen(t *testing.T) {
	h := newHarness(t)
	vid, manager := h.approvedVenue(domain.ApplyVenue{})
	p, number := h.register("张三")
	now := time.Now()
	at := func(ago time.Duration) func() time.Time { return func() time.Time { return now.Add(-ago) } }
	h.Ledger.Now = at(5 * time.Hour)
	h.health(number, domain.ColourGreen, domain.NATNegative, now.Add(-6*time.Hour))
	h.Ledger.Now = at(time.Hour)
	h.health(number, domain.ColourRed, domain.NATPositive, now.Add(-2*time.Hour))
	h.Ledger.Now = time.Now
	h.caughtUp(h.lastPosition())
	for _, tc := range []struct {
		name     string
		at       time.Time
		colour   string
		decision string
	}{
		{"offline, three hours ago: green then", now.Add(-3 * time.Hour), domain.ColourGreen, domain.DecisionPass},
		{"online: red now", time.Time{}, domain.ColourRed, domain.DecisionDeny},
	} {
		res, err := h.Ledger.RecordPass(h.ctx, person(manager), domain.RecordPass{Method: domain.MethodStaffScan, VenueID: vid,
			PersonID: p, Direction: domain.DirectionIn, OccurredAt: tc.at})
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision != tc.decision || res.Screen.CodeColour != tc.colour {
			t.Fatalf("%s: %s with %s shown, want %s with %s", tc.name, res.Decision, res.Screen.CodeColour, tc.decision, tc.colour)
		}
	}
}

// TestRejectedIdentity: a person whose identity check was rejected is
// refused whatever they would do in their own name (an exit still passes),
// until a new check approves them.
func TestRejectedIdentity(t *testing.T) {
	h := newHarness(t)
	vid, manager := h.approvedVenue(domain.ApplyVenue{})
	p, _ := h.register("张三")
	applied, err := h.Ledger.ApplyVenue(h.ctx, person(p), domain.ApplyVenue{Name: "张三小卖部", Type: domain.VenueSupermarket,
		District: "371302", Address: "兰山区一路1号", Lat: 35, Lng: 118})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Ledger.VerifyPerson(h.ctx, reviewer, p, domain.VerifyPerson{Method: domain.VerifyManual, Result: domain.VerifyRejected}); err != nil {
		t.Fatal(err)
	}
	h.caughtUp(h.lastPosition())

	pass := func(dir string) (string, error) {
		res, err := h.Ledger.RecordPass(h.ctx, person(p), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: vid, Direction: dir})
		return res.Decision, err
	}
	if d, err := pass(domain.DirectionIn); err != nil || d != domain.DecisionDeny {
		t.Fatalf("entry of a rejected person: %s %v, want deny", d, err)
	}
	if d, err := pass(domain.DirectionOut); err != nil || d != domain.DecisionPass {
		t.Fatalf("exit of a rejected person: %s %v, want pass", d, err)
	}
	refused := map[string]error{}
	_, refused["apply for a venue code"] = h.Ledger.ApplyVenue(h.ctx, person(p), domain.ApplyVenue{Name: "又一店", Type: domain.VenueSupermarket,
		District: "371302", Address: "兰山区一路2号", Lat: 35, Lng: 118})
	_, refused["be a sub-admin"] = h.Ledger.AddSubAdmin(h.ctx, person(manager), vid, p)
	_, refused["declare"] = h.Ledger.DeclareArrival(h.ctx, person(p), arrival())
	_, refused["file a truck pass"] = h.Ledger.DeclareTruckPass(h.ctx, person(p), truck())
	_, refused["register family"] = h.Ledger.AddFamilyMember(h.ctx, person(p), p, h.child("张小三"))
	for what, err := range refused {
		if !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("a rejected person may %s: %v, want forbidden", what, err)
		}
	}
	if _, err := h.Ledger.ReviewVenue(h.ctx, reviewer, applied.ID, domain.ReviewVenue{Decision: domain.ReviewApprove}); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("approving a rejected applicant's venue: %v, want a conflict", err)
	}

	// A new check approves them: all of it works again.
	if _, err := h.Ledger.VerifyPerson(h.ctx, reviewer, p, domain.VerifyPerson{Method: domain.VerifyFace, Result: domain.VerifyApproved}); err != nil {
		t.Fatal(err)
	}
	h.caughtUp(h.lastPosition())
	if d, err := pass(domain.DirectionIn); err != nil || d != domain.DecisionPass {
		t.Fatalf("entry after approval: %s %v, want pass", d, err)
	}
	if _, err := h.Ledger.ReviewVenue(h.ctx, reviewer, applied.ID, domain.ReviewVenue{Decision: domain.ReviewApprove}); err != nil {
		t.Fatalf("approving after a new check: %v", err)
	}
	if _, err := h.Ledger.AddSubAdmin(h.ctx, person(manager), vid, p); err != nil {
		t.Fatalf("sub-admin after a new check: %v", err)
	}
}

// TestFamilyCap: a guardian registers at most domain.MaxFamilyMembers.
func TestFamilyCap(t *testing.T) {
	h := newHarness(t)
	g, _ := h.register("张三")
	h.caughtUp(h.lastPosition())
	add := func() error {
		_, err := h.Ledger.AddFamilyMember(h.ctx, person(g), g, h.child("张小三"))
		return err
	}
	for i := range domain.MaxFamilyMembers {
		if err := add(); err != nil {
			t.Fatalf("member %d: %v", i+1, err)
		}
		h.caughtUp(h.lastPosition())
	}
	before := h.lastPosition()
	if err := add(); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("one member too many: %v, want a conflict", err)
	}
	h.wantNothingAppended(t, before, "a refused member was appended")
}

// TestEventIDAcrossKinds: an event id used for one kind of event is not
// taken for another: a pass's id for a registration or a declaration, a
// registration's or declaration's id for a pass.
func TestEventIDAcrossKinds(t *testing.T) {
	h := newHarness(t)
	vid, _ := h.approvedVenue(domain.ApplyVenue{})
	p, _ := h.register("张三")
	h.caughtUp(h.lastPosition())
	passID, _ := uuid.NewV7()
	if _, err := h.Ledger.RecordPass(h.ctx, person(p), domain.RecordPass{EventID: passID, Method: domain.MethodSelfScan, VenueID: vid, Direction: domain.DirectionIn}); err != nil {
		t.Fatal(err)
	}
	before := h.lastPosition()
	if _, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, domain.RegisterPerson{EventID: passID, Name: "李四",
		IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Phone: "13800000002"}); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("a registration under a pass's event id: %v, want a conflict", err)
	}
	decl := arrival()
	decl.EventID = passID
	if _, err := h.Ledger.DeclareArrival(h.ctx, person(p), decl); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("a declaration under a pass's event id: %v, want a conflict", err)
	}
	h.wantNothingAppended(t, before, "an event was stored under a used id")
	regID, _ := uuid.NewV7()
	if _, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, domain.RegisterPerson{EventID: regID, Name: "王五",
		IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Phone: "13800000003"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Ledger.RecordPass(h.ctx, person(p), domain.RecordPass{EventID: regID, Method: domain.MethodSelfScan, VenueID: vid, Direction: domain.DirectionOut}); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("a pass under a registration's event id: %v, want a conflict", err)
	}
}
