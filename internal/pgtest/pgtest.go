// Package pgtest gives the tests a real PostgreSQL, the same way in every
// package that needs one: DATABASE_URL when it answers; else a throwaway
// cluster started from the machine's initdb and postgres in a temp dir (one
// per test binary, on a unix socket in that dir only, stopped by Stop); else
// none, and a test that needs a database is skipped, except
// under CI=true, where it fails.
//
// So `make test` passes on a machine whose PostgreSQL is installed but has
// no database `test`, or asks for a password: the default DATABASE_URL does
// not answer there, and the tests say so on standard error and use their
// own cluster.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	once  sync.Once
	dbURL string
	why   string // why there is no database, when dbURL is ""
	stop  func()
)

// URL returns the tests' database, or "" and why there is none. The first
// call decides (it may start the throwaway cluster).
func URL() (string, string) {
	once.Do(func() {
		u := os.Getenv("DATABASE_URL")
		if u != "" {
			err := ping(u)
			if err == nil {
				dbURL = u
				return
			}
			fmt.Fprintf(os.Stderr, "pgtest: DATABASE_URL does not answer (%v): starting a throwaway PostgreSQL\n", err)
		}
		var err error
		if dbURL, stop, err = throwaway(); err != nil {
			dbURL, why = "", err.Error()
			if u != "" {
				why = "DATABASE_URL does not answer and " + why
			}
		}
	})
	return dbURL, why
}

// Need returns the tests' database URL, or skips tb (fails it under
// CI=true) when there is none.
func Need(tb testing.TB) string {
	tb.Helper()
	u, why := URL()
	if u == "" {
		Missing(tb, why)
	}
	return u
}

// Optional returns the tests' database URL, or "" and why there is none for
// a test that then runs without one (it fails under CI=true).
func Optional(tb testing.TB) (string, string) {
	tb.Helper()
	u, why := URL()
	if u == "" && os.Getenv("CI") == "true" {
		Missing(tb, why) // fails the test
	}
	return u, why
}

// Missing skips tb for want of a database (why), or fails it under CI=true.
func Missing(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("CI=true and no PostgreSQL: %s", why)
	}
	tb.Skipf("no PostgreSQL (set DATABASE_URL or install initdb): %s", why)
}

// Stop stops the throwaway cluster, if one was started: call it at the end
// of TestMain (Main does).
func Stop() {
	if stop != nil {
		stop()
		stop = nil
	}
}

// Main runs a package's tests and stops the throwaway cluster: a package
// whose tests call URL or Need has `func TestMain(m *testing.M) { pgtest.Main(m) }`.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return c.Ping(ctx)
}

// throwaway starts a cluster in a temp dir from the machine's initdb. It
// listens on no TCP port, only on a unix socket in that dir (0700, its
// owner's: the postgres user's when the tests run as root), so its trust
// authentication lets in no other local user.
func throwaway() (_ string, _ func(), err error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			bins = []string{p}
		}
	}
	if len(bins) == 0 {
		return "", nil, fmt.Errorf("no initdb found to start a throwaway PostgreSQL")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "ledger-pg-")
	if err != nil {
		return "", nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	// PostgreSQL refuses to run as root: run it as the postgres user.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", nil, fmt.Errorf("running as root and no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", nil, err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	const port = "5432" // names the socket file only: no TCP port is opened
	srv := run("postgres", "-D", data, "-p", port, "-k", dir, "-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "max_connections=200")
	logFile, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return "", nil, err
	}
	srv.Stdout, srv.Stderr = logFile, logFile
	if err := srv.Start(); err != nil {
		return "", nil, fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	stop := func() {
		// SIGINT is PostgreSQL's fast shutdown.
		_ = srv.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
		_ = os.RemoveAll(dir)
	}
	u := fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%s&sslmode=disable", url.QueryEscape(dir), port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ping(u)
		if err == nil {
			return u, stop, nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			_ = os.RemoveAll(dir)
			return "", nil, fmt.Errorf("throwaway postgres exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("throwaway postgres not ready: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
