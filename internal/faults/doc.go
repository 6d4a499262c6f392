// Package faults holds the fault-injection suite (docs/contract.md, "Guarantees"): SIGKILLs of
// sinks and processors, a PostgreSQL outage, a broker restart and poison
// input, each checked against the reference model. It has no library code.
package faults
