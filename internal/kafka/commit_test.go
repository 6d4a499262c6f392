package kafka

import "testing"

func TestTrackerCommitsContiguousPrefix(t *testing.T) {
	tr := &tracker{done: map[int64]bool{}}
	for _, o := range []int64{20, 21, 22, 25, 26} { // 23, 24 compacted away
		tr.delivered(o)
	}
	steps := []struct {
		complete int64
		next     int64
		ok       bool
	}{
		{21, 0, false}, // 20 still running: nothing to commit
		{22, 0, false},
		{26, 0, false},
		{20, 23, true}, // prefix 20..22 done
		{25, 27, true}, // 25, 26 done; gaps in offsets are fine
	}
	for i, s := range steps {
		next, ok := tr.complete(s.complete)
		if ok != s.ok || (ok && next != s.next) {
			t.Fatalf("step %d: complete(%d) = %d, %v; want %d, %v", i, s.complete, next, ok, s.next, s.ok)
		}
	}
	for o := int64(100); o < 5000; o++ {
		tr.delivered(o)
	}
	for o := int64(4999); o >= 100; o-- {
		next, ok := tr.complete(o)
		if o > 100 && ok {
			t.Fatalf("committed %d before 100 completed", next)
		}
		if o == 100 && (!ok || next != 5000) {
			t.Fatalf("final commit %d, %v", next, ok)
		}
	}
}
