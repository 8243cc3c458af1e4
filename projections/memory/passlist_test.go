package memory

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// TestPassListInsert inserts sorted runs at random places into a passList
// and into a plain sorted slice, and checks after each that the list holds
// the same entries in chunks within bounds, and that searches and walks in
// both directions give what the slice gives.
func TestPassListInsert(t *testing.T) {
	// Each run generator returns a run's times, ascending. The runner gives
	// entries unique indexes in random order, so ties on time are broken
	// both ways (the store's new passes always have the higher index).
	tests := []struct {
		name string
		run  func(r *rand.Rand, lo, hi int64) []int64
	}{
		{"InOrder", func(r *rand.Rand, _, hi int64) []int64 {
			return spaced(r, hi+1, 1+r.IntN(40), 3)
		}},
		{"BeforeAll", func(r *rand.Rand, lo, _ int64) []int64 {
			n := 1 + r.IntN(700)
			return spaced(r, lo-int64(n)*3-1, n, 3)
		}},
		{"Interleaved", func(r *rand.Rand, lo, hi int64) []int64 {
			// Like an offline scanner's batch: across most of the list.
			n := 1 + r.IntN(1000)
			return spaced(r, lo+r.Int64N(hi-lo+1)/4, n, max(1, (hi-lo)*3/4/int64(n)))
		}},
		{"OneGap", func(r *rand.Rand, lo, hi int64) []int64 {
			// Many entries between two neighbours: times tie with them.
			at := lo + r.Int64N(hi-lo+1)
			out := make([]int64, 1+r.IntN(1200))
			for k := range out {
				out[k] = at
			}
			return out
		}},
		{"Mixed", func(r *rand.Rand, lo, hi int64) []int64 {
			span := hi - lo + 1
			n := 1 + r.IntN([]int{3, 100, 1500}[r.IntN(3)])
			return spaced(r, lo-span/8+r.Int64N(span+span/4), n, int64(r.IntN(4)))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			var l passList
			var ref []entry
			ids := r.Perm(1 << 20)
			for step := range 100 {
				lo, hi := int64(0), int64(1000)
				if len(ref) > 0 {
					lo, hi = ref[0].at, ref[len(ref)-1].at
				}
				// Half the steps add a run of the kind under test,
				// the rest a run at a random place.
				var times []int64
				if step%2 == 0 {
					times = tc.run(r, lo, hi)
				} else {
					times = tests[len(tests)-1].run(r, lo, hi)
				}
				ref = insertRun(&l, ref, &ids, times)
				checkList(t, &l, ref)
			}
			checkReads(t, r, &l, ref)
		})
	}
}

// insertRun inserts into l a run of entries at times, their ids taken from
// the front of ids, and returns ref with the same entries, sorted.
func insertRun(l *passList, ref []entry, ids *[]int, times []int64) []entry {
	run := make([]entry, len(times))
	for k, at := range times {
		run[k] = entry{at: at, i: int32((*ids)[k])}
	}
	*ids = (*ids)[len(times):]
	slices.SortFunc(run, compareEntries)
	l.insert(run)
	ref = append(ref, run...)
	slices.SortFunc(ref, compareEntries)
	return ref
}

// spaced returns n ascending times from at, each 0..2·step after the one
// before.
func spaced(r *rand.Rand, at int64, n int, step int64) []int64 {
	out := make([]int64, n)
	for k := range out {
		out[k] = at
		at += r.Int64N(2*step + 1)
	}
	return out
}

func checkList(t *testing.T, l *passList, ref []entry) {
	t.Helper()
	if len(l.last) == 0 && len(l.head) > 0 {
		t.Fatalf("%d chunks before an empty last one", len(l.head))
	}
	var flat []entry
	for c := range l.chunks() {
		ch := l.chunk(c)
		if len(ch) == 0 || len(ch) > maxChunk {
			t.Fatalf("chunk %d of %d has %d entries", c, l.chunks(), len(ch))
		}
		flat = append(flat, ch...)
	}
	if !slices.Equal(flat, ref) {
		t.Fatalf("list differs from the sorted slice: %d entries vs %d", len(flat), len(ref))
	}
	if l.count() != len(ref) {
		t.Fatalf("count %d, want %d", l.count(), len(ref))
	}
}

// checkReads compares searches and walks between random bounds with the
// same on the sorted slice.
func checkReads(t *testing.T, r *rand.Rand, l *passList, ref []entry) {
	t.Helper()
	lo, hi := ref[0].at, ref[len(ref)-1].at
	search := func(at int64, i int32) (place, int) {
		x := entry{at: at, i: i}
		f := func(e entry) bool { return !e.less(x) }
		return l.search(f), sort.Search(len(ref), func(k int) bool { return f(ref[k]) })
	}
	for range 300 {
		// Bounds before, inside and after the list, on ties too.
		a, ka := search(lo-5+r.Int64N(hi-lo+10), int32(r.IntN(1<<20)))
		b, kb := search(lo-5+r.Int64N(hi-lo+10), int32(r.IntN(1<<20)))
		if got := flatIndex(l, a); got != ka {
			t.Fatalf("search: place %v is entry %d, want %d", a, got, ka)
		}
		want := []entry{}
		if ka < kb {
			want = ref[ka:kb]
		}
		if got := slices.AppendSeq([]entry{}, l.ascend(a, b)); !slices.Equal(got, want) {
			t.Fatalf("ascend entries %d..%d: got %d entries, want %d", ka, kb, len(got), len(want))
		}
		want = slices.Clone(want)
		slices.Reverse(want)
		if got := slices.AppendSeq([]entry{}, l.descend(a, b)); !slices.Equal(got, want) {
			t.Fatalf("descend entries %d..%d: got %d entries, want %d", ka, kb, len(got), len(want))
		}
		// Stopping early stops.
		n := r.IntN(len(want) + 1)
		var got []entry
		for e := range l.descend(a, b) {
			if len(got) == n {
				break
			}
			got = append(got, e)
		}
		if !slices.Equal(got, want[:n]) {
			t.Fatalf("descend stopped after %d: got %d entries", n, len(got))
		}
	}
	if got := slices.AppendSeq([]entry{}, l.ascend(l.start(), l.end())); !slices.Equal(got, ref) {
		t.Fatalf("ascend over the whole list: %d entries, want %d", len(got), len(ref))
	}
}

// flatIndex returns the index of place p in the list's entries.
func flatIndex(l *passList, p place) int {
	n := p.k
	for c := range p.c {
		n += len(l.chunk(c))
	}
	return n
}
