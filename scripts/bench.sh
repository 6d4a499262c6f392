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
# The tutorial's consumer: kafka-python and psycopg2 from PyPI, once.
venv=.cache/bench-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import kafka, psycopg2' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kafka-python==3.0.12 psycopg2-binary==2.9.13
fi
# The Kafka Streams, Flink and Kafka Connect peers: built with Maven once
# (cached under .cache/).
scripts/kstreams.sh build >/dev/null
scripts/flink.sh build >/dev/null
scripts/connect.sh build >/dev/null
# BENCH_BASELINE=<git revision>: build that revision too and measure it beside this one.
baseline=()
if [[ -n ${BENCH_BASELINE:-} ]]; then
  rev=$(git rev-parse --short "$BENCH_BASELINE")
  dir=.cache/baseline-$rev
  if [[ ! -x $dir/ridestream ]]; then
    rm -rf "$dir.src" && mkdir -p "$dir.src"
    git archive "$rev" | tar -x -C "$dir.src"
    (cd "$dir.src" && go build -o ../baseline-$rev/ridestream ./cmd/ridestream)
    rm -rf "$dir.src"
  fi
  baseline=(--baseline-binary "$dir/ridestream")
fi
brokers=$(scripts/kafka4.sh start "$state")
go run ./cmd/bench --brokers "$brokers" --broker-pid-file "$state/kafka.pid" --binary bin/ridestream --python "$venv/bin/python" "${baseline[@]}" "$@"
