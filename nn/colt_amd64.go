//go:build amd64 && !purego

package nn

import "golang.org/x/sys/cpu"

// coltAVX512 selects colTGatherAVX512 for colTSource's panels; tests switch
// it off to check the Go loop.
var coltAVX512 = cpu.X86.HasAVX512F

//go:noescape
func colTGatherAVX512(dst *float32, nr, n int, x *float32, lanes *colTLanes, mask int)

// colTGatherAvailable reports whether this CPU runs colTGatherAVX512.
var colTGatherAvailable = cpu.X86.HasAVX512F
