package eventstore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoMasterKey is returned by Key and Destroy when the store was opened
// without a MasterKey.
var ErrNoMasterKey = errors.New("eventstore: no master key configured")

// ErrKeyCorrupt is returned by Key when a stored data key cannot be
// unsealed: the master key is not the one that sealed it, or the value was
// altered.
var ErrKeyCorrupt = errors.New("eventstore: data key cannot be unsealed")

// ErrKeyMissing is returned by Key (create false) when the bucket holds
// nothing at all for the person: no key and no tombstone of a destroyed one.
// It matches domain.ErrNotFound (the port's "no key"), but a missing key is
// never erasure: a reader that took it for one would store blank masks for a
// person who exists. Its KeyMissing method lets a reader that does not
// import this package (projections.KeyringOpener) tell it from a destroyed
// key, and retry or report it.
var ErrKeyMissing error = keyMissingError{}

type keyMissingError struct{}

func (keyMissingError) Error() string {
	return "eventstore: no data key stored for this person, and none destroyed"
}

// Is makes ErrKeyMissing match domain.ErrNotFound.
func (keyMissingError) Is(target error) bool { return target == domain.ErrNotFound }

// KeyMissing marks the error as "missing, not destroyed".
func (keyMissingError) KeyMissing() bool { return true }

// Key returns the data key of subject (a person), creating it when create is
// true and none exists. Without create: an error wrapping
// domain.ErrNotFound after Destroy (the key's tombstone is there), and
// ErrKeyMissing (which matches domain.ErrNotFound too) when there never was
// a key.
//
// Reads are consistent: they go through the bucket's stream leader (a
// JetStream "message get" request, not the KV's direct get, which any
// replica answers and a lagging one answers "not found" right after the key
// was created), so a key whose creation was acknowledged is always found.
// Two concurrent creators get the same key: the KV create is
// compare-and-set, and the loser reads the winner's key.
//
// Keys are stored in the LEDGER_KEYS bucket sealed with the master key
// (AES-256-GCM, the subject id as additional data, so a sealed key copied
// onto another subject does not open).
func (s *Store) Key(ctx context.Context, subject uuid.UUID, create bool) ([]byte, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if s.o.MasterKey == nil {
		return nil, ErrNoMasterKey
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	name := subject.String()
	key, err := s.getKey(ctx, name)
	if err == nil || !create || !errors.Is(err, domain.ErrNotFound) {
		return key, err
	}
	key, err = pii.NewKey()
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	sealed, err := s.sealKey(name, key)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	if err := s.untilAnswered(ctx, func(ctx context.Context) error {
		_, err := s.kv.Create(ctx, name, sealed)
		return err
	}); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return s.getKeyStored(ctx, name) // another creator won, or an attempt lost in a failover stored it
		}
		return nil, fmt.Errorf("key %s: create: %w", name, err)
	}
	return key, nil
}

// getKeyStored is getKey for a key the bucket has said it holds (a create
// refused as existing): a read reaching a stream leader that has not yet
// applied it (just elected in a failover) answers "missing", so missing is
// read again, with backoff, until WriteTimeout or ctx's deadline.
func (s *Store) getKeyStored(ctx context.Context, name string) ([]byte, error) {
	deadline := time.Now().Add(s.o.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	wait := 10 * time.Millisecond
	for {
		key, err := s.getKey(ctx, name)
		if !errors.Is(err, ErrKeyMissing) || !time.Now().Before(deadline) {
			return key, err
		}
		sleep(wait, deadline)
		wait = min(2*wait, 250*time.Millisecond)
	}
}

func (s *Store) getKey(ctx context.Context, name string) ([]byte, error) {
	var value []byte
	err := s.untilAnswered(ctx, func(ctx context.Context) (err error) {
		value, err = s.leaderGetKey(ctx, name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	key, err := s.openKey(name, value)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	return key, nil
}

// kvMsgGet is the answer to a JetStream message get request.
type kvMsgGet struct {
	Error   *apiError `json:"error"`
	Message *struct {
		Seq  uint64 `json:"seq"`
		Hdrs []byte `json:"hdrs"`
		Data []byte `json:"data"`
	} `json:"message"`
}

// errCodeMessageNotFound is JetStream's "no message found".
const errCodeMessageNotFound = 10037

// leaderGetKey reads the last value of a key through the stream leader
// ($JS.API.STREAM.MSG.GET, which only the leader answers). It returns the
// value; domain.ErrNotFound for a key deleted or purged (Destroy's
// tombstone); ErrKeyMissing when the bucket has no message for it at all.
func (s *Store) leaderGetKey(ctx context.Context, name string) ([]byte, error) {
	value, _, err := s.leaderGetKeyRevision(ctx, name)
	return value, err
}

// isTombstone reports whether a KV message's headers mark a DEL or PURGE:
// the key was destroyed.
func isTombstone(hdrs []byte) bool { return bytes.Contains(hdrs, []byte("KV-Operation")) }

// Destroy deletes subject's data key and purges every stored revision of
// it, so the personal data sealed with it can no longer be read. Each
// revision holding a key is first overwritten in JetStream's files (a
// secure delete: a purge alone only marks messages deleted, and their bytes
// stay in the block files until compacted, readable with the master key);
// the purge then leaves the tombstone that tells a destroyed key from a
// missing one (also for a key that never existed: destroyed, it reads as
// erased). Destroying a key already destroyed is not an error.
func (s *Store) Destroy(ctx context.Context, subject uuid.UUID) error {
	if s.isClosed() {
		return ErrClosed
	}
	if s.o.MasterKey == nil {
		return ErrNoMasterKey
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	name := subject.String()
	err := s.untilAnswered(ctx, func(ctx context.Context) error {
		history, err := s.kv.History(ctx, name)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("history: %w", err)
		}
		var stream jetstream.Stream
		for _, e := range history {
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if stream == nil {
				if stream, err = s.js.Stream(ctx, keyStream); err != nil {
					return fmt.Errorf("key stream: %w", err)
				}
			}
			if stream.CachedInfo().Config.DenyDelete {
				s.log.Warn("key bucket denies deletes (made by an earlier build): the destroyed key is purged, not overwritten in its files",
					"bucket", KeyBucket)
				break
			}
			if err := stream.SecureDeleteMsg(ctx, e.Revision()); err != nil {
				// A concurrent Destroy may have overwritten it first.
				if _, gerr := stream.GetMsg(ctx, e.Revision()); !errors.Is(gerr, jetstream.ErrMsgNotFound) {
					return fmt.Errorf("overwrite revision %d: %w", e.Revision(), err)
				}
			}
		}
		if len(history) > 0 && history[len(history)-1].Operation() == jetstream.KeyValuePurge {
			return nil // destroyed before: the tombstone is there
		}
		return s.kv.Purge(ctx, name)
	})
	if err != nil {
		return fmt.Errorf("destroy key %s: %w", subject, err)
	}
	return nil
}

func (s *Store) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(s.o.MasterKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (s *Store) sealKey(name string, key []byte) ([]byte, error) {
	aead, err := s.aead()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(key)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, key, []byte(name)), nil
}

func (s *Store) openKey(name string, sealed []byte) ([]byte, error) {
	aead, err := s.aead()
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, ErrKeyCorrupt
	}
	key, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(name))
	if err != nil {
		return nil, ErrKeyCorrupt
	}
	return key, nil
}
