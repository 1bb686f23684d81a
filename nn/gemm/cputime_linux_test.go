package gemm

import (
	"syscall"
	"time"
	"unsafe"
)

// processCPU returns the CPU time used by the whole process so far
// (CLOCK_PROCESS_CPUTIME_ID), or 0 if the clock cannot be read.
func processCPU() time.Duration {
	var ts syscall.Timespec
	const clockProcessCPUTimeID = 2
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}
