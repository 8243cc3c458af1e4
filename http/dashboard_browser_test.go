package http

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/internal/browsertest"
)

var screenshot = flag.String("screenshot", "", "write a screenshot of the dashboard page to this PNG file (go test ./http -run TestDashboardInBrowser -screenshot ../docs/dashboard.png)")

// venueOf has manager apply for a venue of type typ in district and a
// reviewer approve it.
func (e *testEnv) venueOf(manager registered, name, typ, district string) uuid.UUID {
	e.t.Helper()
	rec := e.do("POST", "/v1/venues", manager.Token, map[string]any{
		"name": name, "type": typ, "district": district, "address": "1 Road", "lat": 35.05, "lng": 118.35})
	wantStatus(e.t, rec, http.StatusCreated)
	id := decodeJSON[struct {
		VenueID uuid.UUID `json:"venue_id"`
	}](e.t, rec).VenueID
	rec = e.do("POST", "/v1/venues/"+id.String()+"/review", e.bearer(domain.Actor{Role: domain.RoleReviewer}),
		map[string]any{"decision": "approve"})
	wantStatus(e.t, rec, http.StatusOK)
	e.waitApplied(decodeJSON[writeResult](e.t, rec).Position)
	return id
}

// TestDashboardInBrowser opens the dashboard page in headless Chromium with
// the token in the address, posts passes through the API, and watches the
// page change without a reload: the counts, the chart, the busiest venues,
// the feed of denied passes; a venue name that is markup stays text.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browsertest.Start(t, 1280, 1100, 90*time.Second)
	w := newPassWorld(t)
	e := w.e
	if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		e.srv.opts.Location = loc // the city's day and hours
	}
	e.startReactions() // alerts: the feed of denied and abnormal passes
	ts := httptest.NewServer(e.srv.Handler())
	defer func() {
		ts.CloseClientConnections() // the page's stream is still open
		ts.Close()
	}()
	tok := e.bearer(domain.Actor{Role: domain.RoleDashboard})
	hostile := e.venueOf(w.managerB, `<img src=x onerror="window.__xss=1">沂河`, domain.VenueMall, "371311")
	museum := e.venueOf(w.managerA, "临沂市博物馆", domain.VenueMuseum, "371312")

	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(js string) any {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	waitText := func(sel, want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := text(sel)
			if strings.Contains(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s shows %q, want %q", sel, got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// A bad token: the page asks for another.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/dashboard#token=not-a-token"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
	); err != nil {
		t.Fatal(err)
	}
	waitText("#login-error", "refused")

	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/dashboard#token="+tok),
		chromedp.WaitVisible(chromedp.CSS("#board")),
	); err != nil {
		t.Fatal(err)
	}
	waitText("#passes-today", "0")
	hash := eval(`window.__loaded = "yes"; location.hash`)
	stored := eval(`sessionStorage.getItem("ledger.dashboard.token")`)
	if hash != "" || stored != tok {
		t.Fatalf("the token stays in the address (%q) or is not kept (%v)", hash, stored == tok)
	}

	// Passes through the API: the page follows without a reload.
	people := []registered{w.visitor, w.managerA, w.managerB}
	for i := range 12 {
		p := e.register("郑"+string(rune('一'+i)), 60+i)
		people = append(people, p)
	}
	for i, p := range people {
		e.selfScan(p, []uuid.UUID{w.venueA, hostile, museum}[i%3], "in")
	}
	waitText("#passes-today", "15")
	waitText("#occupancy", "临沂市博物馆")
	waitText("#occupancy", `<img src=x onerror="window.__xss=1">沂河`) // shown as text
	waitText("#by-district", "371312")
	waitText("#by-type", domain.VenueMuseum)

	// A red code is denied, and the alert reaches the feed.
	rec := e.do("POST", "/v1/health-status", e.bearer(domain.Actor{Role: domain.RoleHealthFeed}), map[string]any{
		"records": []map[string]any{{"id_type": "resident_id", "id_number": w.visitorID, "code_colour": "red", "nat_result": "none"}}})
	wantStatus(t, rec, http.StatusOK)
	e.waitApplied(decodeJSON[writeResult](t, rec).Position)
	e.selfScan(w.visitor, museum, "in")
	waitText("#denied-today", "1")
	waitText("#feed", "临沂市博物馆")
	waitText("#feed", "denied")

	loaded := eval(`window.__loaded`)
	xss := eval(`window.__xss === 1 || document.querySelector("#occupancy img") !== null`)
	bars, _ := eval(`document.querySelectorAll("#hours rect.bar-pass").length`).(float64)
	if loaded != "yes" {
		t.Fatal("the page was reloaded")
	}
	if xss != false {
		t.Fatal("a venue's name was read as markup")
	}
	if bars < 23 {
		t.Fatalf("the chart has %v bars", bars)
	}
	if *screenshot != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
