package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/ledger/ledgertest"
)

// buildLedger compiles cmd/ledger into a temp dir.
func buildLedger(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ledger")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs `ledger serve` as a child process on the embedded
// default and returns its base URL.
func startProcess(t *testing.T, bin, dir string) (*exec.Cmd, string) {
	t.Helper()
	p := launchServe(t, bin, []string{"DATABASE_URL=", "NATS_URL=", "LEDGER_TOKEN_KEY="}, "",
		"--data", dir, "--http", "127.0.0.1:0", "--register-rate", "0")
	return p.cmd, p.wait(t, 60*time.Second)
}

// serveProcess is a `ledger serve` child process that has been started.
type serveProcess struct {
	cmd  *exec.Cmd
	addr chan string // its "listening on" address, once
}

// launchServe starts `ledger serve args...` with env added to the
// environment and its stderr in logPath (discarded when empty), without
// waiting for it: several replicas can start at the same moment. It is
// killed at cleanup.
func launchServe(t *testing.T, bin string, env []string, logPath string, args ...string) *serveProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		cmd.Stderr = f
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &serveProcess{cmd: cmd, addr: make(chan string, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				p.addr <- a
			}
		}
	}()
	return p
}

// wait waits until the process listens and answers /readyz, and returns
// its base URL.
func (p *serveProcess) wait(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case a := <-p.addr:
		base := "http://" + a
		waitReadyWithin(t, base, within)
		return base
	case <-time.After(within):
		t.Fatalf("ledger serve did not listen within %s", within)
	}
	return ""
}

// TestSIGKILLLosesNoAcknowledgedEvent kills `ledger serve` with SIGKILL while
// registrations stream in, restarts it on the same data dir, and checks that
// every registration that was acknowledged (201) is there.
func TestSIGKILLLosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildLedger(t)
	dir := t.TempDir()
	cmd, base := startProcess(t, bin, dir)

	var (
		mu    sync.Mutex
		acked []string
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ctx.Err() == nil; i++ {
				seq := 1000 + w*100000 + i
				body := `{"name":"赵六","id_type":"resident_id","id_number":"` + residentID(seq) + `","phone":"13700000000"}`
				resp, err := client.Post(base+"/v1/persons", "application/json", strings.NewReader(body))
				if err != nil {
					return // the process is gone
				}
				var reg struct {
					PersonID string `json:"person_id"`
				}
				if resp.StatusCode == http.StatusCreated {
					decodeJSON(resp, &reg)
					mu.Lock()
					acked = append(acked, reg.PersonID)
					mu.Unlock()
				}
				resp.Body.Close()
			}
		}()
	}
	// Let appends stream for a while, then kill without warning.
	ledgertest.Poll(20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 300
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	cancel()
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no registration was acknowledged before the kill")
	}

	_, base2 := startProcess(t, bin, dir)
	admin := issue(t, dir, "--role", "admin", "--subject", "ops")
	for _, id := range acked {
		code, _, raw := call(t, "GET", base2+"/v1/persons/"+id, admin, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("acknowledged person %s missing after SIGKILL and restart: %d %s (%d acknowledged)", id, code, raw, len(acked))
		}
	}
	t.Logf("%d acknowledged registrations all present after SIGKILL", len(acked))
}
