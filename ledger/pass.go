package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
)

// RecordPass records one pass (self scan, staff scan or manual entry) and
// answers with the "one screen". An abnormal pass is reported to the
// venue's district by a reaction (RaiseAlerts) once it is in the log. A
// pass whose event id is already stored is not stored again: the original
// answer comes back with Duplicate set, however long ago it was stored.
//
// Only approved venues take passes: a pass at a venue that is pending or
// rejected is ErrConflict (the venue exists, it is its state that refuses).
func (l *Ledger) RecordPass(ctx context.Context, actor domain.Actor, cmd domain.RecordPass) (PassResult, error) {
	items, err := l.recordPasses(ctx, actor, []domain.RecordPass{cmd})
	if err != nil {
		return PassResult{}, err
	}
	if items[0].Err != nil {
		return PassResult{}, items[0].Err
	}
	return items[0].Result, nil
}

// RecordPasses records up to MaxBatchPasses passes from a scanner that was
// offline. Each item is checked and decided on its own: a bad item is
// rejected without sinking the others. All accepted items are stored with
// one group commit. The results are in input order.
func (l *Ledger) RecordPasses(ctx context.Context, actor domain.Actor, cmds []domain.RecordPass) ([]BatchItem, error) {
	if len(cmds) == 0 {
		return nil, domain.Invalid("passes", "is empty")
	}
	if len(cmds) > domain.MaxBatchPasses {
		return nil, domain.Invalid("passes", "has %d items, at most %d allowed", len(cmds), domain.MaxBatchPasses)
	}
	return l.recordPasses(ctx, actor, cmds)
}

// passJob is one pass of a call on its way through recordPasses.
type passJob struct {
	cmd     domain.RecordPass
	eventID uuid.UUID
	idHash  string // a manual entry's document hash
	venue   domain.VenueView
	// sameAs is the index of an earlier item of the same call with the same
	// event id (-1: none); this item then answers as that one's duplicate.
	sameAs int
	err    error
	// done: the answer is already known (a stored duplicate).
	done   bool
	result PassResult
	// envs are the job's events for the group commit: its pass, then each
	// dependant's pass; recs are their payloads.
	envs  []domain.Envelope
	recs  []domain.PassRecorded
	first int // index of envs[0] in the Record call
}

// recordPasses is the pass command: gather the facts of every pass of the
// call in one read, decide each with the domain's pure rules, and store all
// the accepted ones with one group commit.
func (l *Ledger) recordPasses(ctx context.Context, actor domain.Actor, cmds []domain.RecordPass) ([]BatchItem, error) {
	clock := domain.PassClock{Now: l.now(), ClockSkew: l.clockSkew(), Retention: l.Retention}
	jobs := make([]passJob, len(cmds))
	q := l.passFactsQuery(actor, cmds, jobs, clock)
	if err := l.Own.reach(ctx); err != nil {
		return nil, fmt.Errorf("wait for this replica's writes: %w", err)
	}
	defer l.Fence.write()()
	facts, err := l.Reads.PassFacts(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read the facts of %d passes: %w", len(cmds), err)
	}
	l.Fence.overlay(&facts)
	if err := l.storedFamily(ctx, jobs, &facts); err != nil {
		return nil, err
	}

	// Decide each pass. A client event id already stored (a retry, also
	// one older than JetStream's duplicate window) answers with its
	// original result.
	for i := range jobs {
		j := &jobs[i]
		if j.sameAs >= 0 || j.err != nil {
			continue
		}
		if j.venue, j.err = domain.AdmitPass(actor, j.cmd, &facts); j.err != nil {
			continue
		}
		if j.eventID == uuid.Nil {
			if j.eventID, err = uuid.NewV7(); err != nil {
				return nil, fmt.Errorf("new pass event id: %w", err)
			}
		} else if pv, ok := facts.Stored[j.eventID]; ok {
			if j.err = domain.CheckPassRetry(actor, j.cmd, j.idHash, pv, &facts, clock); j.err == nil {
				j.result, j.done = storedResult(j.cmd, pv, &facts), true
			}
			continue
		}
		j.envs, j.recs, j.err = domain.DecideNewPass(actor, j.cmd, j.venue, j.eventID, j.idHash, &facts, clock)
	}

	// One group commit for every event of the call.
	var envs []domain.Envelope
	for i := range jobs {
		j := &jobs[i]
		if j.err == nil && len(j.envs) > 0 {
			j.first = len(envs)
			envs = append(envs, j.envs...)
		}
	}
	var appended []Appended
	if len(envs) > 0 {
		if appended, err = l.record(ctx, "pass events", envs...); err != nil {
			return nil, err
		}
	}

	items := make([]BatchItem, len(cmds))
	for i := range jobs {
		j := &jobs[i]
		switch {
		case j.sameAs >= 0:
			items[i] = items[j.sameAs]
			if items[i].Err == nil {
				items[i].Status = domain.BatchDuplicate
				items[i].Result.Duplicate = true
			}
		case j.err != nil:
			items[i] = BatchItem{EventID: j.cmd.EventID, Status: domain.BatchRejected, Err: j.err}
		case j.done:
			items[i] = BatchItem{EventID: j.eventID, Status: domain.BatchDuplicate, Result: j.result}
		default:
			res, err := l.appendedResult(ctx, j, appended[j.first:j.first+len(j.envs)], &facts)
			if errors.Is(err, domain.ErrConflict) {
				items[i] = BatchItem{EventID: j.cmd.EventID, Status: domain.BatchRejected, Err: err}
				continue
			}
			if err != nil {
				return nil, err
			}
			status := domain.BatchAccepted
			if res.Duplicate {
				status = domain.BatchDuplicate
			}
			items[i] = BatchItem{EventID: j.eventID, Status: status, Result: res}
		}
	}
	return items, nil
}

// passFactsQuery sets up the call's jobs and names every fact they need:
// their venues, the persons they name (by id, or by a manual entry's
// document hash) and their client event ids with their family passes'.
func (l *Ledger) passFactsQuery(actor domain.Actor, cmds []domain.RecordPass, jobs []passJob, clock domain.PassClock) PassFactsQuery {
	var q PassFactsQuery
	seen := make(map[uuid.UUID]int, len(cmds))
	for i, cmd := range cmds {
		j := &jobs[i]
		if cmd.CodeID != "" {
			// One personal code, one pass per venue and direction.
			cmd.EventID = domain.CodePassEventID(cmd.CodeID, cmd.VenueID, cmd.Direction)
		}
		*j = passJob{cmd: cmd, eventID: cmd.EventID, sameAs: -1}
		if cmd.EventID != uuid.Nil {
			if k, ok := seen[cmd.EventID]; ok {
				j.sameAs = k
				if !domain.SameRecordPass(cmd, jobs[k].cmd) && cmd.CodeID == "" {
					j.sameAs, j.err = -1, domain.Errorf(domain.ErrConflict, "event id %s is used by an earlier item of this batch for another pass", cmd.EventID)
				}
				continue
			}
			seen[cmd.EventID] = i
			q.EventIDs = append(q.EventIDs, cmd.EventID)
			for _, m := range cmd.FamilyMemberIDs {
				q.EventIDs = append(q.EventIDs, domain.FamilyPassEventID(cmd.EventID, m))
			}
		}
		q.Venues = append(q.Venues, cmd.VenueID)
		switch cmd.Method {
		case domain.MethodManual:
			if number, err := domain.PassDocument(cmd, clock.Now); err == nil {
				j.idHash = l.Hasher.IDHash(cmd.IDType, number)
				q.IDHashes = append(q.IDHashes, j.idHash)
				// The person it derives too: a retry of the pass of a
				// person erased since answers without their name.
				q.Persons = append(q.Persons, pii.PersonID(j.idHash))
			}
		case domain.MethodSelfScan:
			q.Persons = append(q.Persons, actor.PersonID)
		case domain.MethodStaffScan:
			q.Persons = append(q.Persons, cmd.PersonID)
		}
		q.Persons = append(q.Persons, cmd.FamilyMemberIDs...)
	}
	return q
}

// storedFamily adds to facts the stored passes of the family members a
// retried pass (a job whose event id is stored) was made with but the retry
// does not name, so that CheckPassRetry sees a retry with fewer members
// (the first read only looked up the named ones'). One more read, only when
// a call retries a pass of a guardian.
func (l *Ledger) storedFamily(ctx context.Context, jobs []passJob, facts *domain.PassFacts) error {
	var ids []uuid.UUID
	for i := range jobs {
		j := &jobs[i]
		pv, ok := facts.Stored[j.eventID]
		if j.eventID == uuid.Nil || j.sameAs >= 0 || j.err != nil || !ok {
			continue
		}
		for _, m := range facts.Persons[pv.Pass.PersonID].FamilyMembers {
			if !slices.Contains(j.cmd.FamilyMemberIDs, m) {
				ids = append(ids, domain.FamilyPassEventID(j.eventID, m))
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	more, err := l.Reads.PassFacts(ctx, PassFactsQuery{EventIDs: ids})
	if err != nil {
		return fmt.Errorf("read %d family passes of retried passes: %w", len(ids), err)
	}
	maps.Copy(facts.Stored, more.Stored)
	return nil
}

// storedResult answers a retry of stored pass pv with its original result,
// and those of the family members who passed with it.
func storedResult(cmd domain.RecordPass, pv domain.PassView, f *domain.PassFacts) PassResult {
	p := pv.Pass
	res := PassResult{EventID: pv.EventID, Position: pv.Position, Decision: p.Decision,
		Screen: f.AnswerScreen(p.Screen, p.PersonID), Duplicate: true}
	for _, member := range cmd.FamilyMemberIDs {
		if fv, ok := f.Stored[domain.FamilyPassEventID(pv.EventID, member)]; ok {
			res.Family = append(res.Family, PassResult{EventID: fv.EventID, Position: fv.Position,
				Decision: fv.Pass.Decision, Screen: f.AnswerScreen(fv.Pass.Screen, fv.Pass.PersonID), Duplicate: true})
		}
	}
	return res
}

// appendedResult turns where a job's events landed into its answer. A pass
// the store already held (a retry inside JetStream's duplicate window)
// answers with the stored original, not with what was decided just now.
// The screens get the masked names the facts hold (the log has none).
func (l *Ledger) appendedResult(ctx context.Context, j *passJob, appended []Appended, f *domain.PassFacts) (PassResult, error) {
	results := make([]PassResult, 0, len(j.recs))
	for i, rec := range j.recs {
		a := appended[i]
		r := PassResult{EventID: j.envs[i].ID, Position: a.Position, Decision: rec.Decision, Screen: f.AnswerScreen(rec.Screen, rec.PersonID)}
		if a.Duplicate {
			orig, err := l.originalPass(ctx, a.Position)
			if err != nil {
				return PassResult{}, err
			}
			if !domain.SamePass(orig, rec, !j.cmd.OccurredAt.IsZero() && j.cmd.CodeID == "") {
				return PassResult{}, domain.Errorf(domain.ErrConflict, "event id %s was already used for another pass", j.envs[i].ID)
			}
			r.Decision, r.Screen, r.Duplicate = orig.Decision, f.AnswerScreen(orig.Screen, orig.PersonID), true
		} else if l.Metrics != nil {
			l.Metrics.PassRecorded(rec.Method, rec.Decision)
		}
		results = append(results, r)
	}
	main := results[0]
	if len(results) > 1 {
		main.Family = results[1:]
	}
	return main, nil
}

// originalPass reads the pass stored at position.
func (l *Ledger) originalPass(ctx context.Context, position uint64) (domain.PassRecorded, error) {
	env, err := l.Events.Get(ctx, position)
	if err != nil {
		return domain.PassRecorded{}, fmt.Errorf("get original pass at %d: %w", position, err)
	}
	ev, err := domain.Decode(env)
	if err != nil {
		return domain.PassRecorded{}, err
	}
	p, ok := ev.(*domain.PassRecorded)
	if !ok {
		// The id names another kind of event: an event id names one fact.
		return domain.PassRecorded{}, domain.Errorf(domain.ErrConflict, "event id %s was already used for a %s", env.ID, env.Type)
	}
	return *p, nil
}
