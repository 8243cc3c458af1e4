package domain

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Limits of a contact trace.
const (
	// MaxTraceSpan is the longest window one trace may look at.
	MaxTraceSpan = 30 * 24 * time.Hour
	// DefaultHistorySpan is a history look's window when it gives no from;
	// MaxHistorySpan the longest one may ask for.
	DefaultHistorySpan = 14 * 24 * time.Hour
	MaxHistorySpan     = 90 * 24 * time.Hour
	// MaxTraceBuffer bounds buffer_minutes.
	MaxTraceBuffer = 24 * time.Hour
	// MaxTraceMinOverlap bounds min_overlap_minutes.
	MaxTraceMinOverlap = 24 * time.Hour
)

// What an audited look was, and where its answer came from
// (TraceRequested.Kind and Source).
const (
	LookContacts    = "contacts"
	LookHistory     = "history"
	SourceReadModel = "read_model"
	SourceLog       = "log"
)

// TraceQuery asks for the contacts of one person (the index person) in a
// window. The person is named by PersonID, or by IDType and IDNumber.
type TraceQuery struct {
	PersonID uuid.UUID
	IDType   string
	IDNumber string
	From, To time.Time
	// Depth is 1 (contacts) or 2 (also the contacts' contacts, 次密接).
	Depth      int
	MinOverlap time.Duration
	Buffer     time.Duration
	// Reason is why the analyst looks; required, it is recorded.
	Reason string
	// AsOf, when set, gives the answer the ledger would have given at that
	// moment: passes recorded after it are ignored. Zero: now.
	AsOf time.Time
}

// ContactSearch is a validated contact search: what FindContacts computes.
type ContactSearch struct {
	PersonID uuid.UUID
	Window   TraceWindow
	Depth    int
	// AsOf ignores the passes recorded after it (zero: none ignored).
	AsOf time.Time
}

// ContactReads is what a contact search reads: window reads in batches, so
// that a depth-2 search is a handful of reads rather than one per contact.
// The application layer adapts the read models' TraceReads to it.
//
// Passes come back with every decision (FindContacts keeps those that
// count), each pass once, in no particular order; asOf, when not zero,
// leaves out the passes recorded after it.
type ContactReads interface {
	// PassesOfPersons returns the passes of the persons with at in [from, to).
	PassesOfPersons(personIDs []uuid.UUID, from, to, asOf time.Time) ([]PassPoint, error)
	// PassesAtVenues returns the passes in the union of the windows.
	PassesAtVenues(windows []VenueWindow, asOf time.Time) ([]PassPoint, error)
}

// StayReads is what a read model that keeps every stay (Presences over all
// of its passes, under the search's rules) may offer beside ContactReads:
// the stays themselves, so that a search reads the stays that meet its
// windows instead of every pass within a maximum stay of them. ok is false
// when the kept stays cannot give the answer as of asOf (a pass recorded
// after it is among them): FindContacts then reads passes.
type StayReads interface {
	// StaysOfPersons returns the persons' stays that meet [from, to]
	// (Start <= to and End >= from); more is allowed.
	StaysOfPersons(personIDs []uuid.UUID, from, to, asOf time.Time) (stays []Presence, ok bool, err error)
	// StaysMeeting gives each, venue by venue, the stays at a window's
	// venue with Start <= the window's To and End >= its From (From may be
	// after To); more is allowed: FindContacts checks every overlap. Each
	// call holds all of one venue's stays, each once (a venue given twice
	// is ErrVenueTwice), best in start order (the search sorts a run that
	// is not), and the slice is each's only until it returns (it may be
	// reused), so a read model can hand over its rows as they come while
	// the search pairs the venues before; the stream is read to its end.
	// ok false with no error: nothing was given; after an error, what was
	// given is dropped.
	StaysMeeting(windows []VenueWindow, asOf time.Time, each func(venueStays []Presence)) (ok bool, err error)
}

// ErrVenueTwice is a StaysMeeting that gave one venue's stays in two
// parts: pairing each part alone would lose the contacts across them.
var ErrVenueTwice = errors.New("domain: a venue's stays came in two parts")

// byStart orders stays by start; byVenueStart by venue (in the order of
// the IDs, as venues are numbered), then start.
func byStart(a, b Presence) int { return a.Start.Compare(b.Start) }

func byVenueStart(a, b Presence) int {
	if c := compareUUID(a.VenueID, b.VenueID); c != 0 {
		return c
	}
	return byStart(a, b)
}

// VenueRuns gives each the stays of each venue in turn, in start order
// (StaysMeeting's contract): stays are ordered by venue and start in place
// first.
func VenueRuns(stays []Presence, each func(venueStays []Presence)) {
	if !slices.IsSortedFunc(stays, byVenueStart) {
		slices.SortFunc(stays, byVenueStart)
	}
	for i := 0; i < len(stays); {
		j := i + 1
		for j < len(stays) && stays[j].VenueID == stays[i].VenueID {
			j++
		}
		each(stays[i:j:j])
		i = j
	}
}

// FoundContacts is FindContacts' answer. Its contacts are kept as numbers
// until they are read (a depth-2 trace of a dense city finds 270,000:
// whoever renders them makes each once, from All).
type FoundContacts struct {
	// Stays are the index person's stays the search looked at (those that
	// come within the buffer of the window), by start.
	Stays []Presence
	// Persons counts the distinct people found at depth 1 and 2
	// (Persons[0] is unused).
	Persons [3]int
	depths  []foundDepth
}

// Len is how many co-presences were found.
func (f FoundContacts) Len() int {
	n := 0
	for _, d := range f.depths {
		n += len(d.found)
	}
	return n
}

// All gives every co-presence found, ordered by depth, person, overlap
// start, via, venue and overlap end (SortContacts' order), in UTC; a
// person's co-presences are one run.
func (f FoundContacts) All() iter.Seq[Contact] {
	return func(yield func(Contact) bool) {
		for i := range f.depths {
			for c := range f.depths[i].all() {
				if !yield(c) {
					return
				}
			}
		}
	}
}

// Contacts is All as a slice.
func (f FoundContacts) Contacts() []Contact { return slices.Collect(f.All()) }

// People are the people found, each once, in All's order.
func (f FoundContacts) People() []uuid.UUID {
	var out []uuid.UUID
	for _, d := range f.depths {
		out = append(out, d.persons...)
	}
	return out
}

// Venues are the venues of the co-presences found, each once.
func (f FoundContacts) Venues() []uuid.UUID {
	var out []uuid.UUID
	seen := make(map[uuid.UUID]bool)
	for _, d := range f.depths {
		used := make([]bool, len(d.venues))
		for _, c := range d.found {
			used[c.venue] = true
		}
		for n, yes := range used {
			if yes && !seen[d.venues[n]] {
				seen[d.venues[n]] = true
				out = append(out, d.venues[n])
			}
		}
	}
	return out
}

// stayLister is where a search gets stays from: the persons' stays that
// come within the buffer of the window, and the stays that may be
// co-present with some of them (each window's From is the earliest end and
// To the latest start such a stay may have). ok false: it cannot answer.
type stayLister struct {
	staysOf func(persons []uuid.UUID) (map[uuid.UUID][]Presence, bool, error)
	around  func(windows []VenueWindow, each func(venueStays []Presence)) (bool, error)
}

// FindContacts runs a contact search on the read models' reads.
//
// When reads keeps stays (StayReads) and they answer as of the search,
// the index person's stays come from it, and each depth is one read of the
// stays meeting the stretch where a stay co-present with one of the
// frontier's can lie, all frontier stays in one read.
//
// Otherwise stays are built from passes: the index person's passes are
// read over the window widened by the buffer and the longest stay
// (rules.Longest), which gives every stay that comes within the buffer of
// the window exactly (see Presences: a stay depends only on passes less
// than its type's maximum stay apart). For each such stay the venue's
// passes are read over that stretch widened by the venue type's maximum
// stay, all venues in one read; the stays built from them are paired with
// the index person's.
//
// Depth 2 repeats this from every depth-1 contact at once, skipping the
// index person and the depth-1 contacts, so a depth-2 search is four reads
// however many contacts there are.
func FindContacts(reads ContactReads, s ContactSearch, rules StayRules) (FoundContacts, error) {
	if sr, ok := reads.(StayReads); ok {
		found, ok, err := findContacts(storedStays(sr, s), s)
		if err != nil || ok {
			return found, err
		}
	}
	found, _, err := findContacts(builtStays(reads, s, rules), s)
	return found, err
}

// meets keeps the stays that come within the buffer of the search's window.
func meets(stays []Presence, w TraceWindow) map[uuid.UUID][]Presence {
	lo, hi := w.From.Add(-w.Buffer), w.To.Add(w.Buffer)
	out := make(map[uuid.UUID][]Presence)
	for _, st := range stays {
		if st.Start.Before(hi) && st.End.After(lo) {
			out[st.PersonID] = append(out[st.PersonID], st)
		}
	}
	return out
}

// storedStays lists the stays a read model keeps.
func storedStays(sr StayReads, s ContactSearch) stayLister {
	w := s.Window
	return stayLister{
		staysOf: func(persons []uuid.UUID) (map[uuid.UUID][]Presence, bool, error) {
			stays, ok, err := sr.StaysOfPersons(persons, w.From.Add(-w.Buffer), w.To.Add(w.Buffer), s.AsOf)
			if err != nil || !ok {
				return nil, ok, err
			}
			return meets(stays, w), true, nil
		},
		around: func(windows []VenueWindow, each func([]Presence)) (bool, error) {
			return sr.StaysMeeting(windows, s.AsOf, each)
		},
	}
}

// builtStays builds stays from the passes reads gives (see FindContacts).
func builtStays(reads ContactReads, s ContactSearch, rules StayRules) stayLister {
	w := s.Window
	margin := w.Buffer + rules.Longest()
	types := make(map[uuid.UUID]string)
	counted := func(ps []PassPoint) []PassPoint {
		out := ps[:0]
		for _, p := range ps {
			if !s.AsOf.IsZero() && p.RecordedAt.After(s.AsOf) {
				continue
			}
			types[p.VenueID] = p.VenueType
			out = append(out, p)
		}
		return out
	}
	return stayLister{
		staysOf: func(persons []uuid.UUID) (map[uuid.UUID][]Presence, bool, error) {
			passes, err := reads.PassesOfPersons(persons, w.From.Add(-margin), w.To.Add(margin), s.AsOf)
			if err != nil {
				return nil, false, err
			}
			return meets(Presences(counted(passes), rules), w), true, nil
		},
		// A stay's passes are within the venue type's maximum stay of it
		// (Presences): each stretch is widened by that, and by a
		// nanosecond on each side so that a stay ending or starting right
		// on its edge is built whole too. (When the minimum makes "to"
		// fall before "from", a stay spanning the gap may still qualify;
		// the read window is empty, and dropped, only once the gap is
		// longer than any stay.)
		around: func(windows []VenueWindow, each func([]Presence)) (bool, error) {
			read := make([]VenueWindow, len(windows))
			for i, win := range windows {
				d := rules.MaxStayOf(types[win.VenueID]) + time.Nanosecond
				read[i] = VenueWindow{VenueID: win.VenueID, From: win.From.Add(-d), To: win.To.Add(d)}
			}
			passes, err := reads.PassesAtVenues(MergeWindows(read), s.AsOf)
			if err != nil {
				return false, err
			}
			VenueRuns(Presences(counted(passes), rules), each)
			return true, nil
		},
	}
}

// findContacts is FindContacts over one source of stays; ok is false when
// the source could not answer.
func findContacts(src stayLister, s ContactSearch) (FoundContacts, bool, error) {
	w := s.Window
	b := w.Buffer
	lo, hi := w.From.Add(-b), w.To.Add(b)

	var found FoundContacts
	skip := map[uuid.UUID]bool{s.PersonID: true}
	frontier := []uuid.UUID{s.PersonID}
	stays, ok, err := src.staysOf(frontier)
	if err != nil || !ok {
		return FoundContacts{}, ok, wrapTrace("stays of the index person", err)
	}
	found.Stays = stays[s.PersonID]
	sort.Slice(found.Stays, func(i, j int) bool { return presenceLess(found.Stays[i], found.Stays[j]) })

	for depth := 1; depth <= s.Depth && len(frontier) > 0; depth++ {
		if depth > 1 {
			if stays, ok, err = src.staysOf(frontier); err != nil || !ok {
				return FoundContacts{}, ok, wrapTrace(fmt.Sprintf("stays of %d persons", len(frontier)), err)
			}
		}
		// Where a stay co-present with one of the frontier's can lie: to
		// overlap it by the minimum once both are widened by the buffer,
		// and within the window, it must end no earlier than
		// max(start−2·buffer, window start−buffer) + minimum and start no
		// later than min(end+2·buffer, window end+buffer) − minimum.
		var windows []VenueWindow
		for _, via := range frontier {
			for _, st := range stays[via] {
				from := maxTime(st.Start.Add(-2*b), lo).Add(w.MinOverlap)
				to := minTime(st.End.Add(2*b), hi).Add(-w.MinOverlap)
				windows = append(windows, VenueWindow{VenueID: st.VenueID, From: from, To: to})
			}
		}
		if len(windows) == 0 {
			break
		}
		// Each venue's stays are paired with the frontier's there as they
		// come (a read model hands them over venue by venue while it reads
		// the next).
		mine, venues := frontierAt(frontier, stays)
		set := newContactSet(skip)
		var (
			at    venueStays
			twice error
		)
		ok, err = src.around(windows, func(theirs []Presence) {
			if len(theirs) == 0 || twice != nil {
				return
			}
			m := mine[theirs[0].VenueID]
			if m == nil {
				return // no frontier stay there: nothing to pair
			}
			if m.met {
				twice = fmt.Errorf("venue %s: %w", theirs[0].VenueID, ErrVenueTwice)
				return
			}
			m.met = true
			at.fill(theirs, m.n)
			for _, st := range m.stays {
				set.pair(st.via, st.n, st.stay, &at, w)
			}
		})
		if err == nil {
			err = twice
		}
		if err != nil || !ok {
			return FoundContacts{}, ok, wrapTrace(fmt.Sprintf("stays at venues, depth %d", depth), err)
		}
		// Depth by depth, each in order: the answer needs no sort.
		found.depths = append(found.depths, set.order(depth, frontier, venues))
		found.Persons[depth] = len(set.persons)
		if depth == s.Depth {
			break
		}
		// People found at this depth are not found again deeper.
		for _, p := range set.persons {
			skip[p] = true
		}
		frontier = set.persons
	}
	return found, true, nil
}

func wrapTrace(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("trace: %s: %w", what, err)
}

// SortContacts orders contacts by depth, person, overlap start, via, venue
// and overlap end: the order of a trace's answer (which FindContacts builds
// in that order, depth by depth). Their indexes are sorted, and each
// contact is moved once.
func SortContacts(cs []Contact) {
	idx := make([]int32, len(cs))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(i, j int32) int {
		a, b := &cs[i], &cs[j]
		switch {
		case a.Depth != b.Depth:
			return a.Depth - b.Depth
		case a.PersonID != b.PersonID:
			return compareUUID(a.PersonID, b.PersonID)
		case !a.OverlapStart.Equal(b.OverlapStart):
			return a.OverlapStart.Compare(b.OverlapStart)
		case a.ViaPersonID != b.ViaPersonID:
			return compareUUID(a.ViaPersonID, b.ViaPersonID)
		case a.VenueID != b.VenueID:
			return compareUUID(a.VenueID, b.VenueID)
		}
		return a.OverlapEnd.Compare(b.OverlapEnd)
	})
	sorted := make([]Contact, len(cs))
	for i, k := range idx {
		sorted[i] = cs[k]
	}
	copy(cs, sorted)
}

func compareUUID(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

func presenceLess(a, b Presence) bool {
	if !a.Start.Equal(b.Start) {
		return a.Start.Before(b.Start)
	}
	if a.VenueID != b.VenueID {
		return lessUUID(a.VenueID, b.VenueID)
	}
	return a.End.Before(b.End)
}

// AuditSubject is the name an audit event records for actor.
func AuditSubject(actor Actor) string {
	if actor.Subject != "" {
		return actor.Subject
	}
	return actor.Role
}

// ValidateReason checks the reason of a look at a person's movements: required,
// as ValidateAuditedReason checks it.
func ValidateReason(reason string) (string, error) {
	if strings.TrimSpace(reason) == "" {
		return "", Invalid("reason", "is required: say why you look at this person's history")
	}
	return ValidateAuditedReason(reason, true)
}

// validWindow checks a look's window [from, to): to after from, at most
// max later (a trace's and a history's, each with its own max).
func validWindow(from, to time.Time, max time.Duration) error {
	if !to.After(from) {
		return Invalid("to", "must be after from")
	}
	if to.Sub(from) > max {
		return Invalid("to", "the window may span at most %d days", int(max/(24*time.Hour)))
	}
	return nil
}

// HistoryWindow returns the window of a look at a person's history (GET
// /v1/persons/{id}/trace): to defaults to now and from to
// DefaultHistorySpan before to, both cut to the microsecond as a trace's
// are; to must come after from, at most MaxHistorySpan later.
func HistoryWindow(from, to, now time.Time) (time.Time, time.Time, error) {
	if to.IsZero() {
		to = now
	}
	if from.IsZero() {
		from = to.Add(-DefaultHistorySpan)
	}
	from, to = Micros(from), Micros(to)
	return from, to, validWindow(from, to, MaxHistorySpan)
}

// ValidateTrace checks a trace query and returns its search; every bad
// field is reported at once. number is the canonical ID number when the
// person is named by document.
func ValidateTrace(q TraceQuery, now time.Time) (s ContactSearch, reason, number string, err error) {
	var errs []error
	// The window to the microsecond, as the read models keep times: the
	// trace, its audit entry and its listing are then the same in each.
	q.From, q.To = Micros(q.From), Micros(q.To)
	byDocument := q.IDType != "" || q.IDNumber != ""
	switch {
	case q.PersonID != uuid.Nil && byDocument:
		errs = append(errs, Invalid("person_id", "give person_id, or id_type and id_number, not both"))
	case q.PersonID == uuid.Nil && !byDocument:
		errs = append(errs, Invalid("person_id", "is required (or id_type and id_number)"))
	case byDocument:
		if number, err = ValidateDocument("id_type", "id_number", q.IDType, q.IDNumber, now); err != nil {
			errs = append(errs, err)
		}
	}
	if q.From.IsZero() {
		errs = append(errs, Invalid("from", "is required"))
	}
	if q.To.IsZero() {
		errs = append(errs, Invalid("to", "is required"))
	}
	if !q.From.IsZero() && !q.To.IsZero() {
		if err := validWindow(q.From, q.To, MaxTraceSpan); err != nil {
			errs = append(errs, err)
		}
	}
	if q.Depth != 1 && q.Depth != 2 {
		errs = append(errs, Invalid("depth", "must be 1 or 2"))
	}
	if q.MinOverlap < 0 || q.MinOverlap > MaxTraceMinOverlap {
		errs = append(errs, Invalid("min_overlap_minutes", "must be from 0 to %d", int(MaxTraceMinOverlap/time.Minute)))
	}
	if q.Buffer < 0 || q.Buffer > MaxTraceBuffer {
		errs = append(errs, Invalid("buffer_minutes", "must be from 0 to %d", int(MaxTraceBuffer/time.Minute)))
	}
	if reason, err = ValidateReason(q.Reason); err != nil {
		errs = append(errs, err)
	}
	// An answer as of a later moment than now would not be the one a
	// replay with that as_of gives (passes recorded in between would count
	// then): the same as_of twice answered 0, then 1 contacts.
	asOf := q.AsOf
	if asOf.IsZero() {
		asOf = now
	} else if asOf.After(now) {
		errs = append(errs, Invalid("as_of", "must not be in the future (it is %s here)", now.UTC().Format(time.RFC3339)))
	}
	if len(errs) > 0 {
		return ContactSearch{}, "", "", errors.Join(errs...)
	}
	return ContactSearch{
		PersonID: q.PersonID,
		Window:   TraceWindow{From: q.From.UTC(), To: q.To.UTC(), MinOverlap: q.MinOverlap, Buffer: q.Buffer},
		Depth:    q.Depth,
		AsOf:     asOf.UTC(),
	}, reason, number, nil
}
