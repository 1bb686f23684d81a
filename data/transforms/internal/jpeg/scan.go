package jpeg

import "fmt"

// scan decodes one entropy-coded segment (with its restart intervals) into
// the coefficients of its components. A scan of one component walks that
// component's own blocks; an interleaved scan walks MCUs of h×v blocks per
// component (T.81 A.2).
func (d *decoder) scan(scan []*component, ss, se, ah, al int) error {
	d.resetBits()
	d.eobrun = 0
	for _, c := range scan {
		c.dcPred = 0
	}
	nx, ny := d.mcusX, d.mcusY
	if len(scan) == 1 {
		nx, ny = (scan[0].cw+7)/8, (scan[0].ch+7)/8
	}
	// block decodes block i (row-major in the padded plane) of c.
	var block func(c *component, i int) error
	coef := func(c *component, i int) []int16 { return c.coef[64*i:][:64] }
	switch {
	case !d.progressive:
		// Sequential blocks are complete once decoded: transform them
		// straight away into the plane.
		var tmp [64]int16
		block = func(c *component, i int) error {
			if err := d.blockSequential(c, tmp[:]); err != nil {
				return err
			}
			c.idct(tmp[:], i)
			if c.coef != nil {
				copy(coef(c, i), tmp[:])
			}
			return nil
		}
	case ss == 0 && ah == 0:
		block = func(c *component, i int) error { return d.blockDCFirst(c, coef(c, i), al) }
	case ss == 0:
		block = func(c *component, i int) error { return d.blockDCRefine(coef(c, i), al) }
	case ah == 0:
		block = func(c *component, i int) error { return d.blockACFirst(c, coef(c, i), ss, se, al) }
	default:
		block = func(c *component, i int) error { return d.blockACRefine(c, coef(c, i), ss, se, al) }
	}
	rst := 0
	for m := range nx * ny {
		if d.restartInterval > 0 && m > 0 && m%d.restartInterval == 0 {
			if err := d.restart(rst); err != nil {
				return err
			}
			rst = (rst + 1) & 7
			d.eobrun = 0
			for _, c := range scan {
				c.dcPred = 0
			}
		}
		mx, my := m%nx, m/nx
		if len(scan) == 1 {
			c := scan[0]
			if err := block(c, my*c.bw+mx); err != nil {
				return err
			}
			continue
		}
		for _, c := range scan {
			for by := range c.v {
				for bx := range c.h {
					i := (my*c.v+by)*c.bw + mx*c.h + bx
					if err := block(c, i); err != nil {
						return err
					}
				}
			}
		}
	}
	d.resetBits()
	return nil
}

// restart expects the RSTn marker that ends a restart interval, skipping
// bytes before it as libjpeg does.
func (d *decoder) restart(n int) error {
	d.resetBits()
	m, err := d.nextMarker()
	if err != nil {
		return err
	}
	if m != 0xd0+byte(n) {
		return fmt.Errorf("jpeg: found marker 0x%02x where RST%d was expected", m, n)
	}
	return nil
}

// blockSequential decodes one block of a sequential scan (T.81 F.2.2).
func (d *decoder) blockSequential(c *component, blk []int16) error {
	clear(blk)
	dc, ac := &d.huff[0][c.td], &d.huff[1][c.ta]
	s, err := d.symbol(dc)
	if err != nil {
		return err
	}
	diff, err := d.receiveExtend(s)
	if err != nil {
		return err
	}
	c.dcPred += diff
	blk[0] = int16(c.dcPred)
	for k := 1; k < 64; k++ {
		rs, err := d.symbol(ac)
		if err != nil {
			return err
		}
		r, s := rs>>4, rs&15
		if s == 0 {
			if r != 15 {
				break
			}
			k += 15
			continue
		}
		k += r
		v, err := d.receiveExtend(s)
		if err != nil {
			return err
		}
		blk[zigzag[k]] = int16(v)
	}
	return nil
}

// blockDCFirst decodes a DC coefficient's first successive-approximation
// scan (T.81 G.1.2.1).
func (d *decoder) blockDCFirst(c *component, blk []int16, al int) error {
	s, err := d.symbol(&d.huff[0][c.td])
	if err != nil {
		return err
	}
	diff, err := d.receiveExtend(s)
	if err != nil {
		return err
	}
	c.dcPred += diff
	blk[0] = int16(c.dcPred << al)
	return nil
}

// blockDCRefine adds one more bit to a DC coefficient.
func (d *decoder) blockDCRefine(blk []int16, al int) error {
	b, err := d.bits(1)
	if err != nil {
		return err
	}
	if b != 0 {
		blk[0] |= 1 << al
	}
	return nil
}

// blockACFirst decodes a band of AC coefficients' first scan, with end-of-band
// runs spanning blocks (T.81 G.1.2.2).
func (d *decoder) blockACFirst(c *component, blk []int16, ss, se, al int) error {
	if d.eobrun > 0 {
		d.eobrun--
		return nil
	}
	ac := &d.huff[1][c.ta]
	for k := ss; k <= se; k++ {
		rs, err := d.symbol(ac)
		if err != nil {
			return err
		}
		r, s := rs>>4, rs&15
		if s == 0 {
			if r == 15 {
				k += 15
				continue
			}
			d.eobrun = 1 << r
			if r > 0 {
				v, err := d.bits(r)
				if err != nil {
					return err
				}
				d.eobrun += int(v)
			}
			d.eobrun--
			break
		}
		k += r
		v, err := d.receiveExtend(s)
		if err != nil {
			return err
		}
		blk[zigzag[k]] = int16(v << al)
	}
	return nil
}

// blockACRefine adds one more bit to a band of AC coefficients: a correction
// bit for each already nonzero one, and newly nonzero ones of magnitude
// 1<<al placed after runs of zero ones (T.81 G.1.2.3).
func (d *decoder) blockACRefine(c *component, blk []int16, ss, se, al int) error {
	p1, m1 := int16(1)<<al, int16(-1)<<al
	refine := func(i int) error {
		b, err := d.bits(1)
		if err != nil {
			return err
		}
		if b != 0 && blk[i]&p1 == 0 {
			if blk[i] >= 0 {
				blk[i] += p1
			} else {
				blk[i] += m1
			}
		}
		return nil
	}
	k := ss
	if d.eobrun == 0 {
		ac := &d.huff[1][c.ta]
		for ; k <= se; k++ {
			rs, err := d.symbol(ac)
			if err != nil {
				return err
			}
			r, s := rs>>4, rs&15
			var v int16
			if s != 0 {
				// libjpeg warns when s != 1 and reads the sign bit anyway.
				b, err := d.bits(1)
				if err != nil {
					return err
				}
				v = m1
				if b != 0 {
					v = p1
				}
			} else if r != 15 {
				d.eobrun = 1 << r
				if r > 0 {
					b, err := d.bits(r)
					if err != nil {
						return err
					}
					d.eobrun += int(b)
				}
				break
			}
			for k <= se {
				i := zigzag[k]
				if blk[i] != 0 {
					if err := refine(i); err != nil {
						return err
					}
				} else {
					if r == 0 {
						break
					}
					r--
				}
				k++
			}
			if v != 0 {
				blk[zigzag[k]] = v
			}
		}
	}
	if d.eobrun > 0 {
		for ; k <= se; k++ {
			if i := zigzag[k]; blk[i] != 0 {
				if err := refine(i); err != nil {
					return err
				}
			}
		}
		d.eobrun--
	}
	return nil
}
