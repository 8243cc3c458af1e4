// Package domain holds the check-in ledger's rules: events, commands,
// aggregates and their pure decide functions, validation, the policy of who
// may do what (policy.go), the pass and stay rules, contact tracing over a
// context-free port, the read-model views (no JSON tags: http renders them)
// and the domain error kinds. The use cases that do IO, and the ports they
// call, are in package ledger.
//
// It imports only the standard library, github.com/google/uuid and its own
// pure subpackages: no context, no NATS, no SQL, no HTTP (purity_test.go
// holds it to that). Rules are pure functions decide(state, command) →
// events over an aggregate rebuilt by replaying its past events through one
// apply.
package domain
