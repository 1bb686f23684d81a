package gemm

import "unsafe"

// microKernel computes one mr×nr tile: c[i*ldc+j] = alpha*sum_p
// a[p*mr+i]*b[p*nr+j] + beta*c[i*ldc+j], not reading c when beta is 0.
// a and b point at packed panels of k steps.
type microKernel func(k int, a, b, c *float32, ldc int, alpha, beta float32)

// edgeKernel is a microKernel that reads and writes only the first mrr rows
// and nrr columns of the tile, for the edges of C.
type edgeKernel func(k int, a, b, c *float32, ldc int, alpha, beta float32, mrr, nrr int)

// stridedKernel is a microKernel that reads B unpacked: step p's nr
// floats at b + p*ldb.
type stridedKernel func(k int, a, b, c *float32, ldc int, alpha, beta float32, ldb int)

// kernel is a micro-kernel with its register tile (mr×nr) and the cache
// blocking that suits it: kc steps of a B micro-panel (kc×nr) stay in L1,
// an mc×kc block of packed A and a kc×nc block of packed B in L2 (see
// kernel_amd64.go). mc is a multiple of mr and nc a multiple of nr.
type kernel struct {
	name       string
	isa        string // instruction set: kernels of one isa are equally fast
	mr, nr     int
	mc, kc, nc int
	fn         microKernel
	edge       edgeKernel // nil: edges go through a scratch tile
	// strided, when set, is fn reading B unpacked (see stridedKernel),
	// for [PackedA.SgemmEpilogue]'s products whose B rows are long.
	strided stridedKernel
	// cost is the kernel's time per tile element relative to the
	// fastest (0 means 1): pickKernel weighs the padding with it.
	cost float64
}

// pickKernel returns, among the fastest instruction set's kernels, the one
// whose tiles cover m×n with the least padding, weighed by its cost: the
// 12×32, 14×32 and 8×48 tiles run within measurement noise of each other,
// so the waste on edges decides between them (64 rows suit 8×48, 49
// columns 12×32); the 24×16 one, bound by its loads, is about 12% slower a
// tile and wins only where it halves the padding (16 columns).
func pickKernel(m, n int) *kernel {
	best, bestCost := kernels[0], 0.0
	for _, kn := range kernels {
		if kn.isa != kernels[0].isa {
			break
		}
		area := (m + kn.mr - 1) / kn.mr * kn.mr * ((n + kn.nr - 1) / kn.nr * kn.nr)
		c := float64(area)
		if kn.cost > 0 {
			c *= kn.cost
		}
		if bestCost == 0 || c < bestCost {
			best, bestCost = kn, c
		}
	}
	return best
}

// params is one Sgemm call.
type params struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int

	// packedA, when set, is op(A) already packed by PackA (a is unused):
	// kc-step blocks one after the other, block pc at pc*mpad, each laid
	// out as packA lays out rows 0..m.
	packedA []float32
	mpad    int

	// bsrc, when set, supplies op(B) (b, ldb and transB are unused).
	bsrc BSource

	// epi, when set, is called on every block of C once its product is
	// complete (see Epilogue).
	epi Epilogue

	// directB, when set (only with b untransposed and a kernel that has a
	// strided variant), makes block read B's whole nr-column panels in
	// place, with the strided kernel, instead of packing them first; only
	// the last, partial panel of a block is packed.
	directB bool
}

// workspace is one set of packing buffers, used by one goroutine at a time.
type workspace struct {
	a, b []float32
	tile []float32
}

func (w *workspace) fit(kn *kernel) {
	if n := kn.mc * kn.kc; len(w.a) < n {
		w.a = make([]float32, n)
	}
	if n := kn.kc * kn.nc; len(w.b) < n {
		w.b = make([]float32, n)
	}
	if n := kn.mr * kn.nr; len(w.tile) < n {
		w.tile = make([]float32, n)
	}
}

// block computes rows [i0,i1) and columns [j0,j1) of C, serially, with w's
// buffers. Callers have handled alpha == 0 and k == 0.
func (w *workspace) block(kn *kernel, p *params, i0, i1, j0, j1 int) {
	w.fit(kn)
	for jc := j0; jc < j1; jc += kn.nc {
		nc := min(kn.nc, j1-jc)
		for pc := 0; pc < p.k; pc += kn.kc {
			kc := min(kn.kc, p.k-pc)
			if p.directB {
				if full := nc / kn.nr * kn.nr; full < nc {
					packB(p, kn.nr, pc, kc, jc+full, nc-full, w.b[full*kc:])
				}
			} else {
				packB(p, kn.nr, pc, kc, jc, nc, w.b)
			}
			w.rows(kn, p, i0, i1, jc, nc, pc, kc, w.b)
		}
		if p.epi != nil {
			p.epi(i0, i1, jc, jc+nc)
		}
	}
}

// blockPacked computes rows [i0,i1) of C, all n columns, from the whole of
// op(B) packed by packBAllPanels.
func (w *workspace) blockPacked(kn *kernel, p *params, i0, i1 int, bAll []float32) {
	w.fit(kn)
	npad := (p.n + kn.nr - 1) / kn.nr * kn.nr
	for jc := 0; jc < p.n; jc += kn.nc {
		nc := min(kn.nc, p.n-jc)
		for pc := 0; pc < p.k; pc += kn.kc {
			kc := min(kn.kc, p.k-pc)
			w.rows(kn, p, i0, i1, jc, nc, pc, kc, bAll[pc*npad+jc*kc:])
		}
		if p.epi != nil {
			p.epi(i0, i1, jc, jc+nc)
		}
	}
}

// rows multiplies rows [i0,i1) of op(A)[:, pc:pc+kc] by the packed
// op(B)[pc:pc+kc, jc:jc+nc] in bp into C, packing A an mc block at a time.
func (w *workspace) rows(kn *kernel, p *params, i0, i1, jc, nc, pc, kc int, bp []float32) {
	mr, nr := kn.mr, kn.nr
	beta := p.beta
	if pc > 0 {
		beta = 1
	}
	for ic := i0; ic < i1; ic += kn.mc {
		mc := min(kn.mc, i1-ic)
		ap := w.a
		if p.packedA != nil {
			ap = p.packedA[pc*p.mpad+ic*kc:]
		} else {
			packA(p, mr, ic, mc, pc, kc, w.a)
		}
		for jr := 0; jr < nc; jr += nr {
			nrr := min(nr, nc-jr)
			direct := p.directB && nrr == nr // B's panel read in place (see block)
			var b *float32
			if direct {
				b = &p.b[pc*p.ldb+jc+jr]
			} else {
				b = &bp[jr*kc]
			}
			for ir := 0; ir < mc; ir += mr {
				mrr := min(mr, mc-ir)
				a := &ap[ir*kc]
				ci := (ic+ir)*p.ldc + jc + jr
				switch {
				case direct && mrr == mr:
					kn.strided(kc, a, b, &p.c[ci], p.ldc, p.alpha, beta, p.ldb)
					continue
				case direct:
					kn.strided(kc, a, b, &w.tile[0], nr, p.alpha, 0, p.ldb)
				case mrr == mr && nrr == nr:
					kn.fn(kc, a, b, &p.c[ci], p.ldc, p.alpha, beta)
					continue
				case kn.edge != nil:
					kn.edge(kc, a, b, &p.c[ci], p.ldc, p.alpha, beta, mrr, nrr)
					continue
				default:
					kn.fn(kc, a, b, &w.tile[0], nr, p.alpha, 0)
				}
				for i := 0; i < mrr; i++ {
					row := p.c[ci+i*p.ldc : ci+i*p.ldc+nrr]
					t := w.tile[i*nr : i*nr+nrr]
					if beta == 0 {
						copy(row, t)
					} else {
						for j, v := range t {
							row[j] = v + beta*row[j]
						}
					}
				}
			}
		}
	}
}

// packBAllPanels packs panels [u0,u1) of the whole of op(B) into dst, for
// blockPacked: kc-row blocks one after the other (block pc at pc*npad, npad
// = n rounded up to nr), each laid out as packB lays out one block. Panel u
// is panel u%np of block u/np, np = npad/nr.
func packBAllPanels(kn *kernel, p *params, u0, u1 int, dst []float32) {
	np := (p.n + kn.nr - 1) / kn.nr
	npad := np * kn.nr
	for u := u0; u < u1; u++ {
		pc := u / np * kn.kc
		kc := min(kn.kc, p.k-pc)
		jr := u % np * kn.nr
		nrr := min(kn.nr, p.n-jr)
		packB(p, kn.nr, pc, kc, jr, nrr, dst[pc*npad+jr*kc:])
	}
}

// packA packs op(A)[ic:ic+mc, pc:pc+kc] into dst as ceil(mc/mr) panels of
// kc×mr (element (i, p) of a panel at p*mr+i), padding short panels with
// zeros.
func packA(p *params, mr, ic, mc, pc, kc int, dst []float32) {
	a, lda := p.a, p.lda
	for ir := 0; ir < mc; ir += mr {
		mrr := min(mr, mc-ir)
		d := dst[ir*kc : ir*kc+kc*mr]
		if p.transA {
			// Stored A is k×m: the mr values of one k step are contiguous.
			for q := 0; q < kc; q++ {
				src := a[(pc+q)*lda+ic+ir:]
				src = src[:mrr]
				dd := d[q*mr : q*mr+mr]
				copy(dd, src)
				clear(dd[mrr:])
			}
			continue
		}
		base := (ic+ir)*lda + pc
		last := base + (mrr-1)*lda + kc
		src := a[base:last:last]
		if mrr == mr && mr%2 == 0 && hasPackT {
			packT(kc, &src[0], lda, &d[0], mr)
			continue
		}
		// Walk the mrr rows side by side, one cache line of each at a time,
		// so that their memory reads overlap: one row after another is
		// bound by memory latency when A is not in cache.
		for q0 := 0; q0 < kc; q0 += 16 {
			q1 := min(q0+16, kc)
			for i := 0; i < mrr; i++ {
				row := src[i*lda+q0 : i*lda+q1]
				for t, v := range row {
					d[(q0+t)*mr+i] = v
				}
			}
		}
		if mrr < mr {
			for q := 0; q < kc; q++ {
				clear(d[q*mr+mrr : q*mr+mr])
			}
		}
	}
}

// packB packs op(B)[pc:pc+kc, jc:jc+nc] into dst as ceil(nc/nr) panels of
// kc×nr (element (p, j) of a panel at p*nr+j), padding with zeros.
func packB(p *params, nr, pc, kc, jc, nc int, dst []float32) {
	if p.bsrc != nil {
		p.bsrc.PackB(nr, pc, kc, jc, nc, dst)
		return
	}
	b, ldb := p.b, p.ldb
	for jr := 0; jr < nc; jr += nr {
		nrr := min(nr, nc-jr)
		d := dst[jr*kc : jr*kc+kc*nr]
		if !p.transB {
			if nrr == nr && nr%16 == 0 && hasPackT {
				base := pc*ldb + jc + jr
				last := base + (kc-1)*ldb + nr
				packN(kc, &b[base:last][0], ldb, &d[0], nr)
				continue
			}
			for q := 0; q < kc; q++ {
				src := b[(pc+q)*ldb+jc+jr:]
				src = src[:nrr]
				dd := d[q*nr : q*nr+nr]
				copy(dd, src)
				clear(dd[nrr:])
			}
			continue
		}
		// Stored B is n×k: one column of op(B) is a contiguous row.
		if nrr == nr && nr%2 == 0 && hasPackT {
			base := (jc+jr)*ldb + pc
			last := base + (nr-1)*ldb + kc
			packT(kc, &b[base:last][0], ldb, &d[0], nr)
			continue
		}
		for j := 0; j < nrr; j++ {
			src := b[(jc+jr+j)*ldb+pc:]
			src = src[:kc]
			for q, v := range src {
				d[q*nr+j] = v
			}
		}
		if nrr < nr {
			for q := 0; q < kc; q++ {
				clear(d[q*nr+nrr : q*nr+nr])
			}
		}
	}
}

// goKernel is the portable kernel: a 4×4 register tile in pure Go.
var goKernel = &kernel{name: "go4x4", isa: "go", mr: 4, nr: 4, mc: 128, kc: 256, nc: 2048, fn: kern4x4}

func kern4x4(k int, ap, bp, cp *float32, ldc int, alpha, beta float32) {
	a := unsafe.Slice(ap, k*4)
	b := unsafe.Slice(bp, k*4)
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	for len(a) >= 4 && len(b) >= 4 {
		a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
		a, b = a[4:], b[4:]
	}
	c := unsafe.Slice(cp, 3*ldc+4)
	store4(c[0:4], alpha, beta, c00, c01, c02, c03)
	store4(c[ldc:ldc+4], alpha, beta, c10, c11, c12, c13)
	store4(c[2*ldc:2*ldc+4], alpha, beta, c20, c21, c22, c23)
	store4(c[3*ldc:3*ldc+4], alpha, beta, c30, c31, c32, c33)
}

func store4(c []float32, alpha, beta float32, v0, v1, v2, v3 float32) {
	c = c[:4]
	if beta == 0 {
		c[0], c[1], c[2], c[3] = alpha*v0, alpha*v1, alpha*v2, alpha*v3
		return
	}
	c[0] = alpha*v0 + beta*c[0]
	c[1] = alpha*v1 + beta*c[1]
	c[2] = alpha*v2 + beta*c[2]
	c[3] = alpha*v3 + beta*c[3]
}

// scaleC sets C = beta*C, the whole result when alpha or k is 0.
func scaleC(p *params) {
	for i := 0; i < p.m; i++ {
		row := p.c[i*p.ldc : i*p.ldc+p.n]
		if p.beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= p.beta
		}
	}
}
