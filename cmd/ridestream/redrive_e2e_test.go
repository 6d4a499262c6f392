package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ridestream/ridestream/internal/generate"
	"github.com/ridestream/ridestream/internal/testenv"
	"github.com/ridestream/ridestream/sink"
)

// TestRedriveOnceUnderSIGKILL: `redrive --all` is killed while it sends the
// rejected records back, then run again, and again: every rejected record
// is in the input exactly once more, with headers naming its origin; the
// pipeline reads them as new records (rejected again, here) and every table
// still equals the model over the input as it now stands.
func TestRedriveOnceUnderSIGKILL(t *testing.T) {
	env := testenv.Get(t)
	w := generate.Config{Seed: 131, Rides: 10_000, Partitions: 3, Hours: 6, OutOfOrder: 0.05, Late: 0.01, Malformed: 0.3,
		Lateness: 5 * time.Minute, Heartbeats: true}
	p, _ := testenv.NewPipeline(t, w, 0)
	proc := testenv.StartProc(t, "process.log", p.ProcessArgs("proc-redrive")...)
	snk := testenv.StartProc(t, "sink.log", p.SinkArgs()...)
	p.WaitDone(t, 3*time.Minute, proc, snk)
	rejected := len(p.Want.Rejected)
	redrive := append(append([]string{"redrive"}, env.KafkaArgs...), "--prefix", p.Prefix, "--database-url", p.DBURL)

	out, err := runToEnd(t, time.Minute, append(redrive, "--all", "--dry-run")...)
	if err != nil || !strings.Contains(out, "would send ") || !strings.Contains(out, fmt.Sprintf("dry run: %d selected, 0 sent before", rejected)) {
		t.Fatalf("redrive --dry-run: %v; %d rejected\n%s", err, rejected, out[max(0, len(out)-2000):])
	}
	// Killed midway: some records sent, not all.
	r := testenv.StartProc(t, "redrive-1.log", append(redrive, "--all", "--rate", "1500")...)
	waitFor(t, time.Minute, "the first run sends some records", func() bool {
		var n int
		_ = p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM redriven`).Scan(&n)
		return n > 600
	})
	r.Kill()
	var marked, sentBefore int
	if err := p.Pool.QueryRow(context.Background(), `SELECT count(*), count(sent_offset) FROM redriven`).Scan(&marked, &sentBefore); err != nil {
		t.Fatal(err)
	}
	if marked >= rejected {
		t.Fatalf("the first run was killed after marking every record (%d of %d)", marked, rejected)
	}
	for i := 2; i <= 3; i++ {
		out, err := runToEnd(t, 2*time.Minute, append(redrive, "--all")...)
		if err != nil {
			t.Fatalf("redrive run %d: %v\n%s", i, err, out)
		}
	}
	// Every rejected record is in the input once more, naming its origin.
	seen := map[string]int{}
	extra := 0
	for part, ms := range env.ReadMessages(t, p.Topic) {
		for _, m := range ms {
			for _, h := range m.Headers {
				if string(h.Key) == sink.HeaderRedriveOf {
					seen[string(h.Value)]++
					if fmt.Sprint(part) != strings.Split(string(h.Value), "/")[0] {
						t.Errorf("record of %s sent to partition %d", h.Value, part)
					}
				}
			}
		}
		extra += len(ms) - len(p.Parts[part])
	}
	for k := range p.Want.Rejected {
		if n := seen[fmt.Sprintf("%d/%d", k.Partition, k.Offset)]; n != 1 {
			t.Errorf("rejected record %d/%d is in the input %d more times, want once", k.Partition, k.Offset, n)
		}
	}
	if extra != rejected || len(seen) != rejected {
		t.Fatalf("%d records added to the input, %d origins, for %d rejected", extra, len(seen), rejected)
	}
	// The pipeline takes them as new records: most are rejected again;
	// some are rides now (a ride far ahead of its partition's stream time
	// then is an outlier; after the closing heartbeat it is not), in windows
	// no heartbeat has closed.
	p.Parts = env.ReadTopic(t, p.Topic)
	p.Remodel()
	p.AllFinal = false
	p.WaitDone(t, 3*time.Minute, proc, snk)
	time.Sleep(time.Second)
	p.VerifyFinals(t)
	p.VerifyRawAndLate(t)
	var again int
	if err := p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM rejected_input WHERE redrive_of IS NOT NULL`).Scan(&again); err != nil {
		t.Fatal(err)
	}
	if again == 0 || again >= rejected {
		t.Fatalf("%d re-driven records rejected again (of %d): the redrive header is not recorded", again, rejected)
	}
	t.Logf("the first run was killed after marking %d records (%d marked sent); two more runs: each of %d rejected records sent back once; %d rejected again",
		marked, sentBefore, rejected, again)
}
