package postgres_test

// A randomized differential test of retirement (RetirePasses): the same
// small city, batch by batch with retirement sweeps in between, into the
// PostgreSQL store and the memory store; after every sweep both must answer
// every public read alike, and alike a memory store fed only the passes
// and alerts not yet expired, from scratch (a read model is rebuildable from
// the log). The PostgreSQL store's stays must be domain.Presences over
// those passes.
//
// Six fixed seeds and two random ones (-short: three fixed, none random),
// two at a time; a failure names its seed. RETIRE_DIFF_SEEDS=n runs n
// random seeds instead of two; RETIRE_DIFF_SEED=s runs only seed s (to
// replay a failure); RETIRE_DIFF_MINIMIZE=1 shrinks a failing seed's script
// to a smaller one that still fails and prints it.
//
// TestStaysMeetingMissesZeroLengthStays and TestRetireLeavesZeroLengthStays
// at the end are the discrepancies it found, minimised (2026-12-03): a
// venue whose stays were all of zero length got no stay_spans row, so its
// stays met no window and outlived their passes (about one random seed in
// fifty failed with it). raiseSpan gives such a venue a span of 0, and
// migration 0012 the venues already kept without one.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/checkin-ledger/ledger/projections"
	"github.com/checkin-ledger/ledger/projections/memory"
	"github.com/checkin-ledger/ledger/projections/postgres"
	"github.com/checkin-ledger/ledger/projections/storetest"
	"github.com/google/uuid"
)

// diffDwell and diffMaxStay: short stays, different per type, so that a
// few days hold stays longer than the dwell, exits too late for their
// entry, and cut-offs that fall inside stays. A school's maximum stay is
// its dwell; an unknown type ("", a venue never applied) has the defaults.
var diffDwell = domain.Dwell{
	domain.VenueRestaurant:      90 * time.Minute,
	domain.VenueSupermarket:     30 * time.Minute,
	domain.VenueHotel:           8 * time.Hour,
	domain.VenuePublicTransport: 20 * time.Minute,
	domain.VenueSchool:          3 * time.Hour,
}

func diffMaxStay(t string) time.Duration {
	switch t {
	case domain.VenueRestaurant:
		return 270 * time.Minute
	case domain.VenueSupermarket:
		return 2 * time.Hour
	case domain.VenueHotel:
		return 30 * time.Hour
	case domain.VenuePublicTransport:
		return 40 * time.Minute
	case domain.VenueSchool:
		return 3 * time.Hour
	}
	return 3 * diffDwell.For(t)
}

var diffRules = domain.StayRules{Dwell: diffDwell.For, MaxStay: diffMaxStay}

var diffTypes = []string{domain.VenueRestaurant, domain.VenueSupermarket, domain.VenueHotel,
	domain.VenuePublicTransport, domain.VenueSchool, domain.VenueMall}

// diffBase is the first moment of the city: 18:00 UTC, so the first UTC day
// (a partition) is short and stays cross midnight.
var diffBase = time.Date(2026, 11, 10, 18, 0, 0, 0, time.UTC)

type diffVenue struct {
	id       uuid.UUID
	typ      string // "" for a venue never applied
	district string
}

// diffStep is a batch of events (in log order; positions are given when
// the script runs) or, when envs is nil, a retirement sweep.
type diffStep struct {
	envs   []domain.Envelope
	cutoff time.Time
	note   string
}

// diffScript is one generated city and what happens to it.
type diffScript struct {
	seed    uint64
	keys    *storetest.Keyring
	persons []uuid.UUID
	venues  []diffVenue
	setup   []domain.Envelope // registrations and venues, first
	steps   []diffStep
}

// diffGen builds a script deterministically from a seed.
type diffGen struct {
	seed uint64
	r    *rand.Rand
	n    int
	keys *storetest.Keyring
}

func (g *diffGen) id(kind string) uuid.UUID {
	g.n++
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "retire-diff-%d-%s-%d", g.seed, kind, g.n))
}

func diffEnv(id uuid.UUID, agg string, ev domain.Event, at, recorded time.Time) domain.Envelope {
	e, err := domain.NewEnvelope(agg, ev, domain.Meta{ID: id, OccurredAt: at, Actor: "test"}, at)
	if err != nil {
		panic(err)
	}
	e.RecordedAt = recorded.UTC()
	return e
}

// diffPass is a generated pass, with its alert when it was refused.
type diffPass struct {
	env   domain.Envelope
	alert *domain.Envelope
}

func generateDiffScript(seed uint64) diffScript {
	g := &diffGen{seed: seed, r: rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d)), keys: storetest.NewKeyring()}
	r := g.r
	sc := diffScript{seed: seed, keys: g.keys}
	setupAt := diffBase.Add(-48 * time.Hour)
	for i := range 5 + r.IntN(4) {
		id := g.id("person")
		sc.persons = append(sc.persons, id)
		sc.setup = append(sc.setup, diffEnv(g.id("event"), domain.PersonAggregate(id), &domain.PersonRegistered{
			PersonID: id, IDType: "resident_id", IDHash: fmt.Sprintf("hash-%d-%d", seed, i),
			Name: g.keys.Seal(id, "张三丰"[:3*(1+i%3)]), IDNumber: g.keys.Seal(id, fmt.Sprintf("37130219900307%04d", i)),
		}, setupAt, setupAt))
	}
	// Someone never registered also passes (an erased or unknown person's
	// passes stay as anonymous facts).
	sc.persons = append(sc.persons, g.id("person"))
	districts := []string{"371302", "371311"}
	for i := range 4 + r.IntN(3) {
		v := diffVenue{id: g.id("venue"), typ: diffTypes[r.IntN(len(diffTypes))], district: districts[i%2]}
		if i == 0 {
			v.typ = domain.VenueRestaurant
		}
		sc.venues = append(sc.venues, v)
		sc.setup = append(sc.setup,
			diffEnv(g.id("event"), domain.VenueAggregate(v.id), &domain.VenueApplied{VenueID: v.id, Name: fmt.Sprint("场所", i),
				Type: v.typ, District: v.district, Address: "某路", ManagerID: sc.persons[0]}, setupAt, setupAt),
			diffEnv(g.id("event"), domain.VenueAggregate(v.id), &domain.VenueReviewed{VenueID: v.id, Decision: "approve"}, setupAt, setupAt))
	}
	if r.IntN(2) == 0 { // a venue the read models never heard of
		sc.venues = append(sc.venues, diffVenue{id: g.id("venue"), district: "371399"})
	}

	// Visits gather around a few busy moments, so that cut-offs meet stays.
	days := 4
	var centres []time.Time
	for range 6 + r.IntN(4) {
		centres = append(centres, diffBase.Add(time.Duration(r.IntN(days*24*60))*time.Minute))
	}
	var passes []diffPass
	pass := func(v diffVenue, p uuid.UUID, dir, decision string, at time.Time) {
		at = at.UTC()
		recorded := at
		switch k := r.IntN(12); {
		case k == 0: // an offline scanner uploads hours later
			recorded = at.Add(time.Duration(1+r.IntN(36*60)) * time.Minute)
		case k == 1:
			recorded = at.Add(time.Duration(1+r.IntN(20)) * time.Minute)
		}
		id := g.id("pass")
		ev := &domain.PassRecorded{VenueID: v.id, PersonID: p, Direction: dir, Method: domain.MethodSelfScan, Decision: decision,
			Operator: "scanner", Screen: domain.Screen{CodeColour: "green", VenueID: v.id, VenueName: "场所", At: at, Direction: dir, Decision: decision}}
		dp := diffPass{env: diffEnv(id, domain.PassAggregate(v.id, p), ev, at, recorded)}
		if decision == domain.DecisionDeny {
			// An alert carries its pass's occurred_at (ledger.RaiseAlerts).
			a := diffEnv(domain.AlertEventID(id), domain.AlertAggregate(v.district), &domain.AlertRaised{District: v.district,
				VenueID: v.id, PersonID: p, PassEventID: id, CodeColour: "red", Decision: decision, Reason: "red code"}, at, recorded)
			dp.alert = &a
		}
		passes = append(passes, dp)
	}
	person := func() uuid.UUID { return sc.persons[int(float64(len(sc.persons))*r.Float64()*r.Float64())] }
	for range 70 + r.IntN(50) {
		v := sc.venues[r.IntN(len(sc.venues))]
		p := person()
		dwell, longest := diffRules.DwellOf(v.typ), diffRules.MaxStayOf(v.typ)
		c := centres[r.IntN(len(centres))]
		start := c.Add(time.Duration(r.IntN(6*60)-3*60) * time.Minute)
		if r.IntN(5) == 0 {
			start = start.Add(time.Duration(r.IntN(60)) * time.Second) // off the minute grid
		}
		length := time.Duration(1+r.IntN(int(longest*13/10/time.Minute))) * time.Minute
		switch k := r.IntN(100); {
		case k < 40: // entry and exit
			pass(v, p, "in", "pass", start)
			pass(v, p, "out", "pass", start.Add(length))
		case k < 48: // no exit
			pass(v, p, "in", "pass", start)
		case k < 56: // no entry
			pass(v, p, "out", "pass", start.Add(length))
		case k < 63: // refused at the door, an exit refused too (older logs)
			pass(v, p, "in", "deny", start)
			if k%2 == 0 {
				pass(v, p, "out", "deny", start.Add(length))
			}
		case k < 68: // scanned in twice, then out
			pass(v, p, "in", "pass", start)
			pass(v, p, "in", "pass", start.Add(length/3))
			pass(v, p, "out", "pass", start.Add(length))
		case k < 72: // in and out at one instant
			pass(v, p, "in", "pass", start)
			pass(v, p, "out", "pass", start)
		case k < 76: // two entries at one instant
			pass(v, p, "in", "pass", start)
			pass(v, p, "in", "pass", start)
			if k%2 == 0 {
				pass(v, p, "out", "pass", start.Add(length))
			}
		case k < 82: // an exit exactly a dwell or a maximum stay after the entry
			pass(v, p, "in", "pass", start)
			pass(v, p, "out", "pass", start.Add([]time.Duration{dwell, longest, longest + time.Second}[k%3]))
		case k < 90: // a companion passes at the same instants
			q := sc.persons[r.IntN(len(sc.persons))]
			for _, who := range []uuid.UUID{p, q} {
				pass(v, who, "in", "pass", start)
				pass(v, who, "out", "pass", start.Add(length))
			}
		case k < 95: // let in, refused on a second try, out
			pass(v, p, "in", "pass", start)
			pass(v, p, "in", "deny", start.Add(length/2))
			pass(v, p, "out", "pass", start.Add(length))
		default: // out, and back in at the same instant
			pass(v, p, "out", "pass", start)
			pass(v, p, "in", "pass", start)
			pass(v, p, "out", "pass", start.Add(length))
		}
	}
	// Passes right at the UTC midnights (a partition's first instant) and
	// a second before them.
	for d := range days + 1 {
		midnight := diffBase.Truncate(24*time.Hour).AddDate(0, 0, d+1)
		v, p := sc.venues[r.IntN(len(sc.venues))], person()
		pass(v, p, "in", "pass", midnight.Add(-time.Second))
		pass(v, p, "out", "pass", midnight.Add(time.Duration(r.IntN(2))*time.Minute))
		pass(sc.venues[r.IntN(len(sc.venues))], person(), "in", "pass", midnight)
	}
	// Some passes are appended twice (a retry older than the duplicate
	// window), later in the log.
	for range len(passes) / 12 {
		d := passes[r.IntN(len(passes))]
		d.env.RecordedAt = d.env.RecordedAt.Add(time.Duration(1+r.IntN(120)) * time.Minute)
		passes = append(passes, d)
	}
	// The log is in the order the ledger recorded the passes.
	slices.SortStableFunc(passes, func(a, b diffPass) int { return a.env.RecordedAt.Compare(b.env.RecordedAt) })
	var at []time.Time // the passes' times, sorted
	for _, p := range passes {
		at = append(at, p.env.OccurredAt)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })

	// The cut-offs, rising (and two that do not): a minute-by-minute
	// sweeper in the middle of a stay, one exactly on a pass's time, the
	// same and an older one again, a jump of more than a day, one exactly
	// at a UTC midnight, then the sweeper again.
	// Stays with an entry and an exit (the pair's next exit, 2 min to 6 h
	// later), by entry: a cut-off between them cuts the stay.
	type stayTimes struct{ in, out time.Time }
	var closed []stayTimes
	for _, p := range passes {
		ev, _ := domain.Decode(p.env)
		pr := ev.(*domain.PassRecorded)
		if pr.Direction != "in" || pr.Decision != "pass" {
			continue
		}
		var out time.Time
		for _, q := range passes {
			qe, _ := domain.Decode(q.env)
			qr := qe.(*domain.PassRecorded)
			if qr.PersonID == pr.PersonID && qr.VenueID == pr.VenueID && qr.Direction == "out" && q.env.OccurredAt.After(p.env.OccurredAt) &&
				(out.IsZero() || q.env.OccurredAt.Before(out)) {
				out = q.env.OccurredAt
			}
		}
		if d := out.Sub(p.env.OccurredAt); d > 2*time.Minute && d < 6*time.Hour {
			closed = append(closed, stayTimes{p.env.OccurredAt, out})
		}
	}
	slices.SortFunc(closed, func(a, b stayTimes) int { return a.in.Compare(b.in) })
	// midStay returns a moment inside one of the first stays entered after
	// after.
	midStay := func(after time.Time) time.Time {
		i, _ := slices.BinarySearchFunc(closed, after, func(a stayTimes, b time.Time) int { return a.in.Compare(b) })
		if i >= len(closed) {
			return after.Add(time.Hour)
		}
		st := closed[min(i+r.IntN(3), len(closed)-1)]
		return st.in.Add(st.out.Sub(st.in) / 2).Truncate(time.Second)
	}
	onPass := func(after time.Time) time.Time {
		i, _ := slices.BinarySearchFunc(at, after, func(a, b time.Time) int { return a.Compare(b) })
		if i+3 < len(at) {
			return at[i+r.IntN(3)+1]
		}
		return after.Add(time.Minute)
	}
	type sweep struct {
		cutoff time.Time
		note   string
	}
	var sweeps []sweep
	add := func(c time.Time, note string) { sweeps = append(sweeps, sweep{c, note}) }
	first := midStay(at[len(at)/8])
	add(first, "in the middle of a stay (first sweep)")
	for k := range 3 + r.IntN(3) {
		add(first.Add(time.Duration(k+1)*time.Minute), "a minute on")
	}
	exact := onPass(sweeps[len(sweeps)-1].cutoff)
	add(exact, "exactly on a pass's time")
	add(exact, "the same cut-off again")
	add(exact.Add(-3*time.Hour), "an older cut-off")
	mid := midStay(exact)
	add(mid, "in the middle of a stay")
	add(mid.Add(time.Minute), "a minute on")
	jump := midStay(mid.Add(26 * time.Hour))
	add(jump, "a jump of more than a day, into a stay")
	for k := range 2 {
		add(jump.Add(time.Duration(k+1)*time.Minute), "a minute on")
	}
	midnight := jump.Truncate(24 * time.Hour).Add(24 * time.Hour)
	add(midnight, "exactly at a UTC midnight")
	add(onPass(midnight), "exactly on a pass's time")
	mid = midStay(sweeps[len(sweeps)-1].cutoff)
	add(mid, "in the middle of a stay")
	for k := range 3 {
		add(mid.Add(time.Duration(k+1)*time.Minute), "a minute on")
	}

	// Interleave: a sweep runs once the log has reached its cut-off plus a
	// retention (a few hours, so late uploads still come after it, some of
	// them older than the cut-off), in batches of 1-8 events.
	retention := time.Duration(2+r.IntN(8)) * time.Hour
	var (
		envs []domain.Envelope
		si   int
	)
	for _, p := range passes {
		envs = append(envs, p.env)
		if p.alert != nil {
			envs = append(envs, *p.alert)
		}
	}
	var cut time.Time
	for len(envs) > 0 || si < len(sweeps) {
		if si < len(sweeps) && (len(envs) == 0 || !envs[0].RecordedAt.Before(sweeps[si].cutoff.Add(retention))) {
			s := sweeps[si]
			si++
			sc.steps = append(sc.steps, diffStep{cutoff: s.cutoff, note: s.note})
			if s.cutoff.After(cut) {
				cut = s.cutoff
			}
			// Passes uploaded after the sweep: one just before the cut-off
			// (kept out, with its alert), one right on it (kept).
			if r.IntN(2) == 0 || strings.Contains(s.note, "midnight") {
				v, p := sc.venues[r.IntN(len(sc.venues))], person()
				passes = passes[:0]
				pass(v, p, "in", "deny", cut.Add(-time.Second))
				pass(v, p, "out", "pass", cut.Add(-time.Duration(1+r.IntN(600))*time.Minute))
				pass(v, person(), []string{"in", "out"}[r.IntN(2)], "pass", cut)
				var late []domain.Envelope
				for _, p := range passes {
					p.env.RecordedAt = cut.Add(retention)
					late = append(late, p.env)
					if p.alert != nil {
						p.alert.RecordedAt = p.env.RecordedAt
						late = append(late, *p.alert)
					}
				}
				sc.steps = append(sc.steps, diffStep{envs: late, note: "passes older than the cut-off and on it, uploaded after the sweep"})
			}
			continue
		}
		n := min(len(envs), 1+r.IntN(8))
		sc.steps = append(sc.steps, diffStep{envs: slices.Clone(envs[:n])})
		envs = envs[n:]
	}
	return sc
}

// diffRun runs a script against a PostgreSQL store and a memory store.
type diffRun struct {
	ctx    context.Context
	sc     diffScript
	pg     *postgres.Store
	mem    *memory.Store
	open   projections.Opener
	pos    uint64
	log    []domain.Envelope // every event applied, in log order, with positions
	cutoff time.Time         // the latest cut-off
	ids    []uuid.UUID       // every pass and alert id
	stats  diffStats
}

// diffStats count what a run went through, so that a run that covers
// nothing shows.
type diffStats struct {
	compared, sweeps, passes, held, kept int
	crossed, exitsAlone, openEntries     int // stays a cut-off fell inside, when it was made
	stale, contacts, presence            int
}

// run applies the script and compares after every sweep (and before the
// first, and at the end); it returns the first difference found, "" if none.
func (sc diffScript) run(tb testing.TB) string {
	msg, _ := sc.runStats(tb)
	return msg
}

func (sc diffScript) runStats(tb testing.TB) (string, diffStats) {
	ctx := context.Background()
	pg := openWith(tb, postgres.Options{Stays: &diffRules})
	d := &diffRun{ctx: ctx, sc: sc, pg: pg, mem: memory.New(memory.Options{}), open: projections.KeyringOpener(sc.keys)}
	msg := d.steps()
	if db, err := pg.Dashboard(ctx, domain.DashboardQuery{}); err == nil {
		d.stats.held = int(db.PassesHeld)
	}
	return msg, d.stats
}

func (d *diffRun) steps() string {
	ctx, sc := d.ctx, d.sc
	if msg := d.apply(sc.setup); msg != "" {
		return msg
	}
	swept := false
	for i, st := range sc.steps {
		if st.envs != nil {
			if msg := d.apply(st.envs); msg != "" {
				return fmt.Sprintf("step %d: %s", i, msg)
			}
			continue
		}
		if !swept {
			if msg := d.compare(); msg != "" {
				return fmt.Sprintf("before any sweep (step %d): %s", i, msg)
			}
			swept = true
		}
		if stays, ok, err := d.pg.StaysOfPersons(ctx, sc.persons, time.Time{}, time.Time{}, time.Time{}); err == nil && ok {
			for _, x := range stays {
				if x.Start.Before(st.cutoff) && !x.End.Before(st.cutoff) {
					switch {
					case x.Entry && x.Exit:
						d.stats.crossed++
					case x.Exit:
						d.stats.exitsAlone++
					default:
						d.stats.openEntries++
					}
				}
			}
		}
		d.stats.sweeps++
		if _, err := d.pg.RetirePasses(ctx, st.cutoff); err != nil {
			return fmt.Sprintf("step %d: postgres: retire: %v", i, err)
		}
		if _, err := d.mem.RetirePasses(ctx, st.cutoff); err != nil {
			return fmt.Sprintf("step %d: memory: retire: %v", i, err)
		}
		if st.cutoff.After(d.cutoff) {
			d.cutoff = st.cutoff
		}
		if msg := d.compare(); msg != "" {
			return fmt.Sprintf("step %d, after the sweep to %s (%s): %s", i, st.cutoff.Format(time.RFC3339), st.note, msg)
		}
	}
	if msg := d.compare(); msg != "" {
		return "at the end: " + msg
	}
	return ""
}

func (d *diffRun) apply(envs []domain.Envelope) string {
	envs = slices.Clone(envs)
	for i := range envs {
		d.pos++
		envs[i].Position = d.pos
		if envs[i].Type == domain.TypePassRecorded {
			d.stats.passes++
			if envs[i].OccurredAt.Before(d.cutoff) {
				d.stats.stale++
			}
		}
		if envs[i].Type == domain.TypePassRecorded || envs[i].Type == domain.TypeAlertRaised {
			d.ids = append(d.ids, envs[i].ID)
		}
	}
	d.log = append(d.log, envs...)
	for _, s := range []projections.Store{d.pg, d.mem} {
		if err := storetest.Feed(d.ctx, s, envs, d.open, len(envs)+1); err != nil {
			return fmt.Sprintf("apply %d events: %v", len(envs), err)
		}
	}
	return ""
}

// fresh is a memory store fed, from scratch, the events of the log that
// have not expired at the latest cut-off.
func (d *diffRun) fresh() (*memory.Store, error) {
	var kept []domain.Envelope
	for _, e := range d.log {
		if (e.Type == domain.TypePassRecorded || e.Type == domain.TypeAlertRaised) && e.OccurredAt.Before(d.cutoff) {
			continue
		}
		kept = append(kept, e)
	}
	s := memory.New(memory.Options{})
	return s, storetest.Feed(d.ctx, s, kept, d.open, 64)
}

func diffJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// sortedJSON renders each element and sorts them (reads that come in no
// particular order).
func sortedJSON[T any](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = diffJSON(x)
	}
	slices.Sort(out)
	return out
}

// diffFirst describes the first difference between two lists.
func diffFirst(got, want []string) string {
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("%d items against %d; first difference at %d:\n  %s\nagainst\n  %s", len(got), len(want), i, g, w)
		}
	}
	return ""
}

// answers is what one store answers to every read compare makes, by read.
type answers struct {
	keys []string
	by   map[string][]string
}

func (a *answers) put(key string, vals ...string) {
	if a.by == nil {
		a.by = make(map[string][]string)
	}
	if _, ok := a.by[key]; !ok {
		a.keys = append(a.keys, key)
	}
	a.by[key] = vals
}

// newest is the latest time a pass of the log was recorded, and latest
// the latest time a pass happened.
func (d *diffRun) times() (newest, latest time.Time) {
	for _, e := range d.log {
		if e.Type == domain.TypePassRecorded {
			newest = laterOf(newest, e.RecordedAt)
			if !e.OccurredAt.Before(d.cutoff) {
				latest = laterOf(latest, e.OccurredAt.UTC())
			}
		}
	}
	return newest, latest
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// hourly marks the reads a fresh replay is not compared on.
const hourly = "hourly counts: "

// read asks s every read compare compares.
func (d *diffRun) read(s projections.Store) (answers, error) {
	ctx := d.ctx
	var a answers
	var personIDs, venueIDs []uuid.UUID
	for _, p := range d.sc.persons {
		personIDs = append(personIDs, p)
	}
	for _, v := range d.sc.venues {
		venueIDs = append(venueIDs, v.id)
	}
	c := d.cutoff
	if c.IsZero() {
		c = diffBase.Add(24 * time.Hour)
	}
	newest, latest := d.times()
	for _, v := range d.sc.venues {
		all, err := s.Entries(ctx, domain.EntryQuery{VenueID: v.id, Limit: 10000})
		if err != nil {
			return a, err
		}
		a.put("entries of venue "+v.id.String(), entryLines(all)...)
		// Pages of 3 by the cursor, and a window around the cut-off with filters.
		var pages []string
		q := domain.EntryQuery{VenueID: v.id, Limit: 3}
		for range 100 {
			page, err := s.Entries(ctx, q)
			if err != nil {
				return a, err
			}
			pages = append(pages, diffJSON(page))
			if len(page) < 3 {
				break
			}
			q.AfterAt, q.AfterPosition = page[2].At, page[2].Position
		}
		a.put("entry pages of venue "+v.id.String(), pages...)
		for _, q := range []domain.EntryQuery{
			{VenueID: v.id, From: c.Add(-2 * time.Hour), To: c.Add(3 * time.Hour), Limit: 1000},
			{VenueID: v.id, From: c.Add(-48 * time.Hour), To: c, Direction: "in", Limit: 1000},
			{VenueID: v.id, From: c, Decision: "deny", Limit: 1000},
		} {
			es, err := s.Entries(ctx, q)
			if err != nil {
				return a, err
			}
			a.put(fmt.Sprintf("entries %s..%s %q %q of venue %s", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), q.Direction, q.Decision, v.id), entryLines(es)...)
		}
	}
	for _, p := range d.sc.persons {
		for _, w := range [][2]time.Time{{}, {c.Add(-time.Hour), c.Add(6 * time.Hour)}} {
			vs, err := s.Trace(ctx, p, w[0], w[1])
			if err != nil {
				return a, err
			}
			a.put(fmt.Sprintf("history of %s %s..%s", p, w[0].Format(time.RFC3339), w[1].Format(time.RFC3339)), diffJSON(vs))
		}
	}
	for _, asOf := range []time.Time{{}, newest.Add(-90 * time.Minute)} {
		pp, err := s.PassesOfPersons(ctx, personIDs, time.Time{}, time.Time{}, asOf)
		if err != nil {
			return a, err
		}
		a.put("passes of the persons as of "+asOf.Format(time.RFC3339), sortedJSON(pp)...)
		pp, err = s.PassesOfPersons(ctx, personIDs[:len(personIDs)/2+1], c.Add(-3*time.Hour), c.Add(3*time.Hour), asOf)
		if err != nil {
			return a, err
		}
		a.put("passes of some persons around the cut-off as of "+asOf.Format(time.RFC3339), sortedJSON(pp)...)
		var ws []domain.VenueWindow
		for i, v := range venueIDs {
			ws = append(ws, domain.VenueWindow{VenueID: v, From: c.Add(-time.Duration(i+1) * time.Hour), To: c.Add(time.Duration(i) * 2 * time.Hour)})
		}
		ws = append(ws, domain.VenueWindow{VenueID: venueIDs[0], From: diffBase.Add(-24 * time.Hour), To: diffBase.Add(10 * 24 * time.Hour)})
		pv, err := s.PassesAtVenues(ctx, ws, asOf)
		if err != nil {
			return a, err
		}
		a.put("passes at venue windows as of "+asOf.Format(time.RFC3339), sortedJSON(pv)...)
	}
	byID, err := s.Passes(ctx, d.ids)
	if err != nil {
		return a, err
	}
	var passes []string
	for _, id := range d.ids {
		if p, ok := byID[id]; ok {
			passes = append(passes, diffJSON(p))
		}
	}
	a.put("passes by event id", passes...)
	var one []string
	for i, id := range d.ids {
		if i%5 != 0 {
			continue
		}
		p, ok, err := s.Pass(ctx, id)
		if err != nil {
			return a, err
		}
		one = append(one, fmt.Sprintf("%s %v %s", id, ok, diffJSON(p)))
	}
	a.put("pass by event id", one...)
	facts, err := s.PassFacts(ctx, ledger.PassFactsQuery{EventIDs: d.ids})
	if err != nil {
		return a, err
	}
	var stored []string
	for id := range facts.Stored {
		stored = append(stored, id.String())
	}
	slices.Sort(stored)
	a.put("pass facts' stored passes", stored...)
	for _, district := range []string{"371302", "371311", "371399"} {
		al, err := s.Alerts(ctx, district, 1000)
		if err != nil {
			return a, err
		}
		a.put("alerts of "+district, diffJSON(al))
	}
	// Occupancy: at the present (the PostgreSQL store counts its presence
	// rows) and in the past (its passes), under the rules' dwell and a
	// dwell of days (so that every presence row left behind would count).
	for _, now := range []time.Time{latest, c, c.Add(90 * time.Minute)} {
		for _, dw := range []struct {
			name string
			fn   func(string) time.Duration
		}{{"the rules' dwell", diffRules.DwellOf}, {"a dwell of 4 days", func(string) time.Duration { return 96 * time.Hour }}} {
			for _, district := range []string{"", "371311"} {
				q := domain.DashboardQuery{District: district, From: domain.PassHour(diffBase.Add(-24 * time.Hour)),
					To: domain.PassHour(diffBase.Add(5 * 24 * time.Hour)), Now: now, Dwell: dw.fn, Top: 20}
				db, err := s.Dashboard(ctx, q)
				if err != nil {
					return a, err
				}
				if s == projections.Store(d.pg) {
					d.stats.presence += len(db.OccupancyTop)
				}
				name := fmt.Sprintf("dashboard of %q at %s, %s", district, now.Format(time.RFC3339), dw.name)
				a.put(hourly+name, diffJSON(db))
				// Retirement never touches the hourly counts (README,
				// Retention): a replay of the passes kept counts only
				// those, so a fresh replay is compared without them.
				db.Hours, db.Total, db.ByDistrict, db.ByVenueType = nil, domain.PassCounts{}, nil, nil
				a.put(name, diffJSON(db))
			}
			var occ []string
			for _, v := range d.sc.venues {
				n, err := s.Occupancy(ctx, v.id, now, dw.fn(v.typ))
				if err != nil {
					return a, err
				}
				occ = append(occ, fmt.Sprintf("%s %d", v.id, n))
			}
			a.put(fmt.Sprintf("occupancy at %s, %s", now.Format(time.RFC3339), dw.name), occ...)
		}
	}
	// Contact tracing, as Ledger.Trace runs it: the PostgreSQL store's
	// stays when they answer (as of now), its passes as of a moment before
	// the newest pass was recorded.
	reads := ledger.BindTraceReads(ctx, s, diffRules)
	for _, p := range d.sc.persons {
		for _, tc := range []struct {
			w     domain.TraceWindow
			depth int
			asOf  time.Time
		}{
			{domain.TraceWindow{From: diffBase.Add(-24 * time.Hour), To: diffBase.Add(6 * 24 * time.Hour)}, 2, time.Time{}},
			{domain.TraceWindow{From: c.Add(-30 * time.Minute), To: c.Add(8 * time.Hour), MinOverlap: 10 * time.Minute, Buffer: 5 * time.Minute}, 1, time.Time{}},
			{domain.TraceWindow{From: diffBase.Add(-24 * time.Hour), To: diffBase.Add(6 * 24 * time.Hour), Buffer: 15 * time.Minute}, 2, newest.Add(-90 * time.Minute)},
		} {
			found, err := domain.FindContacts(reads, domain.ContactSearch{PersonID: p, Window: tc.w, Depth: tc.depth, AsOf: tc.asOf}, diffRules)
			if err != nil {
				return a, err
			}
			if s == projections.Store(d.pg) {
				d.stats.contacts += found.Len()
			}
			a.put(fmt.Sprintf("contacts of %s, depth %d, %s..%s min %s buffer %s, as of %s", p, tc.depth, tc.w.From.Format(time.RFC3339),
				tc.w.To.Format(time.RFC3339), tc.w.MinOverlap, tc.w.Buffer, tc.asOf.Format(time.RFC3339)),
				// Stays are by start, venue and end: two that differ only
				// in their flags (two entries and an exit at one instant)
				// come in either order.
				append(sortedJSON(found.Stays), diffJSON(found.Contacts()), fmt.Sprint(found.Persons))...)
		}
	}
	return a, nil
}

func entryLines(es []domain.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = diffJSON(e)
	}
	return out
}

func stayLines(stays []domain.Presence) []string {
	out := make([]string, len(stays))
	for i, st := range stays {
		out[i] = stayString(st.PersonID, st.VenueID, st.Start, st.End, st.Entry, st.Exit)
	}
	slices.Sort(out)
	return out
}

// compare reads both stores and a fresh replay and describes the first
// difference.
func (d *diffRun) compare() string {
	d.stats.compared++
	pgA, err := d.read(d.pg)
	if err != nil {
		return fmt.Sprintf("postgres: %v", err)
	}
	memA, err := d.read(d.mem)
	if err != nil {
		return fmt.Sprintf("memory: %v", err)
	}
	fresh, err := d.fresh()
	if err != nil {
		return fmt.Sprintf("fresh replay: %v", err)
	}
	freshA, err := d.read(fresh)
	if err != nil {
		return fmt.Sprintf("fresh replay: %v", err)
	}
	for _, k := range pgA.keys {
		if m := diffFirst(pgA.by[k], memA.by[k]); m != "" {
			return fmt.Sprintf("%s: postgres %s memory", k, m)
		}
	}
	for _, k := range pgA.keys {
		if strings.HasPrefix(k, hourly) {
			continue
		}
		if m := diffFirst(pgA.by[k], freshA.by[k]); m != "" {
			return fmt.Sprintf("%s: postgres (and memory) %s a fresh replay of the passes kept", k, m)
		}
	}
	// The stays the PostgreSQL store keeps are Presences over the passes
	// a fresh replay holds (and they answer: no fallback to passes).
	kept, err := fresh.PassesOfPersons(d.ctx, d.sc.persons, time.Time{}, time.Time{}, time.Time{})
	if err != nil {
		return fmt.Sprintf("fresh replay: %v", err)
	}
	want := stayLines(domain.Presences(kept, diffRules))
	got, ok, err := d.pg.StaysOfPersons(d.ctx, d.sc.persons, time.Time{}, time.Time{}, time.Time{})
	if err != nil || !ok {
		return fmt.Sprintf("postgres: stays of persons: ok %v, %v", ok, err)
	}
	if m := diffFirst(stayLines(got), want); m != "" {
		return "stays of persons: postgres " + m + " Presences over the passes kept" + d.pairPasses(stayLines(got), want, kept)
	}
	var ws []domain.VenueWindow
	for _, v := range d.sc.venues {
		ws = append(ws, domain.VenueWindow{VenueID: v.id, From: diffBase.Add(-5 * 24 * time.Hour), To: diffBase.Add(10 * 24 * time.Hour)})
	}
	// The same span as three windows a venue, a microsecond apart and
	// given out of order: each stay must still come once, in its venue's
	// one run.
	var split []domain.VenueWindow
	for _, v := range d.sc.venues {
		for _, day := range []int{5, -5, 0} {
			from := diffBase.Add(time.Duration(day) * 24 * time.Hour)
			if day > -5 {
				from = from.Add(time.Microsecond)
			}
			split = append(split, domain.VenueWindow{VenueID: v.id, From: from, To: diffBase.Add(time.Duration(day+5) * 24 * time.Hour)})
		}
	}
	for _, read := range []struct {
		what string
		ws   []domain.VenueWindow
	}{{"the venues' windows", ws}, {"the venues' windows in three parts", split}} {
		got, ok, err = staysMeeting(d.ctx, d.pg, read.ws, time.Time{})
		if err != nil || !ok {
			return fmt.Sprintf("postgres: stays meeting %s: ok %v, %v", read.what, ok, err)
		}
		if m := diffFirst(stayLines(got), want); m != "" {
			return "stays meeting " + read.what + ": postgres " + m + " Presences over the passes kept" + d.pairPasses(stayLines(got), want, kept)
		}
	}
	return ""
}

// pairPasses names the first pair whose stays differ, with its passes.
func (d *diffRun) pairPasses(got, want []string, kept []domain.PassPoint) string {
	var pair string
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			if i < len(want) {
				pair = want[i][:73]
			} else {
				pair = got[i][:73]
			}
			break
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\npair %s; its passes kept:\n", pair)
	for _, p := range kept {
		if p.PersonID.String()+" "+p.VenueID.String() == pair {
			fmt.Fprintf(&b, "  %s %s %s (type %q, position %d, recorded %s)\n", p.At.UTC().Format(time.RFC3339Nano), p.Direction, p.Decision,
				p.VenueType, p.Position, p.RecordedAt.UTC().Format(time.RFC3339))
		}
	}
	for _, l := range []struct {
		name  string
		stays []string
	}{{"postgres", got}, {"want", want}} {
		fmt.Fprintf(&b, "its stays, %s:\n", l.name)
		for _, st := range l.stays {
			if strings.HasPrefix(st, pair) {
				fmt.Fprintf(&b, "  %s\n", st[74:])
			}
		}
	}
	return b.String()
}

func diffSeeds(t *testing.T) []uint64 {
	if s := os.Getenv("RETIRE_DIFF_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RETIRE_DIFF_SEED: %v", err)
		}
		return []uint64{n}
	}
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	extra := 2
	if testing.Short() {
		seeds, extra = seeds[:3], 0
	}
	if s := os.Getenv("RETIRE_DIFF_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("RETIRE_DIFF_SEEDS: %v", err)
		}
		extra = n
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for range extra {
		seeds = append(seeds, r.Uint64()>>1)
	}
	return seeds
}

// TestRetireDifferential: see the top of this file.
func TestRetireDifferential(t *testing.T) {
	needDB(t)
	seeds := diffSeeds(t)
	// The cases retirement treats apart must have come up (the counts of
	// one seed may be 0; those of every seed together are not).
	var crossed, alone, open atomic.Int64
	t.Cleanup(func() {
		if len(seeds) > 1 && !t.Failed() && (crossed.Load() == 0 || alone.Load() == 0 || open.Load() == 0) {
			t.Errorf("%d seeds made %d stays crossing a cut-off entry to exit, %d exits alone and %d open entries across one: "+
				"the generator no longer tries what retirement treats apart", len(seeds), crossed.Load(), alone.Load(), open.Load())
		}
	})
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel() // two at a time by default (GOMAXPROCS on this machine)
			sc := generateDiffScript(seed)
			msg, st := sc.runStats(t)
			crossed.Add(int64(st.crossed))
			alone.Add(int64(st.exitsAlone))
			open.Add(int64(st.openEntries))
			if msg == "" {
				t.Logf("seed %d: %d passes applied (%d older than the cut-off then), %d sweeps, %d comparisons; at sweeps %d stays "+
					"crossed the cut-off entry to exit, %d exits alone and %d open entries; %d contacts, %d busiest-venue rows; %d passes held at the end",
					seed, st.passes, st.stale, st.sweeps, st.compared, st.crossed, st.exitsAlone, st.openEntries, st.contacts, st.presence, st.held)
				return
			}
			if os.Getenv("RETIRE_DIFF_MINIMIZE") != "" {
				small := minimizeDiff(t, sc)
				t.Logf("minimised script (%d steps):\n%s\nit fails: %s", len(small.steps), small.describe(), small.run(t))
			}
			t.Fatalf("seed %d (replay: RETIRE_DIFF_SEED=%d): %s", seed, seed, msg)
		})
	}
}

// describe prints a script's passes and sweeps.
func (sc diffScript) describe() string {
	var b strings.Builder
	venue := map[uuid.UUID]diffVenue{}
	for i, v := range sc.venues {
		venue[v.id] = v
		fmt.Fprintf(&b, "venue %d %s type %q district %s\n", i, v.id, v.typ, v.district)
	}
	person := map[uuid.UUID]int{}
	for i, p := range sc.persons {
		person[p] = i
	}
	for i, st := range sc.steps {
		if st.envs == nil {
			fmt.Fprintf(&b, "%3d sweep to %s (%s)\n", i, st.cutoff.Format(time.RFC3339), st.note)
			continue
		}
		fmt.Fprintf(&b, "%3d batch %s\n", i, st.note)
		for _, e := range st.envs {
			ev, err := domain.Decode(e)
			if err != nil {
				fmt.Fprintf(&b, "      %v\n", err)
				continue
			}
			switch ev := ev.(type) {
			case *domain.PassRecorded:
				fmt.Fprintf(&b, "      pass %s person %d at %s (%s): %s %s, recorded %s\n", e.ID, person[ev.PersonID], e.OccurredAt.UTC().Format(time.RFC3339),
					venue[ev.VenueID].typ, ev.Direction, ev.Decision, e.RecordedAt.Format(time.RFC3339))
			case *domain.AlertRaised:
				fmt.Fprintf(&b, "      alert %s of pass %s at %s\n", e.ID, ev.PassEventID, e.OccurredAt.UTC().Format(time.RFC3339))
			default:
				fmt.Fprintf(&b, "      %s\n", e.Type)
			}
		}
	}
	return b.String()
}

// minimizeDiff removes steps and events from a failing script while it
// still fails (greedy, chunks halving down to single items).
func minimizeDiff(t *testing.T, sc diffScript) diffScript {
	type item struct{ step, env int } // env -1: the step (a sweep)
	flatten := func(sc diffScript) []item {
		var out []item
		for i, st := range sc.steps {
			if st.envs == nil {
				out = append(out, item{i, -1})
				continue
			}
			for j := range st.envs {
				out = append(out, item{i, j})
			}
		}
		return out
	}
	without := func(sc diffScript, drop map[item]bool) diffScript {
		out := sc
		out.steps = nil
		for i, st := range sc.steps {
			if st.envs == nil {
				if !drop[item{i, -1}] {
					out.steps = append(out.steps, st)
				}
				continue
			}
			var envs []domain.Envelope
			for j, e := range st.envs {
				if !drop[item{i, j}] {
					envs = append(envs, e)
				}
			}
			if len(envs) > 0 {
				out.steps = append(out.steps, diffStep{envs: envs, note: st.note})
			}
		}
		return out
	}
	fails := func(sc diffScript) bool {
		var msg string
		t.Run("try", func(t *testing.T) { msg = sc.run(t) })
		return msg != ""
	}
	items := flatten(sc)
	for chunk := max(len(items)/2, 1); ; chunk = max(chunk/2, 1) {
		changed := false
		for lo := 0; lo < len(items); {
			hi := min(lo+chunk, len(items))
			drop := map[item]bool{}
			for _, it := range items[lo:hi] {
				drop[it] = true
			}
			if c := without(sc, drop); fails(c) {
				sc, items, changed = c, flatten(c), true
				continue
			}
			lo = hi
		}
		if chunk == 1 && !changed {
			return sc
		}
	}
}

// zeroCity is the smallest city for the cases below: two registered
// persons and one approved restaurant, fed to a PostgreSQL store (the stays
// under diffRules) and a memory store alike.
type zeroCity struct {
	t       *testing.T
	ctx     context.Context
	pg      *postgres.Store
	mem     *memory.Store
	open    projections.Opener
	a, b, v uuid.UUID
	pos     uint64
	n       int
}

func newZeroCity(t *testing.T) *zeroCity {
	needDB(t)
	keys := storetest.NewKeyring()
	z := &zeroCity{t: t, ctx: context.Background(), pg: openWith(t, postgres.Options{Stays: &diffRules}),
		mem: memory.New(memory.Options{}), open: projections.KeyringOpener(keys), a: uuid.New(), b: uuid.New(), v: uuid.New()}
	at := diffBase.Add(-24 * time.Hour)
	var envs []domain.Envelope
	for i, p := range []uuid.UUID{z.a, z.b} {
		envs = append(envs, diffEnv(uuid.New(), domain.PersonAggregate(p), &domain.PersonRegistered{PersonID: p, IDType: "resident_id",
			IDHash: "hash-" + p.String(), Name: keys.Seal(p, []string{"张三", "李四"}[i]), IDNumber: keys.Seal(p, "371302199003071234")}, at, at))
	}
	envs = append(envs,
		diffEnv(uuid.New(), domain.VenueAggregate(z.v), &domain.VenueApplied{VenueID: z.v, Name: "饭店", Type: domain.VenueRestaurant,
			District: "371302", Address: "某路", ManagerID: z.a}, at, at),
		diffEnv(uuid.New(), domain.VenueAggregate(z.v), &domain.VenueReviewed{VenueID: z.v, Decision: "approve"}, at, at))
	z.apply(envs...)
	return z
}

func (z *zeroCity) pass(p uuid.UUID, dir string, at time.Time) domain.Envelope {
	return diffEnv(uuid.New(), domain.PassAggregate(z.v, p), &domain.PassRecorded{VenueID: z.v, PersonID: p, Direction: dir,
		Method: domain.MethodSelfScan, Decision: domain.DecisionPass, Screen: domain.Screen{CodeColour: "green", VenueID: z.v, At: at,
			Direction: dir, Decision: domain.DecisionPass}}, at, at)
}

func (z *zeroCity) apply(envs ...domain.Envelope) {
	z.t.Helper()
	for i := range envs {
		z.pos++
		envs[i].Position = z.pos
	}
	for _, s := range []projections.Store{z.pg, z.mem} {
		if err := storetest.Feed(z.ctx, s, envs, z.open, len(envs)+1); err != nil {
			z.t.Fatal(err)
		}
	}
}

func (z *zeroCity) retire(before time.Time) {
	z.t.Helper()
	for _, s := range []projections.Store{z.pg, z.mem} {
		if _, err := s.RetirePasses(z.ctx, before); err != nil {
			z.t.Fatal(err)
		}
	}
}

// contacts traces p at depth 1 over a day either side of diffBase+16h
// with buffer (the minimum 0) in s, through its stays when it keeps them
// and asOf is zero, through its passes otherwise.
func (z *zeroCity) contacts(s projections.Store, p uuid.UUID, buffer time.Duration, asOf time.Time) domain.FoundContacts {
	z.t.Helper()
	mid := diffBase.Add(16 * time.Hour)
	found, err := domain.FindContacts(ledger.BindTraceReads(z.ctx, s, diffRules), domain.ContactSearch{PersonID: p,
		Window: domain.TraceWindow{From: mid.Add(-24 * time.Hour), To: mid.Add(24 * time.Hour), Buffer: buffer}, Depth: 1, AsOf: asOf}, diffRules)
	if err != nil {
		z.t.Fatal(err)
	}
	return found
}

// TestStaysMeetingMissesZeroLengthStays (found by TestRetireDifferential,
// seed 3661934250507752329, before any sweep; RETIRE_DIFF_MINIMIZE shrinks
// it to one person's exit and entry at one instant): two people scan in and out
// of a venue at one instant. Presences makes each a stay of zero length
// (an entry closed by an exit no later than the maximum stay); widened by
// a 5-minute buffer they overlap 10 minutes, a contact (README, "What a
// stay and a contact are"). The memory store and the PostgreSQL store's
// own pass path found it; the PostgreSQL stays path did not: a venue's
// longest stay was recorded only when longer than zero, so a venue whose
// stays were all zero-length had no stay_spans row, and StaysMeeting skips
// every window at a venue without one.
func TestStaysMeetingMissesZeroLengthStays(t *testing.T) {
	z := newZeroCity(t)
	at := diffBase.Add(16 * time.Hour)
	z.apply(z.pass(z.a, "in", at), z.pass(z.a, "out", at), z.pass(z.b, "in", at), z.pass(z.b, "out", at))
	// A pass recorded later, elsewhere in time, so that a trace as of
	// before it reads the PostgreSQL store's passes.
	later := z.pass(z.b, "out", at.Add(5*time.Hour))
	elsewhere := uuid.New() // at another venue, so this one keeps only zero-length stays
	later = diffEnv(later.ID, domain.PassAggregate(elsewhere, z.b), &domain.PassRecorded{VenueID: elsewhere, PersonID: z.b,
		Direction: "out", Method: domain.MethodSelfScan, Decision: domain.DecisionPass}, later.OccurredAt, later.RecordedAt)
	z.apply(later)
	mem := z.contacts(z.mem, z.a, 5*time.Minute, time.Time{})
	pgPasses := z.contacts(z.pg, z.a, 5*time.Minute, at.Add(time.Hour))
	pgStays := z.contacts(z.pg, z.a, 5*time.Minute, time.Time{})
	if mem.Len() != 1 || pgPasses.Len() != 1 {
		t.Fatalf("memory found %d contacts, postgres from its passes %d; want 1 each", mem.Len(), pgPasses.Len())
	}
	if got := diffJSON(pgStays.Contacts()); got != diffJSON(mem.Contacts()) {
		t.Fatalf("postgres from its stays found contacts %s, memory (and postgres from its passes) %s", got, diffJSON(mem.Contacts()))
	}
}

// TestRetireLeavesZeroLengthStays (the same cause, retirement's side): a
// person scans in and out of a venue at one instant, the only stay there.
// RetirePasses deletes the stays of expired passes only at venues with a
// stay_spans row, so this one stayed after its passes were gone: the
// PostgreSQL store still listed it (StaysOfPersons: the trace answer's
// stays of the index person) and, once someone else's stay gives the
// venue a span, pairs it with theirs into a contact made of an expired
// pass; only a later sweep removes it. "Stays are movements: they must not
// outlive their passes" (RetireStays); the memory store and a fresh replay
// hold neither.
func TestRetireLeavesZeroLengthStays(t *testing.T) {
	z := newZeroCity(t)
	at := diffBase.Add(16 * time.Hour)
	z.apply(z.pass(z.a, "in", at), z.pass(z.a, "out", at))
	cutoff := at.Add(time.Hour)
	z.retire(cutoff)
	if vs := Must(z.pg.Trace(z.ctx, z.a, time.Time{}, time.Time{}))(t); len(vs) != 0 {
		t.Fatalf("postgres history after retirement: %d passes", len(vs))
	}
	stays, ok, err := z.pg.StaysOfPersons(z.ctx, []uuid.UUID{z.a}, time.Time{}, time.Time{}, time.Time{})
	if err != nil || !ok {
		t.Fatalf("stays of persons: %v %v", ok, err)
	}
	mem := z.contacts(z.mem, z.a, time.Hour, time.Time{})
	pg := z.contacts(z.pg, z.a, time.Hour, time.Time{})
	// B comes after the cut-off; a buffer of an hour reaches back to A's
	// expired stay.
	z.apply(z.pass(z.b, "in", cutoff.Add(10*time.Minute)), z.pass(z.b, "out", cutoff.Add(40*time.Minute)))
	memB := z.contacts(z.mem, z.b, time.Hour, time.Time{})
	pgB := z.contacts(z.pg, z.b, time.Hour, time.Time{})
	if len(stays) != 0 || len(pg.Stays) != len(mem.Stays) || pgB.Len() != memB.Len() {
		t.Fatalf("after retiring the passes before %s: postgres keeps %d stays of the person (%s), its trace shows %d stays "+
			"(memory %d); the next person's trace finds %d contacts in postgres (%s), %d in memory",
			cutoff.Format(time.RFC3339), len(stays), diffJSON(stays), len(pg.Stays), len(mem.Stays),
			pgB.Len(), diffJSON(pgB.Contacts()), memB.Len())
	}
}

// Must is storetest.Must, here.
func Must[T any](v T, err error) func(t *testing.T) T { return storetest.Must(v, err) }
