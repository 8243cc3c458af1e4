package ledgertest_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/idcard"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
)

// harness is the test stack (ledgertest.Start) with the helpers these
// tests share.
type harness struct {
	*ledgertest.Env
	tb  testing.TB
	ctx context.Context
	seq int // for generated ID numbers
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return &harness{Env: ledgertest.Start(t, ledgertest.Options{}), tb: t, ctx: t.Context()}
}

// caughtUp waits until the read models have applied position.
func (h *harness) caughtUp(position uint64) {
	h.tb.Helper()
	h.WaitApplied(h.tb, position)
}

func (h *harness) lastPosition() uint64 {
	h.tb.Helper()
	return h.LastPosition(h.tb)
}

// wantNothingAppended fails t with msg when the log has grown past before:
// what was refused (or only retried) appended an event.
func (h *harness) wantNothingAppended(t testing.TB, before uint64, msg string) {
	t.Helper()
	if h.lastPosition() != before {
		t.Fatal(msg)
	}
}

// newResidentID returns a fresh valid resident ID.
func (h *harness) newResidentID() string {
	h.seq++
	first := "371302" + "19900307" + string(rune('0'+h.seq/100%10)) + string(rune('0'+h.seq/10%10)) + string(rune('0'+h.seq%10))
	c, _ := idcard.CheckChar(first)
	return first + string(c)
}

// child is the registration of a child named name with a fresh resident ID.
func (h *harness) child(name string) domain.AddFamilyMember {
	return domain.AddFamilyMember{Name: name, IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Relation: domain.RelationChild}
}

// addChild registers guardian's child named name and returns the child's id.
func (h *harness) addChild(guardian uuid.UUID, name string) uuid.UUID {
	h.tb.Helper()
	res, err := h.Ledger.AddFamilyMember(h.ctx, person(guardian), guardian, h.child(name))
	if err != nil {
		h.tb.Fatalf("AddFamilyMember: %v", err)
	}
	return res.ID
}

// register registers a citizen and returns their id and ID number.
func (h *harness) register(name string) (uuid.UUID, string) {
	h.tb.Helper()
	number := h.newResidentID()
	res, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, domain.RegisterPerson{
		Name: name, IDType: idcard.ResidentID, IDNumber: number, Phone: "13800138000",
	})
	if err != nil {
		h.tb.Fatalf("RegisterPerson: %v", err)
	}
	return res.ID, number
}

func person(id uuid.UUID) domain.Actor {
	return domain.Actor{Role: domain.RolePerson, PersonID: id, Subject: "person:" + id.String()}
}

var reviewer = domain.Actor{Role: domain.RoleReviewer, Subject: "reviewer"}

// approvedVenue registers a manager and an approved venue.
func (h *harness) approvedVenue(cmd domain.ApplyVenue) (venueID, manager uuid.UUID) {
	h.tb.Helper()
	manager, _ = h.register("王经理")
	if cmd.Name == "" {
		cmd = domain.ApplyVenue{Name: "兰山超市", Type: domain.VenueSupermarket, District: "371302",
			Address: "兰山区解放路1号", Lat: 35.06, Lng: 118.35, RequireGreen: cmd.RequireGreen, NATWithinHours: cmd.NATWithinHours}
	}
	res, err := h.Ledger.ApplyVenue(h.ctx, person(manager), cmd)
	if err != nil {
		h.tb.Fatalf("ApplyVenue: %v", err)
	}
	if _, err := h.Ledger.ReviewVenue(h.ctx, reviewer, res.ID, domain.ReviewVenue{Decision: domain.ReviewApprove}); err != nil {
		h.tb.Fatalf("ReviewVenue: %v", err)
	}
	return res.ID, manager
}

func (h *harness) health(number, colour, nat string, natAt time.Time) {
	h.tb.Helper()
	_, err := h.Ledger.RecordHealth(h.ctx, domain.Actor{Role: domain.RoleHealthFeed, Subject: "health-feed"},
		[]domain.HealthRecord{{IDType: idcard.ResidentID, IDNumber: number, CodeColour: colour, NATResult: nat, NATAt: natAt, VaccineDoses: 3}})
	if err != nil {
		h.tb.Fatalf("RecordHealth: %v", err)
	}
}

func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want %v", err, kind)
	}
}

func TestRegisterPerson(t *testing.T) {
	h := newHarness(t)
	number := h.newResidentID()
	eventID, _ := uuid.NewV7()
	cmd := domain.RegisterPerson{EventID: eventID, Name: "张三", IDType: idcard.ResidentID, IDNumber: number, Phone: "13912345678"}
	first, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, cmd)
	if err != nil {
		t.Fatalf("RegisterPerson: %v", err)
	}
	if first.ID != pii.PersonID(h.Ledger.Hasher.IDHash(idcard.ResidentID, number)) || first.EventID != eventID || first.Position == 0 || first.Duplicate {
		t.Fatalf("result = %+v", first)
	}

	t.Run("retry with the same event id", func(t *testing.T) {
		again, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, cmd)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if !again.Duplicate || again.Position != first.Position || again.ID != first.ID {
			t.Fatalf("retry = %+v, want the original %+v", again, first)
		}
	})
	t.Run("same document again", func(t *testing.T) {
		before := h.lastPosition()
		// A new event id, a lower-case check character: still the same document.
		other := cmd
		other.EventID = uuid.Nil
		other.IDNumber = strings.ToLower(" " + number)
		_, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, other)
		wantKind(t, err, domain.ErrConflict)
		if !strings.Contains(err.Error(), "already registered") || strings.Contains(err.Error(), number) {
			t.Fatalf("error %q: want 'already registered' and no ID number", err)
		}
		h.wantNothingAppended(t, before, "a refused registration appended an event")
	})
	t.Run("another document with the event id", func(t *testing.T) {
		// An outside tester's finding: this was answered "already
		// registered" for a document that never was.
		before := h.lastPosition()
		other := cmd
		other.IDNumber = h.newResidentID()
		_, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, other)
		wantKind(t, err, domain.ErrConflict)
		if strings.Contains(err.Error(), "already registered") || !strings.Contains(err.Error(), eventID.String()) {
			t.Fatalf("error %q: want the event id named, not 'already registered'", err)
		}
		h.wantNothingAppended(t, before, "a refused registration appended an event")
		other.EventID = uuid.Nil
		if _, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, other); err != nil {
			t.Fatalf("the document is free: %v", err)
		}
	})
	t.Run("bad input appends nothing", func(t *testing.T) {
		before := h.lastPosition()
		bad := []domain.RegisterPerson{
			{Name: "李四", IDType: idcard.ResidentID, IDNumber: number[:17] + "0", Phone: "13912345678"},
			{Name: "", IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Phone: "13912345678"},
			{Name: "李四", IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Phone: "12345"},
			{Name: "李四", IDType: "card", IDNumber: "123456", Phone: "13912345678"},
		}
		for _, c := range bad {
			if number[17] == '0' && c.IDNumber == number[:17]+"0" {
				c.IDNumber = number[:17] + "1"
			}
			if _, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, c); !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("RegisterPerson(%s) = %v, want ErrInvalid", c.Name, err)
			}
		}
		h.wantNothingAppended(t, before, "bad input appended an event")
	})
	t.Run("sealed in the log, masked in the read model", func(t *testing.T) {
		events, _, err := h.Store.Load(h.ctx, domain.PersonAggregate(first.ID))
		if err != nil || len(events) != 1 {
			t.Fatalf("Load = %d events, %v", len(events), err)
		}
		if bytes.Contains(events[0].Payload, []byte(number)) || bytes.Contains(events[0].Payload, []byte("张三")) ||
			bytes.Contains(events[0].Payload, []byte("13912345678")) {
			t.Fatalf("personal data in clear in the log: %s", events[0].Payload)
		}
		h.caughtUp(first.Position)
		v, err := h.Reads.Person(h.ctx, first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if v.NameMasked != "张*" || v.IDMasked != pii.MaskID(number) || v.Verification != domain.VerificationPending {
			t.Fatalf("view = %+v", v)
		}
	})
}

func TestVerifyPerson(t *testing.T) {
	h := newHarness(t)
	id, _ := h.register("赵六")
	ok := domain.VerifyPerson{Method: domain.VerifyFace, Result: domain.VerifyApproved}
	_, err := h.Ledger.VerifyPerson(h.ctx, person(id), id, ok)
	wantKind(t, err, domain.ErrForbidden)
	_, err = h.Ledger.VerifyPerson(h.ctx, reviewer, uuid.New(), ok)
	wantKind(t, err, domain.ErrNotFound)
	if _, err := h.Ledger.VerifyPerson(h.ctx, reviewer, id, domain.VerifyPerson{Method: domain.VerifyManual, Result: domain.VerifyRejected}); err != nil {
		t.Fatal(err)
	}
	res, err := h.Ledger.VerifyPerson(h.ctx, domain.Actor{Role: domain.RoleAdmin}, id, ok)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Ledger.VerifyPerson(h.ctx, reviewer, id, ok)
	wantKind(t, err, domain.ErrConflict)
	h.caughtUp(res.Position)
	if v, _ := h.Reads.Person(h.ctx, id); v.Verification != domain.VerificationApproved {
		t.Fatalf("verification = %q", v.Verification)
	}
}

func TestFamilyMembers(t *testing.T) {
	h := newHarness(t)
	guardian, _ := h.register("张父")
	member := h.child("张小")
	_, err := h.Ledger.AddFamilyMember(h.ctx, person(uuid.New()), guardian, member)
	wantKind(t, err, domain.ErrForbidden)
	bad := member
	bad.Relation = "cousin"
	_, err = h.Ledger.AddFamilyMember(h.ctx, person(guardian), guardian, bad)
	wantKind(t, err, domain.ErrInvalid)

	res, err := h.Ledger.AddFamilyMember(h.ctx, person(guardian), guardian, member)
	if err != nil {
		t.Fatalf("AddFamilyMember: %v", err)
	}
	_, err = h.Ledger.AddFamilyMember(h.ctx, person(guardian), guardian, member)
	wantKind(t, err, domain.ErrConflict)

	// A dependant cannot register dependants of their own.
	_, err = h.Ledger.AddFamilyMember(h.ctx, person(res.ID), res.ID, h.child("张孙"))
	wantKind(t, err, domain.ErrConflict)

	h.caughtUp(res.Position)
	v, err := h.Reads.Person(h.ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.GuardianID != guardian || v.Relation != domain.RelationChild || v.NameMasked != "张*" {
		t.Fatalf("member view = %+v", v)
	}
}

func TestVenueLifecycle(t *testing.T) {
	h := newHarness(t)
	manager, _ := h.register("王经理")
	helper, _ := h.register("李助理")
	app := domain.ApplyVenue{Name: "沂河书店", Type: domain.VenueLibrary, District: "371302", Address: "沂河路8号", Lat: 35.1, Lng: 118.3}

	_, err := h.Ledger.ApplyVenue(h.ctx, person(uuid.New()), app)
	wantKind(t, err, domain.ErrNotFound)
	_, err = h.Ledger.ApplyVenue(h.ctx, reviewer, app)
	wantKind(t, err, domain.ErrForbidden)
	badType := app
	badType.Type = "casino"
	_, err = h.Ledger.ApplyVenue(h.ctx, person(manager), badType)
	wantKind(t, err, domain.ErrInvalid)

	applied, err := h.Ledger.ApplyVenue(h.ctx, person(manager), app)
	if err != nil {
		t.Fatalf("ApplyVenue: %v", err)
	}
	if applied.ID.Version() != 7 {
		t.Fatalf("venue id %s is not a UUIDv7", applied.ID)
	}
	vid := applied.ID

	_, err = h.Ledger.ReviewVenue(h.ctx, person(manager), vid, domain.ReviewVenue{Decision: domain.ReviewApprove})
	wantKind(t, err, domain.ErrForbidden)
	_, err = h.Ledger.ReviewVenue(h.ctx, reviewer, vid, domain.ReviewVenue{Decision: domain.ReviewReject})
	wantKind(t, err, domain.ErrInvalid)
	_, err = h.Ledger.ReviewVenue(h.ctx, reviewer, uuid.New(), domain.ReviewVenue{Decision: domain.ReviewApprove})
	wantKind(t, err, domain.ErrNotFound)
	if _, err := h.Ledger.ReviewVenue(h.ctx, reviewer, vid, domain.ReviewVenue{Decision: domain.ReviewApprove}); err != nil {
		t.Fatalf("ReviewVenue: %v", err)
	}
	_, err = h.Ledger.ReviewVenue(h.ctx, reviewer, vid, domain.ReviewVenue{Decision: domain.ReviewReject, Reason: "late"})
	wantKind(t, err, domain.ErrConflict)

	_, err = h.Ledger.AddSubAdmin(h.ctx, person(helper), vid, helper)
	wantKind(t, err, domain.ErrForbidden)
	_, err = h.Ledger.AddSubAdmin(h.ctx, person(manager), vid, uuid.New())
	wantKind(t, err, domain.ErrNotFound)
	if _, err := h.Ledger.AddSubAdmin(h.ctx, person(manager), vid, helper); err != nil {
		t.Fatalf("AddSubAdmin: %v", err)
	}
	_, err = h.Ledger.AddSubAdmin(h.ctx, person(manager), vid, helper)
	wantKind(t, err, domain.ErrConflict)
	res, err := h.Ledger.RemoveSubAdmin(h.ctx, domain.Actor{Role: domain.RoleAdmin}, vid, helper)
	if err != nil {
		t.Fatalf("RemoveSubAdmin: %v", err)
	}
	_, err = h.Ledger.RemoveSubAdmin(h.ctx, person(manager), vid, helper)
	wantKind(t, err, domain.ErrNotFound)

	h.caughtUp(res.Position)
	v, err := h.Reads.Venue(h.ctx, vid)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != domain.VenueStatusApproved || v.ManagerID != manager || len(v.Admins) != 0 || v.Type != domain.VenueLibrary {
		t.Fatalf("venue view = %+v", v)
	}
}

// TestConcurrentReviews: of many reviews of one venue at once, exactly one wins.
func TestConcurrentReviews(t *testing.T) {
	h := newHarness(t)
	manager, _ := h.register("王经理")
	applied, err := h.Ledger.ApplyVenue(h.ctx, person(manager), domain.ApplyVenue{
		Name: "罗庄饭店", Type: domain.VenueRestaurant, District: "371311", Address: "罗庄路2号", Lat: 35, Lng: 118})
	if err != nil {
		t.Fatal(err)
	}
	h.raceOnce(t, 8, domain.VenueAggregate(applied.ID), 2, func() error {
		_, err := h.Ledger.ReviewVenue(h.ctx, reviewer, applied.ID, domain.ReviewVenue{Decision: domain.ReviewApprove})
		return err
	})
}

func TestPasses(t *testing.T) {
	h := newHarness(t)
	vid, manager := h.approvedVenue(domain.ApplyVenue{})
	citizen, number := h.register("张三")
	red, redNumber := h.register("李四")
	h.health(number, domain.ColourGreen, domain.NATNegative, time.Now().Add(-3*time.Hour))
	h.health(redNumber, domain.ColourRed, domain.NATPositive, time.Now().Add(-3*time.Hour))
	h.caughtUp(h.lastPosition())

	t.Run("self scan passes and retries answer the original", func(t *testing.T) {
		eventID, _ := uuid.NewV7()
		cmd := domain.RecordPass{EventID: eventID, Method: domain.MethodSelfScan, VenueID: vid, Direction: domain.DirectionIn}
		res, err := h.Ledger.RecordPass(h.ctx, person(citizen), cmd)
		if err != nil {
			t.Fatalf("RecordPass: %v", err)
		}
		s := res.Screen
		if res.Decision != domain.DecisionPass || res.EventID != eventID || s.NameMasked != "张*" || s.CodeColour != domain.ColourGreen ||
			s.NATResult != domain.NATNegative || s.VaccineDoses != 3 || s.VenueName != "兰山超市" || res.Duplicate {
			t.Fatalf("result = %+v", res)
		}
		// Inside JetStream's duplicate window, before the read model has it.
		before := h.lastPosition()
		again, err := h.Ledger.RecordPass(h.ctx, person(citizen), cmd)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.Position != res.Position || again.Screen != res.Screen {
			t.Fatalf("retry = %+v, want the original %+v", again, res)
		}
		// From the read model (what answers after the window has passed).
		h.caughtUp(res.Position)
		again, err = h.Ledger.RecordPass(h.ctx, person(citizen), cmd)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.Position != res.Position || again.Screen != res.Screen {
			t.Fatalf("late retry = %+v, want the original %+v", again, res)
		}
		// An event id names one fact: the same id saying another time, at
		// another venue or for another direction is a conflict, not a retry.
		for _, edit := range []func(*domain.RecordPass){
			func(c *domain.RecordPass) { c.OccurredAt = time.Now().Add(-time.Hour) },
			func(c *domain.RecordPass) { c.Direction = domain.DirectionOut },
			func(c *domain.RecordPass) { c.VenueID = uuid.New() },
		} {
			other := cmd
			edit(&other)
			if _, err := h.Ledger.RecordPass(h.ctx, person(citizen), other); !errors.Is(err, domain.ErrConflict) && !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("the same event id with another body: %v, want a conflict", err)
			}
		}
		h.wantNothingAppended(t, before, "a retry appended an event")
	})

	t.Run("red code is denied and its reaction raises an alert", func(t *testing.T) {
		res, err := h.Ledger.RecordPass(h.ctx, person(red), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: vid, Direction: domain.DirectionIn})
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision != domain.DecisionDeny || res.Screen.Reason == "" || res.Screen.CodeColour != domain.ColourRed {
			t.Fatalf("result = %+v", res)
		}
		if h.lastPosition() != res.Position {
			t.Fatal("RecordPass appended more than the pass: alerts are the reactions' to raise")
		}
		// The reaction (reactions router) raises it from the logged pass;
		// run twice, as a redelivered pass would, it is the same alert.
		pass, err := h.Store.Get(h.ctx, res.Position)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if n, err := h.Ledger.RaiseAlerts(h.ctx, domain.ReactionsActor, []domain.Envelope{pass}); err != nil || n != 1 {
				t.Fatalf("RaiseAlerts = %d, %v", n, err)
			}
		}
		h.caughtUp(h.lastPosition())
		alerts, err := h.Reads.Alerts(h.ctx, "371302", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) != 1 || alerts[0].PassEventID != res.EventID || alerts[0].PersonID != red || alerts[0].EventID != domain.AlertEventID(res.EventID) {
			t.Fatalf("alerts = %+v", alerts)
		}
	})

	t.Run("staff scan and manual entry", func(t *testing.T) {
		scanner := domain.Actor{Role: domain.RoleScanner, VenueID: vid, Subject: "scanner:" + vid.String()}
		res, err := h.Ledger.RecordPass(h.ctx, scanner, domain.RecordPass{Method: domain.MethodStaffScan, VenueID: vid, PersonID: citizen, Direction: domain.DirectionOut})
		if err != nil || res.Decision != domain.DecisionPass {
			t.Fatalf("staff scan = %+v, %v", res, err)
		}
		res, err = h.Ledger.RecordPass(h.ctx, person(manager), domain.RecordPass{Method: domain.MethodManual, VenueID: vid,
			IDType: idcard.ResidentID, IDNumber: strings.ToLower(number), Direction: domain.DirectionIn})
		if err != nil || res.Screen.NameMasked != "张*" {
			t.Fatalf("manual entry = %+v, %v", res, err)
		}
		h.caughtUp(res.Position)
		p, ok, err := h.Reads.Pass(h.ctx, res.EventID)
		if err != nil || !ok || p.Pass.Operator != "person:"+manager.String() || p.Pass.Method != domain.MethodManual {
			t.Fatalf("stored pass = %+v, %v, %v", p, ok, err)
		}

		before := h.lastPosition()
		_, err = h.Ledger.RecordPass(h.ctx, scanner, domain.RecordPass{Method: domain.MethodManual, VenueID: vid,
			IDType: idcard.ResidentID, IDNumber: h.newResidentID(), Direction: domain.DirectionIn})
		wantKind(t, err, domain.ErrNotFound)
		if strings.Contains(err.Error(), "37130219900307") {
			t.Fatalf("error %q shows the ID number", err)
		}
		_, err = h.Ledger.RecordPass(h.ctx, domain.Actor{Role: domain.RoleScanner, VenueID: uuid.New()},
			domain.RecordPass{Method: domain.MethodStaffScan, VenueID: vid, PersonID: citizen, Direction: domain.DirectionIn})
		wantKind(t, err, domain.ErrForbidden)
		_, err = h.Ledger.RecordPass(h.ctx, person(citizen),
			domain.RecordPass{Method: domain.MethodStaffScan, VenueID: vid, PersonID: red, Direction: domain.DirectionIn})
		wantKind(t, err, domain.ErrForbidden)
		_, err = h.Ledger.RecordPass(h.ctx, person(citizen), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: vid,
			Direction: domain.DirectionIn, OccurredAt: time.Now().Add(time.Hour)})
		wantKind(t, err, domain.ErrInvalid)
		_, err = h.Ledger.RecordPass(h.ctx, person(citizen), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: vid,
			Direction: domain.DirectionIn, OccurredAt: time.Now().Add(-31 * 24 * time.Hour)})
		wantKind(t, err, domain.ErrInvalid)
		h.wantNothingAppended(t, before, "a refused pass appended an event")
	})

	t.Run("only approved venues", func(t *testing.T) {
		applied, err := h.Ledger.ApplyVenue(h.ctx, person(manager), domain.ApplyVenue{
			Name: "待审场所", Type: domain.VenueOther, District: "371302", Address: "某路", Lat: 35, Lng: 118})
		if err != nil {
			t.Fatal(err)
		}
		h.caughtUp(applied.Position)
		_, err = h.Ledger.RecordPass(h.ctx, person(citizen), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: applied.ID, Direction: domain.DirectionIn})
		wantKind(t, err, domain.ErrConflict)
		_, err = h.Ledger.RecordPass(h.ctx, person(citizen), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: uuid.New(), Direction: domain.DirectionIn})
		wantKind(t, err, domain.ErrNotFound)
	})
}

func TestFamilyPass(t *testing.T) {
	h := newHarness(t)
	vid, _ := h.approvedVenue(domain.ApplyVenue{RequireGreen: true})
	guardian, number := h.register("张父")
	h.health(number, domain.ColourGreen, domain.NATNone, time.Time{})
	child := h.addChild(guardian, "张小")
	stranger, _ := h.register("陌生人")
	h.caughtUp(h.lastPosition())

	_, err := h.Ledger.RecordPass(h.ctx, person(guardian), domain.RecordPass{Method: domain.MethodSelfScan, VenueID: vid,
		Direction: domain.DirectionIn, FamilyMemberIDs: []uuid.UUID{stranger}})
	wantKind(t, err, domain.ErrForbidden)

	eventID, _ := uuid.NewV7()
	cmd := domain.RecordPass{EventID: eventID, Method: domain.MethodSelfScan, VenueID: vid, Direction: domain.DirectionIn,
		FamilyMemberIDs: []uuid.UUID{child}}
	res, err := h.Ledger.RecordPass(h.ctx, person(guardian), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if res.Decision != domain.DecisionPass || len(res.Family) != 1 {
		t.Fatalf("result = %+v", res)
	}
	kid := res.Family[0]
	// The child has no health record and the venue requires a green code.
	if kid.EventID != domain.FamilyPassEventID(eventID, child) || kid.Decision != domain.DecisionDeny ||
		kid.Screen.CodeColour != domain.ColourUnknown || kid.Screen.NameMasked != "张*" {
		t.Fatalf("family result = %+v", kid)
	}
	for _, wait := range []bool{false, true} {
		if wait {
			h.caughtUp(h.lastPosition())
		}
		before := h.lastPosition()
		again, err := h.Ledger.RecordPass(h.ctx, person(guardian), cmd)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || len(again.Family) != 1 || !again.Family[0].Duplicate ||
			again.Family[0].Position != kid.Position || again.Family[0].Screen != kid.Screen {
			t.Fatalf("retry (read model caught up: %v) = %+v", wait, again)
		}
		h.wantNothingAppended(t, before, "retry appended")
	}
	h.caughtUp(h.lastPosition())
	p, ok, err := h.Reads.Pass(h.ctx, kid.EventID)
	if err != nil || !ok || p.Pass.GuardianID != guardian || p.Pass.PersonID != child {
		t.Fatalf("child's pass = %+v, %v, %v", p, ok, err)
	}
	// A retry that leaves a member out, or names another, is another pass
	// (an outside tester got 200 "duplicate" for the first).
	other := h.addChild(guardian, "张二")
	h.caughtUp(h.lastPosition())
	before := h.lastPosition()
	for name, members := range map[string][]uuid.UUID{"fewer members": nil, "another member": {other}, "one more": {child, other}} {
		changed := cmd
		changed.FamilyMemberIDs = members
		_, err := h.Ledger.RecordPass(h.ctx, person(guardian), changed)
		wantKind(t, err, domain.ErrConflict)
		if !strings.Contains(err.Error(), "other family members") {
			t.Fatalf("%s: %v", name, err)
		}
	}
	h.wantNothingAppended(t, before, "a refused retry appended")
}

func TestRecordPasses(t *testing.T) {
	h := newHarness(t)
	vid, _ := h.approvedVenue(domain.ApplyVenue{})
	a, _ := h.register("张三")
	b, _ := h.register("李四")
	h.caughtUp(h.lastPosition())
	scanner := domain.Actor{Role: domain.RoleScanner, VenueID: vid, Subject: "scanner:" + vid.String()}

	_, err := h.Ledger.RecordPasses(h.ctx, scanner, make([]domain.RecordPass, domain.MaxBatchPasses+1))
	wantKind(t, err, domain.ErrInvalid)

	id1, _ := uuid.NewV7()
	id2, _ := uuid.NewV7()
	// A device's time finer than a microsecond: the pass keeps it to the
	// microsecond, as every read model does.
	offline := time.Now().Add(-48 * time.Hour).Truncate(time.Second).Add(123456789)
	items := []domain.RecordPass{
		{EventID: id1, Method: domain.MethodStaffScan, VenueID: vid, PersonID: a, Direction: domain.DirectionIn, OccurredAt: offline},
		{EventID: id2, Method: domain.MethodStaffScan, VenueID: vid, PersonID: b, Direction: "sideways"},
		{Method: domain.MethodStaffScan, VenueID: vid, PersonID: uuid.New(), Direction: domain.DirectionIn},
		{EventID: id1, Method: domain.MethodStaffScan, VenueID: vid, PersonID: a, Direction: domain.DirectionIn, OccurredAt: offline},
		{Method: domain.MethodStaffScan, VenueID: vid, PersonID: b, Direction: domain.DirectionOut},
	}
	got, err := h.Ledger.RecordPasses(h.ctx, scanner, items)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{domain.BatchAccepted, domain.BatchRejected, domain.BatchRejected, domain.BatchDuplicate, domain.BatchAccepted}
	for i, it := range got {
		if it.Status != want[i] {
			t.Fatalf("item %d: status %s (%v), want %s", i, it.Status, it.Err, want[i])
		}
	}
	wantKind(t, got[1].Err, domain.ErrInvalid)
	wantKind(t, got[2].Err, domain.ErrNotFound)
	if got[0].EventID != id1 || got[3].Result.Position != got[0].Result.Position || !got[0].Result.Screen.At.Equal(domain.Micros(offline)) {
		t.Fatalf("items = %+v", got)
	}

	// The whole batch again, after the read model has it: every good item a duplicate.
	h.caughtUp(h.lastPosition())
	before := h.lastPosition()
	items[4].EventID = got[4].EventID
	again, err := h.Ledger.RecordPasses(h.ctx, scanner, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range again {
		wantStatus := domain.BatchDuplicate
		if want[i] == domain.BatchRejected {
			wantStatus = domain.BatchRejected
		}
		if it.Status != wantStatus || (it.Err == nil && it.Result.Position != got[i].Result.Position) {
			t.Fatalf("retry item %d = %+v, want %s at %d", i, it, wantStatus, got[i].Result.Position)
		}
	}
	h.wantNothingAppended(t, before, "a retried batch appended")
}

func TestRecordHealth(t *testing.T) {
	h := newHarness(t)
	feed := domain.Actor{Role: domain.RoleHealthFeed, Subject: "health-feed"}
	records := make([]domain.HealthRecord, 10)
	for i := range records {
		records[i] = domain.HealthRecord{IDType: idcard.ResidentID, IDNumber: h.newResidentID(), CodeColour: domain.ColourGreen, NATResult: domain.NATNone}
	}
	bad := append([]domain.HealthRecord(nil), records...)
	bad[7].CodeColour = "purple"
	before := h.lastPosition()
	_, err := h.Ledger.RecordHealth(h.ctx, feed, bad)
	var fe *domain.FieldError
	if !errors.As(err, &fe) || fe.Field != "records[7].code_colour" {
		t.Fatalf("RecordHealth = %v, want a FieldError on records[7].code_colour", err)
	}
	h.wantNothingAppended(t, before, "an invalid batch appended")
	_, err = h.Ledger.RecordHealth(h.ctx, reviewer, records)
	wantKind(t, err, domain.ErrForbidden)

	res, err := h.Ledger.RecordHealth(h.ctx, feed, records)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 10 || res.LastPosition-res.FirstPosition != 9 {
		t.Fatalf("result = %+v", res)
	}

	// A record that arrived before the person registered applies once they do.
	early := records[3]
	id, err := h.Ledger.RegisterPerson(h.ctx, domain.Actor{}, domain.RegisterPerson{Name: "周七", IDType: early.IDType, IDNumber: early.IDNumber, Phone: "+85291234567"})
	if err != nil {
		t.Fatal(err)
	}
	h.caughtUp(id.Position)
	v, err := h.Reads.Person(h.ctx, id.ID)
	if err != nil {
		t.Fatal(err)
	}
	hv, ok, err := h.Reads.Health(h.ctx, v.IDHash)
	if err != nil || !ok || hv.CodeColour != domain.ColourGreen {
		t.Fatalf("health = %+v, %v, %v", hv, ok, err)
	}
}

// TestRetryInsideDuplicateWindow retries a pass through a ledger whose read
// models stopped before the pass (and before the person's health record):
// JetStream drops the retry, and the answer is the stored original, not what
// the stale read models would decide now.
func TestRetryInsideDuplicateWindow(t *testing.T) {
	h := newHarness(t)
	vid, _ := h.approvedVenue(domain.ApplyVenue{})
	citizen, number := h.register("张三")
	h.caughtUp(h.lastPosition())

	stale := memory.New(memory.Options{})
	ctx, stop := context.WithCancel(h.ctx)
	proj := projections.New(h.Store, stale, projections.Options{Opener: projections.KeyringOpener(h.Store)})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = proj.Run(ctx)
	}()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := proj.WaitFor(wctx, h.lastPosition()); err != nil {
		t.Fatal(err)
	}
	cancel()
	stop()
	<-done

	h.health(number, domain.ColourGreen, domain.NATNegative, time.Now().Add(-time.Hour))
	h.caughtUp(h.lastPosition())
	eventID, _ := uuid.NewV7()
	cmd := domain.RecordPass{EventID: eventID, Method: domain.MethodSelfScan, VenueID: vid, Direction: domain.DirectionIn}
	res, err := h.Ledger.RecordPass(h.ctx, person(citizen), cmd)
	if err != nil || res.Screen.CodeColour != domain.ColourGreen {
		t.Fatalf("RecordPass = %+v, %v", res, err)
	}

	behind := *h.Ledger
	behind.Reads = stale
	if _, ok, _ := stale.Pass(h.ctx, eventID); ok {
		t.Fatal("the stopped read model has the pass")
	}
	before := h.lastPosition()
	again, err := behind.RecordPass(h.ctx, person(citizen), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Position != res.Position || again.Screen != res.Screen {
		t.Fatalf("retry = %+v, want the original %+v", again, res)
	}
	h.wantNothingAppended(t, before, "the retry appended")
}

// raceOnce runs command n times at once and checks that exactly one run
// won, the others conflicting, and that aggregate then holds wantEvents
// events.
func (h *harness) raceOnce(t *testing.T, n int, aggregate string, wantEvents int, command func() error) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = command() })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, domain.ErrConflict):
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	events, _, err := h.Store.Load(h.ctx, aggregate)
	if err != nil {
		t.Fatal(err)
	}
	if won != 1 || len(events) != wantEvents {
		t.Fatalf("%d of %d runs won, %d events stored; want 1 and %d", won, n, len(events), wantEvents)
	}
}

func arrival(family ...uuid.UUID) domain.DeclareArrival {
	return domain.DeclareArrival{
		ArrivalDate: time.Now().Format(time.DateOnly), Origin: "上海市浦东新区", DestinationDistrict: "371302",
		NATResult: domain.NATNegative, NATAt: time.Now().Add(-6 * time.Hour), FamilyMemberIDs: family,
	}
}

func truck() domain.DeclareTruckPass {
	return domain.DeclareTruckPass{
		PlateNumber: "鲁Q1234挂", NATProofAt: time.Now().Add(-2 * time.Hour), ItineraryOK: true,
		HealthCodeColour: domain.ColourGreen, LogisticsPark: "临沂商城国际物流园", District: "371311",
		ContactName: "赵调度", ContactPhone: "13900001111",
	}
}

func TestDeclareArrival(t *testing.T) {
	h := newHarness(t)
	guardian, _ := h.register("孙母")
	stranger, _ := h.register("周某")
	kid := h.addChild(guardian, "孙小")

	_, err := h.Ledger.DeclareArrival(h.ctx, reviewer, arrival())
	wantKind(t, err, domain.ErrForbidden)
	_, err = h.Ledger.DeclareArrival(h.ctx, person(guardian), arrival(stranger))
	wantKind(t, err, domain.ErrForbidden)
	_, err = h.Ledger.DeclareArrival(h.ctx, person(guardian), arrival(uuid.New()))
	wantKind(t, err, domain.ErrNotFound)
	_, err = h.Ledger.DeclareArrival(h.ctx, person(uuid.New()), arrival())
	wantKind(t, err, domain.ErrNotFound)
	old := arrival()
	old.ArrivalDate = "2020-01-01"
	_, err = h.Ledger.DeclareArrival(h.ctx, person(guardian), old)
	wantKind(t, err, domain.ErrInvalid)

	cmd := arrival(kid)
	cmd.EventID = uuid.New()
	res, err := h.Ledger.DeclareArrival(h.ctx, person(guardian), cmd)
	if err != nil {
		t.Fatalf("DeclareArrival: %v", err)
	}
	if res.ID != domain.DeclarationIDFor(cmd.EventID) || res.EventID != cmd.EventID || res.Duplicate {
		t.Fatalf("result = %+v", res)
	}
	// A retry with the same event id answers with the original.
	before := h.lastPosition()
	again, err := h.Ledger.DeclareArrival(h.ctx, person(guardian), cmd)
	if err != nil || !again.Duplicate || again.ID != res.ID || again.Position != res.Position || h.lastPosition() != before {
		t.Fatalf("retry = %+v, %v", again, err)
	}

	events, _, err := h.Store.Load(h.ctx, domain.DeclarationAggregate(res.ID))
	if err != nil || len(events) != 1 {
		t.Fatalf("declaration events = %d, %v", len(events), err)
	}
	if strings.Contains(string(events[0].Payload), "上海") || events[0].SchemaVersion != 2 {
		t.Fatalf("the origin is in the log in clear: %s", events[0].Payload)
	}
	// The same event id with another origin is another declaration: the
	// sealed origin is opened to compare.
	other := cmd
	other.Origin = "北京市"
	_, err = h.Ledger.DeclareArrival(h.ctx, person(guardian), other)
	wantKind(t, err, domain.ErrConflict)
	d, err := domain.ReplayDeclaration(events)
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind() != domain.DeclarationArrival || d.DeclarantID() != guardian || !slices.Equal(d.FamilyMemberIDs(), []uuid.UUID{kid}) ||
		d.District() != "371302" || d.Status() != domain.DeclarationPending || d.Queued() {
		t.Fatalf("declaration = %+v", d)
	}
}

func TestTruckPassReviewAndQueue(t *testing.T) {
	h := newHarness(t)
	driver, _ := h.register("钱司机")

	stale := truck()
	stale.NATProofAt = time.Now().Add(-25 * time.Hour)
	_, err := h.Ledger.DeclareTruckPass(h.ctx, person(driver), stale)
	wantKind(t, err, domain.ErrInvalid)

	res, err := h.Ledger.DeclareTruckPass(h.ctx, person(driver), truck())
	if err != nil {
		t.Fatalf("DeclareTruckPass: %v", err)
	}
	declared, err := h.Store.Get(h.ctx, res.Position)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := domain.Decode(declared)
	if err != nil {
		t.Fatal(err)
	}
	tp := ev.(*domain.TruckPassDeclared)
	if tp.PersonID != driver || tp.District != "371311" || tp.ClearPlateNumber != "" ||
		tp.PlateNumber == "" || strings.Contains(string(declared.Payload), "鲁Q1234挂") ||
		tp.ContactName == "" || tp.ContactName == "赵调度" || tp.ContactPhone == "13900001111" {
		t.Fatalf("stored truck pass = %+v (plate and contact must be sealed)", tp)
	}

	// The queue reaction, delivered twice, queues it once.
	q1, err := h.Ledger.QueueDeclaration(h.ctx, domain.ReactionsActor, declared)
	if err != nil || q1.EventID != domain.DeclarationQueuedEventID(declared.ID) {
		t.Fatalf("QueueDeclaration = %+v, %v", q1, err)
	}
	q2, err := h.Ledger.QueueDeclaration(h.ctx, domain.ReactionsActor, declared)
	if err != nil || q2.EventID != uuid.Nil {
		t.Fatalf("second QueueDeclaration = %+v, %v", q2, err)
	}

	// Concurrent reviews: exactly one wins, the others conflict.
	h.raceOnce(t, 6, domain.DeclarationAggregate(res.ID), 3, func() error {
		_, err := h.Ledger.ReviewDeclaration(h.ctx, reviewer, res.ID, domain.ReviewDeclaration{Decision: domain.ReviewApprove})
		return err
	})
	_, err = h.Ledger.ReviewDeclaration(h.ctx, reviewer, res.ID, domain.ReviewDeclaration{Decision: domain.ReviewReject, Reason: "again"})
	wantKind(t, err, domain.ErrConflict)
	_, err = h.Ledger.ReviewDeclaration(h.ctx, person(driver), res.ID, domain.ReviewDeclaration{Decision: domain.ReviewApprove})
	wantKind(t, err, domain.ErrForbidden)

	h.caughtUp(h.lastPosition())
	v, err := h.Reads.Declaration(h.ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != domain.DeclarationApproved || !v.Queued || v.Truck == nil || v.Truck.ContactName != "赵*" ||
		v.Truck.ContactPhone != "139****1111" || len(v.History) != 3 {
		t.Fatalf("declaration view = %+v", v)
	}
}

func TestIssueVenueCodeReaction(t *testing.T) {
	h := newHarness(t)
	vid, _ := h.approvedVenue(domain.ApplyVenue{})
	events, _, err := h.Store.Load(h.ctx, domain.VenueAggregate(vid))
	if err != nil || len(events) != 2 {
		t.Fatalf("venue events = %d, %v", len(events), err)
	}
	reviewed := events[1]
	for i := range 2 {
		res, err := h.Ledger.IssueVenueCode(h.ctx, domain.ReactionsActor, reviewed, "venue-code")
		if err != nil {
			t.Fatalf("IssueVenueCode: %v", err)
		}
		if want := domain.VenueCodeEventID(reviewed.ID); (i == 0) != (res.EventID == want) {
			t.Fatalf("delivery %d: result %+v", i, res)
		}
	}
	events, _, err = h.Store.Load(h.ctx, domain.VenueAggregate(vid))
	if err != nil {
		t.Fatal(err)
	}
	v, err := domain.ReplayVenue(events)
	if err != nil || len(events) != 3 || v.Code() != "venue-code" {
		t.Fatalf("venue after the reaction: %d events, code %q, %v", len(events), v.Code(), err)
	}
	// A reaction to something that is not a review is refused.
	_, err = h.Ledger.IssueVenueCode(h.ctx, domain.ReactionsActor, events[0], "x")
	wantKind(t, err, domain.ErrInvalid)
}

// TestCommandsSurviveReactions: a command decided while a reaction appends
// to the same aggregate (a venue's code issuance, a declaration's queueing)
// decides again instead of failing with a conflict.
func TestCommandsSurviveReactions(t *testing.T) {
	h := newHarness(t)
	helper, _ := h.register("李助理")
	driver, _ := h.register("钱司机")
	for i := range 8 {
		vid, manager := h.approvedVenue(domain.ApplyVenue{})
		events, _, err := h.Store.Load(h.ctx, domain.VenueAggregate(vid))
		if err != nil {
			t.Fatal(err)
		}
		res, err := h.Ledger.DeclareTruckPass(h.ctx, person(driver), truck())
		if err != nil {
			t.Fatal(err)
		}
		declared, err := h.Store.Get(h.ctx, res.Position)
		if err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 4)
		var wg sync.WaitGroup
		wg.Add(4)
		go func() {
			defer wg.Done()
			_, errs[0] = h.Ledger.IssueVenueCode(h.ctx, domain.ReactionsActor, events[1], "code")
		}()
		go func() { defer wg.Done(); _, errs[1] = h.Ledger.AddSubAdmin(h.ctx, person(manager), vid, helper) }()
		go func() {
			defer wg.Done()
			_, errs[2] = h.Ledger.QueueDeclaration(h.ctx, domain.ReactionsActor, declared)
		}()
		go func() {
			defer wg.Done()
			_, errs[3] = h.Ledger.ReviewDeclaration(h.ctx, reviewer, res.ID, domain.ReviewDeclaration{Decision: domain.ReviewApprove})
		}()
		wg.Wait()
		for j, err := range errs {
			if err != nil {
				t.Fatalf("round %d, command %d: %v", i, j, err)
			}
		}
		venue, _, err := h.Store.Load(h.ctx, domain.VenueAggregate(vid))
		if err != nil || len(venue) != 4 {
			t.Fatalf("round %d: venue has %d events (%v), want applied, reviewed, code, sub-admin", i, len(venue), err)
		}
	}
}

// TestRegistrationRaceWithChangedBody: the same event id and document with
// two different names, sent to two replicas at the same moment, is one
// registration: never two successes (an outside tester got 200 "duplicate"
// for the loser, whose name was dropped, in 7 of 8 tries). The same body
// twice at once is one registration and two successes.
func TestRegistrationRaceWithChangedBody(t *testing.T) {
	url := natsServer(t)
	a := &harness{Env: ledgertest.Start(t, ledgertest.Options{NATSURL: url}), tb: t, ctx: t.Context()}
	b := ledgertest.Start(t, ledgertest.Options{NATSURL: url})
	for try := range 16 {
		number := a.newResidentID()
		eventID, _ := uuid.NewV7()
		cmds := []domain.RegisterPerson{
			{EventID: eventID, Name: "张三", IDType: idcard.ResidentID, IDNumber: number, Phone: "13912345678"},
			{EventID: eventID, Name: "李四", IDType: idcard.ResidentID, IDNumber: number, Phone: "13912345679"},
		}
		same := try%4 == 3
		if same {
			cmds[1] = cmds[0]
		}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, l := range []*ledger.Ledger{a.Ledger, b.Ledger} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = l.RegisterPerson(a.ctx, domain.Actor{}, cmds[i])
			}()
		}
		wg.Wait()
		switch {
		case same && (errs[0] != nil || errs[1] != nil):
			t.Fatalf("try %d, the same body twice: %v, %v", try, errs[0], errs[1])
		case !same && errs[0] == nil && errs[1] == nil:
			t.Fatalf("try %d: both registrations of one event id with different names succeeded", try)
		case !same && errs[0] != nil && errs[1] != nil:
			t.Fatalf("try %d: both refused: %v, %v", try, errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, domain.ErrConflict) {
				t.Fatalf("try %d: %v, want a conflict", try, err)
			}
		}
	}
}
