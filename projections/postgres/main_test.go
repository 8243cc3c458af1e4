package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// testURL is the database the tests use: DATABASE_URL, or a throwaway
// cluster started from the machine's initdb and postgres; "" when neither
// exists.
var (
	testURL  string
	testPool *pgxpool.Pool
	noDBWhy  string
)

func TestMain(m *testing.M) {
	url, stop, err := testDatabase()
	if err != nil {
		noDBWhy = err.Error()
	}
	testURL = url
	if url != "" {
		pool, err := pgxpool.New(context.Background(), url)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = pool.Ping(ctx)
			cancel()
			if err != nil {
				pool.Close()
			}
		}
		if err != nil {
			noDBWhy = err.Error()
			testURL = ""
		} else {
			testPool = pool
		}
	}
	code := m.Run()
	if testPool != nil {
		dropBenchSchema()
		testPool.Close()
	}
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

// needDB skips the test when there is no PostgreSQL, except under CI=true.
func needDB(tb testing.TB) {
	tb.Helper()
	if testURL != "" {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("CI=true and no PostgreSQL: %s", noDBWhy)
	}
	tb.Skipf("no PostgreSQL (set DATABASE_URL or install initdb): %s", noDBWhy)
}

// testDatabase returns DATABASE_URL, or starts a cluster in a temp dir.
func testDatabase() (string, func(), error) {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u, nil, nil
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			bins = []string{p}
		}
	}
	if len(bins) == 0 {
		return "", nil, fmt.Errorf("DATABASE_URL unset and no initdb found")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "ledger-pg-")
	if err != nil {
		return "", nil, err
	}
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
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	srv := run("postgres", "-D", data, "-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "max_connections=200")
	logFile, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return "", nil, err
	}
	srv.Stdout, srv.Stderr = logFile, logFile
	if err := srv.Start(); err != nil {
		return "", nil, fmt.Errorf("start postgres: %w", err)
	}
	stop := func() {
		// SIGINT is PostgreSQL's fast shutdown.
		_ = srv.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
		}
		_ = os.RemoveAll(dir)
	}
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := pgx.Connect(context.Background(), url)
		if err == nil {
			c.Close(context.Background())
			return url, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("throwaway postgres not ready: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freshSchema returns a new schema name, dropped when the test ends.
func freshSchema(tb testing.TB) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		_, _ = testPool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	})
	return schema
}

// openStore opens a store keeping the trace city's stays in a fresh schema
// of the test database.
func openStore(tb testing.TB) *postgres.Store {
	tb.Helper()
	return openWith(tb, postgres.Options{Stays: &storetest.TraceCityRules})
}

// openWith opens a store with o on the test database: o.Pool nil is the
// test pool, o.Schema "" a fresh schema.
func openWith(tb testing.TB, o postgres.Options) *postgres.Store {
	tb.Helper()
	needDB(tb)
	if o.Pool == nil {
		o.Pool = testPool
	}
	if o.Schema == "" {
		o.Schema = freshSchema(tb)
	}
	s, err := postgres.Open(context.Background(), o)
	if err != nil {
		tb.Fatalf("open store in %s: %v", o.Schema, err)
	}
	return s
}
