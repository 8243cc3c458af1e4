// Package ledgertest starts the stack as cmd wires it, in a test process:
// Start gives an embedded JetStream (in-process nats-server with its store
// in the test's temp dir), the memory read models fed by the real
// projector, the ledger.Ledger and a token signer, all stopped by the
// test's cleanup; Eventually and Poll wait for a condition with a deadline,
// Go runs a loop of the test's own (a router, a server) until its cleanup.
// Every integration test uses it, the way nats-server's own tests use
// test.RunServer.
//
// Its own tests are the integration tests of ledger.Ledger: its commands
// run against the real event store and read models.
package ledgertest
