package reactions

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore"
)

// pack builds the body of a pack of n passes, every abnormalEvery-th one
// denied (0: none), as the event store writes it: a JSON array of envelopes.
func pack(tb testing.TB, n, abnormalEvery int) []byte {
	tb.Helper()
	envs := make([]domain.Envelope, n)
	venue := uuid.New()
	at := time.Date(2022, 5, 1, 8, 0, 0, 0, time.UTC)
	for i := range envs {
		p := domain.PassRecorded{VenueID: venue, PersonID: uuid.New(), Direction: "in", Method: "self_scan", Decision: "pass",
			Screen: domain.Screen{NameMasked: "张*", CodeColour: "green", NATResult: "negative", NATAt: at, VaccineDoses: 3,
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

func TestDecodeBody(t *testing.T) {
	body := pack(t, 5, 2)
	envs, err := decodeBody(body, 7)
	if err != nil || len(envs) != 5 {
		t.Fatalf("decode pack: %d events, %v", len(envs), err)
	}
	for i, e := range envs {
		if e.Position != 7<<16|uint64(i) || e.Type != domain.TypePassRecorded {
			t.Fatalf("event %d: position %d type %s", i, e.Position, e.Type)
		}
	}
	var picked []domain.Envelope
	if err := json.Unmarshal(encodeEvents(envs, abnormalPasses), &[]wireEvent{}); err != nil {
		t.Fatal(err)
	}
	picked, err = decodeEvents(encodeEvents(envs, abnormalPasses))
	if err != nil || len(picked) != 3 || picked[1].Position != envs[2].Position || picked[1].ID != envs[2].ID {
		t.Fatalf("picked %d abnormal passes (%v), want 3 with their positions", len(picked), err)
	}
	one, err := json.Marshal(envs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeBody(one, 9); err != nil || len(got) != 1 || got[0].Position != 9<<16 || got[0].ID != envs[0].ID {
		t.Fatalf("decode one envelope: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "{}", "[{}]", "not json", `[{"id":"x"}]`} {
		if _, err := decodeBody([]byte(bad), 1); err == nil {
			t.Errorf("decodeBody(%q) accepted", bad)
		}
	}
}

func TestSplitArray(t *testing.T) {
	tests := []struct {
		in   string
		want []string // nil: an error
	}{
		{`[]`, []string{}},
		{` [ {"a":1} ] `, []string{`{"a":1}`}},
		{`[{"a":"x,]}"},{"b":[1,{"c":"\\"}]} , 3]`, []string{`{"a":"x,]}"}`, `{"b":[1,{"c":"\\"}]}`, `3`}},
		{`[{"a":"\"]"}]`, []string{`{"a":"\"]"}`}},
		{`[{"a":1}`, nil},
		{`[{"a":1},]`, nil},
		{`[{"a":"1}]`, nil},
		{`[1] x`, nil},
		{`{"a":1}`, nil},
	}
	for _, tt := range tests {
		got, err := splitArray([]byte(tt.in))
		if tt.want == nil {
			if err == nil {
				t.Errorf("splitArray(%s) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("splitArray(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tt.want[i] {
				t.Errorf("splitArray(%s)[%d] = %s, want %s", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

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
	body := pack(t, 500, 7)
	whole, err := decodeBody(body, 3)
	if err != nil {
		t.Fatal(err)
	}
	some, err := decodeSome(body, 3, mayBeAbnormalPass)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := string(encodeEvents(whole, abnormalPasses)), string(encodeEvents(some, abnormalPasses)); a != b || len(some) != 72 {
		t.Fatalf("prefiltered pick differs from the whole pick (%d prefiltered)", len(some))
	}
}

// TestPrefilterSkipsNormalPacks: a pack with no abnormal pass gives nothing
// (without being split), and one abnormal pass among normal ones is found
// wherever it sits.
func TestPrefilterSkipsNormalPacks(t *testing.T) {
	normal := pack(t, 300, 0)
	envs, err := decodeSome(normal, 3, mayBeAbnormalPass)
	if err != nil || len(envs) != 0 {
		t.Fatalf("all-normal pack: %d events, %v; want none", len(envs), err)
	}
	for _, n := range []int{1, 2, 300} {
		body := pack(t, n, n) // the first pass of n is abnormal
		envs, err := decodeSome(body, 3, mayBeAbnormalPass)
		if err != nil || len(envs) != 1 || envs[0].Position != eventstore.PositionOf(3, 0) {
			t.Fatalf("pack of %d with one abnormal pass: %d events, %v", n, len(envs), err)
		}
	}
}

// BenchmarkUnmarshalPack measures what the alerts reaction spends reading
// one pack of 4,096 passes with one abnormal pass in 100: "prefiltered" is
// what its unmarshaler does, "decode-all" the baseline that decodes every
// envelope with encoding/json.
func BenchmarkUnmarshalPack(b *testing.B) {
	body := pack(b, 4096, 100)
	for _, bc := range []struct {
		name  string
		maybe prefilter
	}{{"decode-all", all}, {"prefiltered", mayBeAbnormalPass}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				envs, err := decodeSome(body, 1, bc.maybe)
				if err != nil {
					b.Fatal(err)
				}
				encodeEvents(envs, abnormalPasses)
			}
			b.ReportMetric(float64(4096*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	normal := pack(b, 4096, 0)
	b.Run("all-normal", func(b *testing.B) {
		b.SetBytes(int64(len(normal)))
		for b.Loop() {
			if envs, err := decodeSome(normal, 1, mayBeAbnormalPass); err != nil || len(envs) > 0 {
				b.Fatal(len(envs), err)
			}
		}
		b.ReportMetric(float64(4096*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
