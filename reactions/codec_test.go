package reactions

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
	"github.com/checkin-ledger/ledger/eventstore/eventstoretest"
)

// TestEncodeEvents: the events a reaction picks reach its handler through
// the watermill payload with their positions. (How a log message is decoded
// is eventstore's TestDecodeMessage.)
func TestEncodeEvents(t *testing.T) {
	envs := decodeBody(t, eventstoretest.PassPack(t, 5, 2), 7)
	if len(envs) != 5 {
		t.Fatalf("decode pack: %d events", len(envs))
	}
	if err := json.Unmarshal(encodeEvents(envs, abnormalPasses), &[]wireEvent{}); err != nil {
		t.Fatal(err)
	}
	picked, err := decodeEvents(encodeEvents(envs, abnormalPasses))
	if err != nil || len(picked) != 3 || picked[1].Position != envs[2].Position || picked[1].ID != envs[2].ID {
		t.Fatalf("picked %d abnormal passes (%v), want 3 with their positions", len(picked), err)
	}
}

// decodeBody and decodeSome read a log message body as the unmarshaler
// does (the subject only names the message in errors) and fail the test if
// it cannot be read.
func decodeBody(tb testing.TB, body []byte, seq uint64) []domain.Envelope {
	tb.Helper()
	return decodeSome(tb, body, seq, nil)
}

func decodeSome(tb testing.TB, body []byte, seq uint64, maybe prefilter) []domain.Envelope {
	tb.Helper()
	envs, err := eventstore.DecodeMessage("", seq, body, maybe)
	if err != nil {
		tb.Fatalf("decode message %d: %v", seq, err)
	}
	return envs
}

// all lets every element through.
func all([]byte) bool { return true }

// TestPrefilterKeepsEveryAbnormalPass: the alerts prefilter lets through
// every abnormal pass, however its JSON is spaced, and the events picked
// from a pack through it are those picked from the whole pack.
func TestPrefilterKeepsEveryAbnormalPass(t *testing.T) {
	base := domain.PassRecorded{Decision: "pass", Screen: domain.Screen{CodeColour: "green", NATResult: "negative"}}
	for _, p := range []domain.PassRecorded{
		{Decision: "deny", Screen: domain.Screen{CodeColour: "green", NATResult: "negative"}},
		{Decision: "pass", Screen: domain.Screen{CodeColour: "yellow"}},
		{Decision: "deny", Screen: domain.Screen{CodeColour: "red"}},
		{Decision: "pass", Screen: domain.Screen{CodeColour: "green", NATResult: "positive"}},
		base,
	} {
		for _, indent := range []string{"", "  "} {
			payload, err := json.MarshalIndent(p, "", indent)
			if err != nil {
				t.Fatal(err)
			}
			e := domain.Envelope{ID: uuid.New(), Type: domain.TypePassRecorded, SchemaVersion: 1, Aggregate: "pass.a.b", Payload: payload}
			raw, err := json.MarshalIndent(e, "", indent)
			if err != nil {
				t.Fatal(err)
			}
			if abnormal := domain.PassIsAbnormal(p); abnormal && !mayBeAbnormalPass(raw) {
				t.Fatalf("prefilter drops abnormal pass %s", raw)
			}
		}
	}
	body := eventstoretest.PassPack(t, 500, 7)
	whole := decodeBody(t, body, 3)
	some := decodeSome(t, body, 3, mayBeAbnormalPass)
	if a, b := string(encodeEvents(whole, abnormalPasses)), string(encodeEvents(some, abnormalPasses)); a != b || len(some) != 72 {
		t.Fatalf("prefiltered pick differs from the whole pick (%d prefiltered)", len(some))
	}
}

// TestPrefilterSkipsNormalPacks: a pack with no abnormal pass gives nothing
// (without being split), and one abnormal pass among normal ones is found
// wherever it sits.
func TestPrefilterSkipsNormalPacks(t *testing.T) {
	normal := eventstoretest.PassPack(t, 300, 0)
	if envs := decodeSome(t, normal, 3, mayBeAbnormalPass); len(envs) != 0 {
		t.Fatalf("all-normal pack: %d events; want none", len(envs))
	}
	for _, n := range []int{1, 2, 300} {
		body := eventstoretest.PassPack(t, n, n) // the first pass of n is abnormal
		envs := decodeSome(t, body, 3, mayBeAbnormalPass)
		if len(envs) != 1 || envs[0].Position != 3<<16 {
			t.Fatalf("pack of %d with one abnormal pass: %d events", n, len(envs))
		}
	}
}

// BenchmarkUnmarshalPack measures what the alerts reaction spends reading
// one pack of 4,096 passes with one abnormal pass in 100: "prefiltered" is
// what its unmarshaler does, "decode-all" the baseline that decodes every
// envelope (eventstore's decoder, nothing prefiltered).
func BenchmarkUnmarshalPack(b *testing.B) {
	body := eventstoretest.PassPack(b, 4096, 100)
	for _, bc := range []struct {
		name  string
		maybe prefilter
	}{{"decode-all", all}, {"prefiltered", mayBeAbnormalPass}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				encodeEvents(decodeSome(b, body, 1, bc.maybe), abnormalPasses)
			}
			b.ReportMetric(float64(4096*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	normal := eventstoretest.PassPack(b, 4096, 0)
	b.Run("all-normal", func(b *testing.B) {
		b.SetBytes(int64(len(normal)))
		for b.Loop() {
			if envs := decodeSome(b, normal, 1, mayBeAbnormalPass); len(envs) > 0 {
				b.Fatal(len(envs))
			}
		}
		b.ReportMetric(float64(4096*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
