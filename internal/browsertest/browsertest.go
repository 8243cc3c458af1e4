// Package browsertest starts a headless Chromium for end-to-end tests of
// the pages the ledger serves (the dashboard, the analyst console), driven
// through github.com/chromedp/chromedp.
//
// Debian's chromium package provides the browser (.ci/run installs it where
// it is missing). Without it a test is skipped with a message saying so,
// except under CI=true, where it fails.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Candidates are the browser binaries looked for on PATH, in order.
var Candidates = []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"}

// Find returns the path of a browser binary, "" when none is installed.
// CHROMIUM, when set, names it.
func Find() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, c := range Candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// Start starts a headless browser with a window of width × height and
// returns a chromedp context for one tab; the browser is closed when the
// test ends. Every action in the tab is bounded by timeout.
func Start(tb testing.TB, width, height int, timeout time.Duration) context.Context {
	tb.Helper()
	path := Find()
	if path == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("no Chromium installed (apt-get install chromium); CI needs it")
		}
		tb.Skip("no Chromium installed (apt-get install chromium): the browser test is skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in a container
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(width, height),
		chromedp.UserDataDir(tb.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	tb.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first run starts the browser, which lives as long as ctx: no
	// timeout on it, only on the actions after.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		tb.Fatalf("start %s: %v", path, err)
	}
	tctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	tb.Cleanup(cancelTimeout)
	return tctx
}
