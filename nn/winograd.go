package nn

import (
	"os"
	"runtime"
	"sync"

	"github.com/ckptkit/ckpt/nn/gemm"
	"github.com/ckptkit/ckpt/nn/internal/vec"
	"github.com/ckptkit/ckpt/nn/internal/wino"
)

// Winograd F(4×4, 3×3) convolution (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2015) for prepared 3×3 stride-1 layers.
//
// The output is cut into 4×4 tiles; each tile needs a 6×6 patch of the
// input. With the transforms below, a tile of one output channel is
//
//	Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A
//
// so the 36 positions ξ of the 6×6 transformed domain are 36 independent
// products M[ξ] = U[ξ] · V[ξ], U[ξ] the [O, C] transformed weights and
// V[ξ] the [C, tiles] transformed input: 36 multiplications per tile and
// channel pair where the direct convolution does 16·9 = 144. The
// transforms use the interpolation points 0, ±1, ±2 and ∞; their rounding
// error in float32 is a few units of 1e-6 of the output's magnitude per
// layer (winograd_test.go measures it against the direct convolution), well
// inside the parity tolerance of 1e-4·max(1, max|y|).

// winoBT, winoG and winoAT are Bᵀ (6×6), G (6×3) and Aᵀ (4×6).
var (
	winoBT = [6][6]float64{
		{4, 0, -5, 0, 1, 0},
		{0, -4, -4, 1, 1, 0},
		{0, 4, -4, -1, 1, 0},
		{0, -2, -1, 2, 1, 0},
		{0, 2, -1, -2, 1, 0},
		{0, 4, 0, -5, 0, 1},
	}
	winoG = [6][3]float64{
		{1.0 / 4, 0, 0},
		{-1.0 / 6, -1.0 / 6, -1.0 / 6},
		{-1.0 / 6, 1.0 / 6, -1.0 / 6},
		{1.0 / 24, 1.0 / 12, 1.0 / 6},
		{1.0 / 24, -1.0 / 12, 1.0 / 6},
		{0, 0, 1},
	}
	winoAT = [4][6]float64{
		{1, 1, 1, 1, 1, 0},
		{0, 1, -1, 2, -2, 0},
		{0, 1, 1, 4, 4, 0},
		{0, 1, -1, 8, -8, 1},
	}
)

// winogradOff disables the Winograd path (CKPT_WINOGRAD=0 in the
// environment, or SetWinograd).
var winogradOff = os.Getenv("CKPT_WINOGRAD") == "0"

// SetWinograd turns the Winograd path of prepared 3×3 convolutions on (the
// default) or off, for comparing it with the direct one; CKPT_WINOGRAD=0 in
// the environment starts the process with it off. It must not be called
// while an Infer call is running.
func SetWinograd(on bool) { winogradOff = !on }

// winoPrep is a convolution's weights in the Winograd domain: U[ξ] [O, C]
// packed for the GEMM, one per position ξ of the 6×6 tile.
type winoPrep struct {
	u [36]*gemm.PackedA
}

// newWinoPrep transforms w [O, C, 3, 3] (computed in float64, rounded
// once), packed for products of about n columns (tiles). Position ξ = 6i+j
// of a kernel g's transform G g Gᵀ is Σ_ab G[i][a]·G[j][b]·g[a][b]; the
// positions are made one at a time in one [O, C] buffer, each packed before
// the next, so that preparing a layer holds its transformed weights once
// (packed) rather than twice.
func newWinoPrep(w []float32, o, c, n int) *winoPrep {
	u := make([]float32, o*c)
	p := &winoPrep{}
	for xi := range 36 {
		var k [9]float64
		for a := range 3 {
			for b := range 3 {
				k[a*3+b] = winoG[xi/6][a] * winoG[xi%6][b]
			}
		}
		for q := range u {
			g := w[q*9:][:9]
			v := k[0]*float64(g[0]) + k[1]*float64(g[1]) + k[2]*float64(g[2]) +
				k[3]*float64(g[3]) + k[4]*float64(g[4]) + k[5]*float64(g[5]) +
				k[6]*float64(g[6]) + k[7]*float64(g[7]) + k[8]*float64(g[8])
			u[q] = float32(v)
		}
		p.u[xi] = gemm.PackAFor(false, o, c, u, c, n)
	}
	return p
}

// useWinograd reports whether the prepared convolution of shape g runs
// through Winograd: a 3×3, stride-1, undilated convolution without groups,
// with enough channels for the 36 products to be worth their transforms and
// enough tiles for each product to fill the GEMM's micro-tiles (on a 7×7
// output of a single image the 36 transformed weight matrices, 4x the
// weights' size, cost more memory traffic than the arithmetic they save).
func useWinograd(g *convGeom) bool {
	if winogradOff || g.kh != 3 || g.kw != 3 || g.sh != 1 || g.sw != 1 || g.dh != 1 || g.dw != 1 || g.groups != 1 {
		return false
	}
	tiles := g.n * ((g.oh + 3) / 4) * ((g.ow + 3) / 4)
	return g.c >= winoMinChannels && g.o >= winoMinChannels && tiles >= winoMinTiles
}

// winogradShape reports whether a convolution of weights w [O, C, kh, kw]
// with p may run through Winograd for some input (useWinograd decides per
// input shape).
func winogradShape(w []int, p ConvParams) bool {
	one := func(v [2]int) bool { return v == [2]int{1, 1} || v == [2]int{} } // zero: the default
	return len(w) == 4 && w[2] == 3 && w[3] == 3 && one(p.Stride) && one(p.Dilation) &&
		p.Groups <= 1 && w[0] >= winoMinChannels && w[1] >= winoMinChannels
}

// winoMinTiles and winoMinChannels bound the layers Winograd beats the
// direct product on. A pass reads the transformed weights, 36·C·O floats
// (4x the weights), once; the products it saves are 108·C·O·P multiply-adds
// for P tiles, so the memory traffic per saved operation depends on P
// alone: at 16 tiles (a 14×14 output of one image) streaming them costs
// about what the saved products would have (measured level within
// resnet18/50, and 3-6% slower than with 32 as the bound), from 32 tiles
// on it pays (BenchmarkWinograd, CPU time, this session's Xeon: 1.4-1.5x at
// 128 channels on 28×28 for one image, 1.5-1.6x at 128-512 channels for
// eight). 64-channel layers, where the transforms weigh as much as the
// products, were level alone and slower inside resnet18/50.
var (
	winoMinTiles    = 32
	winoMinChannels = 128
)

// winograd returns e's Winograd weights, transforming them on first use,
// for the blocks of tiles that shape g gives.
func (e *convPrep) winograd(g *convGeom) *winoPrep {
	e.winoOnce.Do(func() {
		tpi := ((g.oh + 3) / 4) * ((g.ow + 3) / 4)
		nb := min(g.n, max(1, (winoBlockTiles+tpi-1)/tpi))
		e.wino = newWinoPrep(e.w.data, e.w.shape[0], e.w.shape[1], nb*tpi)
	})
	return e.wino
}

// winoForward computes the convolution of x [N, C, H, W] into out
// [N, O, oh, ow] through Winograd, then adds the bias (nil for none) and
// the residual rd (nil for none) and applies a.
//
// The images go in blocks of at least winoBlockTiles tiles, so that a
// block's transformed input and products (36·(C+O) floats a tile) stay in
// the core's cache between the transforms and the products instead of
// going through memory. With two blocks or more each goroutine runs whole
// blocks on its own (no barrier between the steps); a single block (one
// image) splits each step over the threads instead.
func winoForward(g *convGeom, wp *winoPrep, x *Tensor, out []float32, bias, rd []float32, a vec.Act) {
	ty, tx := (g.oh+3)/4, (g.ow+3)/4
	tpi := ty * tx // tiles per image
	nb := min(g.n, max(1, (winoBlockTiles+tpi-1)/tpi))
	blocks := (g.n + nb - 1) / nb
	per := 36 * (g.c + g.o) * nb * tpi // one block's V and M
	workers := min(runtime.GOMAXPROCS(0), blocks)
	if workers <= 1 {
		bt := newResultData([]int{per}, false, x)
		defer Release(bt) // scratch: the call's later results may have it
		buf := bt.data
		for n0 := 0; n0 < g.n; n0 += nb {
			winoBlock(g, wp, x.data, n0, min(n0+nb, g.n), buf, out, bias, rd, a, parallelFor)
		}
		return
	}
	bt := newResultData([]int{workers * per}, false, x)
	defer Release(bt)
	buf := bt.data
	serial := func(n, _ int, f func(lo, hi int)) { f(0, n) }
	parallelForWorkers(blocks, workers, func(w, lo, hi int) {
		for b := lo; b < hi; b++ {
			n0 := b * nb
			winoBlock(g, wp, x.data, n0, min(n0+nb, g.n), buf[w*per:(w+1)*per], out, bias, rd, a, serial)
		}
	})
}

// winoBlockTiles is the fewest tiles a block of images is given: enough
// columns for the 36 products to run near the GEMM's speed. Measured on
// resnet18 at batch 8 (CPU time per pass): 32 and 64 are level, 16 and 128
// take 5-20% more, a single block for the whole batch 15% more.
const winoBlockTiles = 64

// winoBlock runs images [n0, n1) of winoForward with the buffer buf for
// the transformed input V [36][C][P] and the products M [36][O][P] (P the
// block's tiles), splitting each step with par.
func winoBlock(g *convGeom, wp *winoPrep, xd []float32, n0, n1 int, buf, out, bias, rd []float32, a vec.Act, par func(n, work int, f func(lo, hi int))) {
	ty, tx := (g.oh+3)/4, (g.ow+3)/4
	tpi := ty * tx
	nn := n1 - n0
	P := nn * tpi
	C, O := g.c, g.o
	V, M := buf[:36*C*P], buf[36*C*P:36*(C+O)*P]
	threads := 1
	if par != nil && nn == g.n { // the only block: the products may split
		threads = gemm.Threads()
	}

	// Input transform, an (image, channel) plane per step.
	hw := g.h * g.wd
	par(nn*C, 36*C*P, func(lo, hi int) {
		sc := getWinoScratch(72 * tpi)
		for nc := lo; nc < hi; nc++ {
			n, c := nc/C, nc%C
			plane := xd[((n0+n)*C+c)*hw:][:hw]
			winoInputPlane(plane, g.h, g.wd, g.ph, g.pw, ty, tx, V[c*P+n*tpi:], C*P, *sc)
		}
		winoScratch.Put(sc)
	})

	// The 36 products, split over the threads by ξ.
	par(36, 36*O*C*P, func(lo, hi int) {
		t := 1
		if hi-lo == 36 {
			t = threads
		}
		for xi := lo; xi < hi; xi++ {
			wp.u[xi].SgemmThreads(t, false, P, 1, V[xi*C*P:(xi+1)*C*P], P, 0, M[xi*O*P:(xi+1)*O*P], P)
		}
	})

	// Output transform and finish, an (image, channel) plane per step.
	ohw := g.oh * g.ow
	par(nn*O, 36*O*P, func(lo, hi int) {
		sc := getWinoScratch(40 * tpi)
		for no := lo; no < hi; no++ {
			n, o := no/O, no%O
			off := ((n0+n)*O + o) * ohw
			dst := out[off : off+ohw]
			winoOutputPlane(M[o*P+n*tpi:], O*P, ty, tx, dst, g.oh, g.ow, *sc)
			var b float32
			if bias != nil {
				b = bias[o]
			}
			var r []float32
			if rd != nil {
				r = rd[off : off+ohw]
			}
			finishRow(dst, b, r, a)
		}
		winoScratch.Put(sc)
	})
}

// winoScratch holds the per-goroutine buffers of the transforms.
var winoScratch sync.Pool

func getWinoScratch(n int) *[]float32 {
	if b, ok := winoScratch.Get().(*[]float32); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]float32, n)
	return &b
}

// winoInputPlane writes Bᵀ d B for every tile of one channel plane [h, w]
// (padded by ph, pw): position ξ of tile t goes to dst[ξ*stride+t]. The
// tiles' 6×6 patches are gathered into 36 rows (one per patch position),
// then transformed as rows, 16 or 8 tiles a vector operation: Bᵀ over
// the patch rows, then B over the patch columns.
func winoInputPlane(x []float32, h, w, ph, pw, ty, tx int, dst []float32, stride int, scratch []float32) {
	tpi := ty * tx
	d, t := scratch[:36*tpi], scratch[36*tpi:72*tpi]
	for r := range 6 {
		for s := range 6 {
			row := d[(r*6+s)*tpi : (r*6+s+1)*tpi]
			// Tile columns j whose patch column 4j+s-pw is inside the plane.
			jlo := max(0, (pw-s+3)/4)
			jhi := min(tx, (w-1+pw-s)/4+1)
			if w-1+pw-s < 0 {
				jhi = 0
			}
			jlo = min(jlo, tx)
			jhi = max(jhi, jlo)
			for i := range ty {
				y := 4*i + r - ph
				out := row[i*tx : i*tx+tx]
				if y < 0 || y >= h {
					clear(out)
					continue
				}
				clear(out[:jlo])
				clear(out[jhi:])
				if jhi > jlo {
					wino.Gather4(out[jlo:jhi], x[y*w+4*jlo+s-pw:(y+1)*w])
				}
			}
		}
	}
	for s := range 6 {
		wino.BT(d[s*tpi:], 6*tpi, t[s*tpi:], 6*tpi, tpi)
	}
	for i := range 6 {
		wino.BT(t[i*6*tpi:], tpi, dst[i*6*stride:], stride, tpi)
	}
}

// winoOutputPlane writes Aᵀ m A for every tile of one output plane [oh, ow]:
// position ξ of tile t is m[ξ*stride+t]; tiles past the plane's edge are
// cut. Like the input transform it works on rows of tiles: Aᵀ over the
// tile columns, then over its rows, then a scatter into the plane.
func winoOutputPlane(m []float32, stride, ty, tx int, dst []float32, oh, ow int, scratch []float32) {
	tpi := ty * tx
	z, y := scratch[:24*tpi], scratch[24*tpi:40*tpi]
	for i := range 6 {
		wino.AT(m[i*6*stride:], stride, z[i*4*tpi:], tpi, tpi)
	}
	for v := range 4 {
		wino.AT(z[v*tpi:], 4*tpi, y[v*tpi:], 4*tpi, tpi)
	}
	for u := range 4 {
		for v := range 4 {
			src := y[(u*4+v)*tpi : (u*4+v+1)*tpi]
			jhi := min(tx, (ow-1-v)/4+1)
			if ow-1-v < 0 {
				continue
			}
			for i := range ty {
				r := 4*i + u
				if r >= oh {
					break
				}
				wino.Scatter4(dst[r*ow+v:(r+1)*ow], src[i*tx:i*tx+jhi])
			}
		}
	}
}
