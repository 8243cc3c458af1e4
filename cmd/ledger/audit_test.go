package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"

	"github.com/checkin-ledger/ledger/cmd/internal/secrets"
	"github.com/checkin-ledger/ledger/eventstore/tampertest"
	"github.com/checkin-ledger/ledger/ledger/ledgertest"
)

// reviewVenues registers a manager who applies for n venues, each approved
// by reviewer: n audited actions.
func reviewVenues(t *testing.T, base, reviewer string, n int) {
	t.Helper()
	manager := register(t, base, "王经理", 7)
	for i := range n {
		approvedVenue(t, base, manager, reviewer, fmt.Sprintf("沂河超市%d", i))
	}
}

// waitAudit waits until GET /v1/audit lists n entries.
func waitAudit(t *testing.T, base, tok string, n int) {
	t.Helper()
	ledgertest.Eventually(t, func() bool {
		var a struct {
			Entries []struct {
				Seq uint64 `json:"seq"`
			} `json:"entries"`
		}
		code, _, _ := call(t, "GET", base+"/v1/audit", tok, nil, &a)
		return code == http.StatusOK && len(a.Entries) == n
	})
}

// runCmd runs a ledger command and returns its output.
func runCmd(env map[string]string, args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), args, &out, io.Discard, func(k string) string { return env[k] })
	return out.String(), err
}

// TestAuditVerifyCommand: `ledger audit verify` through the running
// service (an auditor's token; another role's is refused), refused on the
// data dir while the service holds it, and on the stopped data dir.
func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	s := startService(t, dir, nil)
	if _, err := os.Stat(filepath.Join(dir, secrets.KeyFile)); err != nil {
		t.Fatalf("the embedded default made no root key in the data dir: %v", err)
	}
	reviewer := issue(t, dir, "--role", "reviewer", "--subject", "wang")
	auditor := issue(t, dir, "--role", "auditor", "--subject", "zhou")
	reviewVenues(t, s.base, reviewer, 2)
	waitAudit(t, s.base, auditor, 2)

	out, err := runCmd(nil, "audit", "verify", "--url", s.base, "--token", auditor)
	if err != nil || !strings.Contains(out, "2 entries") || !strings.Contains(out, "anchor: seq 2") || !strings.Contains(out, "ok:") {
		t.Fatalf("verify --url: %v\n%s", err, out)
	}
	if _, err := runCmd(nil, "audit", "verify", "--url", s.base, "--token", reviewer); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("verify --url with a reviewer's token: %v", err)
	}
	if _, err := runCmd(nil, "audit", "verify", "--url", s.base); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Fatalf("verify --url without a token: %v", err)
	}
	if _, err := runCmd(nil, "audit", "verify", "--data", dir); !errors.Is(err, errDataInUse) {
		t.Fatalf("verify --data on a live dir: %v, want errDataInUse", err)
	}
	s.stop(t)
	out, err = runCmd(nil, "audit", "verify", "--data", dir)
	if err != nil || !strings.Contains(out, "2 entries") || !strings.Contains(out, "ok:") {
		t.Fatalf("verify --data: %v\n%s", err, out)
	}
}

// TestAuditVerifyFindsATruncatedChain: on a shared NATS (the root key from
// the environment), a chain whose tail was purged and rewritten shorter is
// reported broken at the first missing entry, exit status non-zero.
func TestAuditVerifyFindsATruncatedChain(t *testing.T) {
	srv := natstest.RunServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir()})
	t.Cleanup(srv.Shutdown)
	env := map[string]string{secrets.EnvKey: "a-shared-root-key-of-more-than-32-characters"}
	s := startService(t, t.TempDir(), env, "--nats-url", srv.ClientURL())
	reviewer, err := runCmd(env, "token", "issue", "--role", "reviewer", "--subject", "wang")
	if err != nil {
		t.Fatal(err)
	}
	reviewVenues(t, s.base, strings.TrimSpace(reviewer), 3)
	admin, _ := runCmd(env, "token", "issue", "--role", "admin", "--subject", "root")
	waitAudit(t, s.base, strings.TrimSpace(admin), 3)
	s.stop(t)

	if out, err := runCmd(env, "audit", "verify", "--nats-url", srv.ClientURL()); err != nil || !strings.Contains(out, "3 entries") {
		t.Fatalf("verify before tampering: %v\n%s", err, out)
	}
	log := tampertest.Connect(t, srv.ClientURL())
	log.RewriteAuditChain(log.AuditEntries()[:2])
	out, err := runCmd(env, "audit", "verify", "--nats-url", srv.ClientURL())
	if !errors.Is(err, errAuditBroken) || !strings.Contains(out, "BROKEN") || !strings.Contains(out, "seq 3") || !strings.Contains(out, "truncated") {
		t.Fatalf("verify after truncation: %v\n%s", err, out)
	}

	// The anchor deleted: reported until the operator, having looked into
	// it, reanchors the chain (whose entries hold).
	log.DeleteAuditAnchor()
	if out, err := runCmd(env, "audit", "verify", "--nats-url", srv.ClientURL()); !errors.Is(err, errAuditBroken) || !strings.Contains(out, "anchor: deleted") {
		t.Fatalf("verify after the anchor's deletion: %v\n%s", err, out)
	}
	if _, err := runCmd(env, "audit", "verify", "--url", "http://127.0.0.1:1", "--reanchor"); err == nil || !strings.Contains(err.Error(), "--reanchor") {
		t.Fatalf("--reanchor with --url: %v", err)
	}
	if out, err := runCmd(env, "audit", "verify", "--nats-url", srv.ClientURL(), "--reanchor"); err != nil || !strings.Contains(out, "anchor: seq 2") || !strings.Contains(out, "ok:") {
		t.Fatalf("reanchor: %v\n%s", err, out)
	}
}

// TestRootKeyOutsideTheDataDir: with --nats-url the service refuses a root
// key from the data dir (and makes none there), and a --key-file others
// may read, and runs with a --key-file its owner's only;
// `token issue --key-file` signs tokens it accepts, and a token signed with
// another key is refused.
func TestRootKeyOutsideTheDataDir(t *testing.T) {
	srv := natstest.RunServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir()})
	t.Cleanup(srv.Shutdown)
	dir := t.TempDir()
	serve := func(flags ...string) error {
		cfg, err := parseServe(append([]string{"--data", dir, "--http", "127.0.0.1:0", "--nats-url", srv.ClientURL()}, flags...), io.Discard, func(string) string { return "" })
		if err != nil {
			return err
		}
		a, err := open(context.Background(), cfg)
		if err == nil {
			a.Close()
		}
		return err
	}
	err := serve()
	if err == nil || !strings.Contains(err.Error(), "--key-file") || !strings.Contains(err.Error(), secrets.EnvKey) {
		t.Fatalf("serve --nats-url with no key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, secrets.KeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("serve --nats-url made a key in the data dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, secrets.KeyFile), []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := serve(); err == nil || !strings.Contains(err.Error(), "not from the data dir") {
		t.Fatalf("serve --nats-url with the data dir's key: %v", err)
	}

	// A key file its group or others may read is refused at start, naming
	// the file, its mode and the fix.
	keyFile := filepath.Join(t.TempDir(), "root.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("cd", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := serve("--key-file", keyFile); err == nil || !strings.Contains(err.Error(), keyFile) ||
		!strings.Contains(err.Error(), "mode 0644") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("serve --key-file readable by all: %v", err)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startService(t, dir, nil, "--nats-url", srv.ClientURL(), "--key-file", keyFile)
	good, err := runCmd(nil, "token", "issue", "--role", "admin", "--subject", "root", "--key-file", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	other, err := runCmd(nil, "token", "issue", "--role", "admin", "--subject", "root", "--data", dir) // the data dir's key
	if err != nil {
		t.Fatal(err)
	}
	if code, _, raw := call(t, "GET", s.base+"/v1/audit", strings.TrimSpace(good), nil, nil); code != http.StatusOK {
		t.Fatalf("a token from --key-file: %d %s", code, raw)
	}
	if code, _, _ := call(t, "GET", s.base+"/v1/audit", strings.TrimSpace(other), nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("a token signed with another key: %d, want 401", code)
	}
	if _, err := runCmd(map[string]string{secrets.EnvKey: "an-environment-root-key-of-32-or-more-characters"},
		"token", "issue", "--role", "admin", "--subject", "root", "--key-file", keyFile); err == nil || !strings.Contains(err.Error(), "give one") {
		t.Fatalf("token issue with both --key-file and the environment: %v", err)
	}
}
