// Package eventstoretest holds test fixtures shared by the tests of
// eventstore and of the packages that read its log or run its servers: the
// bytes of a pack, a free port for a nats-server of a test cluster.
package eventstoretest

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// PassPack builds the body of a pack of n passes at one venue, every
// abnormalEvery-th one denied (0: none), as the event store writes it: a JSON
// array of envelopes, as encoding/json writes it.
func PassPack(tb testing.TB, n, abnormalEvery int) []byte {
	tb.Helper()
	envs := make([]domain.Envelope, n)
	venue := uuid.New()
	at := time.Date(2022, 5, 1, 8, 0, 0, 0, time.UTC)
	for i := range envs {
		p := domain.PassRecorded{VenueID: venue, PersonID: uuid.New(), Direction: "in", Method: "self_scan", Decision: "pass",
			Screen: domain.Screen{CodeColour: "green", NATResult: "negative", NATAt: at, VaccineDoses: 3,
				VenueID: venue, VenueName: "兰山超市", At: at, Direction: "in", Decision: "pass"}}
		if abnormalEvery > 0 && i%abnormalEvery == 0 {
			p.Decision, p.Reason, p.Screen.CodeColour, p.Screen.Decision = "deny", "red health code", "red", "deny"
		}
		e, err := domain.NewEnvelope(domain.PassAggregate(venue, p.PersonID), p, domain.Meta{Actor: "scanner"}, at)
		if err != nil {
			tb.Fatal(err)
		}
		e.RecordedAt = at
		envs[i] = e
	}
	b, err := json.Marshal(envs)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FreePort returns a loopback TCP port that is free now, for a listener of a
// test's nats-server (a cluster route, say) that cannot take port 0.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
