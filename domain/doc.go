// Package domain holds the check-in ledger's events, commands, aggregates and
// their rules, the domain error kinds, and the contracts (ports) that the
// event store and the read-model stores implement.
//
// It imports only the standard library and github.com/google/uuid: no NATS,
// no SQL, no HTTP. Rules are pure functions decide(state, command) → events
// over an aggregate rebuilt by replaying its past events through one apply.
package domain
