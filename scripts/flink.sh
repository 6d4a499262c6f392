#!/usr/bin/env bash
# Builds and runs the Flink benchmark peer (bench/flink).
#
#   scripts/flink.sh build          # prints the classpath on stdout
#   scripts/flink.sh run ARGS...    # builds if needed, then runs the peer
#
# Built by scripts/javapeer.sh into .cache/flink. Env: FLINK_JVM_OPTS.
set -euo pipefail
PEER=flink
source "$(dirname "${BASH_SOURCE[0]}")/javapeer.sh"
peer_main ridestream.bench.FlinkPeer "${FLINK_JVM_OPTS:--Xms256m -Xmx1g}" "$@"
