package eventstore

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The store's own tests reach its connection to look at and damage what it
// wrote; nothing else gets it (reactions use Subscriber).

// Conn returns the store's NATS connection.
func (s *Store) Conn() *nats.Conn { return s.nc }

// JetStream returns the JetStream context of the connection.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Gets returns how many messages ReadPassesOf fetched through the index.
func (x *PassIndex) Gets() int64 { return x.gets.Load() }

// Forwarded returns how many Record calls the store sent to another store,
// the writer.
func (s *Store) Forwarded() int {
	if s.writers == nil {
		return 0
	}
	s.writers.mu.Lock()
	defer s.writers.mu.Unlock()
	return s.writers.forwarded
}

// CatchUpReads returns how many packs the chains' catch-ups read.
func (s *Store) CatchUpReads() int64 { return s.catchUps.Load() }

// MessagesGot counts the messages Get read from the stream.
func (s *Store) MessagesGot() int64 { return s.gets.Load() }

// WriterElsewhere returns the id of the writer when it is another store.
func (s *Store) WriterElsewhere() string { return s.writerElsewhere() }

// HeartbeatSubject and WriterPrefix are the election's subjects.
const HeartbeatSubject, WriterPrefix = heartbeatSubject, writerPrefix

// CommitForwarded commits a forwarded request as the writer does and
// answers nothing: a writer that froze after storing.
func (s *Store) CommitForwarded(data []byte) error {
	calls, err := readForwards(data)
	if err != nil {
		return err
	}
	for _, evs := range calls {
		if _, err := s.commit(context.Background(), newRecordReq(evs)); err != nil {
			return err
		}
	}
	return nil
}

// SetBeforeAttempt makes writePack call f before each attempt at a pack
// (after the pack's message was built).
func (s *Store) SetBeforeAttempt(f func(subject string)) { s.beforeAttempt = f }

// Known returns the last sequence of subject whose ids the store's chain
// holds.
func (s *Store) Known(subject string) uint64 { return s.chains[subject].expect() }

// PackPassSubject is the passes' pack subject.
const PackPassSubject = packPassSubject
