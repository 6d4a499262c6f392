// Package procstat reads what Linux reports about a process in /proc: its
// peak memory, for the fault tests' memory bound and the benchmarks.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PeakRSSMB is the process's peak resident memory so far (VmHWM), in MiB;
// 0 when the process has exited or /proc cannot be read.
func PeakRSSMB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	return 0
}
