package eventstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

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

// Key returns the data key of subject (a person), creating it when create is
// true and none exists; domain.ErrNotFound otherwise (also after Destroy).
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
	if err == nil || !errors.Is(err, domain.ErrNotFound) || !create {
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
	if _, err := s.kv.Create(ctx, name, sealed); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return s.getKey(ctx, name) // another creator won
		}
		return nil, fmt.Errorf("key %s: create: %w", name, err)
	}
	return key, nil
}

func (s *Store) getKey(ctx context.Context, name string) ([]byte, error) {
	e, err := s.kv.Get(ctx, name)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return nil, fmt.Errorf("key %s: %w", name, domain.ErrNotFound)
		}
		return nil, fmt.Errorf("key %s: get: %w", name, err)
	}
	key, err := s.openKey(name, e.Value())
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	return key, nil
}

// Destroy deletes subject's data key and purges every stored revision of
// it, so the personal data sealed with it can no longer be read. Destroying
// a key that does not exist is not an error.
func (s *Store) Destroy(ctx context.Context, subject uuid.UUID) error {
	if s.isClosed() {
		return ErrClosed
	}
	if s.o.MasterKey == nil {
		return ErrNoMasterKey
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := s.kv.Purge(ctx, subject.String()); err != nil {
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
