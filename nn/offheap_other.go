//go:build !linux

package nn

// mapFloats returns nil: training arenas use the heap on this system (see
// offheap_linux.go).
func mapFloats(n int) []float32 { return nil }

// unmapFloats does nothing: no buffer comes from mapFloats here.
func unmapFloats(b []float32) {}
