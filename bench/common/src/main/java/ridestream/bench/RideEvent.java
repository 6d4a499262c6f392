package ridestream.bench;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;

/**
 * One decoded input value: a ride, a heartbeat, or malformed. The Kafka
 * Streams and Flink peers both compile this file (scripts/javapeer.sh), so
 * that the peers and ridestream skip the same malformed messages and differ
 * only in their window rules. Decoding follows
 * ridestream's internal/ride rules closely: a present non-null "heartbeat"
 * makes a heartbeat; a ride needs a pickup time (tpep_/lpep_/pickup_datetime:
 * epoch ms integer, RFC 3339, or "yyyy-MM-dd HH:mm:ss" UTC) within
 * [2000-01-01, 2100-01-01), an integer PULocationID and a numeric total_amount
 * with |x| < 1,000,000.00 (rounded half away from zero to cents); optional
 * fields, when present and non-null, must have the right type and range.
 * Anything else is MALFORMED. Parsing never throws.
 */
final class RideEvent {
  static final byte RIDE = 1, HEARTBEAT = 2, MALFORMED = 3;

  static final long MIN_EVENT_MS = Instant.parse("2000-01-01T00:00:00Z").toEpochMilli();
  static final long MAX_EVENT_MS = Instant.parse("2100-01-01T00:00:00Z").toEpochMilli();
  static final long MAX_ABS_CENTS = 100_000_000L;
  static final long MAX_ABS_DISTANCE_CENTI = 10_000_000L;
  static final int MAX_MESSAGE_BYTES = 1 << 20;

  static final RideEvent BAD = new RideEvent(MALFORMED, 0, 0, 0);

  final byte kind;
  final int zone;
  final long cents;
  final long eventMs;

  private RideEvent(byte kind, int zone, long cents, long eventMs) {
    this.kind = kind;
    this.zone = zone;
    this.cents = cents;
    this.eventMs = eventMs;
  }

  private static final JsonFactory JSON = new JsonFactory();
  private static final DateTimeFormatter SQLISH = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss[.SSSSSS][.SSS]");

  /** A captured JSON value: its token and text (numbers keep their input text). */
  private record Val(JsonToken tok, String text) {
    boolean present() {
      return tok != JsonToken.VALUE_NULL;
    }
  }

  static RideEvent parse(byte[] data) {
    if (data == null || data.length == 0 || data.length > MAX_MESSAGE_BYTES) {
      return BAD;
    }
    try {
      return decode(data);
    } catch (Exception | StackOverflowError e) { // bad JSON, overflow, anything
      return BAD;
    }
  }

  private static RideEvent decode(byte[] data) throws Exception {
    Val heartbeat = null, tpep = null, lpep = null, anyPick = null, tpepDrop = null, lpepDrop = null, anyDrop = null;
    Val pu = null, total = null, dO = null, passengers = null, vendor = null;
    Val distance = null, fare = null, tip = null, tolls = null;
    try (JsonParser p = JSON.createParser(data)) {
      if (p.nextToken() != JsonToken.START_OBJECT) {
        return BAD;
      }
      JsonToken t;
      while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
        String name = p.currentName();
        JsonToken v = p.nextToken();
        Val val;
        if (v == JsonToken.START_OBJECT || v == JsonToken.START_ARRAY) {
          p.skipChildren();
          val = new Val(v, null);
        } else {
          val = new Val(v, v == JsonToken.VALUE_NULL ? null : p.getText());
        }
        switch (name) {
          case "heartbeat" -> heartbeat = val;
          case "tpep_pickup_datetime" -> tpep = val;
          case "lpep_pickup_datetime" -> lpep = val;
          case "pickup_datetime" -> anyPick = val;
          case "tpep_dropoff_datetime" -> tpepDrop = val;
          case "lpep_dropoff_datetime" -> lpepDrop = val;
          case "dropoff_datetime" -> anyDrop = val;
          case "PULocationID" -> pu = val;
          case "DOLocationID" -> dO = val;
          case "total_amount" -> total = val;
          case "passenger_count" -> passengers = val;
          case "VendorID" -> vendor = val;
          case "trip_distance" -> distance = val;
          case "fare_amount" -> fare = val;
          case "tip_amount" -> tip = val;
          case "tolls_amount" -> tolls = val;
          default -> { }
        }
      }
      if (t != JsonToken.END_OBJECT || p.nextToken() != null) {
        return BAD; // truncated, or trailing content
      }
    }

    if (present(heartbeat)) {
      long ms = time(heartbeat);
      return ms == Long.MIN_VALUE ? BAD : new RideEvent(HEARTBEAT, 0, 0, ms);
    }
    Val pick = present(tpep) ? tpep : present(lpep) ? lpep : present(anyPick) ? anyPick : null;
    if (pick == null) {
      return BAD;
    }
    long ms = time(pick);
    if (ms == Long.MIN_VALUE) {
      return BAD;
    }
    Val drop = present(tpepDrop) ? tpepDrop : present(lpepDrop) ? lpepDrop : present(anyDrop) ? anyDrop : null;
    if (drop != null && time(drop) == Long.MIN_VALUE) {
      return BAD;
    }
    if (!present(pu) || !present(total)) {
      return BAD;
    }
    Long zone = int32(pu);
    Long cents = centi(total, MAX_ABS_CENTS);
    if (zone == null || cents == null) {
      return BAD;
    }
    for (Val v : new Val[] {dO, passengers, vendor}) {
      if (present(v) && int32(v) == null) {
        return BAD;
      }
    }
    if (present(distance) && centi(distance, MAX_ABS_DISTANCE_CENTI) == null) {
      return BAD;
    }
    for (Val v : new Val[] {fare, tip, tolls}) {
      if (present(v) && centi(v, MAX_ABS_CENTS) == null) {
        return BAD;
      }
    }
    return new RideEvent(RIDE, (int) (long) zone, cents, ms);
  }

  private static boolean present(Val v) {
    return v != null && v.present();
  }

  /** Epoch ms, or Long.MIN_VALUE when invalid or out of range. */
  private static long time(Val v) {
    long ms;
    if (v.tok() == JsonToken.VALUE_NUMBER_INT) {
      try {
        ms = Long.parseLong(v.text());
      } catch (NumberFormatException e) {
        return Long.MIN_VALUE;
      }
    } else if (v.tok() == JsonToken.VALUE_STRING) {
      String s = v.text();
      try {
        ms = OffsetDateTime.parse(s).toInstant().toEpochMilli(); // RFC 3339
      } catch (DateTimeParseException e) {
        try {
          ms = LocalDateTime.parse(s, SQLISH).toInstant(ZoneOffset.UTC).toEpochMilli();
        } catch (DateTimeParseException e2) {
          return Long.MIN_VALUE;
        }
      }
    } else {
      return Long.MIN_VALUE;
    }
    return ms >= MIN_EVENT_MS && ms < MAX_EVENT_MS ? ms : Long.MIN_VALUE;
  }

  /** A JSON number as a BigDecimal, or null when not a sane finite number. */
  private static BigDecimal number(Val v) {
    if (v.tok() != JsonToken.VALUE_NUMBER_INT && v.tok() != JsonToken.VALUE_NUMBER_FLOAT) {
      return null;
    }
    BigDecimal d = new BigDecimal(v.text());
    // Bounds the work of later rescaling (1e-999999999) and rejects huge values.
    if (d.scale() > 1000 || d.precision() - d.scale() > 18) {
      return null;
    }
    return d;
  }

  /** An integer id (186 or 186.0) in int32 range, or null. */
  private static Long int32(Val v) {
    BigDecimal d = number(v);
    if (d == null) {
      return null;
    }
    try {
      long x = d.setScale(0, RoundingMode.UNNECESSARY).longValueExact();
      return x >= Integer.MIN_VALUE && x <= Integer.MAX_VALUE ? x : null;
    } catch (ArithmeticException e) {
      return null;
    }
  }

  /** Hundredths, rounded half away from zero, with |x| < limit; or null. */
  private static Long centi(Val v, long limit) {
    BigDecimal d = number(v);
    if (d == null) {
      return null;
    }
    long c = d.setScale(2, RoundingMode.HALF_UP).unscaledValue().longValueExact();
    return c > -limit && c < limit ? c : null;
  }
}
