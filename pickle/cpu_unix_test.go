//go:build unix

package pickle

import "syscall"

// cpuSeconds returns the user and system CPU time the process has used, or
// -1 if it is unknown.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
