//go:build !amd64 || purego

package dwconv

// Impl names the implementation in use: "go" here.
const Impl = "go"

func taps(dst, src []float32, offs []int, w []float32, bias float32) {
	tapsGo(dst, src, offs, w, bias)
}

func tapRuns(dst, src []float32, runs []Run, w []float32, bias, lo, hi float32) {
	tapRunsGo(dst, src, runs, w, bias)
	clampGo(dst, lo, hi)
}

func copy2D(dst []float32, dp int, src []float32, sp, rows, cols int) {
	copy2DGo(dst, dp, src, sp, rows, cols)
}

func deinterleave2D(even, odd []float32, dp int, src []float32, sp, rows, cols int) {
	deinterleave2DGo(even, odd, dp, src, sp, rows, cols)
}
