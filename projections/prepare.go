package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/checkin-ledger/ledger/domain"
	"github.com/checkin-ledger/ledger/domain/pii"
	"github.com/checkin-ledger/ledger/ledger"
	"github.com/google/uuid"
)

// Opener decrypts one sealed personal field of a person. It returns an error
// wrapping domain.ErrNotFound or pii.ErrOpen when the person's key is gone
// (erasure); the projector then stores the erased masks.
type Opener func(ctx context.Context, personID uuid.UUID, s domain.Sealed) (string, error)

// openerCacheSize bounds the keys KeyringOpener keeps: a replay meets each
// person's registration once or twice, so a small cache serves the
// registration and its family members without holding every key in memory.
const openerCacheSize = 4096

// KeyringOpener returns an Opener that fetches the person's data key from k
// (never creating one) and opens the value with pii.Open. Recently used keys
// are cached.
//
// Only a destroyed key (domain.ErrNotFound, or a key that does not open the
// value) is erasure. Any other failure to
// get a key — a key the keyring has no trace of (eventstore.ErrKeyMissing), a
// timeout — is retried with backoff for up to keyRetryFor and then returned,
// so the projector stops at that event instead of storing blank masks for a
// person who exists (issue 10: a lagging key read once did, and passes then
// copied the blank name from the person read model into the log).
func KeyringOpener(k ledger.Keyring) Opener {
	var (
		mu    sync.Mutex
		cache = make(map[uuid.UUID][]byte)
	)
	return func(ctx context.Context, personID uuid.UUID, s domain.Sealed) (string, error) {
		if s == "" {
			return "", nil
		}
		mu.Lock()
		key, ok := cache[personID]
		mu.Unlock()
		if !ok {
			var err error
			key, err = keyWithRetry(ctx, k, personID)
			if err != nil {
				return "", fmt.Errorf("open sealed field of person %s: %w", personID, err)
			}
			mu.Lock()
			if len(cache) >= openerCacheSize {
				clear(cache)
			}
			cache[personID] = key
			mu.Unlock()
		}
		v, err := pii.Open(key, string(s))
		if err != nil {
			return "", fmt.Errorf("open sealed field of person %s: %w", personID, err)
		}
		return v, nil
	}
}

// keyRetryFor bounds how long KeyringOpener retries a key it could not get
// for a reason other than erasure.
const keyRetryFor = 10 * time.Second

// keyWithRetry gets personID's key, retrying what is not erasure.
func keyWithRetry(ctx context.Context, k ledger.Keyring, personID uuid.UUID) ([]byte, error) {
	deadline := time.Now().Add(keyRetryFor)
	wait := 20 * time.Millisecond
	for {
		key, err := k.Key(ctx, personID, false)
		if err == nil || erased(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return key, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, err
		}
		wait = min(2*wait, time.Second)
	}
}

// ErrDecode marks an event the projector could not decode. It is permanent:
// the projector stops instead of skipping the event.
var ErrDecode = errors.New("projections: cannot decode event")

// Prepare decodes envs into changes, masking personal fields with open (nil:
// every person is treated as erased). A decoding failure wraps ErrDecode and,
// for an unknown type or newer schema version, domain.ErrUnknownEvent.
func Prepare(ctx context.Context, envs []domain.Envelope, open Opener) ([]Change, error) {
	out, err := preparePrefix(ctx, envs, open)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// preparePrefix decodes envs up to the first failure and returns the
// changes before it with the failure.
func preparePrefix(ctx context.Context, envs []domain.Envelope, open Opener) ([]Change, error) {
	out := make([]Change, len(envs))
	for i := range envs {
		if err := prepareOne(ctx, &envs[i], open, &out[i]); err != nil {
			return out[:i], err
		}
	}
	return out, nil
}

func prepareOne(ctx context.Context, e *domain.Envelope, open Opener, c *Change) error {
	ev, err := domain.Decode(*e)
	if err != nil {
		return fmt.Errorf("project event at %d: %w: %w", e.Position, ErrDecode, err)
	}
	*c = Change{
		EventID:    e.ID,
		Type:       e.Type,
		Aggregate:  e.Aggregate,
		Position:   e.Position,
		OccurredAt: e.OccurredAt,
		RecordedAt: e.RecordedAt,
		Actor:      e.Actor,
		Event:      ev,
	}
	if pr, ok := ev.(*domain.PersonRegistered); ok {
		m, err := Mask(ctx, pr, open)
		if err != nil {
			return fmt.Errorf("project event at %d: %w", e.Position, err)
		}
		c.Masks = m
	}
	if tp, ok := ev.(*domain.TruckPassDeclared); ok {
		m, err := MaskContact(ctx, tp, open)
		if err != nil {
			return fmt.Errorf("project event at %d: %w", e.Position, err)
		}
		c.Contact = m
		if c.Declared.PlateNumber, err = openDeclared(ctx, open, tp.PersonID, tp.PlateNumber, tp.ClearPlateNumber); err != nil {
			return fmt.Errorf("project event at %d: plate number: %w", e.Position, err)
		}
	}
	if ad, ok := ev.(*domain.ArrivalDeclared); ok {
		if c.Declared.Origin, err = openDeclared(ctx, open, ad.PersonID, ad.Origin, ad.ClearOrigin); err != nil {
			return fmt.Errorf("project event at %d: origin: %w", e.Position, err)
		}
	}
	return nil
}

// openDeclared opens a declaration's sealed field with the declarant's key,
// or answers clear (a v1 event's clear value) when nothing is sealed. A
// destroyed key gives ""; any other error is returned.
func openDeclared(ctx context.Context, open Opener, declarant uuid.UUID, sealed domain.Sealed, clear string) (string, error) {
	if sealed == "" {
		return clear, nil
	}
	if open == nil {
		return "", nil
	}
	v, err := open(ctx, declarant, sealed)
	if erased(err) {
		return "", nil
	}
	return v, err
}

// MaskContact opens a truck pass's contact (sealed with the driver's key)
// and returns its masks. A destroyed key gives the erased masks; any other
// error is returned.
func MaskContact(ctx context.Context, tp *domain.TruckPassDeclared, open Opener) (ContactMasks, error) {
	if open == nil {
		return ErasedContact, nil
	}
	name, err := open(ctx, tp.PersonID, tp.ContactName)
	if err == nil {
		var phone string
		if phone, err = open(ctx, tp.PersonID, tp.ContactPhone); err == nil {
			return ContactMasks{Name: pii.MaskName(name), Phone: pii.MaskPhone(phone)}, nil
		}
	}
	if erased(err) {
		return ErasedContact, nil
	}
	return ContactMasks{}, fmt.Errorf("mask contact of declaration %s: %w", tp.DeclarationID, err)
}

// Mask opens a registration's name and ID number and returns their masks.
// A destroyed key (domain.ErrNotFound, pii.ErrOpen) gives ErasedMasks; any
// other error is returned.
func Mask(ctx context.Context, pr *domain.PersonRegistered, open Opener) (PersonMasks, error) {
	if open == nil {
		return ErasedMasks, nil
	}
	name, err := open(ctx, pr.PersonID, pr.Name)
	var id string
	if err == nil {
		id, err = open(ctx, pr.PersonID, pr.IDNumber)
	}
	switch {
	case err == nil:
		return PersonMasks{Name: pii.MaskName(name), IDNumber: pii.MaskID(id)}, nil
	case erased(err):
		return ErasedMasks, nil
	}
	return PersonMasks{}, fmt.Errorf("mask person %s: %w", pr.PersonID, err)
}

// erased reports a destroyed key: not found (but not merely missing) or
// not opening the value.
func erased(err error) bool {
	return errors.Is(err, domain.ErrNotFound) && !missingKey(err) || errors.Is(err, pii.ErrOpen)
}

// missingKey reports a keyring's "no key, and none destroyed"
// (eventstore.ErrKeyMissing, recognised by its KeyMissing method): it
// matches domain.ErrNotFound, but a missing key is never erasure.
func missingKey(err error) bool {
	return errors.As(err, new(interface{ KeyMissing() bool }))
}
