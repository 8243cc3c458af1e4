package eventstore

import (
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
