package eventstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A failover answers in several ways that mean "nothing was done, no leader
// answers now": each is tried again (until WriteTimeout, then
// ErrUnavailable); anything else fails the write at once. The cluster test
// in cmd/ledger met the 503 of a catch-up read during a leader freeze,
// which used to fail the pack's callers with a 500.
func TestTransientErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w within 1s", errAttemptTimeout), true},
		{fmt.Errorf("%w: stream LEDGER", nats.ErrNoResponders), true},
		{&apiError{Code: 503, ErrCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{&apiError{Code: 400, ErrCode: errCodeDuplicateInProcess}, true},
		{fmt.Errorf("get after 423: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}), true},
		{fmt.Errorf("get after 423: %w", context.DeadlineExceeded), true},
		{&apiError{Code: 400, ErrCode: errCodeWrongLastSeq}, false},
		{&apiError{Code: 400, ErrCode: 10054, Description: "maximum payload exceeded"}, false},
		{fmt.Errorf("get after 423: %w", &jetstream.APIError{Code: 400, ErrorCode: 10003, Description: "bad request"}), false},
		{errors.New("pack at 7: not an envelope"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// Key bucket reads and writes are tried again while they meet a failover,
// and give ErrUnavailable once WriteTimeout has passed; anything else is
// returned at once.
func TestUntilAnswered(t *testing.T) {
	s := &Store{o: Options{WriteTimeout: 100 * time.Millisecond, AckTimeout: 20 * time.Millisecond}}
	unavailable := &apiError{Code: 503, ErrCode: 10008, Description: "JetStream system temporarily unavailable"}
	calls := 0
	err := s.untilAnswered(context.Background(), func(context.Context) error {
		if calls++; calls < 3 {
			return fmt.Errorf("get: %w", unavailable)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("transient twice, then answered: err %v after %d calls", err, calls)
	}
	calls = 0
	err = s.untilAnswered(context.Background(), func(ctx context.Context) error {
		calls++
		<-ctx.Done() // no answer within AckTimeout
		return ctx.Err()
	})
	if !errors.Is(err, ErrUnavailable) || calls < 2 {
		t.Fatalf("never answered: err %v after %d calls, want ErrUnavailable after several", err, calls)
	}
	// The caller's deadline, earlier than WriteTimeout, ends it the same way.
	s.o.WriteTimeout = time.Hour
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = s.untilAnswered(c, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("never answered before the caller's deadline: err %v, want ErrUnavailable", err)
	}
	calls = 0
	err = s.untilAnswered(context.Background(), func(context.Context) error {
		calls++
		return ErrKeyMissing
	})
	if !errors.Is(err, ErrKeyMissing) || calls != 1 {
		t.Fatalf("a missing key: err %v after %d calls, want ErrKeyMissing at once", err, calls)
	}
}
