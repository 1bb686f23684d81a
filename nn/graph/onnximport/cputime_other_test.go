//go:build !unix

package onnximport

import "time"

// cpuTime is 0 where getrusage is missing: the logs then show no CPU times.
func cpuTime() time.Duration { return 0 }
