package http

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
)

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

	rec := e.do("GET", "/v1/audit/verify", auditor, nil)
	wantStatus(t, rec, http.StatusOK)
	if r := decodeJSON[auditReportJSON](t, rec); !r.OK || r.Entries != 4 || r.Anchor == nil || r.Anchor.Seq != 4 || r.AnchorState != "stored" ||
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
