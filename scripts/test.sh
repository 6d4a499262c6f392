#!/usr/bin/env bash
# Runs `go test -race ./...` against a real Apache Kafka 4 broker started for
# this run (scripts/kafka4.sh) and throwaway PostgreSQL clusters that the test
# binaries start from the local server binaries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

state=$(mktemp -d "${TMPDIR:-/tmp}/ridestream-kafka4-XXXXXX")
cleanup() {
  scripts/kafka4.sh stop "$state" || true
  rm -rf "$state"
}
trap cleanup EXIT

brokers=$(scripts/kafka4.sh start "$state")
echo "test: Apache Kafka 4 broker at $brokers" >&2
export RIDESTREAM_TEST_BROKERS=$brokers
unset RIDESTREAM_TEST_DATABASE_URL

go test -race -count=1 -timeout 20m "$@" ./...
