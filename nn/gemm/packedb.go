package gemm

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ckptkit/ckpt/nn/internal/par"
)

// PackedB is a right operand op(B) packed once for many products: a fully
// connected layer's weights, y = x·Wᵀ, multiplied by every batch of
// activations. [PackedB.SgemmEpilogue] then skips the packing of B that
// [Sgemm] does on every call (a gather of the transposed weights, a quarter
// of a ViT layer's time at batch 1) and splits the rows of A over the
// threads, each reading the one packed copy. A PackedB is a copy: later
// changes to the slice it was packed from do not reach it. It is safe for
// concurrent use. Make one with PackB; the zero PackedB is not usable.
type PackedB struct {
	k, n int
	kn   *kernel
	npad int       // n rounded up to kn.nr
	data []float32 // packBAllPanels' layout (native) or op(B) row-major (backend)
}

// PackB packs op(B), k×n, for [PackedB.SgemmEpilogue]. transB and ldb are
// as for [Sgemm]: B is stored n×k when transB is set. PackB panics on bad
// arguments, as Sgemm does.
func PackB(transB bool, k, n int, b []float32, ldb int) *PackedB {
	if k < 0 || n < 0 {
		panic(fmt.Sprintf("gemm: negative dimension k=%d n=%d", k, n))
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMat("B", b, br, bc, ldb)
	if backend != nil {
		return &PackedB{k: k, n: n, data: compactOp(transB, k, n, b, ldb)}
	}
	return packBWith(kernelForPackB(n), transB, k, n, b, ldb)
}

// packBWith packs op(B) for kernel kn.
func packBWith(kn *kernel, transB bool, k, n int, b []float32, ldb int) *PackedB {
	np := (n + kn.nr - 1) / kn.nr
	pb := &PackedB{k: k, n: n, kn: kn, npad: np * kn.nr, data: make([]float32, k*np*kn.nr)}
	if k > 0 && n > 0 {
		p := params{transB: transB, k: k, n: n, b: b, ldb: ldb}
		packBAllPanels(kn, &p, 0, (k+kn.kc-1)/kn.kc*np, pb.data)
	}
	return pb
}

// kernelForPackB chooses the kernel a PackedB is packed for, from n alone
// (the rows of the products to come are not known): the first kernel
// unless its columns pad n by more than 5%, then the one that pads n least.
func kernelForPackB(n int) *kernel {
	pad := func(kn *kernel) int { return (n + kn.nr - 1) / kn.nr * kn.nr }
	best := kernels[0]
	if 20*(pad(best)-n) <= n {
		return best
	}
	for _, kn := range kernels {
		if kn.isa == best.isa && pad(kn) < pad(best) {
			best = kn
		}
	}
	return best
}

// Rows reports the number of rows of op(B), k.
func (pb *PackedB) Rows() int { return pb.k }

// Cols reports the number of columns of op(B), n.
func (pb *PackedB) Cols() int { return pb.n }

// SgemmEpilogue computes C = op(A)*op(B) with op(B) the packed matrix
// (k×n), op(A) m×k (stored k×m when transA is set, stride lda) and C m×n
// (stride ldc, not read), then runs epi on every block of C (nil: none).
// C is split over [Threads] goroutines when the product is large enough:
// by columns when it is wide, else by rows.
func (pb *PackedB) SgemmEpilogue(transA bool, m int, a []float32, lda int, c []float32, ldc int, epi Epilogue) {
	k, n := pb.k, pb.n
	checkArgs(transA, false, m, n, k, a, lda, pb.data, max(n, 1), c, ldc)
	if pb.kn == nil {
		backend(transA, false, m, n, k, 1, a, lda, pb.data, max(n, 1), 0, c, ldc)
		if epi != nil && m > 0 && n > 0 {
			epi(0, m, 0, n)
		}
		return
	}
	p := params{transA: transA, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, c: c, ldc: ldc, epi: epi}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleC(&p)
		if epi != nil {
			epi(0, m, 0, n)
		}
		return
	}
	// One column block: B needs no packing into cache (it is packed
	// already), so a block of A is packed once for all of C's columns
	// instead of once per nc columns (five times over for a ViT MLP's
	// 3072).
	kw := *pb.kn
	kw.nc = pb.npad
	kn := &kw
	t := Threads()
	// Split the columns when C is wide (few rows: every goroutine then
	// reads only its share of the packed matrix, and packs all of A,
	// which is small), else the rows (each reads all of B, sharing it).
	splitN := n >= 2*m
	size, unit := m, kn.mr
	if splitN {
		size, unit = n, kn.nr
	}
	units := (size + unit - 1) / unit
	t = min(t, units)
	if t < 2 || m*n*k < parallelMinWork {
		w := getWS()
		w.blockPacked(kn, &p, 0, m, pb.data)
		putWS(w)
		return
	}
	if !splitN {
		// A call of its own (not from freeCalls: its bAll is this
		// matrix, which a recycled call would write into), with B
		// already packed.
		// Chunks of about mc rows, so that the epilogue of each finds
		// its block of C in cache.
		chunks := min(units, max(t*chunksPerThread, (m+kn.mc-1)/kn.mc))
		cl := &call{p: p, kn: kn, unit: kn.mr, units: units, chunks: chunks, shared: true, bAll: pb.data}
		par.Run(t, cl)
		return
	}
	// Chunks of columns claimed in turn, two per goroutine, so that one
	// slowed by other work on its core does fewer. A (few rows, in this
	// case) is packed once for all of them, its kc blocks shared out
	// first: each chunk packing all of A for its own columns packed it
	// 2·Threads times over, a tenth of vit_b_16's time at batch 1.
	chunks := min(units, 2*t)
	mpad := (m + kn.mr - 1) / kn.mr * kn.mr
	pa := sharedA.Get().(*[]float32)
	*pa = grow(*pa, mpad*k)
	p.packedA, p.mpad = *pa, mpad
	blocks := (k + kn.kc - 1) / kn.kc
	var nextBlock, next, packing atomic.Int64
	packing.Store(int64(blocks))
	par.Do(t, func(int) {
		for {
			i := int(nextBlock.Add(1) - 1)
			if i >= blocks {
				break
			}
			pc := i * kn.kc
			packA(&p, kn.mr, 0, m, pc, min(kn.kc, k-pc), p.packedA[pc*mpad:])
			packing.Add(-1)
		}
		par.WaitZero(&packing)
		w := getWS()
		for {
			i := int(next.Add(1) - 1)
			if i >= chunks {
				break
			}
			lo := units * i / chunks * unit
			hi := min(units*(i+1)/chunks*unit, n)
			w.blockPackedCols(kn, &p, lo, hi, pb.data)
		}
		putWS(w)
	})
	sharedA.Put(pa)
}

// sharedA holds the buffers of A packed once for all the column chunks of
// a wide PackedB product (SgemmEpilogue), one per product at a time.
var sharedA = sync.Pool{New: func() any { return new([]float32) }}

// blockPackedCols computes columns [j0,j1) of C, all m rows, from the whole
// of op(B) packed by packBAllPanels; j0 is a multiple of kn.nr.
//
// B is read from the packed matrix itself, from memory rather than from a
// block packed into cache, once for every mc rows of A: with few rows (the
// case that splits columns) they are taken as one block of up to 2·mc,
// so that 197 rows do not stream B twice, the second time for 5 rows.
func (w *workspace) blockPackedCols(kn *kernel, p *params, j0, j1 int, bAll []float32) {
	k2 := *kn
	k2.nc = (j1 - j0 + kn.nr - 1) / kn.nr * kn.nr // A packed once, as in SgemmEpilogue
	if mpad := (p.m + kn.mr - 1) / kn.mr * kn.mr; mpad > kn.mc && mpad <= 2*kn.mc {
		k2.mc = mpad
	}
	kn = &k2
	w.fit(kn)
	npad := (p.n + kn.nr - 1) / kn.nr * kn.nr
	for jc := j0; jc < j1; jc += kn.nc {
		nc := min(kn.nc, j1-jc)
		for pc := 0; pc < p.k; pc += kn.kc {
			kc := min(kn.kc, p.k-pc)
			w.rows(kn, p, 0, p.m, jc, nc, pc, kc, bAll[pc*npad+jc*kc:])
		}
		if p.epi != nil {
			p.epi(0, p.m, jc, jc+nc)
		}
	}
}
