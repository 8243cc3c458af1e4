package facts

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A shared read answers every caller with a value read after it asked,
// and callers that ask while a read runs share the next one.
func TestSharedReads(t *testing.T) {
	var (
		value, reads atomic.Uint64
		s            sharedReads
	)
	read := func(context.Context) (uint64, error) {
		reads.Add(1)
		v := value.Load()
		time.Sleep(2 * time.Millisecond)
		return v, nil
	}
	const callers, rounds = 32, 20
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range rounds {
				asked := value.Add(1) // the value moves; the answer must be at least what it was when asked
				got, err := s.read(context.Background(), read)
				if err != nil {
					t.Error(err)
					return
				}
				if got < asked {
					t.Errorf("answer %d was read before the call asked at %d", got, asked)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := reads.Load(); n >= callers*rounds/2 {
		t.Fatalf("%d reads for %d calls: not shared", n, callers*rounds)
	}
	t.Logf("%d calls, %d reads", callers*rounds, reads.Load())

	// A caller that gives up does not end the read for the others.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.read(ctx, read); err == nil {
		t.Fatal("a cancelled caller got an answer")
	}
	if got, err := s.read(context.Background(), read); err != nil || got != value.Load() {
		t.Fatalf("after a cancelled caller: %d %v, want %d", got, err, value.Load())
	}
}
