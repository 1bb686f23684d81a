//go:build !amd64 || purego

package nn

var coltAVX512 = false

func colTGatherAVX512(dst *float32, nr, n int, x *float32, lanes *colTLanes, mask int) {
	panic("nn: colTGatherAVX512 without AVX-512")
}

// colTGatherAvailable reports whether this CPU runs colTGatherAVX512.
const colTGatherAvailable = false
