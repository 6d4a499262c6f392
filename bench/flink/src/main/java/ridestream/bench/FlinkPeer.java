package ridestream.bench;

import java.io.IOException;
import java.io.InputStream;
import java.math.BigDecimal;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.jdbc.JdbcConnectionOptions;
import org.apache.flink.connector.jdbc.JdbcExecutionOptions;
import org.apache.flink.connector.jdbc.core.datastream.sink.JdbcSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.runtime.util.EnvironmentInformation;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Flink peer of ridestream for the benchmark (issue 22): the tutorial's job in
 * Flink's local MiniCluster. Input topic of JSON rides and heartbeats → hourly
 * event-time tumbling windows per PULocationID (count, sum(total_amount)) →
 * rows upserted into PostgreSQL through flink-connector-jdbc.
 *
 * <p>Replay. The Kafka source is bounded: it reads every partition from the
 * earliest offset up to the latest offsets at start, then finishes; the end of
 * input is a final watermark at +∞ that fires the windows still open, and the
 * job ends. That is how a Flink user replays a topic.
 *
 * <p>Event time and lateness. Timestamps are tpep_pickup_datetime (a
 * heartbeat's time for heartbeats, which move watermarks and are then dropped:
 * they are not rides). WatermarkStrategy.forBoundedOutOfOrderness(5 min),
 * ridestream's allowed lateness, generated per Kafka partition by the source
 * (per-split watermarks) and combined as their minimum: W = min over
 * partitions of (max event time − 5 min − 1 ms). A window [s, e) fires once W
 * ≥ e − 1, i.e. once every partition's max event time ≥ e + 5 min: the same
 * closing condition as ridestream's. A ride is dropped as late (allowed
 * lateness 0 beyond the watermark) when W has passed its window's end when it
 * reaches the window operator; ridestream judges it by its own partition's
 * stream time instead, so a ride that ridestream calls late may still be
 * counted here while other partitions lag, and the watermark is emitted
 * periodically (200 ms), so how many depends on timing.
 *
 * <p>Outliers. Like ridestream's --max-future-skew (24h) and the Kafka Streams
 * peer, a ride more than 24h ahead of its partition's largest event time so
 * far is skipped: one ride stamped 2099 would otherwise hold its partition's
 * watermark at 2099, and once every partition had one the whole job's.
 *
 * <p>Delivery. Checkpointing every --checkpoint-ms (exactly-once state) and the
 * JDBC sink at least once (batches flushed every 1000 rows or 200 ms, on each
 * checkpoint and at the end of input) with an upsert on (window_start,
 * pu_location_id): a replay after a failure writes the same rows again, so the
 * table's result is idempotent.
 *
 * <p>Prints one JSON line when the job has finished, then waits for stdin to
 * close (the bench samples the JVM's CPU and memory meanwhile).
 */
public final class FlinkPeer {
  static final Duration WINDOW = Duration.ofHours(1);
  static final Duration LATENESS = Duration.ofMinutes(5);
  static final long MAX_FUTURE_SKEW_MS = Duration.ofHours(24).toMillis();

  // The MiniCluster runs in this JVM: plain static counters see every task.
  static final LongAdder rides = new LongAdder();
  static final LongAdder heartbeats = new LongAdder();
  static final LongAdder malformed = new LongAdder();
  static final LongAdder tooFarAhead = new LongAdder();
  static final LongAdder lateDropped = new LongAdder();
  static final LongAdder rowsEmitted = new LongAdder();

  private FlinkPeer() {}

  public static void main(String[] args) throws Exception {
    setDefault("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    setDefault("org.slf4j.simpleLogger.logFile", "System.err");
    setDefault("org.slf4j.simpleLogger.showDateTime", "true");
    // The Kafka consumer's metrics are registered twice under Flink's group:
    // one warning per metric name otherwise.
    setDefault("org.slf4j.simpleLogger.log.org.apache.flink.metrics.MetricGroup", "error");
    int rc = run(Opts.parse(args));
    // Hold the JVM until the bench has sampled it (EOF at once when stdin
    // is not a pipe).
    InputStream in = System.in;
    while (in.read() >= 0) {
      // discard
    }
    System.exit(rc);
  }

  private static void setDefault(String k, String v) {
    if (System.getProperty(k) == null) {
      System.setProperty(k, v);
    }
  }

  static void log(String fmt, Object... a) {
    System.err.println("flink-peer: " + String.format(Locale.ROOT, fmt, a));
  }

  static final class Opts {
    String bootstrap, input, group, jdbcUrl, dbUser, table;
    int parallelism = Runtime.getRuntime().availableProcessors();
    long checkpointMs = 10_000;

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
          case "--group" -> o.group = v;
          case "--jdbc-url" -> o.jdbcUrl = v;
          case "--db-user" -> o.dbUser = v;
          case "--table" -> o.table = v;
          case "--parallelism" -> o.parallelism = Integer.parseInt(v);
          case "--checkpoint-ms" -> o.checkpointMs = Long.parseLong(v);
          default -> usage("unknown flag " + a);
        }
      }
      if (o.bootstrap == null || o.input == null || o.group == null || o.jdbcUrl == null || o.table == null) {
        usage("--bootstrap, --input, --group, --jdbc-url and --table are required");
      }
      if (!o.table.matches("[a-z_][a-z0-9_]*")) {
        usage("--table: a lower-case SQL identifier");
      }
      return o;
    }

    static void usage(String msg) {
      System.err.println("flink-peer: " + msg);
      System.err.println("usage: FlinkPeer --bootstrap HOST:PORT --input TOPIC --group ID --jdbc-url URL --table NAME"
          + " [--db-user NAME] [--parallelism N] [--checkpoint-ms MS]");
      System.exit(2);
    }
  }

  /** A decoded ride or heartbeat (a Flink POJO). */
  public static final class Ride {
    public boolean heartbeat;
    public int zone;
    public long cents;
    public long eventMs;

    public Ride() {}

    Ride(boolean heartbeat, int zone, long cents, long eventMs) {
      this.heartbeat = heartbeat;
      this.zone = zone;
      this.cents = cents;
      this.eventMs = eventMs;
    }
  }

  /** One window's result: the row upserted into PostgreSQL. */
  public static final class Row {
    public long windowStart;
    public int zone;
    public long trips;
    public long cents;

    public Row() {}

    Row(long windowStart, int zone, long trips, long cents) {
      this.windowStart = windowStart;
      this.zone = zone;
      this.trips = trips;
      this.cents = cents;
    }
  }

  /**
   * Decodes values with the Kafka Streams peer's rules; skips malformed ones
   * and rides too far ahead of their partition (see the class comment).
   */
  static final class Decode implements KafkaRecordDeserializationSchema<Ride> {
    // One instance per source reader; each partition is read by one reader.
    private transient Map<Integer, Long> maxEventMs;

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> rec, Collector<Ride> out) throws IOException {
      RideEvent e = RideEvent.parse(rec.value());
      if (e.kind == RideEvent.MALFORMED) {
        malformed.increment();
        return;
      }
      if (maxEventMs == null) {
        maxEventMs = new HashMap<>();
      }
      Long max = maxEventMs.get(rec.partition());
      if (max != null && e.eventMs - max > MAX_FUTURE_SKEW_MS) {
        tooFarAhead.increment();
        return;
      }
      if (max == null || e.eventMs > max) {
        maxEventMs.put(rec.partition(), e.eventMs);
      }
      if (e.kind == RideEvent.HEARTBEAT) {
        heartbeats.increment();
        out.collect(new Ride(true, 0, 0, e.eventMs));
        return;
      }
      rides.increment();
      out.collect(new Ride(false, e.zone, e.cents, e.eventMs));
    }

    @Override
    public TypeInformation<Ride> getProducedType() {
      return TypeInformation.of(Ride.class);
    }
  }

  /** count and sum(total_amount) in cents: {trips, cents}. */
  static final class Sum implements AggregateFunction<Ride, long[], long[]> {
    @Override
    public long[] createAccumulator() {
      return new long[2];
    }

    @Override
    public long[] add(Ride r, long[] acc) {
      acc[0]++;
      acc[1] += r.cents;
      return acc;
    }

    @Override
    public long[] getResult(long[] acc) {
      return acc;
    }

    @Override
    public long[] merge(long[] a, long[] b) {
      return new long[] {a[0] + b[0], a[1] + b[1]};
    }
  }

  /** Attaches the window's start and the zone to its sums. */
  static final class ToRow extends ProcessWindowFunction<long[], Row, Integer, TimeWindow> {
    @Override
    public void process(Integer zone, Context ctx, Iterable<long[]> sums, Collector<Row> out) {
      for (long[] s : sums) {
        rowsEmitted.increment();
        out.collect(new Row(ctx.window().getStart(), zone, s[0], s[1]));
      }
    }
  }

  static JobExecutionResult runJob(Opts o) throws Exception {
    Configuration conf = new Configuration();
    StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(o.parallelism, conf);
    if (o.checkpointMs > 0) {
      env.enableCheckpointing(o.checkpointMs);
    }
    KafkaSource<Ride> source = KafkaSource.<Ride>builder()
        .setBootstrapServers(o.bootstrap)
        .setTopics(o.input)
        .setGroupId(o.group)
        .setStartingOffsets(OffsetsInitializer.earliest())
        .setBounded(OffsetsInitializer.latest())
        .setDeserializer(new Decode())
        .build();
    WatermarkStrategy<Ride> watermarks = WatermarkStrategy.<Ride>forBoundedOutOfOrderness(LATENESS)
        .withTimestampAssigner((r, kafkaTs) -> r.eventMs);
    OutputTag<Ride> late = new OutputTag<>("late") {};
    DataStream<Ride> input = env.fromSource(source, watermarks, "rides").filter(r -> !r.heartbeat).name("rides only");
    SingleOutputStreamOperator<Row> hourly = input
        .keyBy(r -> r.zone)
        .window(TumblingEventTimeWindows.of(WINDOW))
        .sideOutputLateData(late)
        .aggregate(new Sum(), new ToRow())
        .name("hourly revenue");
    hourly.getSideOutput(late).filter(r -> {
      lateDropped.increment();
      return false;
    }).name("count late").sinkTo(new DiscardingSink<>());

    String sql = "INSERT INTO " + o.table + " (window_start, pu_location_id, num_trips, total_revenue, written_at)"
        + " VALUES (?, ?, ?, ?, clock_timestamp())"
        + " ON CONFLICT (window_start, pu_location_id) DO UPDATE SET num_trips = EXCLUDED.num_trips,"
        + " total_revenue = EXCLUDED.total_revenue, written_at = EXCLUDED.written_at";
    hourly.sinkTo(JdbcSink.<Row>builder()
        .withQueryStatement(sql, (ps, r) -> {
          ps.setObject(1, OffsetDateTime.ofInstant(Instant.ofEpochMilli(r.windowStart), ZoneOffset.UTC));
          ps.setInt(2, r.zone);
          ps.setLong(3, r.trips);
          ps.setBigDecimal(4, BigDecimal.valueOf(r.cents, 2));
        })
        .withExecutionOptions(JdbcExecutionOptions.builder().withBatchSize(1000).withBatchIntervalMs(200).withMaxRetries(5).build())
        .buildAtLeastOnce(new JdbcConnectionOptions.JdbcConnectionOptionsBuilder()
            .withUrl(o.jdbcUrl)
            .withDriverName("org.postgresql.Driver")
            .withUsername(o.dbUser)
            .build()))
        .name("postgresql upsert");
    return env.execute("ridestream-bench-flink");
  }

  static int run(Opts o) throws Exception {
    long processStartMs = ProcessHandle.current().info().startInstant().map(Instant::toEpochMilli)
        .orElse(System.currentTimeMillis());
    JobExecutionResult res;
    try {
      res = runJob(o);
    } catch (Exception e) {
      log("job failed: %s", e);
      e.printStackTrace();
      return 1;
    }
    double toEnd = (System.currentTimeMillis() - processStartMs) / 1e3;
    StringBuilder j = new StringBuilder("{");
    field(j, "flink_version", "\"" + EnvironmentInformation.getVersion() + "\"");
    field(j, "parallelism", o.parallelism);
    field(j, "checkpoint_ms", o.checkpointMs);
    field(j, "job_seconds", res.getNetRuntime() / 1e3);
    field(j, "process_seconds_to_job_end", Math.round(toEnd * 1000) / 1000.0);
    field(j, "rides", rides.sum());
    field(j, "heartbeats", heartbeats.sum());
    field(j, "malformed", malformed.sum());
    field(j, "too_far_ahead", tooFarAhead.sum());
    field(j, "late_dropped", lateDropped.sum());
    field(j, "rows_emitted", rowsEmitted.sum());
    j.setLength(j.length() - 1);
    System.out.println(j.append('}'));
    System.out.flush();
    return 0;
  }

  private static void field(StringBuilder j, String k, Object v) {
    j.append('"').append(k).append("\":").append(v).append(',');
  }
}
