//go:build amd64 && !purego

package dwconv

import "testing"

// TestAVX2 reruns the tests with AVX-512 turned off, so a machine that has
// both checks the AVX2 kernels too.
func TestAVX2(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2+FMA on this CPU")
	}
	saved := hasAVX512
	hasAVX512 = false
	defer func() { hasAVX512 = saved }()
	t.Run("Taps", TestTaps)
	t.Run("TapRuns", TestTapRuns)
	t.Run("Copy2D", TestCopy2D)
	t.Run("Deinterleave2D", TestDeinterleave2D)
}
