package jpeg

// This file holds what libjpeg-turbo does to decoded component planes after
// the inverse DCT and that Pillow's output depends on: upsampling each
// component to full resolution (jdsample.c, with do_fancy_upsampling, its
// default and Pillow's) and converting YCbCr to RGB in fixed point
// (jdcolor.c). Package transforms uses both for three-component images
// returned at component resolution; this package uses them for 4:4:0,
// narrow images and four-component ones.

// Upsample scales the w×h samples of a component plane p (stride s) that
// belong to the image by the integral factors rh×rv (the frame's largest
// sampling factors over the component's) and returns the outW×outH plane
// (stride outW) that libjpeg-turbo makes of it:
//
//   - 2×1: a horizontal triangle filter (3/4 of the nearer sample, 1/4 of
//     the further, the edge samples kept), if w > 2; else replication;
//   - 2×2: the same filter in both directions, applied to column sums
//     (rows 3:1, then columns 3:1, divided by 16), if w > 2; else
//     replication;
//   - 1×2: the vertical triangle filter, whatever the width;
//   - any other factors, 1×1 included: replication.
//
// The top and bottom rows are their own outer neighbours, as libjpeg's
// context rows repeat them. Ties round alternately up and down (biases 1
// and 2 of 4, or 8 and 7 of 16), as libjpeg does. w and h must be the
// component's own size for the output, ceil(outW/rh) and ceil(outH/rv),
// and p must hold h rows of stride s ≥ w.
func Upsample(p []uint8, s, w, h, rh, rv, outW, outH int) []uint8 {
	out := make([]uint8, outW*outH)
	switch {
	case rh == 2 && rv == 1 && w > 2:
		row := make([]int32, w)
		for y := range outH {
			for x, v := range p[y*s:][:w] {
				row[x] = int32(v)
			}
			fancyRow(out[y*outW:][:outW], row, 2, 1, 2)
		}
	case rh == 2 && rv == 2 && w > 2:
		row := make([]int32, w)
		for y := range outH {
			near, far := p[(y/2)*s:][:w], p[vNeighbour(y, h)*s:][:w]
			for x := range row {
				row[x] = 3*int32(near[x]) + int32(far[x])
			}
			fancyRow(out[y*outW:][:outW], row, 4, 8, 7)
		}
	case rh == 1 && rv == 2:
		for y := range outH {
			near, far := p[(y/2)*s:][:w], p[vNeighbour(y, h)*s:][:w]
			bias := int32(1 + y%2)
			o := out[y*outW:][:outW]
			for x := range o {
				o[x] = uint8((3*int32(near[x]) + int32(far[x]) + bias) >> 2)
			}
		}
	default:
		for y := range outH {
			in, o := p[(y/rv)*s:][:w], out[y*outW:][:outW]
			if rh == 1 {
				copy(o, in)
				continue
			}
			for x := range o {
				o[x] = in[x/rh]
			}
		}
	}
	return out
}

// vNeighbour returns the input row that output row y of a vertically
// doubled plane of h input rows takes its 1/4 from: the row above for even
// y, the row below for odd y, clamped to the plane.
func vNeighbour(y, h int) int {
	if y%2 == 0 {
		return max(y/2-1, 0)
	}
	return min(y/2+1, h-1)
}

// fancyRow doubles row (values scaled by 1<<shift / 4) into o, which is
// 2·len(row) or one less, with libjpeg's horizontal triangle filter: each
// output sample is 3 of the nearer input and 1 of the further, the edges 4
// of their own, plus the bias for even (left) or odd (right) outputs,
// shifted down by shift.
func fancyRow(o []uint8, row []int32, shift uint, evenBias, oddBias int32) {
	last := len(row) - 1
	o[0] = uint8((4*row[0] + evenBias) >> shift)
	o[1] = uint8((3*row[0] + row[1] + oddBias) >> shift)
	for x := 1; x < last; x++ {
		o[2*x] = uint8((3*row[x] + row[x-1] + evenBias) >> shift)
		o[2*x+1] = uint8((3*row[x] + row[x+1] + oddBias) >> shift)
	}
	o[2*last] = uint8((3*row[last] + row[last-1] + evenBias) >> shift)
	if 2*last+1 < len(o) {
		o[2*last+1] = uint8((4*row[last] + oddBias) >> shift)
	}
}

// libjpeg's YCbCr -> RGB conversion uses 16-bit fixed point (jdcolor.c
// build_ycc_rgb_table); these tables hold its per-value terms, computed from
// the same constants: the Cr term of red and the Cb term of blue rounded,
// the two terms of green scaled by 1<<16 with the rounding half added to
// the Cb one.
var (
	crR, cbB [256]int32
	crG, cbG [256]int32
)

func init() {
	const scale = 1 << 16
	fix := func(x float64) int64 { return int64(x*scale + 0.5) }
	for i := range 256 {
		x := int64(i - 128)
		crR[i] = int32((fix(1.40200)*x + scale/2) >> 16)
		cbB[i] = int32((fix(1.77200)*x + scale/2) >> 16)
		crG[i] = int32(-fix(0.71414) * x)
		cbG[i] = int32(-fix(0.34414)*x + scale/2)
	}
}

func clamp255(v int32) uint8 {
	return uint8(max(0, min(255, v)))
}

// YCbCrToRGB converts one sample as libjpeg-turbo does (jdcolor.c).
func YCbCrToRGB(y, cb, cr uint8) (r, g, b uint8) {
	yy := int32(y)
	return clamp255(yy + crR[cr]), clamp255(yy + (cbG[cb]+crG[cr])>>16), clamp255(yy + cbB[cb])
}
