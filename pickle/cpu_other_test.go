//go:build !unix

package pickle

// cpuSeconds returns -1: the process's CPU time is not measured here.
func cpuSeconds() float64 { return -1 }
