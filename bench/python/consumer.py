"""The tutorial's consumer, as users run it: kafka-python reads the rides
topic, each message is decoded with json.loads and inserted with one INSERT
per message in autocommit mode (psycopg2). Runs for --seconds, then prints
how many rows it inserted. Messages that do not decode are skipped, as a user
would have to add to keep it running."""
import argparse
import json
import time

import psycopg2
from kafka import KafkaConsumer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()

    conn = psycopg2.connect(args.dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("""CREATE TABLE IF NOT EXISTS processed_events (
        PULocationID INTEGER, DOLocationID INTEGER, trip_distance DOUBLE PRECISION,
        total_amount DOUBLE PRECISION, pickup_datetime TIMESTAMP)""")

    consumer = KafkaConsumer(args.topic, bootstrap_servers=args.brokers, group_id=args.group,
                             auto_offset_reset="earliest", enable_auto_commit=True)
    inserted = 0
    start = None
    for message in consumer:
        if start is None:
            start = time.monotonic()
        try:
            ride = json.loads(message.value)
            cur.execute(
                "INSERT INTO processed_events (PULocationID, DOLocationID, trip_distance, total_amount, pickup_datetime)"
                " VALUES (%s, %s, %s, %s, to_timestamp(%s / 1000.0))",
                (ride["PULocationID"], ride.get("DOLocationID"), ride.get("trip_distance"),
                 ride["total_amount"], ride["tpep_pickup_datetime"]))
            inserted += 1
        except Exception:  # noqa: BLE001 - the tutorial loop would die; skip instead
            pass
        if time.monotonic() - start >= args.seconds:
            break
    elapsed = time.monotonic() - start
    consumer.close()
    print(json.dumps({"inserted": inserted, "seconds": elapsed}))


if __name__ == "__main__":
    main()
