// Package ledger is the check-in ledger's application layer: the use cases
// (commands and the queries that apply policy) and the ports the outer
// packages implement (EventStore, Log, Keyring, ReadModel, PoisonQueue, …).
//
// A command loads what it decides on, calls the domain's pure decide
// function and appends what was decided: versioned aggregates through one
// update (load, decide, append at the expected version, retry on conflict
// when asked), the group-committed kinds through one record. The pass
// command gathers every fact of a call in one read (ReadModel.PassFacts) and
// decides each pass with the domain's rules. Validation and authorisation
// happen in domain (decide functions and domain/policy.go), once; the HTTP
// layer parses, calls and renders.
package ledger
