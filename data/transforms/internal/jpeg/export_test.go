package jpeg

// Reencode decodes data and writes its coefficients again as a sequential
// file with the given restart interval and one interleaved scan, or one scan
// per component if separate (tests only).
func Reencode(data []byte, interval int, separate bool) ([]byte, error) {
	d := &decoder{data: data, maxSamples: DefaultMaxSamples, keepCoef: true}
	if err := d.decode(); err != nil {
		return nil, err
	}
	return reencode(d, interval, separate), nil
}

// Synthesize writes a w×h sequential file with three components sampled
// h×v as given, random coefficients from seed and the given restart
// interval (tests only): it makes sampling layouts Pillow cannot write.
func Synthesize(w, h int, factors [3][2]int, seed uint64, interval int) []byte {
	d := &decoder{width: w, height: h}
	rnd := seed | 1
	next := func(n int) int {
		rnd ^= rnd << 13
		rnd ^= rnd >> 7
		rnd ^= rnd << 17
		return int(rnd % uint64(n))
	}
	for _, f := range factors {
		d.hmax, d.vmax = max(d.hmax, f[0]), max(d.vmax, f[1])
	}
	d.mcusX = (w + 8*d.hmax - 1) / (8 * d.hmax)
	d.mcusY = (h + 8*d.vmax - 1) / (8 * d.vmax)
	d.comps = make([]component, 3)
	for i, f := range factors {
		c := &d.comps[i]
		c.id, c.h, c.v = byte(i+1), f[0], f[1]
		c.bw, c.bh = d.mcusX*c.h, d.mcusY*c.v
		for k := range c.q {
			c.q[k] = int32(2 + k/4 + 3*i)
		}
		c.coef = make([]int16, 64*c.bw*c.bh)
		dc := 0
		for b := range c.bw * c.bh {
			dc = max(-120, min(120, dc+next(41)-20))
			blk := c.coef[64*b:][:64]
			blk[0] = int16(dc)
			for range next(8) {
				blk[zigzag[1+next(20)]] = int16(next(31) - 15)
			}
		}
	}
	return reencode(d, interval, false)
}
