#!/usr/bin/env bash
# Runs a real single-node Apache Kafka 4.x (KRaft, broker+controller) from
# Maven Central jars, for tests. No Docker, no downloads besides Maven.
#
#   scripts/kafka4.sh start <statedir>          # prints "127.0.0.1:<port>" on stdout
#   scripts/kafka4.sh start-secure <statedir>   # TLS and SASL listeners, see below
#   scripts/kafka4.sh stop  <statedir>
#   scripts/kafka4.sh start-cluster <statedir> <n>     # n nodes, each broker+controller; prints
#                                                      # "127.0.0.1:<p1>,127.0.0.1:<p2>,..."
#   scripts/kafka4.sh stop-node <statedir> <i> [kill]  # stop node i (1..n) cleanly, or SIGKILL it
#   scripts/kafka4.sh start-node <statedir> <i>        # start node i again, on its ports
#   scripts/kafka4.sh stop-cluster <statedir>
#
# A cluster replicates as production clusters do: default.replication.factor
# 3 (or n if smaller), min.insync.replicas 2, internal topics likewise.
#
# Secure mode makes, with openssl, a CA, a server certificate for 127.0.0.1
# and localhost, a client certificate, and an unrelated CA (<statedir>/tls/),
# and starts a broker with four listeners, printed as NAME=127.0.0.1:<port>
# lines (and kept in <statedir>/listeners):
#   PLAINTEXT  no security (inter-broker, and the harness's own checks)
#   SASL_SSL   TLS + SASL PLAIN (user apikey / apisecret), SCRAM-SHA-256
#              (rpuser / rp-scram-256-pw) and SCRAM-SHA-512 (ridestream /
#              rs-scram-512-pw), SCRAM users created at format time
#   SSL        TLS that requires a client certificate signed by the CA
#
# Jars are cached in <repo>/.cache/kafka-<version>/libs (Maven repo in
# <repo>/.cache/m2). Diagnostics go to stderr; broker log: <statedir>/kafka.log.
# Env: KAFKA4_READY_TIMEOUT (s, default 90), KAFKA4_HEAP_OPTS, KAFKA4_JVM_OPTS.
set -euo pipefail

KAFKA_VERSION=4.1.1
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
CONF_DIR=$SCRIPT_DIR/kafka4
CACHE=$REPO/.cache/kafka-$KAFKA_VERSION
LIBS=$CACHE/libs
M2=$REPO/.cache/m2
READY_TIMEOUT=${KAFKA4_READY_TIMEOUT:-90}
HEAP_OPTS=${KAFKA4_HEAP_OPTS:--Xms256m -Xmx512m}
JVM_OPTS=${KAFKA4_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+UseStringDeduplication -Djava.awt.headless=true}

log() { echo "kafka4: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  echo "usage: $0 start|start-secure|stop <statedir> | start-cluster <statedir> <n> | stop-node|start-node <statedir> <i> | stop-cluster <statedir>" >&2
  exit 2
}

# True if $1 is a live (non-zombie) process running kafka.Kafka.
is_kafka_pid() {
  local pid=$1 stat args
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
  [[ $stat != Z* ]] || return 1
  args=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
  [[ $args == *kafka.Kafka* ]]
}

tail_log() {
  local f=$1
  if [[ -f $f ]]; then
    log "---- last lines of $f ----"
    tail -n 40 "$f" >&2 || true
    log "----"
  fi
}

# Resolves the broker jars once (guarded by a lock and a marker holding the
# pom's checksum), and compiles the readiness probe.
fetch_libs() {
  local want marker=$CACHE/libs.ok
  want=$(cat "$CONF_DIR/pom.xml" "$CONF_DIR/Ready.java" | sha256sum | cut -d' ' -f1)
  if [[ -f $marker && $(<"$marker") == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch Kafka jars)"
  command -v javac >/dev/null || die "javac not found (a JDK 17+ is required)"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  if [[ -f $marker && $(<"$marker") == "$want" ]]; then
    exec 9>&-
    return 0
  fi
  log "fetching kafka_2.13:$KAFKA_VERSION and dependencies via Maven into $LIBS"
  local start=$SECONDS tmp=$LIBS.tmp
  rm -rf "$tmp" "$CACHE/classes"
  if ! mvn -q -B -f "$CONF_DIR/pom.xml" -Dmaven.repo.local="$M2" \
      dependency:copy-dependencies -DoutputDirectory="$tmp" -DincludeScope=runtime \
      >"$CACHE/mvn.log" 2>&1; then
    tail_log "$CACHE/mvn.log"
    die "maven fetch failed"
  fi
  [[ -n $(compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar") ]] || die "kafka jar missing after fetch"
  mkdir -p "$CACHE/classes"
  javac -nowarn -d "$CACHE/classes" -cp "$tmp/*" "$CONF_DIR/Ready.java" >&2 ||
    die "compiling Ready.java failed"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  echo "$want" >"$marker"
  exec 9>&-
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - start))s"
}

# Prints $1 (default 2) free TCP ports on 127.0.0.1.
free_ports() {
  local n=${1:-2}
  if command -v python3 >/dev/null; then
    python3 - "$n" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
    return
  fi
  # Fallback: random ports not currently listening.
  local used p ports=()
  used=$(ss -Hltn 2>/dev/null | awk '{print $4}' | sed 's/.*://' || true)
  while ((${#ports[@]} < n)); do
    p=$((20000 + RANDOM % 40000))
    grep -qx "$p" <<<"$used" || [[ " ${ports[*]-} " == *" $p "* ]] || ports+=("$p")
  done
  echo "${ports[@]}"
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Secure mode's keystore password (a test broker's, not a secret).
TLS_PASS=ridestream-test

# Makes the secure mode's certificates in $1 with openssl: a CA, a server
# certificate for 127.0.0.1 and localhost in a PKCS#12 keystore, a client
# certificate, and an unrelated CA. Kept across restarts.
make_certs() {
  local dir=$1
  [[ -s $dir/server.p12 ]] && return 0
  command -v openssl >/dev/null || die "openssl not found (needed for the secure broker's certificates)"
  mkdir -p "$dir"
  (
    cd "$dir"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 3 -subj "/CN=ridestream test CA" 2>/dev/null
    openssl req -x509 "${ec[@]}" -keyout other-ca.key -out other-ca.pem -days 3 -subj "/CN=some other CA" 2>/dev/null
    openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 3 -extfile server.ext 2>/dev/null
    openssl req "${ec[@]}" -keyout client.key -out client.csr -subj "/CN=ridestream-client" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 3 -extfile client.ext 2>/dev/null
    openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name kafka -out server.p12 -passout "pass:$TLS_PASS"
    chmod 644 ./*.pem ./*.key
  ) || die "making certificates with openssl failed"
}

write_props() {
  local state=$1 port=$2 cport=$3 sport=${4:-} mport=${5:-}
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  local advertised="PLAINTEXT://127.0.0.1:$port"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [[ -n $sport ]]; then
    listeners+=",SASL_SSL://127.0.0.1:$sport,SSL://127.0.0.1:$mport"
    advertised+=",SASL_SSL://127.0.0.1:$sport,SSL://127.0.0.1:$mport"
    protocols+=",SASL_SSL:SASL_SSL,SSL:SSL"
  fi
  cat >"$state/server.properties" <<EOF
# Generated by scripts/kafka4.sh: single-node KRaft for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
# Small footprint for a 2-core test machine.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=4194304
log.cleaner.io.buffer.size=262144
log.cleaner.backoff.ms=1000
log.retention.hours=24
log.retention.check.interval.ms=60000
log.segment.bytes=16777216
EOF
  if [[ -n $sport ]]; then
    cat >>"$state/server.properties" <<EOF
# Secure listeners (start-secure).
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_apikey="apisecret";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$state/tls/server.p12
ssl.keystore.password=$TLS_PASS
ssl.key.password=$TLS_PASS
ssl.truststore.type=PEM
ssl.truststore.location=$state/tls/ca.pem
listener.name.ssl.ssl.client.auth=required
listener.name.sasl_ssl.ssl.client.auth=none
EOF
  fi
}

cmd_start() {
  local state=$1 secure=${2:-}
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  local pidf=$state/kafka.pid logf=$state/kafka.log

  if [[ -f $pidf ]] && is_kafka_pid "$(<"$pidf")" && [[ -s $state/bootstrap ]]; then
    log "already running (pid $(<"$pidf"))"
    if [[ -n $secure ]]; then cat "$state/listeners"; else cat "$state/bootstrap"; fi
    return 0
  fi
  rm -f "$pidf" "$state/bootstrap"

  command -v java >/dev/null || die "java not found (Java 17+ required)"
  fetch_libs
  local cp="$LIBS/*"
  # Short-lived helper JVMs (StorageTool, probe): small, fast-starting, quiet.
  local -a tool=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
    -Dlog4j2.configurationFile="$CONF_DIR/log4j2-cli.xml")
  local -a heap jvm
  read -r -a heap <<<"$HEAP_OPTS"
  read -r -a jvm <<<"$JVM_OPTS"

  local t0=$SECONDS port cport attempt pid=
  for attempt in 1 2 3; do
    # A restart on an existing state dir keeps its ports, so clients that
    # know the old address reconnect (the fault tests restart the broker).
    local sport= mport=
    if ((attempt == 1)) && [[ -f $state/ports ]]; then
      read -r port cport sport mport <"$state/ports"
    elif [[ -n $secure ]]; then
      read -r port cport sport mport < <(free_ports 4)
    else
      read -r port cport < <(free_ports)
    fi
    [[ -n $port && -n $cport ]] || die "could not pick free ports"
    echo "$port $cport $sport $mport" >"$state/ports"
    if [[ -n $secure ]]; then
      make_certs "$state/tls"
    fi
    write_props "$state" "$port" "$cport" "$sport" "$mport"

    if [[ ! -f $state/data/meta.properties ]]; then
      local cid
      cid=$(java "${tool[@]}" -cp "$cp" kafka.tools.StorageTool random-uuid) ||
        die "StorageTool random-uuid failed"
      local -a scram=()
      if [[ -n $secure ]]; then
        scram=(--add-scram 'SCRAM-SHA-512=[name=ridestream,password=rs-scram-512-pw]'
          --add-scram 'SCRAM-SHA-256=[name=rpuser,password=rp-scram-256-pw]')
      fi
      java "${tool[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cid" -c "$state/server.properties" "${scram[@]}" >&2 ||
        die "StorageTool format failed"
    fi

    [[ -f $logf ]] && mv -f "$logf" "$logf.1"
    # setsid: own session, so the broker survives the caller's terminal/group.
    setsid nohup java "${heap[@]}" "${jvm[@]}" -cp "$cp" \
      -Dlog4j2.configurationFile="$CONF_DIR/log4j2.xml" -Dkafka.logs.dir="$state" \
      kafka.Kafka "$state/server.properties" >"$logf" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidf"
    log "started pid $pid (PLAINTEXT 127.0.0.1:$port, CONTROLLER 127.0.0.1:$cport)"

    local deadline=$((SECONDS + READY_TIMEOUT)) phase=log
    while ((SECONDS < deadline)); do
      if ! is_kafka_pid "$pid"; then
        wait "$pid" 2>/dev/null || true
        phase=dead
        break
      fi
      case $phase in
      log) grep -q "Kafka Server started" "$logf" && phase=port ;;
      port) port_open "$port" && phase=probe ;;
      probe)
        if timeout 30 java "${tool[@]}" -cp "$CACHE/classes:$cp" Ready "127.0.0.1:$port"; then
          phase=ready
          break
        fi
        ;;
      esac
      sleep 0.3
    done

    if [[ $phase == ready ]]; then
      echo "127.0.0.1:$port" >"$state/bootstrap"
      log "ready in $((SECONDS - t0))s"
      if [[ -n $secure ]]; then
        printf 'PLAINTEXT=127.0.0.1:%s\nSASL_SSL=127.0.0.1:%s\nSSL=127.0.0.1:%s\n' "$port" "$sport" "$mport" | tee "$state/listeners"
      else
        echo "127.0.0.1:$port"
      fi
      return 0
    fi
    if [[ $phase == dead ]] && grep -q "Address already in use" "$logf" && ((attempt < 3)); then
      log "port clash, retrying with new ports"
      continue
    fi
    break
  done

  tail_log "$logf"
  if [[ ${phase:-} != dead ]]; then
    cmd_stop "$state" || true
    die "broker not ready after ${READY_TIMEOUT}s (stuck at: $phase)"
  fi
  rm -f "$pidf"
  die "broker exited during startup"
}

cmd_stop() {
  local state=$1 pidf=$1/kafka.pid pid i
  if [[ ! -f $pidf ]]; then
    log "not running (no pid file in $state)"
    return 0
  fi
  pid=$(<"$pidf")
  if is_kafka_pid "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      is_kafka_pid "$pid" || break
      sleep 0.2
    done
    if is_kafka_pid "$pid"; then
      log "pid $pid still alive after 20s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
    log "stopped pid $pid"
  else
    log "pid $pid is not a running kafka broker; nothing to stop"
  fi
  rm -f "$pidf" "$state/bootstrap"
}

# Cluster mode: node i lives in <statedir>/node<i>, with its ports in
# <statedir>/ports (one "port cport" line per node) and the cluster id in
# <statedir>/cluster-id.
write_cluster_props() {
  local state=$1 i=$2 n=$3
  local dir=$state/node$i port cport voters="" j p c repl=$((n < 3 ? n : 3)) isr
  isr=$((repl > 1 ? 2 : 1))
  read -r port cport < <(sed -n "${i}p" "$state/ports")
  for ((j = 1; j <= n; j++)); do
    read -r p c < <(sed -n "${j}p" "$state/ports")
    voters+="${voters:+,}$j@127.0.0.1:$c"
  done
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<PROPS
# Generated by scripts/kafka4.sh: node $i of a $n-node KRaft cluster for tests.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$repl
min.insync.replicas=$isr
auto.create.topics.enable=false
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=$repl
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$repl
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$repl
share.coordinator.state.topic.min.isr=$isr
share.coordinator.state.topic.num.partitions=1
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=4194304
log.cleaner.io.buffer.size=262144
log.cleaner.backoff.ms=1000
log.retention.hours=24
log.segment.bytes=16777216
PROPS
}

# Starts node i of the cluster in $1 (its props written).
launch_node() {
  local state=$1 i=$2 dir=$1/node$i
  local -a heap jvm
  read -r -a heap <<<"$HEAP_OPTS"
  read -r -a jvm <<<"$JVM_OPTS"
  [[ -f $dir/kafka.log ]] && mv -f "$dir/kafka.log" "$dir/kafka.log.1"
  setsid nohup java "${heap[@]}" "${jvm[@]}" -cp "$LIBS/*" \
    -Dlog4j2.configurationFile="$CONF_DIR/log4j2.xml" -Dkafka.logs.dir="$dir" \
    kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
}

# Waits until node i answers as a broker of the cluster.
await_node() {
  local state=$1 i=$2 dir=$1/node$i port pid deadline
  read -r port _ < <(sed -n "${i}p" "$state/ports")
  pid=$(<"$dir/kafka.pid")
  deadline=$((SECONDS + READY_TIMEOUT))
  local -a tool=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j2.configurationFile="$CONF_DIR/log4j2-cli.xml")
  while ((SECONDS < deadline)); do
    is_kafka_pid "$pid" || {
      tail_log "$dir/kafka.log"
      die "node $i exited"
    }
    if grep -q "Kafka Server started" "$dir/kafka.log" && port_open "$port" &&
      timeout 30 java "${tool[@]}" -cp "$CACHE/classes:$LIBS/*" Ready "127.0.0.1:$port" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  tail_log "$dir/kafka.log"
  die "node $i not ready after ${READY_TIMEOUT}s"
}

bootstrap_list() {
  local state=$1 out="" port rest
  while read -r port rest; do out+="${out:+,}127.0.0.1:$port"; done <"$state/ports"
  echo "$out"
}

cmd_start_cluster() {
  local state=$1 n=$2 i
  [[ $n =~ ^[1-9]$ ]] || usage
  mkdir -p "$state"
  state=$(cd "$state" && pwd)
  command -v java >/dev/null || die "java not found (Java 17+ required)"
  fetch_libs
  local -a tool=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j2.configurationFile="$CONF_DIR/log4j2-cli.xml")
  local t0=$SECONDS
  if [[ ! -f $state/ports ]]; then
    local -a ports
    read -r -a ports < <(free_ports $((2 * n)))
    : >"$state/ports"
    for ((i = 0; i < n; i++)); do echo "${ports[2 * i]} ${ports[2 * i + 1]}" >>"$state/ports"; done
    java "${tool[@]}" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid >"$state/cluster-id" || die "StorageTool random-uuid failed"
  fi
  for ((i = 1; i <= n; i++)); do
    write_cluster_props "$state" "$i" "$n"
    if [[ ! -f $state/node$i/data/meta.properties ]]; then
      java "${tool[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format -t "$(<"$state/cluster-id")" -c "$state/node$i/server.properties" >&2 ||
        die "StorageTool format of node $i failed"
    fi
    launch_node "$state" "$i"
  done
  for ((i = 1; i <= n; i++)); do await_node "$state" "$i"; done
  log "cluster of $n nodes ready in $((SECONDS - t0))s"
  bootstrap_list "$state"
}

cmd_stop_node() {
  local state=$1 i=$2 how=${3:-} pid j
  pid=$(<"$state/node$i/kafka.pid")
  if ! is_kafka_pid "$pid"; then
    log "node $i is not running"
    return 0
  fi
  if [[ $how == kill ]]; then
    kill -KILL "$pid"
  else
    kill -TERM "$pid"
  fi
  for ((j = 0; j < 300; j++)); do
    is_kafka_pid "$pid" || break
    sleep 0.1
  done
  if is_kafka_pid "$pid"; then
    kill -KILL "$pid"
    sleep 0.5
  fi
  log "node $i stopped (${how:-clean})"
}

cmd_start_node() {
  local state=$1 i=$2
  launch_node "$state" "$i"
  await_node "$state" "$i"
  log "node $i started again"
}

cmd_stop_cluster() {
  local state=$1 d pid j
  for d in "$state"/node*; do
    [[ -f $d/kafka.pid ]] || continue
    pid=$(<"$d/kafka.pid")
    if is_kafka_pid "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for d in "$state"/node*; do
    [[ -f $d/kafka.pid ]] || continue
    pid=$(<"$d/kafka.pid")
    for ((j = 0; j < 150; j++)); do
      is_kafka_pid "$pid" || break
      sleep 0.2
    done
    if is_kafka_pid "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$d/kafka.pid"
  done
  log "cluster stopped"
}

case ${1:-} in
start) (($# == 2)) || usage; cmd_start "$2" ;;
start-secure) (($# == 2)) || usage; cmd_start "$2" secure ;;
stop) (($# == 2)) || usage; cmd_stop "$2" ;;
start-cluster) (($# == 3)) || usage; cmd_start_cluster "$2" "$3" ;;
stop-node) (($# >= 3)) || usage; cmd_stop_node "$2" "$3" "${4:-}" ;;
start-node) (($# == 3)) || usage; cmd_start_node "$2" "$3" ;;
stop-cluster) (($# == 2)) || usage; cmd_stop_cluster "$2" ;;
*) usage ;;
esac
