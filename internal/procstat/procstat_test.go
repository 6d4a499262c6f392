package procstat

import (
	"os"
	"testing"
)

func TestPeakRSSMB(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = 1 // touch the pages so they count as resident
	}
	if mb := PeakRSSMB(os.Getpid()); mb < 64 {
		t.Fatalf("peak RSS %d MiB after touching 64 MiB", mb)
	}
	if mb := PeakRSSMB(-1); mb != 0 {
		t.Fatalf("peak RSS of no process: %d", mb)
	}
	_ = buf[len(buf)-1]
}
