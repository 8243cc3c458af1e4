package eventstore

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/ledger"
)

// A forwarded request reads back as it was written; any cut of it, or bytes
// after it, is an error and never a panic (the writer reads what another
// process sent).
func TestForwardCodec(t *testing.T) {
	calls := [][]recEvent{
		{
			{id: uuid.New(), subject: packPassSubject, packed: true, body: []byte(`{"id":"x"}`), at: 1_700_000_000_000_000_000},
			{id: uuid.New(), subject: SubjectPrefix + "person.1", body: []byte(`{}`), at: -5},
		},
		{{id: uuid.New(), subject: packEventSubject, packed: true, body: []byte(`{"id":"y"}`), at: 7}},
	}
	b := binary.AppendUvarint(nil, uint64(len(calls)))
	size := 0
	for _, evs := range calls {
		b = appendForward(b, evs)
		size += forwardSize(evs)
	}
	if len(b) > size {
		t.Fatalf("%d bytes, over the %d forwardSize allows", len(b), size)
	}
	got, err := readForwards(b)
	if err != nil || !reflect.DeepEqual(got, calls) {
		t.Fatalf("read back %+v, %v; want %+v", got, err, calls)
	}
	for n := range len(b) {
		if _, err := readForwards(b[:n]); err == nil {
			t.Fatalf("a request cut at %d of %d bytes was read", n, len(b))
		}
	}
	if _, err := readForwards(append(b, 0)); err == nil {
		t.Fatal("a byte after the last call was taken")
	}
}

// The writer's answers read back per call: positions, an unavailable
// stream (ErrUnavailable), another error, a writer that is closing (the
// caller writes it itself); a cut answer sends the caller to write it.
func TestForwardAnswers(t *testing.T) {
	res := []ledger.Appended{{Position: 1 << 20}, {Position: 5, Duplicate: true}}
	b := appendAnswer(nil, res, nil)
	b = appendAnswer(b, nil, ErrUnavailable)
	b = appendAnswer(b, nil, errors.New("too large"))
	b = appendAnswer(b, nil, ErrClosed)
	r := &forwardReader{b: b}
	if got, err, ok := readAnswer(r, 2); !ok || err != nil || !reflect.DeepEqual(got, res) {
		t.Fatalf("positions: %+v %v %v", got, err, ok)
	}
	if _, err, ok := readAnswer(r, 1); !ok || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unavailable: %v %v", err, ok)
	}
	if _, err, ok := readAnswer(r, 1); !ok || err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("failed: %v %v", err, ok)
	}
	if _, _, ok := readAnswer(r, 1); ok {
		t.Fatal("closing: the caller was not sent to write it itself")
	}
	if len(r.b) != 0 || r.err != nil {
		t.Fatalf("%d bytes left, %v", len(r.b), r.err)
	}
	full := appendAnswer(nil, res, nil)
	for n := range len(full) {
		if _, _, ok := readAnswer(&forwardReader{b: full[:n]}, 2); ok {
			t.Fatalf("an answer cut at %d of %d bytes was taken", n, len(full))
		}
	}
}
