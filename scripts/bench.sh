#!/usr/bin/env bash
# Starts Apache Kafka 4 for `go run ./cmd/bench` and stops it afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
state=$(mktemp -d "${TMPDIR:-/tmp}/ridestream-bench-kafka4-XXXXXX")
cleanup() {
  scripts/kafka4.sh stop "$state" || true
  rm -rf "$state"
}
trap cleanup EXIT
brokers=$(scripts/kafka4.sh start "$state")
go run ./cmd/bench --brokers "$brokers" --broker-pid-file "$state/kafka.pid" --binary bin/ridestream "$@"
