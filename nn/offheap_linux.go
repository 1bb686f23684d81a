//go:build linux

package nn

import (
	"sync"
	"syscall"
	"unsafe"
)

// A training arena's buffers are anonymous memory mappings, outside the Go
// heap: they live as long as the arena and are reused step after step, so
// on the heap they would only raise the garbage collector's goal (a
// multiple of the live heap) by half their size again and let that much
// garbage pile up before each collection. Off the heap, the activations
// cost their own size and the collector paces itself on the rest.
//
// A mapping given back keeps its addresses but not its pages (the kernel
// takes them, and a read would see zeros): it goes to idleMaps for a later
// arena instead of being unmapped, so memory reachable through a stale
// slice of a dropped arena is never unmapped under it.

var idleMaps struct {
	sync.Mutex
	bufs [][]float32
}

// mapFloats returns n zeroed floats outside the Go heap, or nil when the
// system refuses the mapping (the caller then uses the heap).
func mapFloats(n int) []float32 {
	if n <= 0 {
		return nil
	}
	idleMaps.Lock()
	best := -1
	for i, b := range idleMaps.bufs {
		if c := cap(b); c >= n && c <= 2*n && (best < 0 || c < cap(idleMaps.bufs[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := idleMaps.bufs[best]
		idleMaps.bufs[best] = idleMaps.bufs[len(idleMaps.bufs)-1]
		idleMaps.bufs = idleMaps.bufs[:len(idleMaps.bufs)-1]
		idleMaps.Unlock()
		return b[:n]
	}
	idleMaps.Unlock()
	page := syscall.Getpagesize()
	size := (n*4 + page - 1) / page * page
	m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(m))), size/4)[:n]
}

// unmapFloats gives back a buffer from mapFloats: its pages to the system
// (a later mapFloats that reuses it returns zeros), its addresses to later
// mapFloats calls.
func unmapFloats(b []float32) {
	if cap(b) == 0 {
		return
	}
	b = b[:cap(b)]
	m := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b)*4)
	if syscall.Madvise(m, syscall.MADV_DONTNEED) != nil {
		return // keep the pages rather than risk reusing them dirty
	}
	idleMaps.Lock()
	idleMaps.bufs = append(idleMaps.bufs, b)
	idleMaps.Unlock()
}
