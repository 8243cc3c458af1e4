package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Setting up the stream, the key bucket and the poison queue.
//
// Replicas of the ledger start together on a fresh cluster, and concurrent
// creation of one stream can hang nats-server (issue 10: two replicas both
// gave up after 10s). So each asset is looked up first and created only
// when missing; "already exists" from a creator that lost the race is a
// reason to look again, not an error; and every failed or timed-out attempt
// (no JetStream meta leader yet, the cluster still forming) is retried with
// exponential backoff and jitter until StartTimeout.
//
// An existing asset keeps its replica count: a different Options.Replicas
// is logged and left alone unless ApplyReplicas is set, so that a command
// that forgot --replicas cannot shrink a cluster. A ReadOnly store changes
// nothing at all. Other settings the ledger depends on (subjects, TTL,
// atomic batches, duplicate window, deny delete) are updated when they
// differ, by a store that writes.

// setupAttempt bounds one request of the set-up; a hung create is retried.
const setupAttempt = 5 * time.Second

// retrySetup calls try until it succeeds, fails permanently, or the
// start-up deadline passes, sleeping with backoff and jitter in between.
func (s *Store) retrySetup(ctx context.Context, what string, try func(ctx context.Context) (done bool, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, s.o.StartTimeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, setupAttempt)
		done, err := try(actx)
		acancel()
		if done {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("eventstore: %s: gave up after %s: %w", what, s.o.StartTimeout, err)
		}
		sleep := wait/2 + rand.N(wait)
		s.log.Warn("set-up retried", "what", what, "attempt", attempt, "in", sleep, "err", err)
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return fmt.Errorf("eventstore: %s: gave up after %s: %w", what, s.o.StartTimeout, err)
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// asset is one JetStream asset the set-up finds or creates (ensure): the
// log's stream, the poison queue's, the key bucket.
type asset[T any] struct {
	kind, name string // "stream", "LEDGER": for errors and the log
	replicas   int
	// notFound is the error look returns when there is none.
	notFound error
	look     func(context.Context) (T, error)
	// found checks an existing asset against what the ledger wants and
	// updates it; an error is retried.
	found func(context.Context, T) (T, error)
	// create makes it; an error (lost a race with another store) is retried
	// by looking again.
	create func(context.Context) (T, error)
}

// ensure finds the asset and checks it, or creates it (never in ReadOnly),
// retrying as retrySetup does.
func ensure[T any](ctx context.Context, s *Store, a asset[T]) (T, error) {
	var t T
	what := a.kind + " " + a.name
	err := s.retrySetup(ctx, what, func(ctx context.Context) (bool, error) {
		var err error
		t, err = a.look(ctx)
		switch {
		case err == nil:
			t, err = a.found(ctx, t)
			return err == nil, err
		case errors.Is(err, a.notFound):
			if s.o.ReadOnly {
				return true, fmt.Errorf("eventstore: %s does not exist (a read-only open creates nothing)", what)
			}
			if t, err = a.create(ctx); err != nil {
				return false, fmt.Errorf("create %s: %w", what, err) // lost the race: look again
			}
			s.log.Info(a.kind+" created", a.kind, a.name, "replicas", a.replicas)
			return true, nil
		default:
			return false, fmt.Errorf("look up %s: %w", what, err)
		}
	})
	return t, err
}

// ensureStream finds or creates the stream cfg names, as the package
// comment above says.
func (s *Store) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return ensure(ctx, s, asset[jetstream.Stream]{
		kind: "stream", name: cfg.Name, replicas: cfg.Replicas, notFound: jetstream.ErrStreamNotFound,
		look: func(ctx context.Context) (jetstream.Stream, error) { return s.js.Stream(ctx, cfg.Name) },
		found: func(ctx context.Context, st jetstream.Stream) (jetstream.Stream, error) {
			return s.reconcile(ctx, st, cfg)
		},
		create: func(ctx context.Context) (jetstream.Stream, error) { return s.js.CreateStream(ctx, cfg) },
	})
}

// reconcile compares an existing stream with what the ledger wants, reports
// a replica mismatch, and updates what must change (never in ReadOnly).
func (s *Store) reconcile(ctx context.Context, st jetstream.Stream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	have := st.CachedInfo().Config
	upd := have
	if have.Replicas != want.Replicas {
		if s.o.ApplyReplicas && !s.o.ReadOnly {
			s.log.Warn("stream replicas changed as asked", "stream", want.Name, "from", have.Replicas, "to", want.Replicas)
			upd.Replicas = want.Replicas
		} else {
			s.mismatch("stream replicas differ from the options; kept (set ApplyReplicas, `--apply-replicas`, to change them)",
				"stream", want.Name, "stream_replicas", have.Replicas, "asked", want.Replicas)
		}
	}
	upd.Description = want.Description
	upd.Subjects = want.Subjects
	upd.Duplicates = want.Duplicates
	upd.AllowMsgTTL = want.AllowMsgTTL
	upd.AllowAtomicPublish = want.AllowAtomicPublish
	upd.DenyDelete = want.DenyDelete
	if upd.Replicas == have.Replicas && upd.Description == have.Description && slices.Equal(upd.Subjects, have.Subjects) &&
		upd.Duplicates == have.Duplicates && upd.AllowMsgTTL == have.AllowMsgTTL &&
		upd.AllowAtomicPublish == have.AllowAtomicPublish && upd.DenyDelete == have.DenyDelete {
		return st, nil
	}
	if s.o.ReadOnly {
		s.log.Warn("stream settings differ from this build's; a read-only open leaves them", "stream", want.Name)
		return st, nil
	}
	st, err := s.js.UpdateStream(ctx, upd)
	if err != nil {
		return nil, fmt.Errorf("update stream %s: %w", want.Name, err)
	}
	return st, nil
}

// mismatch logs a replica count that differs from the options: a warning
// for a store that writes, a note for a read-only one (whose count is
// meaningless: it changes nothing).
func (s *Store) mismatch(msg string, args ...any) {
	if s.o.ReadOnly {
		s.log.Info(msg, args...)
		return
	}
	s.log.Warn(msg, args...)
}

// keyBucketConfig is the LEDGER_KEYS bucket.
func (s *Store) keyBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      KeyBucket,
		Description: "check-in ledger: per-person data keys, sealed with the master key",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    s.o.Replicas,
	}
}

// keyStreamConfig is the stream of the key bucket: what nats.go's
// CreateKeyValue makes of keyBucketConfig, except that it allows deleting a
// message. Destroy overwrites a destroyed key in the files (a secure
// delete) before its purge: a purge alone leaves the sealed key's bytes in
// the stream's block files until they are compacted, readable by anyone
// holding them and the master key. A bucket created by an earlier build
// denies deletes, which cannot be undone: Destroy then purges only and
// says so in the log.
func (s *Store) keyStreamConfig() jetstream.StreamConfig {
	cfg := s.keyBucketConfig()
	return jetstream.StreamConfig{
		Name:              keyStream,
		Description:       cfg.Description,
		Subjects:          []string{"$KV." + KeyBucket + ".>"},
		MaxMsgsPerSubject: int64(cfg.History),
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           cfg.Storage,
		Replicas:          max(cfg.Replicas, 1),
		AllowRollup:       true,
		DenyDelete:        false,
		Duplicates:        2 * time.Minute,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
	}
}

// keyStream is the stream behind the key bucket.
const keyStream = "KV_" + KeyBucket

// ensureBucket finds or creates the key bucket. Its stream's replicas
// follow the same rule as the log's.
func (s *Store) ensureBucket(ctx context.Context) (jetstream.KeyValue, error) {
	cfg := s.keyBucketConfig()
	return ensure(ctx, s, asset[jetstream.KeyValue]{
		kind: "bucket", name: cfg.Bucket, replicas: cfg.Replicas, notFound: jetstream.ErrBucketNotFound,
		look: func(ctx context.Context) (jetstream.KeyValue, error) { return s.js.KeyValue(ctx, cfg.Bucket) },
		found: func(ctx context.Context, kv jetstream.KeyValue) (jetstream.KeyValue, error) {
			return kv, s.reconcileBucket(ctx, kv, cfg)
		},
		create: func(ctx context.Context) (jetstream.KeyValue, error) {
			if _, err := s.js.CreateStream(ctx, s.keyStreamConfig()); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return nil, err
			}
			return s.js.KeyValue(ctx, cfg.Bucket)
		},
	})
}

// reconcileBucket reports a replica mismatch of the key bucket's stream
// and, when ApplyReplicas is set (never in ReadOnly), changes its replicas.
func (s *Store) reconcileBucket(ctx context.Context, kv jetstream.KeyValue, cfg jetstream.KeyValueConfig) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("bucket %s status: %w", cfg.Bucket, err)
	}
	have := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
	if have.Replicas == cfg.Replicas {
		return nil
	}
	if !s.o.ApplyReplicas || s.o.ReadOnly {
		s.mismatch("bucket replicas differ from the options; kept (set ApplyReplicas, `--apply-replicas`, to change them)",
			"bucket", cfg.Bucket, "bucket_replicas", have.Replicas, "asked", cfg.Replicas)
		return nil
	}
	s.log.Warn("bucket replicas changed as asked", "bucket", cfg.Bucket, "from", have.Replicas, "to", cfg.Replicas)
	scfg := s.keyStreamConfig()
	scfg.DenyDelete = have.DenyDelete // cannot be undone
	if _, err := s.js.UpdateStream(ctx, scfg); err != nil {
		return fmt.Errorf("update bucket %s: %w", cfg.Bucket, err)
	}
	return nil
}

// setup finds or creates the stream and the key bucket.
func (s *Store) setup(ctx context.Context) error {
	st, err := s.ensureStream(ctx, s.streamConfig())
	if err != nil {
		return err
	}
	s.stream = st
	kv, err := s.ensureBucket(ctx)
	if err != nil {
		return err
	}
	s.kv = kv
	return nil
}
