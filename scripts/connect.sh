#!/usr/bin/env bash
# Builds and runs the Kafka Connect benchmark peer (bench/connect): Apache
# Kafka's Connect runtime in standalone mode with Debezium's JDBC sink
# connector, landing the rides of a topic in a PostgreSQL table.
#
#   scripts/connect.sh build          # prints the classpath on stdout
#   scripts/connect.sh run --bootstrap HOST:PORT --topic TOPIC --jdbc-url URL \
#       --db-user NAME --table NAME --name CONNECTOR --state-dir DIR [--tasks N]
#
# Its jars are fetched by scripts/javapeer.sh into .cache/connect. `run` writes the
# worker's and the connector's properties into the state dir and execs the
# JVM (so its pid is the script's). Env: CONNECT_JVM_OPTS.
set -euo pipefail

PEER=connect
source "$(dirname "${BASH_SOURCE[0]}")/javapeer.sh"

run() {
  local bootstrap="" topic="" url="" user="" table="" name="" state="" tasks=1
  while (($#)); do
    (($# >= 2)) || die "missing value for $1"
    case $1 in
    --bootstrap) bootstrap=$2 ;;
    --topic) topic=$2 ;;
    --jdbc-url) url=$2 ;;
    --db-user) user=$2 ;;
    --table) table=$2 ;;
    --name) name=$2 ;;
    --state-dir) state=$2 ;;
    --tasks) tasks=$2 ;;
    *) die "unknown flag $1" ;;
    esac
    shift 2
  done
  [[ -n $bootstrap && -n $topic && -n $url && -n $user && -n $table && -n $name && -d $state ]] ||
    die "--bootstrap, --topic, --jdbc-url, --db-user, --table, --name and an existing --state-dir are required"
  # The worker: records are JSON with a schema envelope (the JDBC sink needs
  # a schema for every value); keys are absent. No REST port of its own to
  # collide with (an ephemeral one). Offsets file: standalone mode wants one,
  # though a sink's offsets are its consumer group's. Plugins are found by
  # their ServiceLoader manifests (KIP-898; the connector and Kafka's
  # converters have them): scanning every class of the classpath's ~90 jars
  # instead adds tens of seconds to the start on a busy machine.
  cat >"$state/worker.properties" <<EOF
bootstrap.servers=$bootstrap
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true
offset.storage.file.filename=$state/offsets
listeners=http://127.0.0.1:0
plugin.discovery=service_load
EOF
  # The connector: an upsert keyed by the record's Kafka coordinates (topic,
  # partition, offset), so a redelivered record lands once; the table exists
  # (schema.evolution none, the default). errors.tolerance=all: a value the
  # converter cannot read (malformed input) is skipped instead of killing the
  # task; a null value (a tombstone) is skipped by the connector itself.
  cat >"$state/connector.properties" <<EOF
name=$name
connector.class=io.debezium.connector.jdbc.JdbcSinkConnector
tasks.max=$tasks
topics=$topic
connection.url=$url
connection.username=$user
connection.password=
insert.mode=upsert
primary.key.mode=kafka
schema.evolution=none
collection.name.format=$table
use.time.zone=UTC
errors.tolerance=all
EOF
  read -r -a jvm <<<"${CONNECT_JVM_OPTS:--Xms256m -Xmx1g}"
  # Hibernate (inside the connector) logs through jboss-logging: send it to
  # slf4j as well, warnings and errors only.
  exec java "${jvm[@]}" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.logFile=System.err \
    -Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.jboss.logging.provider=slf4j \
    -cp "$CP" org.apache.kafka.connect.cli.ConnectStandalone "$state/worker.properties" "$state/connector.properties"
}

case ${1:-} in
build)
  peer_build
  echo "$CP"
  ;;
run)
  shift
  peer_build
  run "$@"
  ;;
*)
  echo "usage: $0 build | run --bootstrap HOST:PORT --topic TOPIC --jdbc-url URL --db-user NAME --table NAME --name CONNECTOR --state-dir DIR [--tasks N]" >&2
  exit 2
  ;;
esac
