package http

import (
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
)

// traceWorld is a small town: an index person who had dinner with c1 at
// restaurant A; c1 went on to shop B where c2 came in (no exit); a person
// refused at A's door (red code) while the index was inside; someone at A
// before the index came.
type traceWorld struct {
	e                                   *testEnv
	index, c1, c2, c3, refused, earlier registered
	indexID                             string
	venueA, venueB                      uuid.UUID
	analyst, admin                      string
	t0                                  time.Time
}

func newTraceWorld(t *testing.T, tweak ...func(*Options)) *traceWorld {
	t.Helper()
	e := newTestServer(t, tweak...)
	w := &traceWorld{e: e}
	manager := e.register("孙经理", 40)
	w.index = e.register("赵一", 41)
	w.indexID = residentID(t, 41)
	w.c1 = e.register("钱二", 42)
	w.c2 = e.register("孙三", 43)
	w.c3 = e.register("李四", 44)
	w.refused = e.register("周五", 45)
	w.earlier = e.register("吴六", 46)
	w.venueA = e.approvedVenue(manager, "兰山饭店")
	w.venueB = e.approvedVenue(manager, "罗庄超市")
	w.analyst = e.bearer(domain.Actor{Role: domain.RoleAnalyst, Subject: "analyst:wang"})
	w.admin = e.bearer(domain.Actor{Role: domain.RoleAdmin})
	w.t0 = time.Now().Add(-4 * time.Hour).Truncate(time.Second)
	// The red code was known before anyone came: the feed ran (by the
	// ledger's clock) six hours before t0. Passes are decided on the status
	// known at their time.
	e.srv.ledger.Now = func() time.Time { return w.t0.Add(-6 * time.Hour) }
	rec := e.do("POST", "/v1/health-status", e.bearer(domain.Actor{Role: domain.RoleHealthFeed}), map[string]any{"records": []map[string]any{
		{"id_type": "resident_id", "id_number": residentID(t, 45), "code_colour": "red", "nat_result": "none"},
	}})
	e.srv.ledger.Now = time.Now
	wantStatus(t, rec, http.StatusOK)
	e.waitApplied(e.lastPosition())

	w.passes(w.venueA, []pass{
		{w.earlier, "in", -2 * time.Hour}, {w.earlier, "out", -110 * time.Minute},
		{w.index, "in", 0}, {w.c1, "in", 10 * time.Minute}, {w.refused, "in", 15 * time.Minute},
		{w.c1, "out", 50 * time.Minute}, {w.index, "out", 60 * time.Minute},
	})
	w.passes(w.venueB, []pass{{w.c1, "in", 90 * time.Minute}, {w.c2, "in", 100 * time.Minute}, {w.c1, "out", 150 * time.Minute}})
	e.waitApplied(e.lastPosition())
	return w
}

type pass struct {
	who registered
	dir string
	at  time.Duration // after t0
}

// passes records passes as a scanner's offline batch and checks each was accepted.
func (w *traceWorld) passes(venue uuid.UUID, ps []pass) {
	w.e.t.Helper()
	scanner := w.e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: venue})
	items := make([]map[string]any, len(ps))
	for i, p := range ps {
		code := w.e.personalCodeAt(p.who.ID, w.t0.Add(p.at).Add(-time.Minute))
		items[i] = map[string]any{"method": "staff_scan", "venue_id": venue.String(), "personal_code": code,
			"direction": p.dir, "occurred_at": w.t0.Add(p.at).Format(time.RFC3339)}
	}
	rec := w.e.do("POST", "/v1/passes/batch", scanner, map[string]any{"passes": items})
	wantStatus(w.e.t, rec, http.StatusOK)
	for i, r := range decodeJSON[batchResponse](w.e.t, rec).Results {
		if r.Status != domain.BatchAccepted {
			w.e.t.Fatalf("pass %d: %+v %+v", i, r, r.Error)
		}
	}
}

func (w *traceWorld) body(extra map[string]any) map[string]any {
	b := map[string]any{
		"person_id": w.index.ID.String(), "from": w.t0.Add(-3 * time.Hour).Format(time.RFC3339),
		"to": time.Now().Format(time.RFC3339), "depth": 2, "min_overlap_minutes": 10, "buffer_minutes": 0,
		"reason": "阳性病例流调",
	}
	for k, v := range extra {
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
	}
	return b
}

func (w *traceWorld) trace(t *testing.T, extra map[string]any) contactTraceResponse {
	t.Helper()
	rec := w.e.do("POST", "/v1/traces", w.analyst, w.body(extra))
	wantStatus(t, rec, http.StatusCreated)
	return decodeJSON[contactTraceResponse](t, rec)
}

func TestContactTrace(t *testing.T) {
	w := newTraceWorld(t)
	e := w.e

	t.Run("depth 2", func(t *testing.T) {
		tr := w.trace(t, nil)
		if tr.TraceID == uuid.Nil || tr.EventID == uuid.Nil || tr.Position == 0 || tr.Depth != 2 || tr.MinOverlapMinutes != 10 {
			t.Fatalf("trace = %+v", tr)
		}
		if tr.Index.PersonID != w.index.ID || tr.Index.NameMasked != "赵*" || tr.Index.Visits != 1 ||
			tr.Index.Contacts != 1 || tr.Index.SecondContacts != 1 {
			t.Fatalf("index = %+v", tr.Index)
		}
		if v := tr.Visits[0]; v.VenueID != w.venueA || v.VenueName != "兰山饭店" || !v.Start.Equal(w.t0) || !v.End.Equal(w.t0.Add(time.Hour)) {
			t.Fatalf("visit = %+v", v)
		}
		want := []traceContactJSON{
			{PersonID: w.c1.ID, Depth: 1, ViaPersonID: w.index.ID, VenueID: w.venueA,
				OverlapStart: w.t0.Add(10 * time.Minute).UTC(), OverlapEnd: w.t0.Add(50 * time.Minute).UTC(), OverlapMinutes: 40,
				NameMasked: "钱*", VenueName: "兰山饭店"},
			{PersonID: w.c2.ID, Depth: 2, ViaPersonID: w.c1.ID, VenueID: w.venueB,
				OverlapStart: w.t0.Add(100 * time.Minute).UTC(), OverlapEnd: w.t0.Add(150 * time.Minute).UTC(), OverlapMinutes: 50,
				NameMasked: "孙*", VenueName: "罗庄超市"},
		}
		if !reflect.DeepEqual(tr.Contacts, want) {
			t.Fatalf("contacts:\n got %+v\nwant %+v", tr.Contacts, want)
		}
	})

	t.Run("by ID document, depth 1", func(t *testing.T) {
		tr := w.trace(t, map[string]any{"person_id": nil, "id_type": "resident_id", "id_number": w.indexID, "depth": 1})
		if tr.Index.PersonID != w.index.ID || len(tr.Contacts) != 1 || tr.Contacts[0].PersonID != w.c1.ID {
			t.Fatalf("trace by document = %+v", tr)
		}
	})

	t.Run("min overlap and buffer", func(t *testing.T) {
		if tr := w.trace(t, map[string]any{"min_overlap_minutes": 41, "depth": 1}); len(tr.Contacts) != 0 {
			t.Fatalf("a 40-minute overlap passed a 41-minute minimum: %+v", tr.Contacts)
		}
		// Widened by an hour each, the stay of the person who left 110
		// minutes before the index came now meets it: 2·60 − 110 = 10 minutes.
		tr := w.trace(t, map[string]any{"buffer_minutes": 60, "min_overlap_minutes": 10, "depth": 1})
		var found bool
		for _, c := range tr.Contacts {
			if c.PersonID == w.refused.ID {
				t.Fatalf("a refused person is a contact: %+v", c)
			}
			found = found || (c.PersonID == w.earlier.ID && c.OverlapMinutes == 10)
		}
		if !found {
			t.Fatalf("buffer did not reach the earlier visitor: %+v", tr.Contacts)
		}
	})

	t.Run("csv", func(t *testing.T) {
		rec := e.do("POST", "/v1/traces", w.analyst, `{"person_id":"`+w.index.ID.String()+
			`","from":"`+w.t0.Add(-time.Hour).Format(time.RFC3339)+`","to":"`+time.Now().Format(time.RFC3339)+
			`","depth":2,"min_overlap_minutes":10,"buffer_minutes":0,"reason":"导出"}`, "Accept", "text/csv")
		wantStatus(t, rec, http.StatusCreated)
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || rec.Header().Get("X-Trace-ID") == "" {
			t.Fatalf("headers = %v", rec.Header())
		}
		rows, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 || strings.Join(rows[0], ",") != strings.Join(traceCSVHeader, ",") ||
			rows[1][0] != w.c1.ID.String() || rows[1][1] != "钱*" || rows[1][2] != "1" || rows[1][8] != "40" ||
			rows[2][0] != w.c2.ID.String() || rows[2][3] != w.c1.ID.String() || rows[2][5] != "罗庄超市" {
			t.Fatalf("csv = %q", rows)
		}
		for i := 41; i <= 46; i++ {
			if strings.Contains(rec.Body.String(), residentID(t, i)) {
				t.Fatal("a whole ID number is in the CSV")
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		before := e.lastPosition()
		tests := []refusal{
			{"no token", "", w.body(nil), 401, ""},
			{"person", w.index.Token, w.body(nil), 403, ""},
			{"reviewer", e.bearer(domain.Actor{Role: domain.RoleReviewer}), w.body(nil), 403, ""},
			{"no reason", w.analyst, w.body(map[string]any{"reason": "  "}), 400, "reason"},
			{"no window", w.analyst, w.body(map[string]any{"from": nil, "to": nil}), 400, "from"},
			{"to before from", w.analyst, w.body(map[string]any{"to": w.t0.Add(-4 * time.Hour).Format(time.RFC3339)}), 400, "to"},
			{"window too long", w.analyst, w.body(map[string]any{"from": w.t0.Add(-31 * 24 * time.Hour).Format(time.RFC3339)}), 400, "to"},
			{"depth 3", w.analyst, w.body(map[string]any{"depth": 3}), 400, "depth"},
			{"no depth", w.analyst, w.body(map[string]any{"depth": nil}), 400, "depth"},
			{"negative overlap", w.analyst, w.body(map[string]any{"min_overlap_minutes": -1}), 400, "min_overlap_minutes"},
			{"negative buffer", w.analyst, w.body(map[string]any{"buffer_minutes": -5}), 400, "buffer_minutes"},
			{"bad time", w.analyst, w.body(map[string]any{"from": "yesterday"}), 400, "from"},
			{"as_of in the future", w.analyst, w.body(map[string]any{"as_of": time.Now().Add(time.Hour).Format(time.RFC3339)}), 400, "as_of"},
			{"id and document", w.analyst, w.body(map[string]any{"id_type": "resident_id", "id_number": w.indexID}), 400, "person_id"},
			{"bad document", w.analyst, w.body(map[string]any{"person_id": nil, "id_type": "resident_id", "id_number": "371302198801150001"}), 400, "id_number"},
			{"unknown field", w.analyst, w.body(map[string]any{"radius": 5}), 400, "radius"},
			{"unknown person", w.analyst, w.body(map[string]any{"person_id": uuid.New().String()}), 404, ""},
			{"document nobody holds", w.analyst, w.body(map[string]any{"person_id": nil, "id_type": "resident_id", "id_number": residentID(t, 999)}), 404, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rec := e.do("POST", "/v1/traces", tt.tok, tt.body)
				wantStatus(t, rec, tt.status)
				if tt.status == http.StatusNotFound {
					wantProblem(t, rec, http.StatusNotFound, ProblemNotFound)
				}
				if tt.field != "" && !hasField(decodeJSON[Problem](t, rec), tt.field) {
					t.Fatalf("problem does not name %s: %s", tt.field, rec.Body.String())
				}
				if strings.Contains(rec.Body.String(), w.indexID) {
					t.Fatal("the ID number is in the problem")
				}
			})
		}
		if e.lastPosition() != before {
			t.Fatal("a refused trace was appended")
		}
	})
}

func TestTraceAsOf(t *testing.T) {
	w := newTraceWorld(t)
	e := w.e
	asOf := time.Now()
	for !time.Now().After(asOf) { // the late passes are recorded strictly after as_of
		time.Sleep(time.Millisecond)
	}
	// An offline scanner uploads, after as_of, c3's stay at A during the dinner.
	w.passes(w.venueA, []pass{{w.c3, "in", 20 * time.Minute}, {w.c3, "out", 45 * time.Minute}})
	e.waitApplied(e.lastPosition())

	then := w.trace(t, map[string]any{"as_of": asOf.Format(time.RFC3339Nano), "depth": 1})
	now := w.trace(t, map[string]any{"depth": 1})
	people := func(tr contactTraceResponse) []uuid.UUID {
		var out []uuid.UUID
		for _, c := range tr.Contacts {
			out = append(out, c.PersonID)
		}
		return out
	}
	if got := people(then); !reflect.DeepEqual(got, []uuid.UUID{w.c1.ID}) || !then.AsOf.Equal(asOf) {
		t.Fatalf("as of %v: contacts %v, as_of %v; want only c1", asOf, got, then.AsOf)
	}
	if got := people(now); len(got) != 2 {
		t.Fatalf("now: contacts %v, want c1 and c3", got)
	}
	again := w.trace(t, map[string]any{"as_of": then.AsOf.Format(time.RFC3339Nano), "depth": 1})
	if !reflect.DeepEqual(again.Contacts, then.Contacts) {
		t.Fatalf("replaying as_of gave another answer:\n%+v\n%+v", again.Contacts, then.Contacts)
	}
}

func TestAuditAndLogHistory(t *testing.T) {
	w := newTraceWorld(t)
	e := w.e
	tr := w.trace(t, nil)

	t.Run("source=log equals the read models", func(t *testing.T) {
		for _, p := range []registered{w.index, w.c1, w.c2, w.refused} {
			path := "/v1/persons/" + p.ID.String() + "/trace?from=" + w.t0.Add(-3*time.Hour).UTC().Format(time.RFC3339) + "&reason=核查"
			model := decodeJSON[traceResponse](t, e.do("GET", path+"&min_position="+itoa(e.lastPosition()), w.analyst, nil))
			fromLog := decodeJSON[traceResponse](t, e.do("GET", path+"&source=log", w.analyst, nil))
			if len(model.Passes) == 0 || fromLog.Source != "log" || model.Source != "read_model" {
				t.Fatalf("%v: read model %+v, log %+v", p.ID, model, fromLog)
			}
			if !reflect.DeepEqual(model.Passes, fromLog.Passes) {
				t.Fatalf("%v: log replay differs from the read models:\n%+v\n%+v", p.ID, fromLog.Passes, model.Passes)
			}
		}
		own := e.do("GET", "/v1/persons/"+w.index.ID.String()+"/trace?source=log", w.index.Token, nil)
		wantStatus(t, own, 200)
		if n := len(decodeJSON[traceResponse](t, own).Passes); n != 2 {
			t.Fatalf("own history from the log: %d passes", n)
		}
	})

	t.Run("analyst history needs a reason", func(t *testing.T) {
		before := e.lastPosition()
		for _, src := range []string{"", "&source=log"} {
			p := wantProblem(t, e.do("GET", "/v1/persons/"+w.index.ID.String()+"/trace?reason="+src, w.analyst, nil), 400, ProblemValidation)
			if !hasField(p, "reason") {
				t.Fatalf("problem %+v does not name reason", p)
			}
		}
		wantProblem(t, e.do("GET", "/v1/persons/"+w.index.ID.String()+"/trace?source=cache", w.admin, nil), 400, ProblemValidation)
		wantStatus(t, e.do("GET", "/v1/persons/"+uuid.New().String()+"/trace?reason=x", w.analyst, nil), 404)
		if e.lastPosition() != before {
			t.Fatal("a refused look was recorded")
		}
	})

	t.Run("audit lists every look", func(t *testing.T) {
		last := e.lastPosition()
		rec := e.do("GET", "/v1/audit/looks?min_position="+itoa(last), w.admin, nil)
		wantStatus(t, rec, 200)
		a := decodeJSON[pageJSON[auditEntryJSON]](t, rec)
		// One trace and, from the subtests above, eight analyst looks and
		// the index person's look at their own history: every read of a
		// person's history is audited, whoever reads.
		if len(a.Entries) != 10 || a.Position < last {
			t.Fatalf("audit: %d entries at %d: %+v", len(a.Entries), a.Position, a.Entries)
		}
		first := a.Entries[0]
		if first.EventID != tr.EventID || first.TraceID != tr.TraceID || first.Analyst != "analyst:wang" ||
			first.PersonID != w.index.ID || first.Depth != 2 || first.Reason != "阳性病例流调" || first.Kind != "contacts" ||
			first.Contacts != 2 || first.MinOverlapMinutes != 10 || first.Position != tr.Position || !first.AsOf.Equal(tr.AsOf) {
			t.Fatalf("trace's audit entry: %+v (trace %+v)", first, tr)
		}
		var logLooks int
		if own := a.Entries[9]; own.Kind != "history" || own.Analyst != "person:"+w.index.ID.String() || own.PersonID != w.index.ID {
			t.Fatalf("the person's own look: %+v", own)
		}
		for _, en := range a.Entries[1:9] {
			if en.Kind != "history" || en.Reason != "核查" || en.Analyst != "analyst:wang" {
				t.Fatalf("look entry: %+v", en)
			}
			if en.Source == "log" {
				logLooks++
			}
		}
		if logLooks != 4 {
			t.Fatalf("%d looks from the log, want 4", logLooks)
		}
		page := decodeJSON[pageJSON[auditEntryJSON]](t, e.do("GET", "/v1/audit/looks?limit=5", w.admin, nil))
		next := decodeJSON[pageJSON[auditEntryJSON]](t, e.do("GET", "/v1/audit/looks?limit=5&cursor="+page.NextCursor, w.admin, nil))
		if len(page.Entries) != 5 || page.NextCursor == "" || len(next.Entries) != 5 || next.Entries[0].EventID != a.Entries[5].EventID {
			t.Fatalf("audit pages: %d + %d entries", len(page.Entries), len(next.Entries))
		}
		window := decodeJSON[pageJSON[auditEntryJSON]](t, e.do("GET", "/v1/audit/looks?to="+first.At.Add(time.Nanosecond).Format(time.RFC3339Nano), w.admin, nil))
		if len(window.Entries) != 1 || window.Entries[0].EventID != tr.EventID {
			t.Fatalf("audit window: %+v", window.Entries)
		}
		wantStatus(t, e.do("GET", "/v1/audit/looks", w.analyst, nil), 403)
		wantStatus(t, e.do("GET", "/v1/audit/looks?from=2022-05-02T00:00:00Z&to=2022-05-01T00:00:00Z", w.admin, nil), 400)
	})
}

// recordFails is the real event store with Record failing: the audit
// append of a trace cannot land.
type recordFails struct{ ledger.EventStore }

var errRecordDown = errors.New("record: stream unavailable")

func (recordFails) Record(context.Context, ...domain.Envelope) ([]ledger.Appended, error) {
	return nil, errRecordDown
}

func TestTraceNotAnsweredWhenAuditFails(t *testing.T) {
	w := newTraceWorld(t)
	w.e.srv.ledger.Events = recordFails{w.e.es}
	rec := w.e.do("POST", "/v1/traces", w.analyst, w.body(nil))
	wantStatus(t, rec, http.StatusInternalServerError)
	if strings.Contains(rec.Body.String(), w.c1.ID.String()) || strings.Contains(rec.Body.String(), "contacts") {
		t.Fatalf("a trace whose audit failed was answered: %s", rec.Body.String())
	}
	look := w.e.do("GET", "/v1/persons/"+w.index.ID.String()+"/trace?reason=x", w.analyst, nil)
	wantStatus(t, look, http.StatusInternalServerError)
	if strings.Contains(look.Body.String(), w.venueA.String()) {
		t.Fatalf("a look whose audit failed was answered: %s", look.Body.String())
	}
}

// TestAuditTrail: the venue reviews, a contact trace and a look at a
// person's passes each become one entry of the chain (through the audit
// reaction, as cmd wires it); GET /v1/audit lists them with who, what,
// when, why and the chain fields, filtered and paged, and no name or ID
// number; GET /v1/audit/verify finds the chain whole. Only admins and
// auditors get either; hostile query parameters are refused with nothing
// changed.
func TestAuditTrail(t *testing.T) {
	w := newTraceWorld(t)
	e := w.e
	tr := w.trace(t, nil)
	wantStatus(t, e.do("GET", "/v1/persons/"+w.index.ID.String()+"/trace?reason="+url.QueryEscape("核查"), w.analyst, nil), http.StatusOK)
	e.startReactions()
	auditor := e.bearer(domain.Actor{Role: domain.RoleAuditor, Subject: "auditor:zhou"})

	var all pageJSON[auditChainEntryJSON]
	ledgertest.Eventually(t, func() bool {
		rec := e.do("GET", "/v1/audit", auditor, nil)
		all = decodeJSON[pageJSON[auditChainEntryJSON]](t, rec)
		return len(all.Entries) == 4
	})
	prev := domain.AuditGenesis
	kinds := map[string]int{}
	for i, en := range all.Entries {
		if en.Seq != uint64(i+1) || en.PrevHash != prev || len(en.Hash) != 64 || en.EventID != domain.AuditEventID(en.SourceEventID) || en.At.IsZero() {
			t.Fatalf("entry %d: %+v", i, en)
		}
		prev = en.Hash
		kinds[en.Kind]++
	}
	if kinds[domain.AuditVenueReview] != 2 || kinds[domain.AuditContacts] != 1 || kinds[domain.AuditHistory] != 1 {
		t.Fatalf("kinds: %v", kinds)
	}
	var trace auditChainEntryJSON
	for _, en := range all.Entries {
		if en.Kind == domain.AuditContacts {
			trace = en
		}
	}
	if trace.SourceEventID != tr.EventID || trace.Actor != "analyst:wang" || trace.Role != domain.RoleAnalyst ||
		trace.PersonID != w.index.ID || trace.Reason != "阳性病例流调" || trace.Depth != 2 || trace.SourceType != domain.TypeTraceRequested {
		t.Fatalf("the trace's entry: %+v (trace %+v)", trace, tr)
	}
	body := e.do("GET", "/v1/audit", auditor, nil).Body.String()
	// The ID number whole, and its masked form's tail ("*" and the last four
	// digits: four digits alone turn up in hashes, ids and times).
	for _, secret := range []string{"赵一", "赵*", w.indexID, "*" + w.indexID[len(w.indexID)-4:]} {
		if strings.Contains(body, secret) {
			t.Fatalf("the audit list holds %q: %s", secret, body)
		}
	}

	list := func(query string) []uint64 {
		t.Helper()
		rec := e.do("GET", "/v1/audit?"+query, auditor, nil)
		wantStatus(t, rec, http.StatusOK)
		var seqs []uint64
		for _, en := range decodeJSON[pageJSON[auditChainEntryJSON]](t, rec).Entries {
			seqs = append(seqs, en.Seq)
		}
		return seqs
	}
	seqsOf := func(kind string) (out []uint64) {
		for _, en := range all.Entries {
			if en.Kind == kind {
				out = append(out, en.Seq)
			}
		}
		return out
	}
	if got, want := list("person="+w.index.ID.String()), append(seqsOf(domain.AuditContacts), seqsOf(domain.AuditHistory)...); len(got) != 2 ||
		!(got[0] == min(want[0], want[1]) && got[1] == max(want[0], want[1])) {
		t.Fatalf("person filter: %v, want %v", got, want)
	}
	if got := list("kind=venue_review"); len(got) != 2 || got[0] != seqsOf(domain.AuditVenueReview)[0] {
		t.Fatalf("kind filter: %v", got)
	}
	if got := list("actor=analyst:wang"); len(got) != 2 {
		t.Fatalf("actor filter: %v", got)
	}
	if got := list("since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))); len(got) != 0 {
		t.Fatalf("since an hour from now: %v", got)
	}
	if got := list("until=" + url.QueryEscape(all.Entries[0].At.Add(time.Nanosecond).Format(time.RFC3339Nano))); len(got) != 1 || got[0] != 1 {
		t.Fatalf("until just after the first: %v", got)
	}
	page := decodeJSON[pageJSON[auditChainEntryJSON]](t, e.do("GET", "/v1/audit?limit=3", auditor, nil))
	next := decodeJSON[pageJSON[auditChainEntryJSON]](t, e.do("GET", "/v1/audit?limit=3&cursor="+page.NextCursor, auditor, nil))
	if len(page.Entries) != 3 || page.NextCursor == "" || len(next.Entries) != 1 || next.Entries[0].Seq != 4 || next.NextCursor != "" {
		t.Fatalf("pages: %d entries (cursor %q), then %+v", len(page.Entries), page.NextCursor, next.Entries)
	}

	// The reaction anchors the head after it appended the entry, so the
	// read models may list the fourth entry a moment before its anchor is
	// written: verify reports that as AnchorLag 1 until it is.
	var r auditReportJSON
	ledgertest.Eventually(t, func() bool {
		rec := e.do("GET", "/v1/audit/verify", auditor, nil)
		wantStatus(t, rec, http.StatusOK)
		r = decodeJSON[auditReportJSON](t, rec)
		return r.AnchorLag == 0
	})
	if !r.OK || r.Entries != 4 || r.Anchor == nil || r.Anchor.Seq != 4 || r.AnchorState != "stored" ||
		r.Head.Hash != all.Entries[3].Hash || r.AnchorLag != 0 || r.Broken != nil {
		t.Fatalf("verify: %+v", r)
	}

	t.Run("every role", func(t *testing.T) {
		tokens := map[string]string{
			"admin":       w.admin,
			"auditor":     auditor,
			"analyst":     w.analyst,
			"reviewer":    e.bearer(domain.Actor{Role: domain.RoleReviewer, Subject: "reviewer:wang"}),
			"dashboard":   e.bearer(domain.Actor{Role: domain.RoleDashboard, Subject: "dashboard:wall"}),
			"health-feed": e.bearer(domain.Actor{Role: domain.RoleHealthFeed, Subject: "health-feed:1"}),
			"person":      w.index.Token,
			"scanner":     e.bearer(domain.Actor{Role: domain.RoleScanner, VenueID: w.venueA, Subject: "scanner:" + w.venueA.String()}),
			"nobody":      "",
		}
		for role, tok := range tokens {
			want := http.StatusForbidden
			switch role {
			case "admin", "auditor":
				want = http.StatusOK
			case "nobody":
				want = http.StatusUnauthorized
			}
			for _, path := range []string{"/v1/audit", "/v1/audit/verify", "/v1/audit/looks"} {
				if rec := e.do("GET", path, tok, nil); rec.Code != want {
					t.Errorf("%s on %s: %d, want %d", role, path, rec.Code, want)
				}
			}
		}
		// An auditor does nothing else.
		wantStatus(t, e.do("POST", "/v1/traces", auditor, w.body(nil)), http.StatusForbidden)
		wantStatus(t, e.do("GET", "/v1/persons/"+w.index.ID.String()+"/trace?reason=x", auditor, nil), http.StatusForbidden)
	})

	t.Run("hostile query", func(t *testing.T) {
		before := e.lastPosition()
		for _, q := range []string{
			"person=not-a-uuid", "person=" + url.QueryEscape("'; DROP TABLE audit_chain; --"), "kind=bogus", "kind=VENUE_REVIEW",
			"actor=" + url.QueryEscape("analyst:\x00wang"), "actor=" + url.QueryEscape("a\u202eb"), "actor=" + strings.Repeat("a", 201),
			"since=yesterday", "until=2022-13-01T00:00:00Z", "since=2022-05-02T00:00:00Z&until=2022-05-01T00:00:00Z",
			"since=0001-01-01T00:00:00Z", "limit=0", "limit=1001", "limit=-1", "limit=1e3", "cursor=%%%", "cursor=AAAA",
		} {
			rec := e.do("GET", "/v1/audit?"+q, auditor, nil)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), ProblemValidation) {
				t.Errorf("%s: %d %s, want a validation problem", q, rec.Code, rec.Body.String()[:min(200, rec.Body.Len())])
			}
		}
		// Several bad parameters are reported at once.
		p := wantProblem(t, e.do("GET", "/v1/audit?person=x&kind=y&limit=0", auditor, nil), http.StatusBadRequest, ProblemValidation)
		for _, f := range []string{"person", "kind", "limit"} {
			if !hasField(p, f) {
				t.Errorf("the problem does not name %s: %+v", f, p)
			}
		}
		if got := list("person=" + uuid.NewString()); len(got) != 0 {
			t.Fatalf("an unknown person: %v", got)
		}
		if e.lastPosition() != before {
			t.Fatal("a refused audit query appended to the log")
		}
	})
}

// TestHistoryWindow: a look at a history has a trace's window rule
// (domain.HistoryWindow): a window of no length is refused, as POST
// /v1/traces refuses it, and the window read, cut to the microsecond, is
// the one the answer gives.
func TestHistoryWindow(t *testing.T) {
	e := newTestServer(t)
	p := e.register("冯九", 41)
	url := "/v1/persons/" + p.ID.String() + "/trace"
	wantProblem(t, e.do("GET", url+"?from=2026-12-01T10:00:00.0000005Z&to=2026-12-01T10:00:00.0000009Z", p.Token, nil), 400, ProblemValidation)
	wantProblem(t, e.do("GET", url+"?from=2026-12-01T10:00:00Z&to=2026-09-01T10:00:00Z", p.Token, nil), 400, ProblemValidation)
	wantProblem(t, e.do("GET", url+"?from=2026-01-01T10:00:00Z&to=2026-12-01T10:00:00Z", p.Token, nil), 400, ProblemValidation) // over 90 days
	rec := e.do("GET", url+"?from=2026-12-01T10:00:00.0000005Z&to=2026-12-01T11:00:00.0000009Z&min_position="+itoa(p.Position), p.Token, nil)
	wantStatus(t, rec, 200)
	got := decodeJSON[struct {
		From, To time.Time
	}](t, rec)
	if want := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC); !got.From.Equal(want) || !got.To.Equal(want.Add(time.Hour)) {
		t.Fatalf("the window answered: %v to %v, want %v to %v", got.From, got.To, want, want.Add(time.Hour))
	}
}

// TestWantsCSV: the trace answers CSV only when Accept asks for it by name
// with a quality above zero and no lower than JSON's.
func TestWantsCSV(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                       false,
		"*/*":                                    false,
		"application/json":                       false,
		"text/csv":                               true,
		"Text/CSV":                               true,
		"text/*":                                 true,
		"text/csv;q=0":                           false,
		"application/json, text/csv;q=0":         false,
		"text/csv;q=0.5, application/json;q=0.9": false,
		"text/csv;q=0.9, application/json;q=0.5": true,
		"application/json, text/csv":             true,
		"text/csv;q=0.4, */*":                    false,
		"text/csv;q=NaN, application/json;q=0.9": false,
		"text/csv;q=1.5, application/json":       false,
		"text/csv, */*":                          true,
		"text/*;q=0, text/csv":                   true,
		"text/csv;q=0, text/*":                   false,
	} {
		r, _ := http.NewRequest("POST", "/v1/traces", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		if got := wantsCSV(r); got != want {
			t.Errorf("Accept %q: CSV %v, want %v", accept, got, want)
		}
	}
	// Two Accept lines are one list.
	r, _ := http.NewRequest("POST", "/v1/traces", nil)
	r.Header.Add("Accept", "application/json;q=0.5")
	r.Header.Add("Accept", "text/csv")
	if !wantsCSV(r) {
		t.Error("text/csv on a second Accept line was not seen")
	}
}
