package gemm

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

func threadCPU() time.Duration {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3 /* CLOCK_THREAD_CPUTIME_ID */, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

func TestTune(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, kn := range kernels[:len(kernels)-1] {
		for _, sh := range [][3]int{{1024, 1024, 1024}, {512, 512, 512}, {256, 196, 2304}, {512, 49, 4608}, {64, 12544, 147}} {
			m, n, k := sh[0], sh[1], sh[2]
			a := make([]float32, m*k)
			bm := make([]float32, k*n)
			c := make([]float32, m*n)
			p := &params{m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: bm, ldb: n, c: c, ldc: n}
			run(kn, p, 1)
			best := 0.0
			for r := 0; r < 5; r++ {
				iters := max(1, int(1e10/float64(m*n*k)))
				t0 := threadCPU()
				for range iters {
					run(kn, p, 1)
				}
				d := (threadCPU() - t0).Seconds()
				best = max(best, 2*float64(m*n*k)*float64(iters)/d/1e9)
			}
			fmt.Printf("%-14s %4dx%5dx%4d %6.1f GFLOP/cpu-s\n", kn.name, m, n, k, best)
		}
	}
}
