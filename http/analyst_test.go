package http

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestAnalystPage checks what GET /analyst serves: one page whose inline
// script and style are exactly the ones its Content-Security-Policy allows
// by hash, which loads nothing from another host and builds the DOM from
// text only.
func TestAnalystPage(t *testing.T) {
	e := newTestServer(t)
	rec := e.do("GET", "/analyst", "", nil)
	wantStatus(t, rec, http.StatusOK)
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	page, csp := rec.Body.String(), rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, part := range []struct{ tag, directive string }{{"script", "script-src"}, {"style", "style-src"}} {
		m := regexp.MustCompile(`(?s)<`+part.tag+`>(.*?)</`+part.tag+`>`).FindAllStringSubmatch(page, -1)
		if len(m) != 1 {
			t.Fatalf("%d inline <%s> elements, want 1", len(m), part.tag)
		}
		sum := sha256.Sum256([]byte(m[0][1]))
		if want := part.directive + " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
			t.Errorf("CSP %q does not allow the page's %s (%s)", csp, part.tag, want)
		}
	}
	// Nothing from another host (the SVG namespace is a name, not a fetch).
	noNS := strings.ReplaceAll(page, `"http://www.w3.org/2000/svg"`, "")
	if regexp.MustCompile(`https?://|src=|<link|@import`).MatchString(noNS) {
		t.Error("the page refers to another resource")
	}
	// Strings reach the DOM as text: no markup sinks in the script.
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(page, sink) {
			t.Errorf("the console uses %s", sink)
		}
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers: %v", rec.Header())
	}
}
