package main

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/pipeline"
)

// TestDemoWithEachSpecFlag runs `ridestream demo` with each pipeline
// setting it accepts: every run finishes, prints its tables, and lands the
// reference model's number of final rows (a model built with the same
// settings, decoding included).
func TestDemoWithEachSpecFlag(t *testing.T) {
	decl := t.TempDir() + "/aggregations.yaml"
	if err := os.WriteFile(decl, []byte(`aggregations:
  - name: busiest_zones_5m
    window: 5m
    group_by: [PULocationID]
    measures: {num_trips: count, total_revenue: sum(total_amount)}
  - name: vendor_sessions
    session_gap: 2m
    group_by: [VendorID]
    measures: {num_trips: count, longest: max(trip_distance)}
  - name: tips_hourly
    window: 1h
    measures: {total_tips: sum(tip_amount)}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"aggregations":      decl,
		"topic":             "demo-rides",
		"window":            "30m",
		"allowed-lateness":  "10m",
		"max-future-skew":   "2h",
		"time-zone":         "America/New_York",
		"input-time-zone":   "America/New_York",
		"event-time-field":  "tpep_dropoff_datetime",
		"shards":            "3",
		"window-partitions": "2",
	}
	for _, flag := range pipeline.SettingFlags() {
		if _, ok := values[flag]; !ok {
			t.Errorf("--%s is a pipeline setting the demo accepts: give it a value in this test", flag)
		}
	}
	rows := regexp.MustCompile(`table (\w+): (\d+) rows over (\d+) windows, the reference model expects (\d+) rows`)
	flags := append([]string{""}, pipeline.SettingFlags()...)
	for _, flag := range flags {
		name := "defaults"
		args := []string{"demo", "--rides", "4000", "--partitions", "3", "--hours", "6"}
		if flag != "" {
			name = flag
			args = append(args, "--"+flag, values[flag])
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := runToEnd(t, 4*time.Minute, args...)
			if err != nil {
				t.Fatalf("demo %v: %v\n%s", args[1:], err, out)
			}
			tables := rows.FindAllStringSubmatch(out, -1)
			if len(tables) == 0 {
				t.Fatalf("demo %v printed no final table:\n%s", args[1:], out)
			}
			for _, m := range tables {
				got, _ := strconv.Atoi(m[2])
				want, _ := strconv.Atoi(m[4])
				if got != want || got == 0 {
					t.Errorf("demo %v: %s has %d final rows, the model expects %d", args[1:], m[1], got, want)
				}
				t.Logf("demo %v: %s: %s final rows over %s windows", args[1:], m[1], m[2], m[3])
			}
		})
	}
}
