package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/checkin-ledger/ledger/domain"
)

// isDomainError reports whether err is one of the caller-facing kinds, as
// opposed to an internal failure (a store down, a context ended).
func isDomainError(err error) bool {
	return errors.Is(err, domain.ErrInvalid) || errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrConflict) ||
		errors.Is(err, domain.ErrForbidden) || errors.Is(err, domain.ErrUnauthorized)
}

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
	venue   domain.VenueView
	// sameAs is the index of an earlier item of the same call with the same
	// event id (-1: none); this item then answers as that one's duplicate.
	sameAs int
	err    error
	// done: the answer is already known (a stored duplicate).
	done   bool
	result PassResult
	// envs are the job's events for the group commit: its pass, then each
	// dependant's pass.
	envs  []domain.Envelope
	first int       // index of envs[0] in the Record call
	recs  []passEnv // the passes among envs: the main one first
	now   time.Time // the ledger's clock for this call
}

// passEnv is one pass among a job's envelopes.
type passEnv struct {
	at  int // index in the job's envs
	rec domain.PassRecorded
}

type venueCache map[uuid.UUID]struct {
	v   domain.VenueView
	err error
}

func (l *Ledger) recordPasses(ctx context.Context, actor domain.Actor, cmds []domain.RecordPass) ([]BatchItem, error) {
	now := l.now()
	memo := venueCache{}
	jobs := make([]passJob, len(cmds))
	seen := make(map[uuid.UUID]int, len(cmds))
	var clientIDs []uuid.UUID

	// Admit: shape, venue and authorisation. Nothing here depends on
	// whether the pass was seen before.
	for i, cmd := range cmds {
		j := &jobs[i]
		*j = passJob{cmd: cmd, eventID: cmd.EventID, sameAs: -1, now: now}
		if cmd.EventID != uuid.Nil {
			if k, ok := seen[cmd.EventID]; ok {
				j.sameAs = k
				continue
			}
			seen[cmd.EventID] = i
		}
		if err := l.admitPass(ctx, actor, j, memo); err != nil {
			if !isDomainError(err) {
				return nil, err
			}
			j.err = err
			continue
		}
		if cmd.EventID != uuid.Nil {
			clientIDs = append(clientIDs, cmd.EventID)
		} else {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("new pass event id: %w", err)
			}
			j.eventID = id
		}
	}

	// Passes already stored (retries, also those older than JetStream's
	// duplicate window) answer with their original result.
	stored, err := l.storedPasses(ctx, clientIDs)
	if err != nil {
		return nil, err
	}

	// Decide each remaining pass.
	for i := range jobs {
		j := &jobs[i]
		if j.sameAs >= 0 || j.err != nil {
			continue
		}
		var err error
		if pv, ok := stored[j.eventID]; ok {
			j.result, err = l.storedResult(ctx, actor, j.cmd, pv)
			j.done = true
		} else {
			err = l.preparePass(ctx, actor, j)
		}
		if err != nil {
			if !isDomainError(err) {
				return nil, err
			}
			j.err = err
		}
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
		appended, err = l.Events.Record(ctx, envs...)
		if err != nil {
			return nil, fmt.Errorf("record %d pass events: %w", len(envs), err)
		}
		if len(appended) != len(envs) {
			return nil, fmt.Errorf("record pass events: store answered %d results for %d events", len(appended), len(envs))
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
			res, err := l.appendedResult(ctx, j, appended[j.first:j.first+len(j.envs)])
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

// admitPass checks a pass's shape, finds its venue and authorises the actor there.
func (l *Ledger) admitPass(ctx context.Context, actor domain.Actor, j *passJob, memo venueCache) error {
	if err := domain.ValidatePassShape(j.cmd); err != nil {
		return err
	}
	c, ok := memo[j.cmd.VenueID]
	if !ok {
		c.v, c.err = l.Reads.Venue(ctx, j.cmd.VenueID)
		if c.err != nil {
			c.err = fmt.Errorf("venue %s: %w", j.cmd.VenueID, c.err)
		}
		memo[j.cmd.VenueID] = c
	}
	if c.err != nil {
		return c.err
	}
	j.venue = c.v
	return domain.AuthorisePass(actor, j.cmd.Method, j.venue)
}

// storedPasses looks up passes by event id in the read model, in one call.
func (l *Ledger) storedPasses(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]domain.PassView, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	found, err := l.Reads.Passes(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("look up %d stored passes: %w", len(ids), err)
	}
	return found, nil
}

// storedResult answers a retry of a stored pass with its original result,
// after checking the retry is about the same pass.
func (l *Ledger) storedResult(ctx context.Context, actor domain.Actor, cmd domain.RecordPass, pv domain.PassView) (PassResult, error) {
	p := pv.Pass
	if p.VenueID != cmd.VenueID {
		return PassResult{}, domain.Errorf(domain.ErrConflict, "event id %s was already used for a pass at another venue", pv.EventID)
	}
	if cmd.Method == domain.MethodSelfScan && p.PersonID != actor.PersonID && p.GuardianID != actor.PersonID {
		return PassResult{}, domain.Errorf(domain.ErrConflict, "event id %s was already used for another person's pass", pv.EventID)
	}
	res := PassResult{EventID: pv.EventID, Position: pv.Position, Decision: p.Decision, Screen: p.Screen, Duplicate: true}
	for _, member := range cmd.FamilyMemberIDs {
		id := domain.FamilyPassEventID(pv.EventID, member)
		fv, ok, err := l.Reads.Pass(ctx, id)
		if err != nil {
			return PassResult{}, fmt.Errorf("look up stored pass %s: %w", id, err)
		}
		if ok {
			res.Family = append(res.Family, PassResult{EventID: id, Position: fv.Position,
				Decision: fv.Pass.Decision, Screen: fv.Pass.Screen, Duplicate: true})
		}
	}
	return res, nil
}

// preparePass decides a new pass (and its dependants') and builds its events.
func (l *Ledger) preparePass(ctx context.Context, actor domain.Actor, j *passJob) error {
	cmd := j.cmd
	at := cmd.OccurredAt
	if at.IsZero() {
		at = j.now
	}
	if err := domain.ValidateOccurredAt(at, j.now, l.clockSkew(), l.Retention); err != nil {
		return err
	}
	if j.venue.Status != domain.VenueStatusApproved {
		return domain.Errorf(domain.ErrConflict, "venue %s is %s: only approved venues take passes", j.venue.ID, j.venue.Status)
	}
	person, err := l.passPerson(ctx, actor, cmd, j.now)
	if err != nil {
		return err
	}
	members := make([]domain.PersonView, 0, len(cmd.FamilyMemberIDs))
	for _, id := range cmd.FamilyMemberIDs {
		m, err := l.Reads.Person(ctx, id)
		if err != nil {
			return fmt.Errorf("family member %s: %w", id, err)
		}
		if m.GuardianID != person.ID {
			return domain.Errorf(domain.ErrForbidden, "person %s is not a family member of the scanning person", id)
		}
		members = append(members, m)
	}
	operator := ""
	if cmd.Method != domain.MethodSelfScan {
		operator = actor.Subject
	}
	if err := l.addPass(ctx, actor, j, j.eventID, person, uuid.Nil, operator, at); err != nil {
		return err
	}
	for _, m := range members {
		if err := l.addPass(ctx, actor, j, domain.FamilyPassEventID(j.eventID, m.ID), m, person.ID, operator, at); err != nil {
			return err
		}
	}
	return nil
}

// passPerson finds the person a pass is about.
func (l *Ledger) passPerson(ctx context.Context, actor domain.Actor, cmd domain.RecordPass, now time.Time) (domain.PersonView, error) {
	switch cmd.Method {
	case domain.MethodSelfScan:
		if cmd.PersonID != uuid.Nil && cmd.PersonID != actor.PersonID {
			return domain.PersonView{}, domain.Errorf(domain.ErrForbidden, "a self scan records the scanning person only")
		}
		p, err := l.Reads.Person(ctx, actor.PersonID)
		if err != nil {
			return domain.PersonView{}, fmt.Errorf("person %s: %w", actor.PersonID, err)
		}
		return p, nil
	case domain.MethodStaffScan:
		if cmd.PersonID == uuid.Nil {
			return domain.PersonView{}, domain.Invalid("personal_code", "is required for a staff scan")
		}
		p, err := l.Reads.Person(ctx, cmd.PersonID)
		if err != nil {
			return domain.PersonView{}, fmt.Errorf("person %s: %w", cmd.PersonID, err)
		}
		return p, nil
	default: // domain.MethodManual
		number, err := domain.ValidateDocument("id_type", "id_number", cmd.IDType, cmd.IDNumber, now)
		if err != nil {
			return domain.PersonView{}, err
		}
		p, err := l.Reads.PersonByIDHash(ctx, l.Hasher.IDHash(cmd.IDType, number))
		if errors.Is(err, domain.ErrNotFound) {
			return domain.PersonView{}, domain.Errorf(domain.ErrNotFound, "no registered person holds this %s document", cmd.IDType)
		}
		if err != nil {
			return domain.PersonView{}, fmt.Errorf("person by %s document: %w", cmd.IDType, err)
		}
		return p, nil
	}
}

// addPass decides one person's pass and adds its events to the job.
func (l *Ledger) addPass(ctx context.Context, actor domain.Actor, j *passJob, eventID uuid.UUID, person domain.PersonView, guardian uuid.UUID, operator string, at time.Time) error {
	var health *domain.HealthView
	if person.IDHash != "" {
		h, ok, err := l.Reads.Health(ctx, person.IDHash)
		if err != nil {
			return fmt.Errorf("health of person %s: %w", person.ID, err)
		}
		if ok {
			health = &h
		}
	}
	decision, reason := domain.DecidePass(j.venue, person, health, at)
	rec := domain.PassRecorded{
		VenueID:    j.venue.ID,
		PersonID:   person.ID,
		Direction:  j.cmd.Direction,
		Method:     j.cmd.Method,
		Decision:   decision,
		Reason:     reason,
		Operator:   operator,
		GuardianID: guardian,
		Screen:     domain.BuildScreen(j.venue, person, health, at, j.cmd.Direction, decision, reason),
	}
	meta := domain.Meta{ID: eventID, OccurredAt: at, Actor: actor.Subject, CorrelationID: j.eventID.String()}
	env, err := domain.NewEnvelope(domain.PassAggregate(j.venue.ID, person.ID), rec, meta, j.now)
	if err != nil {
		return err
	}
	j.recs = append(j.recs, passEnv{at: len(j.envs), rec: rec})
	j.envs = append(j.envs, env)
	// An abnormal pass is reported to the district by the reactions
	// (Ledger.RaiseAlerts), which follow the log: the pass is acknowledged
	// without waiting for its alert.
	return nil
}

// appendedResult turns where a job's events landed into its answer. A pass
// the store already held (a retry inside JetStream's duplicate window)
// answers with the stored original, not with what was decided just now.
func (l *Ledger) appendedResult(ctx context.Context, j *passJob, appended []Appended) (PassResult, error) {
	results := make([]PassResult, 0, len(j.recs))
	for _, pe := range j.recs {
		a := appended[pe.at]
		r := PassResult{EventID: j.envs[pe.at].ID, Position: a.Position, Decision: pe.rec.Decision, Screen: pe.rec.Screen}
		if a.Duplicate {
			orig, err := l.originalPass(ctx, a.Position)
			if err != nil {
				return PassResult{}, err
			}
			r.Decision, r.Screen, r.Duplicate = orig.Decision, orig.Screen, true
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
		return domain.PassRecorded{}, fmt.Errorf("get original pass at %d: found %s", position, env.Type)
	}
	return *p, nil
}
