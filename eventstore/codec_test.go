package eventstore

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/google/uuid"
)

func sampleEnvelope() domain.Envelope {
	return domain.Envelope{
		ID:            uuid.MustParse("0190a4c2-7d1e-7b3a-9c4d-5e6f7a8b9c0d"),
		Type:          domain.TypePassRecorded,
		SchemaVersion: 2,
		Aggregate:     "pass.0190a4c2-7d1e-7b3a-9c4d-5e6f7a8b9c0d.0190a4c2-7d1e-7b3a-9c4d-5e6f7a8b9c0e",
		OccurredAt:    time.Date(2022, 5, 1, 8, 30, 15, 123456789, time.UTC),
		RecordedAt:    time.Date(2022, 5, 1, 8, 30, 16, 0, time.UTC),
		Actor:         "scanner:0190a4c2",
		CorrelationID: "req-1",
		Payload:       json.RawMessage(`{"direction":"in","decision":"pass","n":[1,2.5e3,-3],"ok":true,"x":null,"s":"a\"b\\c"}`),
	}
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	zone := time.FixedZone("CST", 8*3600)
	tests := []struct {
		name string
		edit func(*domain.Envelope)
	}{
		{"plain", func(*domain.Envelope) {}},
		{"no actor nor correlation", func(e *domain.Envelope) { e.Actor, e.CorrelationID = "", "" }},
		{"escapes", func(e *domain.Envelope) { e.Actor = "a\"b\\c\n\t\x01 张三 \u2028" }},
		{"invalid utf-8", func(e *domain.Envelope) { e.Actor = "a\xffb" }},
		{"zone and zero time", func(e *domain.Envelope) { e.OccurredAt = e.OccurredAt.In(zone); e.RecordedAt = time.Time{} }},
		{"no payload", func(e *domain.Envelope) { e.Payload = nil }},
		{"negative version", func(e *domain.Envelope) { e.SchemaVersion = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := sampleEnvelope()
			tt.edit(&e)
			ours := appendEnvelope(nil, &e)
			// Same value as encoding/json decodes from its own output.
			var fromOurs, fromStd domain.Envelope
			if err := json.Unmarshal(ours, &fromOurs); err != nil {
				t.Fatalf("encoding/json cannot read %s: %v", ours, err)
			}
			std, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(std, &fromStd); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromOurs, fromStd) {
				t.Fatalf("ours %s\nstd  %s", ours, std)
			}
			// And our decoder reads both the same way.
			for _, body := range [][]byte{ours, std} {
				var got domain.Envelope
				if err := decodeEnvelope(body, &got, nil); err != nil {
					t.Fatalf("decode %s: %v", body, err)
				}
				if !got.OccurredAt.Equal(fromStd.OccurredAt) || !got.RecordedAt.Equal(fromStd.RecordedAt) {
					t.Fatalf("times: %v %v, want %v %v", got.OccurredAt, got.RecordedAt, fromStd.OccurredAt, fromStd.RecordedAt)
				}
				got.OccurredAt, got.RecordedAt = fromStd.OccurredAt, fromStd.RecordedAt
				if len(got.Payload) == 0 && string(fromStd.Payload) == "null" {
					got.Payload = fromStd.Payload
				}
				if !reflect.DeepEqual(got, fromStd) {
					t.Fatalf("decoded %+v\nwant    %+v", got, fromStd)
				}
			}
		})
	}
}

func TestDecodeForms(t *testing.T) {
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"other key order and spaces", ` { "payload" : {"a" : [ 1 , {"b":"}"} ] } , "aggregate":"person.x", "type":"T", "id":"0190a4c2-7d1e-7b3a-9c4d-5e6f7a8b9c0d", "unknown": {"z":[true,false]}, "schema_version": 1 } `, true},
		{"escaped type", `{"id":"0190a4c2-7d1e-7b3a-9c4d-5e6f7a8b9c0d","type":"T\u0041","aggregate":"person.x","payload":{}}`, true},
		{"null actor", `{"id":"0190a4c2-7d1e-7b3a-9c4d-5e6f7a8b9c0d","type":"T","aggregate":"person.x","actor":null,"payload":{}}`, true},
		{"not JSON", `not an envelope`, false},
		{"array", `[1,2]`, false},
		{"object without id", `{"type":"T","aggregate":"person.x"}`, false},
		{"empty object", `{}`, false},
		{"bad id", `{"id":"nope","type":"T","aggregate":"person.x"}`, false},
		{"truncated", `{"id":"0190a4c2-7d1e-7b3a-9c4d-5e6f7a8b9c0d","type":"T","aggregate":"person.x","payload":{"a":`, false},
		{"trailing garbage", `{"id":"0190a4c2-7d1e-7b3a-9c4d-5e6f7a8b9c0d","type":"T","aggregate":"person.x"} x`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e domain.Envelope
			err := decodeEnvelope([]byte(tt.body), &e, make(interner))
			if tt.ok && err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrNotEnvelope) {
				t.Fatalf("decode %s: %v, want ErrNotEnvelope", tt.body, err)
			}
			if tt.ok && (e.Type[0] != 'T' || e.Aggregate != "person.x") {
				t.Fatalf("decoded %+v", e)
			}
		})
	}
}

func BenchmarkEncodeEnvelope(b *testing.B) {
	e := sampleEnvelope()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendEnvelope(buf[:0], &e)
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	e := sampleEnvelope()
	body := appendEnvelope(nil, &e)
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		in := make(interner)
		for b.Loop() {
			var got domain.Envelope
			if err := decodeEnvelope(body, &got, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got domain.Envelope
			if err := json.Unmarshal(body, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestPackCodec(t *testing.T) {
	a, b := sampleEnvelope(), sampleEnvelope()
	b.ID = uuid.MustParse("0190a4c2-7d1e-7b3a-9c4d-5e6f7a8b9c0e")
	b.Aggregate = "alert.371302"
	b.Payload = json.RawMessage(`{"nested":{"a":[1,2,{"b":"]"}]}}`)
	body := appendPackStart(nil)
	for i, e := range []domain.Envelope{a, b} {
		body = appendPackElem(body, i == 0, appendEnvelope(nil, &e))
	}
	body = appendPackEnd(body)
	var std []domain.Envelope
	if err := json.Unmarshal(body, &std); err != nil || len(std) != 2 {
		t.Fatalf("a pack is not a JSON array of envelopes: %v", err)
	}

	tests := []struct {
		name string
		body string
		want []uuid.UUID // nil: an error
	}{
		{"two", string(body), []uuid.UUID{a.ID, b.ID}},
		{"empty", `[]`, []uuid.UUID{}},
		{"spaces and an odd element", " [ " + string(appendEnvelope(nil, &a)) + " ,\n" +
			`{"payload":{},"aggregate":"alert.x","type":"T\u0041","id":"` + b.ID.String() + `"}` + " ] ", []uuid.UUID{a.ID, b.ID}},
		{"not an array", string(appendEnvelope(nil, &a)), nil},
		{"truncated", string(body[:len(body)-1]), nil},
		{"trailing", string(body) + "x", nil},
		{"element not an envelope", `[{"a":1}]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uuid.UUID
			var aggs []string
			n, err := walkPack([]byte(tt.body), func(i int, d *scanner) error {
				var e domain.Envelope
				if err := decodeAt(d, &e, nil); err != nil {
					return err
				}
				got = append(got, e.ID)
				aggs = append(aggs, e.Aggregate)
				return nil
			})
			if tt.want == nil {
				if !errors.Is(err, ErrNotEnvelope) {
					t.Fatalf("walk: %v, want ErrNotEnvelope", err)
				}
				return
			}
			if err != nil || n != len(tt.want) || !reflect.DeepEqual(append([]uuid.UUID{}, got...), tt.want) {
				t.Fatalf("walk: %d %v %v, want %v", n, got, err, tt.want)
			}
			// Ids alone and aggregates by peeking read the same.
			var ids []uuid.UUID
			if _, err := walkPack([]byte(tt.body), func(i int, d *scanner) error {
				if agg, ok := d.peekString("aggregate"); ok && string(agg) != aggs[i] {
					t.Errorf("peeked aggregate %q, decoded %q", agg, aggs[i])
				}
				id, err := elemID(d)
				ids = append(ids, id)
				return err
			}); err != nil || !reflect.DeepEqual(append([]uuid.UUID{}, ids...), tt.want) {
				t.Fatalf("ids: %v %v", ids, err)
			}
		})
	}
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		filter, aggregate string
		want              bool
	}{
		{"pass.*.p1", "pass.v1.p1", true},
		{"pass.*.p1", "pass.v1.p2", false},
		{"pass.*.p1", "pass.v1.p1.x", false},
		{"pass.*.p1", "pass.v1", false},
		{"pass.v1.*", "pass.v1.p9", true},
		{"alert.>", "alert.371302", true},
		{"alert.>", "alert", false},
		{">", "health.abc", true},
		{"*.abc", "health.abc", true},
		{"health.abc", "health.abcd", false},
		{"health.abc", "health.abc.", false},
		{"audit.analyst_1", "audit.analyst_1", true},
	}
	for _, tt := range tests {
		t.Run(tt.filter+" "+tt.aggregate, func(t *testing.T) {
			p := newPattern(tt.filter)
			if got := p.match(tt.aggregate); got != tt.want {
				t.Fatalf("match = %v, want %v", got, tt.want)
			}
			if got := matchTokens(p, []byte(tt.aggregate)); got != tt.want {
				t.Fatalf("match over bytes = %v, want %v", got, tt.want)
			}
		})
	}
}

func BenchmarkDecodePack(b *testing.B) {
	e := sampleEnvelope()
	one := appendEnvelope(nil, &e)
	body := appendPackStart(nil)
	for i := range 1000 {
		body = appendPackElem(body, i == 0, one)
	}
	body = appendPackEnd(body)
	b.ReportAllocs()
	in := make(interner)
	buf := make([]domain.Envelope, 0, 1000)
	for b.Loop() {
		buf = buf[:0]
		if _, err := walkPack(body, func(_ int, d *scanner) error {
			buf = append(buf, domain.Envelope{})
			return decodeAt(d, &buf[len(buf)-1], in)
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
