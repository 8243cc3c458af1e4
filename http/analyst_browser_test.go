package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/internal/browsertest"
)

// eval evaluates expr in the page (awaiting a promise) and returns its value.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// do runs steps in the page.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// set is a step that runs a statement in the page.
func set(expr string) chromedp.Action[chromedp.Void] { return chromedp.Evaluate[chromedp.Void](expr) }

// waitText polls until the element's text contains want.
func waitText(t *testing.T, ctx context.Context, sel, want string) string {
	t.Helper()
	var text string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		text = eval[string](t, ctx, fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel))
		if strings.Contains(text, want) {
			return text
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s says %q, want %q in it", sel, text, want)
	return ""
}

// download clicks the link sel as a person would and returns the file the
// browser saved.
func download(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	dir := t.TempDir()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	do(t, ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptrTo(true)})
		return err
	}), chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
	t.Fatal("no download")
	return ""
}

func ptrTo[T any](v T) *T { return &v }

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// localInput is the expression that fills a datetime-local input with the
// instant ms in the browser's own zone.
func localInput(id string, at time.Time) string {
	return fmt.Sprintf(`(()=>{const d=new Date(%d),p=n=>String(n).padStart(2,"0");`+
		`document.getElementById(%q).value=d.getFullYear()+"-"+p(d.getMonth()+1)+"-"+p(d.getDate())+"T"+p(d.getHours())+":"+p(d.getMinutes());return true})()`,
		at.UnixMilli(), id)
}

// TestAnalystConsoleInBrowser drives /analyst in headless Chromium: a
// token that is not an analyst's, a person that does not exist and a
// reason with a control character each get the API's message and record
// nothing; a trace draws the graph and the timeline, escapes a venue name
// that is markup, and offers a CSV equal to the route's own text/csv answer;
// every look is in the audit trail.
func TestAnalystConsoleInBrowser(t *testing.T) {
	ctx := browsertest.Start(t, 1280, 900, 90*time.Second)
	w := newTraceWorld(t)
	e := w.e
	// The index and c3 together at a venue whose name is markup.
	hostileName := `<img src=x onerror="document.title='owned'">饭店`
	hostile := e.approvedVenue(e.register("钱经理", 47), hostileName)
	w.passes(hostile, []pass{{w.index, "in", 70 * time.Minute}, {w.c3, "in", 75 * time.Minute},
		{w.c3, "out", 100 * time.Minute}, {w.index, "out", 110 * time.Minute}})
	e.waitApplied(e.lastPosition())
	ts := httptest.NewServer(e.srv.Handler())
	t.Cleanup(ts.Close)

	admin := e.bearer(domain.Actor{Role: domain.RoleAdmin, Subject: "admin:li"})
	audited := func() []auditEntryJSON {
		e.waitApplied(e.lastPosition())
		rec := e.do("GET", "/v1/audit/looks?limit=1000", admin, nil)
		wantStatus(t, rec, http.StatusOK)
		return decodeJSON[pageJSON[auditEntryJSON]](t, rec).Entries
	}
	from := w.t0.Add(-3 * time.Hour).Truncate(time.Minute)
	to := time.Now().Add(2 * time.Minute).Truncate(time.Minute)
	fill := func(person, reason string) {
		t.Helper()
		do(t, ctx,
			set(`document.getElementById("person").value=`+jsString(person)),
			set(localInput("from", from)), set(localInput("to", to)),
			chromedp.SetValue(chromedp.CSS("#depth"), "2"),
			set(`document.getElementById("overlap").value="10"`),
			set(`document.getElementById("reason").value=`+jsString(reason)),
			set(`document.getElementById("error").textContent=""`),
			chromedp.Click(chromedp.CSS("#run")),
		)
	}

	// A person's token, given in the address: the API refuses, the page says why.
	notAnalyst := w.c1.Token
	do(t, ctx, chromedp.Navigate(ts.URL+"/analyst#token="+url.QueryEscape(notAnalyst)), chromedp.WaitVisible(chromedp.CSS("#trace-form")))
	if address := eval[string](t, ctx, `location.href`); strings.Contains(address, "token") {
		t.Fatalf("the token stays in the address: %s", address)
	}
	fill(w.index.ID.String(), "阳性病例流调")
	waitText(t, ctx, "#error", "contact tracing is for analysts and admins")

	// The analyst's token through the form.
	do(t, ctx, chromedp.Click(chromedp.CSS("#forget")), chromedp.WaitVisible(chromedp.CSS("#token-form")),
		chromedp.SendKeys(chromedp.CSS("#token"), w.analyst), chromedp.Click(chromedp.CSS("#token-form button")),
		chromedp.WaitVisible(chromedp.CSS("#token-state")))
	if stored := eval[string](t, ctx, `sessionStorage.getItem("ledger.analyst.token")`); stored != w.analyst {
		t.Fatalf("session token %q", stored)
	}

	// A person who does not exist, and a reason with a control character.
	fill(uuid.NewString(), "阳性病例流调")
	waitText(t, ctx, "#error", "(404)")
	fill(w.index.ID.String(), "流调\u0007")
	waitText(t, ctx, "#error", "reason")
	if n := len(audited()); n != 0 {
		t.Fatalf("refused traces recorded %d audit entries", n)
	}

	// The trace.
	fill(w.index.ID.String(), "阳性病例流调")
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#graph g.node")))
	nodes := eval[int](t, ctx, `document.querySelectorAll("#graph g.node").length`)
	depth1 := eval[int](t, ctx, `document.querySelectorAll("#graph g.node.depth-1").length`)
	depth2 := eval[int](t, ctx, `document.querySelectorAll("#graph g.node.depth-2").length`)
	rows := eval[int](t, ctx, `document.querySelectorAll("#timeline tr.tl-row").length`)
	injected := eval[int](t, ctx, `document.querySelectorAll("#result img, #result script").length`)
	title := eval[string](t, ctx, `document.title`)
	timeline := eval[string](t, ctx, `document.getElementById("timeline").textContent`)
	summary := eval[string](t, ctx, `document.getElementById("summary").textContent`)
	csvName := eval[string](t, ctx, `document.getElementById("csv").getAttribute("download")`)
	csvText := download(t, ctx, "#csv")
	body := w.body(map[string]any{"from": from.UTC().Format(time.RFC3339), "to": to.UTC().Format(time.RFC3339)})
	api := w.trace(t, body)
	people := map[uuid.UUID]bool{}
	for _, c := range api.Contacts {
		people[c.PersonID] = true
	}
	switch {
	case len(api.Contacts) == 0 || api.Index.Contacts < 2 || api.Index.SecondContacts < 1:
		t.Fatalf("the world's trace: %+v", api.Index)
	case nodes != 1+len(people) || depth1 != api.Index.Contacts || depth2 != api.Index.SecondContacts:
		t.Fatalf("graph: %d nodes (%d, %d at depth 1, 2), want 1+%d (%d, %d)", nodes, depth1, depth2, len(people), api.Index.Contacts, api.Index.SecondContacts)
	case rows != len(api.Visits)+len(api.Contacts):
		t.Fatalf("timeline: %d rows, want %d stays + %d overlaps", rows, len(api.Visits), len(api.Contacts))
	case injected != 0 || title == "owned" || !strings.Contains(timeline, hostileName):
		t.Fatalf("the venue name was not kept as text: %d elements injected, title %q", injected, title)
	case !strings.HasPrefix(csvName, "trace-") || !strings.HasSuffix(csvName, ".csv"):
		t.Fatalf("download name %q", csvName)
	}
	// The CSV is the route's own CSV for the same trace.
	rec := e.do("POST", "/v1/traces", w.analyst, body, "Accept", "text/csv")
	wantStatus(t, rec, http.StatusCreated)
	if csvText != rec.Body.String() {
		t.Fatalf("console CSV:\n%s\nroute's CSV:\n%s", csvText, rec.Body.String())
	}
	// The index person named by their ID document: the number is sent,
	// never shown.
	do(t, ctx, set(`document.getElementById("summary").textContent=""`),
		chromedp.SetValue(chromedp.CSS("#idtype"), "resident_id"), set(`document.getElementById("idnumber").value=`+jsString(w.indexID)))
	fill("", "阳性病例流调")
	waitText(t, ctx, "#summary", w.index.ID.String())
	if page := eval[string](t, ctx, `document.body.innerText`); strings.Contains(page, w.indexID) {
		t.Fatal("the page shows the ID number")
	}

	// Every look is recorded: the console's two (with their trace ids) and the two above.
	entries := audited()
	if len(entries) != 4 {
		t.Fatalf("%d audit entries, want 4", len(entries))
	}
	if !strings.Contains(summary, entries[0].TraceID.String()) || entries[0].Reason != "阳性病例流调" || entries[0].Analyst != "analyst:wang" {
		t.Fatalf("the console's look: %+v (page says %q)", entries[0], summary)
	}
}
