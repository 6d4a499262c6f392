#!/usr/bin/env bash
# Builds and runs the Kafka Streams benchmark peer (bench/kstreams).
#
#   scripts/kstreams.sh build          # prints the classpath on stdout
#   scripts/kstreams.sh run ARGS...    # builds if needed, then runs the peer
#
# Built by scripts/javapeer.sh into .cache/kstreams. Env: KSTREAMS_JVM_OPTS.
set -euo pipefail
PEER=kstreams
source "$(dirname "${BASH_SOURCE[0]}")/javapeer.sh"
peer_main ridestream.bench.KStreamsPeer "${KSTREAMS_JVM_OPTS:--Xms256m -Xmx1g}" "$@"
