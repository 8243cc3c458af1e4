// Package ledgertest holds the integration tests of ledger.Ledger: its
// commands run against the real event store (JetStream in an embedded
// nats-server) and the in-memory read models fed by the real projector.
// It has no code of its own.
package ledgertest
