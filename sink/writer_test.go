package sink

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/ride"
	"github.com/ridestream/ridestream/internal/testenv"
	"github.com/ridestream/ridestream/internal/window"
)

// TestCentsEncoding: PostgreSQL reads back every amount written as cents.
func TestCentsEncoding(t *testing.T) {
	ctx := context.Background()
	pool, err := OpenPool(ctx, testenv.Get(t).NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	values := []int64{0, 1, -1, 5, 10, 99, 100, 101, -100, 1000, 9999, 10000, 10001, 12345, 999999, 1000000, 1000001,
		123456789, -123456789, 999999999999, -999999999999, 100000000, 1000000000000, math.MaxInt64, math.MinInt64 + 1}
	if _, err := pool.Exec(ctx, `CREATE TABLE amounts (i int, scaled numeric(12,2), plain numeric)`); err != nil {
		t.Fatal(err)
	}
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"amounts"}, []string{"i", "scaled", "plain"},
		pgx.CopyFromSlice(len(values), func(i int) ([]any, error) {
			var scaled any
			if v := values[i]; v > -1e12 && v < 1e12 { // numeric(12,2)
				scaled = cents(v)
			}
			return []any{i, scaled, cents(values[i])}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT i, coalesce(scaled::text, ''), plain::text FROM amounts ORDER BY i`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var i int
		var scaled, plain string
		if err := rows.Scan(&i, &scaled, &plain); err != nil {
			t.Fatal(err)
		}
		want := decimal(values[i])
		if plain != want || (scaled != "" && scaled != want) {
			t.Errorf("cents %d: PostgreSQL read %q and %q, want %q", values[i], scaled, plain, want)
		}
		n++
	}
	if n != len(values) {
		t.Fatalf("%d rows read back, %d written", n, len(values))
	}
}

func decimal(c int64) string {
	sign, u := "", uint64(c)
	if c < 0 {
		sign, u = "-", uint64(-c)
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// TestDirectPathFallsBack: a batch whose rides are partly in the table
// already (what a sink that held the partition during a rebalance leaves)
// lands through staging, and both paths leave the same rows.
func TestDirectPathFallsBack(t *testing.T) {
	ctx := context.Background()
	env := testenv.Get(t)
	spec := window.DefaultSpec()
	w := generate.Config{Seed: 9, Rides: 3000, Partitions: 2, Hours: 3, Lateness: spec.Lateness}
	var rows []rideRow
	var offsets [2]int64
	for m := range w.All {
		rec, err := ride.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, rideRow{partition: m.Partition, offset: offsets[m.Partition], r: rec.Ride, windowStart: spec.Start(rec.EventMs)})
		offsets[m.Partition]++
	}
	chunks := func(from, to int64) []*chunk {
		var cs []*chunk
		for p := int32(1); p >= 0; p-- { // out of partition order on purpose
			c := &chunk{progress: progress{topic: "t", partition: p, next: to}}
			for _, r := range rows {
				if r.partition == p && r.offset >= from && r.offset < to {
					c.rides = append(c.rides, r)
				}
			}
			c.records = len(c.rides)
			cs = append(cs, c)
		}
		return cs
	}
	dump := func(pool interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) string {
		var s string
		if err := pool.QueryRow(ctx, `SELECT count(*) || ' ' || md5(string_agg(r::text, ',' ORDER BY src_partition, src_offset)) FROM rides r`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var results []string
	for _, path := range []int{pathStaging, pathDirect} {
		pool, err := OpenPool(ctx, env.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if err := MigratePool(ctx, pool); err != nil {
			t.Fatal(err)
		}
		before := counterValue(metricStagingFallbacks)
		for _, b := range [][2]int64{{0, 500}, {300, 900}, {0, 900}, {900, 2000}} { // overlaps, as after a rebalance
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return writeBatch(ctx, tx, chunks(b[0], b[1]), path, nil) }); err != nil {
				t.Fatalf("path %d, batch %v: %v", path, b, err)
			}
		}
		fallbacks := counterValue(metricStagingFallbacks) - before
		if path == pathDirect && fallbacks != 2 {
			t.Errorf("direct path fell back to staging %v times, want 2 (the two overlapping batches)", fallbacks)
		}
		results = append(results, dump(pool))
	}
	if results[0] != results[1] {
		t.Fatalf("staging path left %s, direct path %s", results[0], results[1])
	}
	if want := fmt.Sprintf("%d ", len(rows)); results[0][:len(want)] != want {
		t.Fatalf("rides table holds %s, want %d rows", results[0], len(rows))
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
