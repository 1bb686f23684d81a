//go:build !linux

package bench

// peakRSSMiB returns 0: the peak resident set size is read from Linux's /proc.
func peakRSSMiB() float64 { return 0 }

// cpuSeconds returns 0: the process CPU time is read with Linux's getrusage.
func cpuSeconds() float64 { return 0 }
