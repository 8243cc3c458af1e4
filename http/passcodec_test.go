package http

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// checkPassRequest holds the fast decoder to decodeOne, the strict
// decoder: when it takes a body, decodeOne takes it too and gives the same
// request; and the pass route's decoding (fast path, then fallback) takes
// and refuses exactly what decodeOne does.
func checkPassRequest(t *testing.T, body string) (fast bool) {
	t.Helper()
	var want passRequest
	strictErr := decodeOne([]byte(body), &want)
	route, routeErr := passRequestOf([]byte(body))
	if (routeErr == nil) != (strictErr == nil) {
		t.Fatalf("body %q: pass route error %v, strict decoder %v", body, routeErr, strictErr)
	}
	if strictErr == nil && !reflect.DeepEqual(route, want) {
		t.Fatalf("body %q:\nroute  %+v\nstrict %+v", body, route, want)
	}
	var got passRequest
	if !decodePassRequest([]byte(body), &got) {
		return false
	}
	if strictErr != nil {
		t.Fatalf("fast decoder took %q, the strict decoder refuses it: %v", body, strictErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("body %q:\nfast %+v\njson %+v", body, got, want)
	}
	return true
}

func TestDecodePassRequest(t *testing.T) {
	venue := uuid.New().String()
	tests := []struct {
		body string
		fast bool // whether the fast path must take it
	}{
		{`{"method":"self_scan","venue_code":"eyJ.a.b","direction":"in"}`, true},
		{` {"method" : "manual", "venue_id":"` + venue + `","id_type":"resident_id","id_number":"11010519491231002X","direction":"out","event_id":"` + uuid.NewString() + `","occurred_at":"2026-11-25T08:00:00+08:00"}` + "\n", true},
		{`{"method":"self_scan","family_member_ids":["a","b"],"venue_code":"c","direction":"in"}`, true},
		{`{"family_member_ids":[]}`, true},
		{`{"family_member_ids":[ ]}`, true},
		{`{}`, true},
		{`{"method":"张三"}`, true},
		// Left to encoding/json:
		{`{"method":null}`, false},
		{`{"family_member_ids":null}`, false},
		{`{"method":"a\"b"}`, false},
		{`{"method":"\u0041"}`, false},
		{`{"Method":"self_scan"}`, false},
		{`{"METHOD":"self_scan"}`, false},
		{`{"method":"a","method":"b"}`, false},
		{`{"method":"a","method":"a"}`, false},
		{`{"family_member_ids":["a"],"family_member_ids":["b"]}`, false},
		{`{"id_number":"1","direction":"in","id_number":"2"}`, false},
		{`{"method":1}`, false},
		{`{"admin":"x"}`, false},
		{`{"method":"a"} {}`, false},
		{`{"method":"a"`, false},
		{`{"method":"a",}`, false},
		{`{"family_member_ids":["a",1]}`, false},
		{"{\"method\":\"\xff\"}", false},
		{"{\"method\":\"a\tb\"}", false},
		{``, false},
		{`[]`, false},
	}
	for _, tt := range tests {
		if fast := checkPassRequest(t, tt.body); fast != tt.fast {
			t.Errorf("%q: fast path %v, want %v", tt.body, fast, tt.fast)
		}
	}
}

// checkBatchRequest holds decodeBatchRequest and decodeBatch to the strict
// decoder the same way: the batch route takes a whole batch exactly when
// decodeOne does.
func checkBatchRequest(t *testing.T, body string) (fast bool) {
	t.Helper()
	var want struct {
		Passes []passRequest `json:"passes"`
	}
	strictErr := decodeOne([]byte(body), &want)
	items, itemErr, err := decodeBatch([]byte(body))
	whole := err == nil && !slices.ContainsFunc(itemErr, func(e error) bool { return e != nil })
	if whole != (strictErr == nil) {
		t.Fatalf("body %q: batch route errors %v %v, strict decoder %v", body, err, itemErr, strictErr)
	}
	if strictErr == nil && !reflect.DeepEqual(items, want.Passes) {
		t.Fatalf("body %q:\nroute  %+v\nstrict %+v", body, items, want.Passes)
	}
	got, ok := decodeBatchRequest([]byte(body))
	if !ok {
		return false
	}
	if strictErr != nil {
		t.Fatalf("fast decoder took %q, the strict decoder refuses it: %v", body, strictErr)
	}
	if !reflect.DeepEqual(got, want.Passes) {
		t.Fatalf("body %q:\nfast %+v\njson %+v", body, got, want.Passes)
	}
	return true
}

func TestDecodeBatchRequest(t *testing.T) {
	item := `{"method":"manual","venue_id":"v","id_type":"resident_id","id_number":"1","direction":"in","event_id":"e","occurred_at":"t"}`
	tests := []struct {
		body string
		fast bool
	}{
		{`{"passes":[` + item + `]}`, true},
		{` { "passes" : [ ` + item + ` , ` + item + ` ] } `, true},
		{`{"passes":[]}`, true},
		{`{"passes":[{}]}`, true},
		{`{"passes":null}`, false},
		{`{"passes":[null]}`, false},
		{`{"passes":[` + item + `],"more":1}`, false},
		{`{"passes":[` + item + `,]}`, false},
		{`{"passes":[{"method":"a","bad":"b"}]}`, false},
		{`{"Passes":[]}`, false},
		{`{"passes":[],"passes":[]}`, false},
		{`{"passes":[{"method":"a","METHOD":"b"}]}`, false},
		{`{"passes":[{"id_number":"1","id_number":"2"}]}`, false},
		{`{"passes":[]} x`, false},
		{`{"passes":[` + item + `]`, false},
	}
	for _, tt := range tests {
		if fast := checkBatchRequest(t, tt.body); fast != tt.fast {
			t.Errorf("%q: fast path %v, want %v", tt.body, fast, tt.fast)
		}
	}
}

func FuzzDecodeBatchRequest(f *testing.F) {
	f.Add(`{"passes":[{"method":"manual","venue_id":"v","direction":"in"},{"method":"x","family_member_ids":["a"]}]}`)
	f.Add(`{"passes":[]}`)
	f.Add(`{"passes":[{"method":"a","method":"b"}]}`)
	f.Fuzz(func(t *testing.T, body string) { checkBatchRequest(t, body) })
}

func FuzzDecodePassRequest(f *testing.F) {
	f.Add(`{"method":"self_scan","venue_code":"eyJ.a.b","direction":"in","family_member_ids":["x"]}`)
	f.Add(`{"method":"manual","venue_id":"v","id_type":"resident_id","id_number":"1","direction":"out","event_id":"e","occurred_at":"t"}`)
	f.Add(`{"method":"a","method":"b"}`)
	f.Add(`{"METHOD":"a"}`)
	f.Add("{\"method\":\"\xff\"}")
	f.Fuzz(func(t *testing.T, body string) { checkPassRequest(t, body) })
}

// randomScreenString is a string that is sometimes plain, sometimes needs
// an escape from encoding/json.
func randomScreenString(rng *rand.Rand) string {
	parts := []string{"", "张*", "兰山超市", "green", "a<b", "x&y", "q\"uote", "line\n", "\u2028", "deny", "ok"}
	return parts[rng.IntN(len(parts))] + parts[rng.IntN(len(parts))]
}

func randomResponse(rng *rand.Rand, depth int) passResponse {
	at := time.Date(2026, 11, 25, rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(3)*123456789, time.UTC)
	r := passResponse{
		EventID:  uuid.New(),
		Position: rng.Uint64() >> rng.IntN(64),
		Decision: []string{"pass", "deny", randomScreenString(rng)}[rng.IntN(3)],
		Screen: domain.Screen{NameMasked: randomScreenString(rng), CodeColour: "green", NATResult: []string{"", "negative"}[rng.IntN(2)],
			VaccineDoses: rng.IntN(4), VenueID: uuid.New(), VenueName: randomScreenString(rng), At: at,
			Direction: "in", Decision: "pass", Reason: []string{"", "red health code"}[rng.IntN(2)]},
		Duplicate: rng.IntN(2) == 0,
	}
	if rng.IntN(2) == 0 {
		r.Screen.NATAt = at.Add(-time.Duration(rng.IntN(100)) * time.Hour).In(time.FixedZone("CST", 8*3600))
	}
	if depth == 0 && rng.IntN(3) == 0 {
		for range 1 + rng.IntN(2) {
			r.Family = append(r.Family, randomResponse(rng, 1))
		}
	}
	return r
}

func TestAppendPassResponse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fast := 0
	for range 5000 {
		r := randomResponse(rng, 0)
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendPassResponse(nil, &r)
		if !ok {
			continue
		}
		fast++
		if string(got) != string(want) {
			t.Fatalf("appendPassResponse:\n%s\njson.Marshal:\n%s", got, want)
		}
	}
	if fast < 100 {
		t.Fatalf("only %d of 5000 answers took the fast path", fast)
	}
	plain := passResponse{EventID: uuid.New(), Position: 7, Decision: "pass",
		Screen: domain.Screen{NameMasked: "张*", CodeColour: "unknown", VenueID: uuid.New(), VenueName: "兰山超市",
			At: time.Now().UTC(), Direction: "in", Decision: "pass"}}
	if _, ok := appendPassResponse(nil, &plain); !ok {
		t.Fatal("a plain answer did not take the fast path")
	}
	if strings.Contains(string(must(json.Marshal(plain))), `"nat_at"`) {
		t.Fatal("zero nat_at written")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
