package nn

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestColSourceMatchesIm2col checks every panel colSource packs against
// the same block cut from im2col's column matrix, over geometries that mix
// kernel sizes, strides, paddings wider than the kernel, dilations, and
// output rows shorter and longer than a panel.
func TestColSourceMatchesIm2col(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 300 {
		kh, kw := 1+rng.IntN(5), 1+rng.IntN(5)
		p := ConvParams{
			Stride:   [2]int{1 + rng.IntN(3), 1 + rng.IntN(3)},
			Padding:  [2]int{rng.IntN(4), rng.IntN(4)},
			Dilation: [2]int{1 + rng.IntN(2), 1 + rng.IntN(2)},
			Groups:   1,
		}
		c, h, w := 1+rng.IntN(4), 1+rng.IntN(12), 1+rng.IntN(12)
		x, wt := RandN(1, c, h+kh*2, w+kw*2), RandN(2, c, kh, kw)
		g := convGeometry(x, wt, nil, p)
		col := make([]float32, g.k*g.ohw)
		im2colRange(&g, x.data, col, 0, g.cg)
		src := &colSource{g, x.data}
		nr := []int{1, 4, 16, 48, 64}[rng.IntN(5)]
		pc, jc := rng.IntN(g.k), rng.IntN(g.ohw)
		kc, nc := 1+rng.IntN(g.k-pc), 1+rng.IntN(g.ohw-jc)
		panels := (nc + nr - 1) / nr
		got := make([]float32, panels*kc*nr)
		for i := range got {
			got[i] = float32(i) // stale data PackB must overwrite
		}
		src.PackB(nr, pc, kc, jc, nc, got)
		want := make([]float32, len(got))
		for q := range panels {
			for r := range kc {
				for j := range nr {
					if cl := jc + q*nr + j; cl < jc+nc {
						want[q*kc*nr+r*nr+j] = col[(pc+r)*g.ohw+cl]
					}
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: PackB(nr=%d, pc=%d, kc=%d, jc=%d, nc=%d) differs from im2col", geomString(&g), nr, pc, kc, jc, nc)
		}
	}
}

func geomString(g *convGeom) string {
	return fmt.Sprintf("input %dx%dx%d kernel %dx%d stride %d,%d padding %d,%d dilation %d,%d",
		g.c, g.h, g.wd, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
}
