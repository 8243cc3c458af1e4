package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/ledger"
)

// The audit chain's storage: its entries are one versioned aggregate
// (domain.AuditChainAggregate, one message each on its own subject, appended
// with Append at the head's version), and its head is anchored outside the
// stream, in the key bucket under AuditAnchorKey, sealed with the master key
// like a data key: a copy of the stream cannot forge or move it.

var _ ledger.AuditLog = (*Store)(nil)

// AuditAnchorKey is the key bucket's key holding the anchored audit head
// (data keys are stored under person ids, which never look like this).
const AuditAnchorKey = "audit.head"

// LoadLast returns aggregate's last event (none when it has no events) and
// its version, as Load would, with one read through the stream leader
// instead of one per event: for an aggregate whose state is its last event
// (the audit chain). Only aggregates written by Append have a last message.
func (s *Store) LoadLast(ctx context.Context, aggregate string) ([]domain.Envelope, uint64, error) {
	subj, packed, err := s.aggregateSubject(aggregate)
	if err != nil {
		return nil, 0, fmt.Errorf("load last: %w", err)
	}
	if packed {
		return nil, 0, fmt.Errorf("load last %s: %w", aggregate, domain.Invalid("aggregate", "a packed kind has no last message of its own"))
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	m, err := s.lastMsg(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load last %s: %w", subj, err)
	}
	e, err := envelopeOf(m)
	if err != nil {
		return nil, 0, fmt.Errorf("load last %s: %w", subj, err)
	}
	return []domain.Envelope{e}, e.Position, nil
}

// ReadAuditChain delivers the audit chain's entries in log order, in
// batches, up to the log's end when it was called.
func (s *Store) ReadAuditChain(ctx context.Context, fn func([]domain.Envelope) error) error {
	return s.Read(ctx, domain.AuditChainAggregate, 0, fn)
}

// AuditAnchor returns the anchor's state (domain.AnchorNone when it was
// never written, AnchorDeleted for a tombstone, AnchorAltered for a value
// that does not open with the master key) and, when stored, its head.
func (s *Store) AuditAnchor(ctx context.Context) (domain.AuditHead, domain.AnchorState, error) {
	head, revision, ok, err := s.auditAnchor(ctx)
	switch {
	case errors.Is(err, ErrKeyCorrupt):
		return domain.AuditHead{}, domain.AnchorAltered, nil
	case err != nil:
		return domain.AuditHead{}, "", err
	case ok:
		return head, domain.AnchorStored, nil
	case revision != 0:
		return domain.AuditHead{}, domain.AnchorDeleted, nil
	}
	return domain.AuditHead{}, domain.AnchorNone, nil
}

// anchorValue reads the anchor's stored value and revision through the
// bucket's leader; domain.ErrNotFound when there is none (ErrKeyMissing
// when it was never written).
func (s *Store) anchorValue(ctx context.Context) (value []byte, revision uint64, err error) {
	err = s.untilAnswered(ctx, func(ctx context.Context) (err error) {
		value, revision, err = s.leaderGetKeyRevision(ctx, AuditAnchorKey)
		return err
	})
	return value, revision, err
}

func (s *Store) auditAnchor(ctx context.Context) (head domain.AuditHead, revision uint64, ok bool, err error) {
	if s.isClosed() {
		return head, 0, false, ErrClosed
	}
	if s.o.MasterKey == nil {
		return head, 0, false, ErrNoMasterKey
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	value, revision, err := s.anchorValue(ctx)
	if errors.Is(err, domain.ErrNotFound) { // never written, or deleted
		return head, revision, false, nil
	}
	if err != nil {
		return head, 0, false, fmt.Errorf("audit anchor: %w", err)
	}
	plain, err := s.openKey(AuditAnchorKey, value)
	if err != nil {
		return head, revision, false, fmt.Errorf("audit anchor: it does not open with the master key (sealed with another root key, or altered): %w", err)
	}
	if err := json.Unmarshal(plain, &head); err != nil {
		return head, revision, false, fmt.Errorf("audit anchor: %w: %w", ErrKeyCorrupt, err)
	}
	return head, revision, true, nil
}

// AnchorAudit moves the anchored head forward to head: written when it is
// past the stored one, left alone otherwise (a slower replica's older head
// never moves it back). Concurrent anchors compare and set on the key's
// revision, and the loser looks again.
func (s *Store) AnchorAudit(ctx context.Context, head domain.AuditHead) error {
	if s.o.ReadOnly {
		return ErrReadOnly
	}
	plain, err := json.Marshal(head)
	if err != nil {
		return err
	}
	// Each lost race is another writer's anchor stored: a few replicas'
	// reactions need few attempts, the bound only stops a livelock.
	for range 64 {
		stored, revision, ok, err := s.auditAnchor(ctx)
		switch {
		case errors.Is(err, ErrKeyCorrupt):
			return fmt.Errorf("%w: %w", ledger.ErrAuditAnchorRemoved, err)
		case err != nil:
			return err
		case !ok && revision != 0:
			return fmt.Errorf("%w: the anchor was deleted (its tombstone is at revision %d)", ledger.ErrAuditAnchorRemoved, revision)
		case ok && stored.Seq >= head.Seq:
			return nil
		}
		sealed, err := s.sealKey(AuditAnchorKey, plain)
		if err != nil {
			return fmt.Errorf("audit anchor: %w", err)
		}
		err = s.untilAnswered(ctx, func(ctx context.Context) error {
			if revision == 0 {
				_, err := s.kv.Create(ctx, AuditAnchorKey, sealed)
				return err
			}
			_, err := s.kv.Update(ctx, AuditAnchorKey, sealed, revision)
			return err
		})
		if err == nil {
			return nil
		}
		// A lost race: Create finds the key made, Update another revision
		// (code 10071 on one node, 10164 on a replicated bucket: nats.go
		// maps both to ErrKeyRevisionMismatch).
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("audit anchor: %w", err)
		}
		// Another writer moved it meanwhile: look again.
	}
	return fmt.Errorf("audit anchor: %w: changed concurrently too often", domain.ErrConflict)
}

// ResetAuditAnchor implements ledger.AuditLog: head becomes the anchor,
// whatever is stored.
func (s *Store) ResetAuditAnchor(ctx context.Context, head domain.AuditHead) error {
	if s.o.ReadOnly {
		return ErrReadOnly
	}
	if s.o.MasterKey == nil {
		return ErrNoMasterKey
	}
	plain, err := json.Marshal(head)
	if err != nil {
		return err
	}
	sealed, err := s.sealKey(AuditAnchorKey, plain)
	if err != nil {
		return fmt.Errorf("audit anchor: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := s.untilAnswered(ctx, func(ctx context.Context) error {
		_, err := s.kv.Put(ctx, AuditAnchorKey, sealed)
		return err
	}); err != nil {
		return fmt.Errorf("reset the audit anchor: %w", err)
	}
	return nil
}

// leaderGetKeyRevision is leaderGetKey with the value's revision (its
// sequence in the bucket's stream): 0 with ErrKeyMissing's
// domain.ErrNotFound when the key was never written, the tombstone's
// revision with domain.ErrNotFound when it was deleted.
func (s *Store) leaderGetKeyRevision(ctx context.Context, name string) ([]byte, uint64, error) {
	req, err := json.Marshal(map[string]string{"last_by_subj": "$KV." + KeyBucket + "." + name})
	if err != nil {
		return nil, 0, err
	}
	reply, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+KeyBucket, req)
	if err != nil {
		return nil, 0, fmt.Errorf("get: %w", err)
	}
	var a kvMsgGet
	if err := json.Unmarshal(reply.Data, &a); err != nil {
		return nil, 0, fmt.Errorf("get: bad answer %q: %w", reply.Data, err)
	}
	switch {
	case a.Error != nil && a.Error.ErrCode == errCodeMessageNotFound:
		return nil, 0, ErrKeyMissing
	case a.Error != nil:
		return nil, 0, fmt.Errorf("get: %w", a.Error)
	case a.Message == nil:
		return nil, 0, fmt.Errorf("get: answer without a message: %q", reply.Data)
	case isTombstone(a.Message.Hdrs):
		return nil, a.Message.Seq, domain.ErrNotFound
	}
	return a.Message.Data, a.Message.Seq, nil
}
