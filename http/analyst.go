package http

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
)

// analystFS holds the analyst console's sources: the page, its style and
// its script (web/analyst/). The dashboard's assets live beside it in web/.
//
//go:embed web/analyst/index.html web/analyst/analyst.css web/analyst/analyst.js
var analystFS embed.FS

// analystPage is the console as served: one document with its style and
// script inlined, and a Content-Security-Policy that allows exactly those
// two (by hash) and requests to this origin, nothing from another host.
type analystPage struct {
	body []byte
	csp  string
}

var analystPageOnce = sync.OnceValues(buildAnalystPage)

func buildAnalystPage() (analystPage, error) {
	read := func(name string) ([]byte, error) { return analystFS.ReadFile("web/analyst/" + name) }
	html, err := read("index.html")
	if err != nil {
		return analystPage{}, err
	}
	css, err := read("analyst.css")
	if err != nil {
		return analystPage{}, err
	}
	js, err := read("analyst.js")
	if err != nil {
		return analystPage{}, err
	}
	if bytes.Contains(js, []byte("</script")) || bytes.Contains(css, []byte("</style")) {
		return analystPage{}, fmt.Errorf("analyst console: a source closes its own tag")
	}
	hash := func(b []byte) string {
		sum := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	body := bytes.Replace(html, []byte("{{style}}"), css, 1)
	body = bytes.Replace(body, []byte("{{script}}"), js, 1)
	csp := "default-src 'none'; script-src " + hash(js) + "; style-src " + hash(css) + "; connect-src 'self'; " +
		"img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
	return analystPage{body: body, csp: csp}, nil
}

// analystConsole is GET /analyst: the contact-tracing console. It holds no
// data: the page asks for the analyst's token and runs every trace through
// POST /v1/traces, which checks the role and records the look.
func (s *Server) analystConsole(w http.ResponseWriter, r *http.Request) error {
	page, err := analystPageOnce()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", page.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(page.body)
	return nil
}
