# Sourced by the bench peers' scripts (kstreams.sh, flink.sh, connect.sh):
# after `PEER=<name>`, it sets REPO, SRC (bench/<name>), CACHE (.cache/<name>)
# and CP, and defines peer_build, which fetches the peer's jars with Maven
# (repo in <repo>/.cache/m2) into CACHE/libs and compiles its Java sources,
# with the decoder the peers share (bench/common), into CACHE/classes; again
# only when the checksum of its pom.xml and the sources changes.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=$REPO/bench/$PEER
CACHE=$REPO/.cache/$PEER
M2=$REPO/.cache/m2
CP="$CACHE/classes:$CACHE/libs/*"

log() { echo "$PEER: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# peer_sources lists the Java sources a peer compiles (none for a peer that
# is configuration only).
peer_sources() {
  [[ -d $SRC/src ]] || return 0
  find "$SRC/src/main/java" "$REPO/bench/common/src/main/java" -name '*.java' | LC_ALL=C sort
}

peer_build() {
  local want marker=$CACHE/build.ok
  want=$( (cat "$SRC/pom.xml" && peer_sources | xargs -r cat) | sha256sum | cut -d' ' -f1)
  [[ -f $marker && $(<"$marker") == "$want" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found"
  [[ -z $(peer_sources) ]] || command -v javac >/dev/null || die "javac not found (a JDK 17+ is required)"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  if [[ -f $marker && $(<"$marker") == "$want" ]]; then
    exec 9>&-
    return 0
  fi
  log "building the peer into $CACHE"
  rm -rf "$CACHE/libs.tmp" "$CACHE/classes" "$marker"
  if ! mvn -q -B -f "$SRC/pom.xml" -Dmaven.repo.local="$M2" dependency:copy-dependencies \
    -DoutputDirectory="$CACHE/libs.tmp" -DincludeScope=runtime >"$CACHE/mvn.log" 2>&1; then
    tail -n 40 "$CACHE/mvn.log" >&2
    die "maven fetch failed (log: $CACHE/mvn.log)"
  fi
  rm -rf "$CACHE/libs"
  mv "$CACHE/libs.tmp" "$CACHE/libs"
  peer_sources >"$CACHE/sources.txt"
  if [[ -s $CACHE/sources.txt ]]; then
    javac -nowarn --release 17 -d "$CACHE/classes" -cp "$CACHE/libs/*" @"$CACHE/sources.txt" >&2 ||
      die "compiling the peer failed"
  fi
  echo "$want" >"$marker"
  exec 9>&-
}

# peer_main is a Java peer's command line: `build` prints the classpath,
# `run ARGS...` builds if needed and execs the JVM on main class $1 with the
# JVM options $2 (so the JVM's pid is the script's).
peer_main() {
  local main=$1 opts=$2
  shift 2
  case ${1:-} in
  build)
    peer_build
    echo "$CP"
    ;;
  run)
    shift
    peer_build
    local -a jvm
    read -r -a jvm <<<"$opts"
    exec java "${jvm[@]}" -cp "$CP" "$main" "$@"
    ;;
  *)
    echo "usage: $0 build | run ARGS..." >&2
    exit 2
    ;;
  esac
}
