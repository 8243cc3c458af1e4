package eventstore

import (
	"reflect"
	"testing"

	"github.com/google/uuid"
)

// A forwarded call reads back as it was written; any cut of it, or bytes
// after it, is an error and never a panic (the writer reads what another
// process sent).
func TestForwardCodec(t *testing.T) {
	evs := []recEvent{
		{id: uuid.New(), subject: packPassSubject, packed: true, body: []byte(`{"id":"x"}`), at: 1_700_000_000_000_000_000},
		{id: uuid.New(), subject: SubjectPrefix + "person.1", body: []byte(`{}`), at: -5},
	}
	b := appendForward(nil, evs)
	if len(b) > forwardSize(evs) {
		t.Fatalf("%d bytes, over the %d forwardSize allows", len(b), forwardSize(evs))
	}
	got, err := readForward(b)
	if err != nil || !reflect.DeepEqual(got, evs) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, evs)
	}
	for n := range len(b) {
		if _, err := readForward(b[:n]); err == nil {
			t.Fatalf("a call cut at %d of %d bytes was read", n, len(b))
		}
	}
	if _, err := readForward(append(b, 0)); err == nil {
		t.Fatal("a byte after the last event was taken")
	}
}
