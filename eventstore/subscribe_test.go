package eventstore

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/eventstore/eventstoretest"
)

func TestDecodeMessage(t *testing.T) {
	body := eventstoretest.PassPack(t, 5, 2)
	envs, err := DecodeMessage(packPassSubject, 7, body, nil)
	if err != nil || len(envs) != 5 {
		t.Fatalf("decode pack: %d events, %v", len(envs), err)
	}
	for i, e := range envs {
		if e.Position != 7<<16|uint64(i) || e.Position != PositionOf(7, i) || e.Type != domain.TypePassRecorded {
			t.Fatalf("event %d: position %d type %s", i, e.Position, e.Type)
		}
	}
	one, err := json.Marshal(envs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeMessage(SubjectPrefix+envs[0].Aggregate, 9, one, nil); err != nil || len(got) != 1 || got[0].Position != 9<<16 || got[0].ID != envs[0].ID {
		t.Fatalf("decode one envelope: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "{}", "[{}]", "not json", `[{"id":"x"}]`} {
		if _, err := DecodeMessage(packPassSubject, 1, []byte(bad), nil); err == nil {
			t.Errorf("DecodeMessage(%q) accepted", bad)
		}
	}
	// keep decides which elements are decoded; a pack it refuses whole is
	// not split, even when it is malformed.
	denied := func(raw []byte) bool { return bytes.Contains(raw, []byte(`"deny"`)) }
	picked, err := DecodeMessage(packPassSubject, 7, body, denied)
	if err != nil || len(picked) != 3 || picked[1].Position != envs[2].Position || picked[1].ID != envs[2].ID {
		t.Fatalf("kept %d denied passes (%v), want 3 with their positions", len(picked), err)
	}
	if got, err := DecodeMessage(packPassSubject, 7, []byte(`[{"a":`), func([]byte) bool { return false }); err != nil || got != nil {
		t.Fatalf("a refused pack: %v, %v; want nothing", got, err)
	}
}

// TestWalkPackSplits: a pack's elements are found by their JSON structure
// (strings and their escapes, nesting), whatever they hold.
func TestWalkPackSplits(t *testing.T) {
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
		var got []string
		_, err := walkPack([]byte(tt.in), func(_ int, d *scanner) error {
			start := d.I
			if err := skipElem(d); err != nil {
				return err
			}
			got = append(got, string(d.B[start:d.I]))
			return nil
		})
		if tt.want == nil {
			if err == nil {
				t.Errorf("walkPack(%s) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("walkPack(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("walkPack(%s)[%d] = %s, want %s", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}
