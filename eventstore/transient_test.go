package eventstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
