// Package wino holds the vector kernels of the Winograd F(4×4, 3×3)
// convolution: the 1-D transforms Bᵀ (6 points to 6) and Aᵀ (6 to 4)
// applied element-wise across rows of floats, so that a 2-D transform of
// many tiles at once is two passes of long vector operations. AVX-512 and
// AVX2 kernels in Go assembly are chosen at run time on amd64; pure Go is
// used elsewhere and with -tags purego.
package wino

// BT computes, for k < n and i < 6,
//
//	dst[i*dstride+k] = Σ_r Bᵀ[i][r]·src[r*sstride+k]
//
// with Bᵀ the input transform of F(4, 3) (interpolation points 0, ±1, ±2,
// ∞). src and dst must not overlap.
func BT(src []float32, sstride int, dst []float32, dstride int, n int) {
	if n <= 0 {
		return
	}
	_ = src[5*sstride+n-1]
	_ = dst[5*dstride+n-1]
	done := btAsm(src, sstride, dst, dstride, n)
	if done < n {
		btGo(src[done:], sstride, dst[done:], dstride, n-done)
	}
}

// AT computes, for k < n and u < 4,
//
//	dst[u*dstride+k] = Σ_i Aᵀ[u][i]·src[i*sstride+k]
//
// with Aᵀ the output transform of F(4, 3). src and dst must not overlap.
func AT(src []float32, sstride int, dst []float32, dstride int, n int) {
	if n <= 0 {
		return
	}
	_ = src[5*sstride+n-1]
	_ = dst[3*dstride+n-1]
	done := atAsm(src, sstride, dst, dstride, n)
	if done < n {
		atGo(src[done:], sstride, dst[done:], dstride, n-done)
	}
}

// Impl names the kernels in use: "avx512", "avx2" or "go".
func Impl() string { return impl }

func btGo(src []float32, ss int, dst []float32, ds int, n int) {
	s0, s1, s2 := src[:n], src[ss:ss+n], src[2*ss:2*ss+n]
	s3, s4, s5 := src[3*ss:3*ss+n], src[4*ss:4*ss+n], src[5*ss:5*ss+n]
	d0, d1, d2 := dst[:n], dst[ds:ds+n], dst[2*ds:2*ds+n]
	d3, d4, d5 := dst[3*ds:3*ds+n], dst[4*ds:4*ds+n], dst[5*ds:5*ds+n]
	for k := range n {
		x0, x1, x2, x3, x4, x5 := s0[k], s1[k], s2[k], s3[k], s4[k], s5[k]
		d0[k] = 4*x0 - 5*x2 + x4
		d1[k] = (x3 + x4) - 4*(x1+x2)
		d2[k] = (x4 - x3) + 4*(x1-x2)
		d3[k] = (x4 - x2) + 2*(x3-x1)
		d4[k] = (x4 - x2) - 2*(x3-x1)
		d5[k] = 4*x1 - 5*x3 + x5
	}
}

func atGo(src []float32, ss int, dst []float32, ds int, n int) {
	s0, s1, s2 := src[:n], src[ss:ss+n], src[2*ss:2*ss+n]
	s3, s4, s5 := src[3*ss:3*ss+n], src[4*ss:4*ss+n], src[5*ss:5*ss+n]
	d0, d1, d2, d3 := dst[:n], dst[ds:ds+n], dst[2*ds:2*ds+n], dst[3*ds:3*ds+n]
	for k := range n {
		a, b := s1[k]+s2[k], s1[k]-s2[k]
		c, d := s3[k]+s4[k], s3[k]-s4[k]
		d0[k] = s0[k] + a + c
		d1[k] = b + 2*d
		d2[k] = a + 4*c
		d3[k] = b + 8*d + s5[k]
	}
}

// Gather4 sets dst[j] = src[4j] for j < len(dst): one column phase of a
// row, the stride-4 reads of the tiles' patches.
func Gather4(dst, src []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	_ = src[4*(n-1)]
	done := gather4Asm(dst, src, n)
	for j := done; j < n; j++ {
		dst[j] = src[4*j]
	}
}

// Scatter4 sets dst[4j] = src[j] for j < len(src), the inverse of Gather4.
func Scatter4(dst, src []float32) {
	n := len(src)
	if n == 0 {
		return
	}
	_ = dst[4*(n-1)]
	done := scatter4Asm(dst, src, n)
	for j := done; j < n; j++ {
		dst[4*j] = src[j]
	}
}
