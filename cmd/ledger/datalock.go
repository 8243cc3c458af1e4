package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFileName is the file in the data dir that a command running the
// embedded nats-server holds an exclusive flock on while it uses the dir.
const lockFileName = "ledger.lock"

// errDataInUse is returned when another process holds the data dir's lock.
var errDataInUse = errors.New("data dir in use")

// dataLock is an exclusive, non-blocking flock on DATA/ledger.lock. The
// embedded JetStream files must have one owner: a second embedded server on
// the same dir (a `ledger projections status` beside a running `serve`)
// rewrites the live server's files. The kernel drops the lock when the
// process dies, so a crash leaves nothing to clean up.
type dataLock struct{ f *os.File }

// lockData takes the lock on dir, creating dir if needed. It fails at once
// with errDataInUse when another process holds it.
func lockData(dir string) (*dataLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by another ledger process (a running `ledger serve` on this data dir?); "+
				"stop it first, or run against its NATS with --nats-url instead of the embedded server: %w", errDataInUse, path, err)
		}
		return nil, fmt.Errorf("lock data dir: %s: %w", path, err)
	}
	// For an operator wondering who holds it.
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
	return &dataLock{f: f}, nil
}

// Unlock releases the lock.
func (l *dataLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
