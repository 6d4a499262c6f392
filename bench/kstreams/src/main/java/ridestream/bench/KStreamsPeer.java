package ridestream.bench;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.common.utils.Utils;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.LogAndContinueExceptionHandler;
import org.apache.kafka.streams.errors.LogAndContinueProcessingExceptionHandler;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.StreamPartitioner;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.state.WindowStore;

/**
 * Kafka Streams peer of ridestream's processors for the benchmark (issue 6):
 * input topic of JSON rides/heartbeats → hourly (window, PULocationID) trips
 * and revenue, emitted once per window when it closes, to a finals topic.
 *
 * <p>Event-time rule. The TimestampExtractor returns the ride's pickup time (or
 * the heartbeat's time); malformed values get -1, which Streams drops (counted
 * in "malformed"). Like ridestream's --max-future-skew (24h), a record more
 * than 24h ahead of its input partition's time is dropped too ("too_far_ahead"),
 * otherwise one bad far-future ride would close every window of its task.
 * TimeWindows.ofSizeAndGrace(1h, 5m): the aggregation drops a ride iff its
 * task's stream time ≥ window end + grace, and suppress(untilWindowCloses)
 * emits a window once the stream time it has observed ≥ end + grace: the same
 * inequality as ridestream's, but over a different stream time (see below).
 *
 * <p>Heartbeats. Rides are re-keyed by PULocationID and repartitioned (one
 * repartition topic, as groupByKey after selectKey would make; the explicit
 * repartition() only adds a partitioner). A heartbeat must advance the stream
 * time of every aggregation task, so its partitioner multicasts it (KIP-837:
 * StreamPartitioner.partitions() returns every partition) under a sentinel key
 * to all repartition partitions; ride keys use the default murmur2 partitioning.
 * The aggregator ignores heartbeat values, but a heartbeat still opens a window
 * for the sentinel key (that is what moves suppress's stream time, since
 * suppress only sees aggregation updates); those windows keep trips=0 and are
 * filtered out before the finals topic.
 *
 * <p>Differences from ridestream that Streams imposes: stream time is per task
 * (the max over every record the task has seen), not per input partition. A
 * ride is late in Streams when the aggregation task's time — the max over all
 * input partitions feeding its repartition partition — has passed end+grace,
 * so a lagging input partition can lose rides that ridestream counts, and the
 * exact set of late rides depends on how the repartition topic interleaves.
 * On a backlog (all input already in the topic) source tasks advance a whole
 * fetched record batch (often hours of event time) at a time, so most rides
 * arrive behind their aggregation task's stream time and are dropped as late;
 * with input produced at a near-live pace the result matches ridestream's to a
 * few rides. The JSON line reports rides_in_windows and late_dropped for this.
 */
public final class KStreamsPeer {
  static final Duration WINDOW = Duration.ofHours(1);
  static final Duration GRACE = Duration.ofMinutes(5);
  static final long MAX_FUTURE_SKEW_MS = Duration.ofHours(24).toMillis();
  static final int HEARTBEAT_KEY = Integer.MIN_VALUE;
  static final long HEARTBEAT = Long.MIN_VALUE; // ride values are cents, |c| < 1e8

  // Counters (approximate under EOS: a retried task may count records twice).
  static final LongAdder malformed = new LongAdder();
  static final LongAdder tooFarAhead = new LongAdder();
  static final LongAdder ridesReached = new LongAdder(); // at the aggregation task
  static final LongAdder heartbeatsReached = new LongAdder();
  static final LongAdder ridesInWindows = new LongAdder(); // not dropped as late
  static final LongAdder finalsEmitted = new LongAdder();
  static final AtomicLong lastFinalNanos = new AtomicLong();
  static final AtomicLong lastHeartbeatNanos = new AtomicLong();

  private KStreamsPeer() {}

  public static void main(String[] args) throws Exception {
    // slf4j-simple: quiet, to stderr. Streams logs every record dropped for a
    // negative extracted timestamp (our malformed ones) at WARN: silence that.
    setDefault("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    setDefault("org.slf4j.simpleLogger.logFile", "System.err");
    setDefault("org.slf4j.simpleLogger.showDateTime", "true");
    setDefault("org.slf4j.simpleLogger.log.org.apache.kafka.streams.processor.internals.RecordQueue", "error");
    // ... and every ride dropped as late ("Skipping record for expired window").
    setDefault("org.slf4j.simpleLogger.log.org.apache.kafka.streams.kstream.internals.KStreamWindowAggregate", "error");
    System.exit(run(Opts.parse(args)));
  }

  private static void setDefault(String k, String v) {
    if (System.getProperty(k) == null) {
      System.setProperty(k, v);
    }
  }

  static void log(String fmt, Object... a) {
    System.err.println("kstreams-peer: " + String.format(Locale.ROOT, fmt, a));
  }

  static final class Opts {
    String bootstrap, input, finals, appId, guarantee = StreamsConfig.EXACTLY_ONCE_V2, stateDir;
    long expectRides = -1;
    int threads = 1;
    Long commitIntervalMs;
    long timeoutSeconds = 600;
    final Properties extra = new Properties(); // --prop k=v, passed to StreamsConfig as is

    static Opts parse(String[] args) {
      Opts o = new Opts();
      for (int i = 0; i < args.length; i++) {
        String a = args[i];
        if (i + 1 >= args.length) {
          usage("missing value for " + a);
        }
        String v = args[++i];
        switch (a) {
          case "--bootstrap" -> o.bootstrap = v;
          case "--input" -> o.input = v;
          case "--finals" -> o.finals = v;
          case "--app-id" -> o.appId = v;
          case "--expect-rides" -> o.expectRides = Long.parseLong(v);
          case "--guarantee" -> o.guarantee = v;
          case "--threads" -> o.threads = Integer.parseInt(v);
          case "--state-dir" -> o.stateDir = v;
          case "--commit-interval-ms" -> o.commitIntervalMs = Long.parseLong(v);
          case "--timeout-seconds" -> o.timeoutSeconds = Long.parseLong(v);
          case "--prop" -> {
            int eq = v.indexOf('=');
            if (eq <= 0) {
              usage("--prop wants key=value");
            }
            o.extra.put(v.substring(0, eq), v.substring(eq + 1));
          }
          default -> usage("unknown flag " + a);
        }
      }
      if (o.bootstrap == null || o.input == null || o.finals == null || o.appId == null
          || o.stateDir == null || o.expectRides < 0) {
        usage("--bootstrap, --input, --finals, --app-id, --state-dir and --expect-rides are required");
      }
      if (!o.guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2) && !o.guarantee.equals(StreamsConfig.AT_LEAST_ONCE)) {
        usage("--guarantee must be exactly_once_v2 or at_least_once");
      }
      return o;
    }

    static void usage(String msg) {
      System.err.println("kstreams-peer: " + msg);
      System.err.println("usage: KStreamsPeer --bootstrap HOST:PORT --input TOPIC --finals TOPIC --app-id ID"
          + " --expect-rides N --state-dir DIR [--guarantee exactly_once_v2|at_least_once] [--threads N]"
          + " [--commit-interval-ms MS] [--timeout-seconds S] [--prop STREAMS_KEY=VALUE]...");
      System.exit(2);
    }
  }

  /** Event time from the decoded value; -1 (dropped by Streams) when invalid. */
  static final class EventTime implements TimestampExtractor {
    @Override
    public long extract(ConsumerRecord<Object, Object> rec, long partitionTime) {
      if (!(rec.value() instanceof RideEvent e) || e.kind == RideEvent.MALFORMED) {
        malformed.increment();
        return -1;
      }
      if (partitionTime >= 0 && e.eventMs - partitionTime > MAX_FUTURE_SKEW_MS) {
        tooFarAhead.increment();
        return -1;
      }
      return e.eventMs;
    }
  }

  /** Rides: murmur2 of the key bytes (the default); heartbeats: every partition. */
  static final class ZonePartitioner implements StreamPartitioner<Integer, Long> {
    private final Serializer<Integer> keys = Serdes.Integer().serializer();

    @Override
    public Optional<Set<Integer>> partitions(String topic, Integer key, Long value, int n) {
      if (value != null && value == HEARTBEAT) {
        Set<Integer> all = new HashSet<>();
        for (int p = 0; p < n; p++) {
          all.add(p);
        }
        return Optional.of(all);
      }
      return Optional.of(Set.of(Utils.toPositive(Utils.murmur2(keys.serialize(topic, key))) % n));
    }
  }

  /** (trips, revenue cents) as 16 bytes. */
  record Agg(long trips, long cents) {
    static final Agg ZERO = new Agg(0, 0);
  }

  static final Serde<Agg> AGG_SERDE = Serdes.serdeFrom(
      (Serializer<Agg>) (topic, a) -> a == null ? null : ByteBuffer.allocate(16).putLong(a.trips).putLong(a.cents).array(),
      (Deserializer<Agg>) (topic, b) -> {
        if (b == null) {
          return null;
        }
        ByteBuffer bb = ByteBuffer.wrap(b);
        return new Agg(bb.getLong(), bb.getLong());
      });

  static Topology topology(String input, String finals) {
    StreamsBuilder b = new StreamsBuilder();
    Serde<RideEvent> events = Serdes.serdeFrom((topic, e) -> null, (topic, data) -> RideEvent.parse(data));
    b.stream(input, Consumed.with(Serdes.ByteArray(), events).withTimestampExtractor(new EventTime()))
        .filter((k, e) -> e != null && e.kind != RideEvent.MALFORMED, named("valid"))
        .map((k, e) -> e.kind == RideEvent.RIDE
            ? KeyValue.pair(e.zone, e.cents)
            : KeyValue.pair(HEARTBEAT_KEY, HEARTBEAT), named("by-zone"))
        .repartition(Repartitioned.<Integer, Long>as("by-zone")
            .withKeySerde(Serdes.Integer())
            .withValueSerde(Serdes.Long())
            .withStreamPartitioner(new ZonePartitioner()))
        .peek((zone, v) -> {
          if (v == HEARTBEAT) {
            heartbeatsReached.increment();
            lastHeartbeatNanos.set(System.nanoTime());
          } else {
            ridesReached.increment();
          }
        }, named("count-reached"))
        .groupByKey(Grouped.with(Serdes.Integer(), Serdes.Long()))
        .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, GRACE))
        .aggregate(() -> Agg.ZERO, (zone, v, agg) -> {
          if (v == HEARTBEAT) {
            return agg;
          }
          ridesInWindows.increment();
          return new Agg(agg.trips + 1, agg.cents + v);
        }, named("hourly"), Materialized.<Integer, Agg, WindowStore<Bytes, byte[]>>as("hourly")
            .withKeySerde(Serdes.Integer())
            .withValueSerde(AGG_SERDE))
        .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()).withName("until-close"))
        .toStream(named("closed"))
        .filter((w, agg) -> agg != null && agg.trips > 0, named("not-heartbeat-only"))
        .map((w, agg) -> KeyValue.pair(Integer.toString(w.key()),
            "{\"window_start\":\"" + Instant.ofEpochMilli(w.window().start()) + "\",\"zone\":" + w.key()
                + ",\"trips\":" + agg.trips + ",\"total_revenue_cents\":" + agg.cents + "}"), named("final-json"))
        .peek((k, v) -> {
          finalsEmitted.increment();
          lastFinalNanos.set(System.nanoTime());
        }, named("count-finals"))
        .to(finals, Produced.with(Serdes.String(), Serdes.String()));
    return b.build();
  }

  private static org.apache.kafka.streams.kstream.Named named(String n) {
    return org.apache.kafka.streams.kstream.Named.as(n);
  }

  static int run(Opts o) throws Exception {
    long processStartMs = ProcessHandle.current().info().startInstant().map(Instant::toEpochMilli)
        .orElse(System.currentTimeMillis());
    Map<TopicPartition, Long> finalsStart = prepareTopics(o);

    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, o.appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrap);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, o.guarantee);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, o.threads);
    p.put(StreamsConfig.STATE_DIR_CONFIG, o.stateDir);
    if (o.commitIntervalMs != null) {
      p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, o.commitIntervalMs);
    }
    p.put(StreamsConfig.DESERIALIZATION_EXCEPTION_HANDLER_CLASS_CONFIG, LogAndContinueExceptionHandler.class);
    p.put(StreamsConfig.PROCESSING_EXCEPTION_HANDLER_CLASS_CONFIG, LogAndContinueProcessingExceptionHandler.class);
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    p.putAll(o.extra);
    Object ci = p.get(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG);
    long commitMs = ci != null ? Long.parseLong(ci.toString())
        : o.guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2) ? 100 : 30_000;

    Topology topo = topology(o.input, o.finals);
    log("topology:%n%s", topo.describe());
    KafkaStreams streams = new KafkaStreams(topo, p);
    streams.setUncaughtExceptionHandler(e -> {
      log("stream thread failed: %s", e);
      e.printStackTrace();
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });

    long t0 = System.nanoTime();
    double startupSeconds = (System.currentTimeMillis() - processStartMs) / 1e3;
    streams.start();
    long deadline = t0 + Duration.ofSeconds(o.timeoutSeconds).toNanos();
    // Done when every expected ride reached the aggregation and no final (nor
    // heartbeat) has appeared for 3 s plus one commit interval: caches forward
    // window updates to suppress only when they flush, i.e. on commit (30 s by
    // default under at_least_once), so a 3 s quiet period alone could stop
    // before the last finals.
    long quietNanos = Duration.ofMillis(3000 + commitMs).toNanos();
    long allReachedNanos = 0;
    long lastLog = t0;
    int rc = 0;
    while (true) {
      Thread.sleep(50);
      long now = System.nanoTime();
      KafkaStreams.State st = streams.state();
      if (st == KafkaStreams.State.ERROR || st == KafkaStreams.State.NOT_RUNNING
          || st == KafkaStreams.State.PENDING_ERROR) {
        log("streams state %s, giving up", st);
        rc = 1;
        break;
      }
      if (allReachedNanos == 0 && ridesReached.sum() >= o.expectRides) {
        allReachedNanos = now;
      }
      if (allReachedNanos != 0) {
        long last = Math.max(allReachedNanos, Math.max(lastFinalNanos.get(), lastHeartbeatNanos.get()));
        if (now - last >= quietNanos) {
          break;
        }
      }
      if (now > deadline) {
        log("timeout after %ds", o.timeoutSeconds);
        rc = 1;
        break;
      }
      if (now - lastLog >= 5_000_000_000L) {
        lastLog = now;
        log("%.1fs state=%s rides_reached=%d in_windows=%d heartbeats=%d finals=%d malformed=%d",
            (now - t0) / 1e9, st, ridesReached.sum(), ridesInWindows.sum(), heartbeatsReached.sum(),
            finalsEmitted.sum(), malformed.sum());
      }
    }
    long dropped = droppedRecords(streams);
    boolean closed = streams.close(Duration.ofSeconds(60));
    if (!closed) {
      log("streams did not close within 60s");
      rc = 1;
    }
    long[] check = readFinals(o, finalsStart);

    double allAggregated = allReachedNanos == 0 ? -1 : (allReachedNanos - t0) / 1e9;
    double lastFinal = lastFinalNanos.get() == 0 ? -1 : (lastFinalNanos.get() - t0) / 1e9;
    long rides = ridesReached.sum();
    StringBuilder j = new StringBuilder("{");
    field(j, "guarantee", "\"" + o.guarantee + "\"");
    field(j, "threads", o.threads);
    field(j, "commit_interval_ms", commitMs);
    field(j, "rides_aggregated", rides);
    field(j, "rides_in_windows", ridesInWindows.sum());
    field(j, "late_dropped", rides - ridesInWindows.sum());
    field(j, "seconds_to_all_aggregated", round3(allAggregated));
    field(j, "finals_emitted", finalsEmitted.sum());
    field(j, "seconds_to_last_final", round3(lastFinal));
    field(j, "rides_per_second", lastFinal > 0 ? Math.round(rides / lastFinal) : -1);
    field(j, "process_seconds_to_start", round3(startupSeconds));
    field(j, "process_seconds_to_last_final", lastFinal < 0 ? -1 : round3(startupSeconds + lastFinal));
    field(j, "malformed", malformed.sum());
    field(j, "too_far_ahead", tooFarAhead.sum());
    field(j, "heartbeats_reached", heartbeatsReached.sum());
    field(j, "streams_dropped_records", dropped);
    field(j, "finals_in_topic", check[0]);
    field(j, "trips_in_finals", check[1]);
    field(j, "revenue_cents_in_finals", check[2]);
    j.setLength(j.length() - 1);
    System.out.println(j.append('}'));
    System.out.flush();
    return rc;
  }

  private static void field(StringBuilder j, String k, Object v) {
    j.append('"').append(k).append("\":").append(v).append(',');
  }

  private static double round3(double x) {
    return Math.round(x * 1000) / 1000.0;
  }

  /** Sum of the task-level dropped-records-total metric (late + invalid timestamps). */
  private static long droppedRecords(KafkaStreams streams) {
    double sum = 0;
    for (Map.Entry<MetricName, ? extends Metric> e : streams.metrics().entrySet()) {
      MetricName n = e.getKey();
      if (n.name().equals("dropped-records-total") && n.group().equals("stream-task-metrics")) {
        Object v = e.getValue().metricValue();
        if (v instanceof Number num) {
          sum += num.doubleValue();
        }
      }
    }
    return (long) sum;
  }

  /**
   * Waits for the input topic, creates the finals topic (as many partitions as
   * the input) if missing, and returns the finals topic's committed end
   * offsets, from where the final check reads.
   */
  static Map<TopicPartition, Long> prepareTopics(Opts o) throws Exception {
    Properties ap = new Properties();
    ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrap);
    try (Admin admin = Admin.create(ap)) {
      TopicDescription in = null;
      long until = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (in == null) {
        try {
          in = admin.describeTopics(List.of(o.input)).allTopicNames().get().get(o.input);
        } catch (ExecutionException e) {
          if (!(e.getCause() instanceof UnknownTopicOrPartitionException) || System.nanoTime() > until) {
            throw e;
          }
          Thread.sleep(500);
        }
      }
      int parts = in.partitions().size();
      try {
        // Kept forever, like ridestream's finals topic: the records carry 2024
        // event-time timestamps that time-based retention would delete at once.
        admin.createTopics(List.of(new NewTopic(o.finals, Optional.of(parts), Optional.empty())
            .configs(Map.of("cleanup.policy", "delete", "retention.ms", "-1")))).all().get();
        log("created topic %s with %d partitions", o.finals, parts);
      } catch (ExecutionException e) {
        if (!(e.getCause() instanceof TopicExistsException)) {
          throw e;
        }
      }
      TopicDescription fin = null;
      while (fin == null) {
        try {
          fin = admin.describeTopics(List.of(o.finals)).allTopicNames().get().get(o.finals);
        } catch (ExecutionException e) {
          if (!(e.getCause() instanceof UnknownTopicOrPartitionException) || System.nanoTime() > until) {
            throw e;
          }
          Thread.sleep(200);
        }
      }
      Map<TopicPartition, OffsetSpec> req = new HashMap<>();
      fin.partitions().forEach(pi -> req.put(new TopicPartition(o.finals, pi.partition()), OffsetSpec.latest()));
      Map<TopicPartition, Long> start = new HashMap<>();
      admin.listOffsets(req, new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all().get()
          .forEach((tp, info) -> start.put(tp, info.offset()));
      return start;
    }
  }

  /**
   * Reads (read_committed) what this run added to the finals topic: returns
   * {records, sum of trips, sum of revenue cents}.
   */
  static long[] readFinals(Opts o, Map<TopicPartition, Long> start) {
    Properties cp = new Properties();
    cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrap);
    cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    long[] out = new long[3];
    JsonFactory jf = new JsonFactory();
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      List<TopicPartition> tps = new ArrayList<>(start.keySet());
      c.assign(tps);
      start.forEach(c::seek);
      Map<TopicPartition, Long> end = c.endOffsets(tps);
      long until = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      while (System.nanoTime() < until && tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          out[0]++;
          try (JsonParser jp = jf.createParser(r.value())) {
            while (jp.nextToken() != null) {
              if (jp.currentToken() == JsonToken.FIELD_NAME) {
                String n = jp.currentName();
                jp.nextToken();
                if (n.equals("trips")) {
                  out[1] += jp.getLongValue();
                } else if (n.equals("total_revenue_cents")) {
                  out[2] += jp.getLongValue();
                }
              }
            }
          } catch (Exception e) {
            log("unreadable final at %s-%d@%d: %s", r.topic(), r.partition(), r.offset(), e);
          }
        }
      }
    } catch (Exception e) {
      log("reading the finals topic failed: %s", e);
      return new long[] {-1, -1, -1};
    }
    return out;
  }
}
