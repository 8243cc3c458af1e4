package domain_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// auditChain builds a chain of n entries the way the command side does:
// each decided on the head left by the one before, wrapped in an envelope
// with its derived id.
func auditChain(t *testing.T, n int) []domain.Envelope {
	t.Helper()
	var envs []domain.Envelope
	at := time.Date(2026, 12, 1, 8, 0, 0, 123456789, time.UTC)
	for i := range n {
		src, err := domain.NewEnvelope(domain.VenueAggregate(uuid.New()),
			&domain.VenueReviewed{VenueID: uuid.New(), Decision: "approve", Reason: "ok, 第" + string(rune('a'+i))},
			domain.Meta{Actor: "reviewer:371302:wang"}, at)
		if err != nil {
			t.Fatal(err)
		}
		src.RecordedAt = at.Add(time.Duration(i) * time.Minute)
		entry, ok, err := domain.AuditEntryOf(src)
		if err != nil || !ok {
			t.Fatalf("entry of a venue review: %v %v", ok, err)
		}
		head, err := domain.ReplayAuditChain(envs[max(len(envs)-1, 0):])
		if err != nil {
			t.Fatal(err)
		}
		evs, err := domain.DecideAuditEntry(head, entry)
		if err != nil || len(evs) != 1 {
			t.Fatalf("decide entry %d: %v %v", i+1, evs, err)
		}
		env, err := domain.NewEnvelope(domain.AuditChainAggregate, evs[0], domain.Meta{ID: domain.AuditEventID(src.ID)}, at)
		if err != nil {
			t.Fatal(err)
		}
		env.Position = uint64(i+1) << 16
		envs = append(envs, env)
	}
	return envs
}

func verify(envs []domain.Envelope, anchor domain.AuditHead, state domain.AnchorState) domain.AuditReport {
	v := domain.NewAuditVerifier(anchor, state)
	for _, e := range envs {
		v.Add(e)
	}
	return v.Report()
}

func headOf(t *testing.T, e domain.Envelope) domain.AuditHead {
	t.Helper()
	ev, err := domain.Decode(e)
	if err != nil {
		t.Fatal(err)
	}
	a := ev.(*domain.AuditRecorded)
	return domain.AuditHead{Seq: a.Seq, Hash: a.Hash}
}

// TestAuditChainLinks: entries are numbered from 1 with no gap, each linked
// to the hash of the one before; replaying the last entry alone gives the
// head a whole replay gives; the retry of the head's source decides nothing.
func TestAuditChainLinks(t *testing.T) {
	envs := auditChain(t, 3)
	var prev string = domain.AuditGenesis
	for i, e := range envs {
		ev, _ := domain.Decode(e)
		a := ev.(*domain.AuditRecorded)
		if a.Seq != uint64(i+1) || a.PrevHash != prev || a.Hash != a.ChainHash() || len(a.Hash) != 64 {
			t.Fatalf("entry %d: %+v (prev %s)", i, a, prev)
		}
		if a.Actor != "reviewer:371302:wang" || a.Role != domain.RoleReviewer || a.Kind != domain.AuditVenueReview || a.Outcome != "approve" {
			t.Fatalf("entry %d who/what: %+v", i, a)
		}
		prev = a.Hash
	}
	whole, err := domain.ReplayAuditChain(envs)
	if err != nil {
		t.Fatal(err)
	}
	last, err := domain.ReplayAuditChain(envs[2:])
	if err != nil {
		t.Fatal(err)
	}
	if whole != last || whole.Seq() != 3 || whole.Hash() != prev {
		t.Fatalf("head: whole %+v, last only %+v", whole, last)
	}
	ev, _ := domain.Decode(envs[2])
	again := *ev.(*domain.AuditRecorded)
	again.Seq, again.PrevHash, again.Hash = 0, "", ""
	if evs, err := domain.DecideAuditEntry(last, again); err != nil || len(evs) != 0 {
		t.Fatalf("the head's source again: %v %v, want nothing", evs, err)
	}
	if _, err := domain.DecideAuditEntry(last, domain.AuditRecorded{Kind: domain.AuditHistory}); err == nil {
		t.Fatal("an entry without a source was decided")
	}
}

// TestAuditChainHashIsCanonical pins the canonical encoding (the value was
// computed independently from the spec in ChainHash's comment); a change to it
// would break every stored chain.
func TestAuditChainHashIsCanonical(t *testing.T) {
	a := domain.AuditRecorded{Seq: 7, PrevHash: domain.AuditGenesis, Kind: domain.AuditContacts, Actor: "analyst:li", Role: "analyst",
		PersonID: uuid.MustParse("0190c0de-0000-7000-8000-000000000001"), Reason: "cluster 12", Depth: 2,
		From:          time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
		To:            time.Date(2026, 12, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)),
		SourceEventID: uuid.MustParse("0190c0de-0000-7000-8000-000000000002"), SourceType: domain.TypeTraceRequested,
		At: time.Date(2026, 12, 1, 9, 30, 0, 500, time.UTC)}
	const want = "99ec70e165485ca4f9aede8ea1ed9bef34554b9eb7ef5285822e8ff8a0754b96"
	got := a.ChainHash()
	if got != want {
		t.Fatalf("hash %s, want %s: the canonical encoding changed", got, want)
	}
	// The same entry through JSON (as it is stored and read back) hashes the same.
	b, _ := json.Marshal(a)
	var back domain.AuditRecorded
	if err := json.Unmarshal(b, &back); err != nil || back.ChainHash() != got {
		t.Fatalf("after a JSON round trip: %s, want %s (%v)", back.ChainHash(), got, err)
	}
	// Every field is covered: changing any one changes the hash.
	for name, change := range map[string]func(*domain.AuditRecorded){
		"seq": func(a *domain.AuditRecorded) { a.Seq++ }, "prev_hash": func(a *domain.AuditRecorded) { a.PrevHash = strings.Repeat("1", 64) },
		"kind": func(a *domain.AuditRecorded) { a.Kind = domain.AuditHistory }, "actor": func(a *domain.AuditRecorded) { a.Actor = "analyst:lu" },
		"role": func(a *domain.AuditRecorded) { a.Role = "admin" }, "person": func(a *domain.AuditRecorded) { a.PersonID = uuid.New() },
		"venue": func(a *domain.AuditRecorded) { a.VenueID = uuid.New() }, "declaration": func(a *domain.AuditRecorded) { a.DeclarationID = uuid.New() },
		"outcome": func(a *domain.AuditRecorded) { a.Outcome = "x" }, "reason": func(a *domain.AuditRecorded) { a.Reason = "cluster 13" },
		"from": func(a *domain.AuditRecorded) { a.From = a.From.Add(time.Nanosecond) }, "to": func(a *domain.AuditRecorded) { a.To = time.Time{} },
		"depth": func(a *domain.AuditRecorded) { a.Depth = 1 }, "source": func(a *domain.AuditRecorded) { a.SourceEventID = uuid.New() },
		"source_type": func(a *domain.AuditRecorded) { a.SourceType = "x" }, "at": func(a *domain.AuditRecorded) { a.At = a.At.Add(time.Second) },
		// Field boundaries: moving a character from one field to the next is a change too.
		"boundary": func(a *domain.AuditRecorded) { a.Actor, a.Role = "analyst:l", "ianalyst" },
	} {
		c := a
		change(&c)
		if c.ChainHash() == got {
			t.Errorf("changing %s leaves the hash as it was", name)
		}
	}
}

// TestAuditVerifier: a chain that holds, and each kind of tampering found
// at its first broken link.
func TestAuditVerifier(t *testing.T) {
	envs := auditChain(t, 5)
	head := headOf(t, envs[4])

	if r := verify(envs, head, domain.AnchorStored); !r.OK() || r.Entries != 5 || r.Head != head || r.AnchorLag != 0 || r.Anchor != head {
		t.Fatalf("intact chain: %+v %v", r, r.Broken)
	}
	if r := verify(nil, domain.AuditHead{}, domain.AnchorNone); !r.OK() || r.Entries != 0 {
		t.Fatalf("empty chain: %+v", r)
	}
	// A lagging anchor (a crash between an append and its anchor's update)
	// is reported, not a break; so is one never written (a crash before
	// the chain's first anchor): every entry lags.
	if r := verify(envs, headOf(t, envs[2]), domain.AnchorStored); !r.OK() || r.AnchorLag != 2 {
		t.Fatalf("lagging anchor: %+v %v", r, r.Broken)
	}
	if r := verify(envs, domain.AuditHead{}, domain.AnchorNone); !r.OK() || r.AnchorLag != 5 {
		t.Fatalf("no anchor written yet: %+v %v", r, r.Broken)
	}

	changed := func(i int, f func(*domain.AuditRecorded), rehash bool) []domain.Envelope {
		out := append([]domain.Envelope(nil), envs...)
		ev, _ := domain.Decode(out[i])
		a := ev.(*domain.AuditRecorded)
		f(a)
		if rehash {
			a.Hash = a.ChainHash()
		}
		b, _ := json.Marshal(a)
		out[i].Payload = b
		return out
	}
	cases := []struct {
		name    string
		envs    []domain.Envelope
		anchor  domain.AuditHead
		state   domain.AnchorState
		seq     uint64
		problem string
	}{
		{"changed", changed(2, func(a *domain.AuditRecorded) { a.Reason = "nothing to see" }, false), head, domain.AnchorStored, 3, "changed"},
		{"changed and rehashed", changed(2, func(a *domain.AuditRecorded) { a.Actor = "reviewer:other" }, true), head, domain.AnchorStored, 4, "prev_hash"},
		{"head changed and rehashed", changed(4, func(a *domain.AuditRecorded) { a.Outcome = "reject" }, true), head, domain.AnchorStored, 5, "anchor"},
		{"source replaced", changed(1, func(a *domain.AuditRecorded) { a.SourceEventID = uuid.New() }, true), head, domain.AnchorStored, 2, "replaced"},
		{"removed", append(append([]domain.Envelope(nil), envs[:1]...), envs[2:]...), head, domain.AnchorStored, 2, "missing"},
		{"reordered", []domain.Envelope{envs[0], envs[2], envs[1], envs[3], envs[4]}, head, domain.AnchorStored, 2, "missing"},
		{"truncated", envs[:3], head, domain.AnchorStored, 4, "truncated"},
		{"anchor deleted", envs, domain.AuditHead{}, domain.AnchorDeleted, 6, "deleted"},
		{"anchor altered", envs, domain.AuditHead{}, domain.AnchorAltered, 6, "does not open"},
		{"duplicated", []domain.Envelope{envs[0], envs[1], envs[1], envs[2]}, headOf(t, envs[2]), domain.AnchorStored, 3, "out of order"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := verify(c.envs, c.anchor, c.state)
			if r.OK() {
				t.Fatalf("not found: %+v", r)
			}
			if r.Broken.Seq != c.seq || !strings.Contains(r.Broken.Problem, c.problem) {
				t.Fatalf("first broken link %v, want seq %d (%s)", r.Broken, c.seq, c.problem)
			}
		})
	}
}

// TestAuditEntries: every audited event type makes an entry of its kind
// with the actor's subject and role, the ids it is about and the source;
// other events make none.
func TestAuditEntries(t *testing.T) {
	person, venue, decl := uuid.New(), uuid.New(), uuid.New()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		ev    domain.Event
		kind  string
		check func(a domain.AuditRecorded) bool
	}{
		{&domain.TraceRequested{TraceID: uuid.New(), PersonID: person, Depth: 2, Reason: "cluster", Kind: domain.LookContacts}, domain.AuditContacts,
			func(a domain.AuditRecorded) bool {
				return a.PersonID == person && a.Depth == 2 && a.Reason == "cluster"
			}},
		{&domain.TraceRequested{TraceID: uuid.New(), PersonID: person, Kind: domain.LookHistory}, domain.AuditHistory,
			func(a domain.AuditRecorded) bool { return a.PersonID == person }},
		{&domain.VenueReviewed{VenueID: venue, Decision: "reject", Reason: "address"}, domain.AuditVenueReview,
			func(a domain.AuditRecorded) bool {
				return a.VenueID == venue && a.Outcome == "reject" && a.Reason == "address"
			}},
		{&domain.DeclarationReviewed{DeclarationID: decl, Decision: "approve"}, domain.AuditDeclarationReview,
			func(a domain.AuditRecorded) bool { return a.DeclarationID == decl && a.Outcome == "approve" }},
		{&domain.SubAdminAdded{VenueID: venue, PersonID: person}, domain.AuditSubAdminAdded,
			func(a domain.AuditRecorded) bool { return a.VenueID == venue && a.PersonID == person }},
		{&domain.SubAdminRemoved{VenueID: venue, PersonID: person}, domain.AuditSubAdminRemoved,
			func(a domain.AuditRecorded) bool { return a.VenueID == venue && a.PersonID == person }},
		{&domain.PersonVerified{PersonID: person, Method: "manual", Result: "approved"}, domain.AuditPersonVerified,
			func(a domain.AuditRecorded) bool { return a.PersonID == person && a.Outcome == "manual/approved" }},
		{&domain.PersonReleased{PersonID: person, GuardianID: uuid.New(), Reason: "desk check"}, domain.AuditPersonReleased,
			func(a domain.AuditRecorded) bool { return a.PersonID == person && a.Reason == "desk check" }},
		{&domain.PersonErased{PersonID: person, By: "admin:root", Reason: "request"}, domain.AuditPersonErased,
			func(a domain.AuditRecorded) bool {
				return a.PersonID == person && a.Reason == "request" && a.Outcome == ""
			}},
	}
	for _, c := range cases {
		env, err := domain.NewEnvelope("x.y", c.ev, domain.Meta{Actor: "admin:root"}, now)
		if err != nil {
			t.Fatal(err)
		}
		a, ok, err := domain.AuditEntryOf(env)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", c.ev.EventType(), ok, err)
		}
		if a.Kind != c.kind || a.Actor != "admin:root" || a.Role != domain.RoleAdmin || a.SourceEventID != env.ID ||
			a.SourceType != c.ev.EventType() || !a.At.Equal(now) || !c.check(a) {
			t.Errorf("%s: entry %+v", c.ev.EventType(), a)
		}
		if !domain.IsAudited(c.ev.EventType()) {
			t.Errorf("%s not listed as audited", c.ev.EventType())
		}
	}
	// A family member's erasure, appended by the reactions for their
	// guardian's: the admin who erased is who, and the guardian is named.
	guardian := uuid.New()
	env, err := domain.NewEnvelope("x.y", &domain.PersonErased{PersonID: person, By: "admin:root", Reason: "request", Guardian: guardian},
		domain.Meta{Actor: domain.ReactionsActor.Subject}, now)
	if err != nil {
		t.Fatal(err)
	}
	if a, _, err := domain.AuditEntryOf(env); err != nil || a.Actor != "admin:root" || a.Role != domain.RoleAdmin ||
		a.Outcome != "with guardian "+guardian.String() {
		t.Errorf("a family member's erasure: %+v (%v)", a, err)
	}
	for _, ev := range []domain.Event{&domain.PersonRegistered{PersonID: person}, &domain.PassRecorded{VenueID: venue}, &domain.AlertRaised{}} {
		env, _ := domain.NewEnvelope("x.y", ev, domain.Meta{}, now)
		if _, ok, err := domain.AuditEntryOf(env); ok || err != nil {
			t.Errorf("%s made an audit entry (%v)", ev.EventType(), err)
		}
	}
}

// TestAuditedReasonHoldsNoPersonalNumber: a reason kept in the audit trail
// refuses an ID or phone number, typed whole or spaced, and keeps case
// references, dates and short numbers.
func TestAuditedReasonHoldsNoPersonalNumber(t *testing.T) {
	for _, bad := range []string{"核查 11010519491231002X", "call 13800138000", "phone 138 0013 8000", "１３８００１３８０００", "id110105194912310038",
		// Written with separators: dashes, dots, parentheses, full-width
		// digits and dashes, a country code, a landline, a spaced ID.
		"phone 138-0013-8000", "call 138.0013.8000", "(138)0013-8000", "１３８－００１３－８０００", "+86 138-0013-8000",
		"tel 0539-8123456", "(0539) 812-3456", "110105-19491231-002X", "110105 1949 1231 0038",
		// In Chinese numerals, common and financial, mixed with digits.
		"电话一三八〇〇一三八〇〇〇", "一一〇一〇五一九四九一二三一〇〇三八", "壹叁捌零零壹叁捌零零零", "138〇〇13八〇〇〇", "幺三八〇〇幺三八〇〇〇", "一三八两两一三八〇〇〇",
		"一三八○○一三八○○○", "一三八◯◯一三八◯◯◯", "么三八〇〇么三八〇〇〇", "壹参捌零零壹参捌零零零", "〡〣〨〇〇〡〣〨〇〇〇"} {
		if _, err := domain.ValidateAuditedReason(bad, true); err == nil || !strings.Contains(err.Error(), "ID or phone number") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for _, ok := range []string{"cluster 12", "case-2022-0512-00123", "阳性病例流调 2022-05-12", "room 1203, 3 visits", "0123456789",
		"第一次流调，三人同行，二〇二二年五月", "一二三四五六七八九〇",
		"流调 2022.05.12-2022.05.20", "batch 3 - 12 persons", "v2.1.0 (case 7)"} {
		if got, err := domain.ValidateAuditedReason(ok, true); err != nil || got != ok {
			t.Errorf("%q: %q %v", ok, got, err)
		}
	}
	if _, err := domain.ValidateAuditedReason("", false); err != nil {
		t.Errorf("an optional empty reason: %v", err)
	}
	if _, err := domain.ValidateAuditedReason("  ", true); err == nil {
		t.Error("a required blank reason was taken")
	}
	// Every audited action's reason goes through it.
	if _, err := domain.ValidateReview(domain.ReviewReject, "owner 13800138000 complained"); err == nil {
		t.Error("a review's reason with a phone number was taken")
	}
	if _, err := domain.ValidateReason("look at 11010519491231002X"); err == nil {
		t.Error("a look's reason with an ID number was taken")
	}
}
