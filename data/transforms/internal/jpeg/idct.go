package jpeg

// Fixed-point constants of libjpeg's islow inverse DCT: round(x * 2^13) for
// the cosine terms of the Loeffler-Ligtenberg-Moschytz factorization.
const (
	constBits = 13
	pass1Bits = 2

	fix0_298631336 = 2446
	fix0_390180644 = 3196
	fix0_541196100 = 4433
	fix0_765366865 = 6270
	fix0_899976223 = 7373
	fix1_175875602 = 9633
	fix1_501321110 = 12299
	fix1_847759065 = 15137
	fix1_961570560 = 16069
	fix2_053119869 = 16819
	fix2_562915447 = 20995
	fix3_072711026 = 25172
)

// rangeLimit maps a descaled IDCT output to a sample as libjpeg's
// post-IDCT table does: the value is taken modulo 1024 as a signed 10-bit
// number, offset by 128 and clamped to 0..255.
func rangeLimit(x int32) uint8 {
	x &= 1023
	if x >= 512 {
		x -= 1024
	}
	x += 128
	if x < 0 {
		return 0
	}
	if x > 255 {
		return 255
	}
	return uint8(x)
}

// idct8 is one 8-point pass of the islow IDCT on in[0], in[s], ..., in[7s],
// returning the eight outputs before descaling.
func idct8(i0, i1, i2, i3, i4, i5, i6, i7 int32) (o [8]int32) {
	// Even part.
	z1 := (i2 + i6) * fix0_541196100
	tmp2 := z1 - i6*fix1_847759065
	tmp3 := z1 + i2*fix0_765366865
	tmp0 := (i0 + i4) << constBits
	tmp1 := (i0 - i4) << constBits
	tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
	tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2

	// Odd part.
	t0, t1, t2, t3 := i7, i5, i3, i1
	z1 = t0 + t3
	z2 := t1 + t2
	z3 := t0 + t2
	z4 := t1 + t3
	z5 := (z3 + z4) * fix1_175875602
	t0 *= fix0_298631336
	t1 *= fix2_053119869
	t2 *= fix3_072711026
	t3 *= fix1_501321110
	z1 *= -fix0_899976223
	z2 *= -fix2_562915447
	z3 = z3*-fix1_961570560 + z5
	z4 = z4*-fix0_390180644 + z5
	t0 += z1 + z3
	t1 += z2 + z4
	t2 += z2 + z3
	t3 += z1 + z4

	return [8]int32{
		tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0,
		tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3,
	}
}

// idctIslow dequantizes a block of coefficients (natural order) with q and
// writes its 8×8 samples to out with the given stride, bit-exact with
// libjpeg's jpeg_idct_islow: columns first, descaled by 13-2 bits, then
// rows, descaled by 13+2+3 bits, rounding half up.
func idctIslow(blk []int16, q *[64]int32, out []uint8, stride int) {
	var ws [64]int32
	for x := range 8 {
		c := func(y int) int32 { return int32(blk[8*y+x]) * q[8*y+x] }
		if blk[8+x] == 0 && blk[16+x] == 0 && blk[24+x] == 0 && blk[32+x] == 0 &&
			blk[40+x] == 0 && blk[48+x] == 0 && blk[56+x] == 0 {
			dc := c(0) << pass1Bits
			for y := range 8 {
				ws[8*y+x] = dc
			}
			continue
		}
		o := idct8(c(0), c(1), c(2), c(3), c(4), c(5), c(6), c(7))
		for y := range 8 {
			ws[8*y+x] = (o[y] + 1<<(constBits-pass1Bits-1)) >> (constBits - pass1Bits)
		}
	}
	const shift = constBits + pass1Bits + 3
	for y := range 8 {
		w := ws[8*y:][:8]
		row := out[y*stride:][:8]
		if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
			v := rangeLimit((w[0] + 1<<(pass1Bits+3-1)) >> (pass1Bits + 3))
			for x := range 8 {
				row[x] = v
			}
			continue
		}
		o := idct8(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7])
		for x := range 8 {
			row[x] = rangeLimit((o[x] + 1<<(shift-1)) >> shift)
		}
	}
}
