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

// ensureStream finds or creates the stream cfg names, as the package
// comment above says.
func (s *Store) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	var st jetstream.Stream
	err := s.retrySetup(ctx, "stream "+cfg.Name, func(ctx context.Context) (bool, error) {
		var err error
		st, err = s.js.Stream(ctx, cfg.Name)
		switch {
		case err == nil:
			st, err = s.reconcile(ctx, st, cfg)
			return err == nil, err
		case errors.Is(err, jetstream.ErrStreamNotFound):
			if s.o.ReadOnly {
				return true, fmt.Errorf("eventstore: stream %s does not exist (a read-only open creates nothing)", cfg.Name)
			}
			st, err = s.js.CreateStream(ctx, cfg)
			if err == nil {
				s.log.Info("stream created", "stream", cfg.Name, "replicas", cfg.Replicas)
				return true, nil
			}
			return false, fmt.Errorf("create stream %s: %w", cfg.Name, err) // lost the race: look again
		default:
			return false, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
	})
	return st, err
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
	var kv jetstream.KeyValue
	err := s.retrySetup(ctx, "bucket "+cfg.Bucket, func(ctx context.Context) (bool, error) {
		var err error
		kv, err = s.js.KeyValue(ctx, cfg.Bucket)
		switch {
		case err == nil:
			st, err := kv.Status(ctx)
			if err != nil {
				return false, fmt.Errorf("bucket %s status: %w", cfg.Bucket, err)
			}
			if have := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; have != cfg.Replicas {
				if !s.o.ApplyReplicas || s.o.ReadOnly {
					s.mismatch("bucket replicas differ from the options; kept (set ApplyReplicas, `--apply-replicas`, to change them)",
						"bucket", cfg.Bucket, "bucket_replicas", have, "asked", cfg.Replicas)
					return true, nil
				}
				s.log.Warn("bucket replicas changed as asked", "bucket", cfg.Bucket, "from", have, "to", cfg.Replicas)
				scfg := s.keyStreamConfig()
				scfg.DenyDelete = st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.DenyDelete // cannot be undone
				if _, err := s.js.UpdateStream(ctx, scfg); err != nil {
					return false, fmt.Errorf("update bucket %s: %w", cfg.Bucket, err)
				}
			}
			return true, nil
		case errors.Is(err, jetstream.ErrBucketNotFound):
			if s.o.ReadOnly {
				return true, fmt.Errorf("eventstore: bucket %s does not exist (a read-only open creates nothing)", cfg.Bucket)
			}
			_, err = s.js.CreateStream(ctx, s.keyStreamConfig())
			if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				if kv, err = s.js.KeyValue(ctx, cfg.Bucket); err == nil {
					s.log.Info("bucket created", "bucket", cfg.Bucket, "replicas", cfg.Replicas)
					return true, nil
				}
			}
			return false, fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
		default:
			return false, fmt.Errorf("look up bucket %s: %w", cfg.Bucket, err)
		}
	})
	return kv, err
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
