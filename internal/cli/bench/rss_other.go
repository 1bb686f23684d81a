//go:build !linux

package bench

// peakRSSMiB returns 0: the peak resident set size is read from Linux's /proc.
func peakRSSMiB() float64 { return 0 }
