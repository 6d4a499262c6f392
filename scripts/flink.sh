#!/usr/bin/env bash
# Builds and runs the Flink benchmark peer (bench/flink).
#
#   scripts/flink.sh build          # prints the classpath on stdout
#   scripts/flink.sh run ARGS...    # builds if needed, then runs the peer
#
# Jars come from Maven (repo in <repo>/.cache/m2) into .cache/flink/libs;
# classes are compiled into .cache/flink/classes. Both are rebuilt only when
# the checksum of pom.xml and the sources changes. Env: FLINK_JVM_OPTS.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
SRC=$REPO/bench/flink
CACHE=$REPO/.cache/flink
M2=$REPO/.cache/m2
CP="$CACHE/classes:$CACHE/libs/*"

log() { echo "flink: $*" >&2; }
die() { log "error: $*"; exit 1; }

build() {
  local want marker=$CACHE/build.ok
  want=$( (cat "$SRC/pom.xml" && find "$SRC/src" -name '*.java' | LC_ALL=C sort | xargs cat) | sha256sum | cut -d' ' -f1)
  [[ -f $marker && $(<"$marker") == "$want" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found"
  command -v javac >/dev/null || die "javac not found (a JDK 17+ is required)"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  if [[ -f $marker && $(<"$marker") == "$want" ]]; then
    exec 9>&-
    return 0
  fi
  log "building the Flink peer into $CACHE"
  rm -rf "$CACHE/libs.tmp" "$CACHE/classes" "$marker"
  if ! mvn -q -B -f "$SRC/pom.xml" -Dmaven.repo.local="$M2" dependency:copy-dependencies \
      -DoutputDirectory="$CACHE/libs.tmp" -DincludeScope=runtime >"$CACHE/mvn.log" 2>&1; then
    tail -n 40 "$CACHE/mvn.log" >&2
    die "maven fetch failed (log: $CACHE/mvn.log)"
  fi
  rm -rf "$CACHE/libs"
  mv "$CACHE/libs.tmp" "$CACHE/libs"
  find "$SRC/src/main/java" -name '*.java' >"$CACHE/sources.txt"
  javac -nowarn --release 17 -d "$CACHE/classes" -cp "$CACHE/libs/*" @"$CACHE/sources.txt" >&2 ||
    die "compiling the peer failed"
  echo "$want" >"$marker"
  exec 9>&-
}

case ${1:-} in
build)
  build
  echo "$CP"
  ;;
run)
  shift
  build
  read -r -a jvm <<<"${FLINK_JVM_OPTS:--Xms256m -Xmx1g}"
  exec java "${jvm[@]}" -cp "$CP" ridestream.bench.FlinkPeer "$@"
  ;;
*)
  echo "usage: $0 build | run ARGS..." >&2
  exit 2
  ;;
esac
