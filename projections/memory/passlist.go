package memory

import (
	"iter"
	"slices"
)

// entry is one pass in a venue's or a person's list: its time inline, so
// that searching and merging a list never touches the passes themselves.
type entry struct {
	at int64 // OccurredAt in Unix nanoseconds
	i  int32 // index into Store.passes
}

// less orders entries by (at, position). Passes are stored in log order
// (Apply takes a batch's changes in log order and skips what it already
// holds), so a pass's index orders the same as its position.
func (a entry) less(b entry) bool {
	return a.at < b.at || (a.at == b.at && a.i < b.i)
}

func compareEntries(a, b entry) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}

// maxChunk bounds a chunk's length: inserting one entry moves at most this
// many, and a chunk's array is at most 4 KiB.
const maxChunk = 256

// passList is a list of entries sorted by (at, position), kept as a
// sequence of sorted chunks of at most maxChunk entries, each after the one
// before (a two-level B+-tree, as Python's sortedcontainers.SortedList).
//
// Passes mostly arrive in time order and go to the end of the last chunk,
// which is held in the list itself so that appending reads no other memory.
// An offline scanner's batch, whose times may reach before most of the
// list, is merged chunk by chunk: each chunk it lands in moves its own
// entries once, and the chunks it skips are not touched. A sorted run of k
// entries costs O(k + maxChunk + log n) when it lands in one place and
// O(k·maxChunk) at worst, when every entry lands in a different chunk;
// never a copy of the list's tail. A chunk that overflows is split into the
// fewest chunks that hold it, which moves the chunk headers after it (n /
// maxChunk slice headers, one memmove).
type passList struct {
	head [][]entry // the chunks before the last, none empty
	last []entry   // the last chunk, empty only when the list is
}

// chunks returns the number of chunks.
func (l *passList) chunks() int {
	if len(l.last) == 0 {
		return 0
	}
	return len(l.head) + 1
}

// chunk returns chunk c.
func (l *passList) chunk(c int) []entry {
	if c < len(l.head) {
		return l.head[c]
	}
	return l.last
}

// replace replaces chunk c with pieces (at least one).
func (l *passList) replace(c int, pieces ...[]entry) {
	if c < len(l.head) {
		if len(pieces) == 1 {
			l.head[c] = pieces[0]
		} else {
			l.head = slices.Replace(l.head, c, c+1, pieces...)
		}
		return
	}
	l.head = append(l.head, pieces[:len(pieces)-1]...)
	l.last = pieces[len(pieces)-1]
}

// insert adds run, sorted by entry.less and holding no entry already in the
// list. The list keeps no reference to run.
func (l *passList) insert(run []entry) {
	if len(l.last) == 0 || l.last[len(l.last)-1].less(run[0]) {
		// In time order: no search.
		l.appendTail(run)
		return
	}
	from := 0
	for len(run) > 0 {
		n := l.chunks()
		// The first chunk that ends after run[0].
		c := l.searchChunks(from, func(last entry) bool { return run[0].less(last) })
		if c == n {
			l.appendTail(run)
			return
		}
		// Chunk c takes what sorts before the next chunk.
		m := len(run)
		if c+1 < n {
			next := l.chunk(c + 1)[0]
			m = searchEntries(run, func(e entry) bool { return !e.less(next) })
		}
		from = c + l.merge(c, run[:m])
		run = run[m:]
	}
}

// searchChunks returns the first chunk from from on whose last entry
// satisfies f (false, then true along the list), or the number of chunks.
func (l *passList) searchChunks(from int, f func(last entry) bool) int {
	lo, hi := from, l.chunks()
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if c := l.chunk(h); !f(c[len(c)-1]) {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo
}

// searchEntries returns the first entry of es that satisfies f (false, then
// true along es), or len(es).
func searchEntries(es []entry, f func(entry) bool) int {
	lo, hi := 0, len(es)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if !f(es[h]) {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo
}

// appendTail adds run, which sorts after every entry, at the end: the last
// chunk is filled before a new one starts.
func (l *passList) appendTail(run []entry) {
	k := min(len(run), maxChunk-len(l.last))
	l.last = append(grow(l.last, k), run[:k]...)
	for run = run[k:]; len(run) > 0; run = run[k:] {
		k = min(len(run), maxChunk)
		l.head = append(l.head, l.last)
		l.last = slices.Clone(run[:k])
	}
}

// grow returns c with room for k more entries. Capacity doubles, as append's
// does, but never past maxChunk: a chunk never holds more.
func grow(c []entry, k int) []entry {
	need := len(c) + k
	if need <= cap(c) {
		return c
	}
	out := make([]entry, len(c), max(need, min(2*cap(c), maxChunk)))
	copy(out, c)
	return out
}

// merge merges add (sorted) into chunk c and returns how many chunks c
// became.
func (l *passList) merge(c int, add []entry) int {
	ch := l.chunk(c)
	total := len(ch) + len(add)
	if total <= maxChunk {
		l.replace(c, mergeInPlace(grow(ch, len(add)), add))
		return 1
	}
	// Too long for one chunk: merge into the fewest chunks that hold it,
	// of equal length.
	parts := (total + maxChunk - 1) / maxChunk
	pieces := make([][]entry, parts)
	i, j := 0, 0
	for p := range pieces {
		piece := make([]entry, (p+1)*total/parts-p*total/parts)
		for k := range piece {
			if j == len(add) || (i < len(ch) && ch[i].less(add[j])) {
				piece[k] = ch[i]
				i++
			} else {
				piece[k] = add[j]
				j++
			}
		}
		pieces[p] = piece
	}
	l.replace(c, pieces...)
	return parts
}

// mergeInPlace merges add (sorted) into ch, which has room for it, from the
// back: each entry of add is placed by a binary search and the entries
// after it move once, by block.
func mergeInPlace(ch, add []entry) []entry {
	r := len(ch) // ch[:r] is not moved yet
	ch = ch[:r+len(add)]
	w := len(ch) // ch[w:] is final
	for j := len(add) - 1; j >= 0; j-- {
		x := add[j]
		p := searchEntries(ch[:r], func(e entry) bool { return x.less(e) })
		w -= r - p
		copy(ch[w:], ch[p:r])
		w--
		ch[w] = x
		r = p
	}
	return ch
}

// place is a place in a passList: entry k of chunk c, with k < the chunk's
// length. The end of the list is {l.chunks(), 0}.
type place struct{ c, k int }

func (p place) before(q place) bool {
	return p.c < q.c || (p.c == q.c && p.k < q.k)
}

// start returns the place of the first entry.
func (l *passList) start() place { return place{} }

// end returns the place after the last entry.
func (l *passList) end() place { return place{c: l.chunks()} }

// search returns the place of the first entry that satisfies f (false, then
// true along the list), or the end.
func (l *passList) search(f func(entry) bool) place {
	c := l.searchChunks(0, f)
	if c == l.chunks() {
		return l.end()
	}
	return place{c, searchEntries(l.chunk(c), f)}
}

// ascend yields the entries from lo up to hi (not included), oldest first.
func (l *passList) ascend(lo, hi place) iter.Seq[entry] {
	return func(yield func(entry) bool) {
		for c, k := lo.c, lo.k; c < hi.c || (c == hi.c && k < hi.k); c, k = c+1, 0 {
			ch := l.chunk(c)
			if c == hi.c {
				ch = ch[:hi.k]
			}
			for _, e := range ch[k:] {
				if !yield(e) {
					return
				}
			}
		}
	}
}

// descend yields the entries before hi down to lo (included), newest first.
func (l *passList) descend(lo, hi place) iter.Seq[entry] {
	return func(yield func(entry) bool) {
		if !lo.before(hi) {
			return
		}
		c, k := hi.c, hi.k
		for {
			if k == 0 {
				c--
				k = len(l.chunk(c))
			}
			stop := 0
			if c == lo.c {
				stop = lo.k
			}
			for ch := l.chunk(c); k > stop; {
				k--
				if !yield(ch[k]) {
					return
				}
			}
			if c == lo.c {
				return
			}
		}
	}
}

// count returns the number of entries.
func (l *passList) count() int {
	n := len(l.last)
	for _, ch := range l.head {
		n += len(ch)
	}
	return n
}

// dropBefore removes the entries whose at is before at (a prefix of the
// list, sorted by at) and returns how many it removed.
func (l *passList) dropBefore(at int64) int {
	n, k := 0, 0
	for k < len(l.head) && l.head[k][len(l.head[k])-1].at < at {
		n += len(l.head[k])
		k++
	}
	if k > 0 {
		m := len(l.head)
		l.head = append(l.head[:0], l.head[k:]...)
		clear(l.head[len(l.head):m]) // release the dropped chunks
	}
	kept := func(e entry) bool { return e.at >= at }
	if len(l.head) > 0 {
		// The first chunk holds an entry at or after at, and so does
		// every chunk after it: only its start goes.
		j := searchEntries(l.head[0], kept)
		l.head[0] = l.head[0][j:]
		return n + j
	}
	j := searchEntries(l.last, kept)
	l.last = append(l.last[:0], l.last[j:]...)
	return n + j
}
