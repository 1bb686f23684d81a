package jpeg

import (
	"errors"
	"fmt"
)

// lookBits is the code length resolved by one table lookup; longer codes
// are resolved by comparing against the largest code of each length.
const lookBits = 9

// huffTable is a decoding table built from a DHT segment (T.81 Annex C):
// codes are canonical, assigned in order of length then of symbol position.
type huffTable struct {
	set     bool
	vals    [256]uint8
	nvals   int
	lookup  [1 << lookBits]uint16 // length<<8 | symbol; 0 for longer codes
	maxcode [17]int32             // largest code of each length, -1 if none
	mincode [17]int32
	valptr  [17]int32 // index in vals of the first code of each length
}

// dht parses a DHT segment: for each table, a class/id byte, 16 counts of
// codes per length 1..16, then the symbols.
func (d *decoder) dht(b []byte) error {
	for len(b) > 0 {
		if len(b) < 17 {
			return errors.New("jpeg: short DHT segment")
		}
		tc, th := int(b[0]>>4), int(b[0]&15)
		if tc > 1 || th > 3 {
			return fmt.Errorf("jpeg: bad DHT table class %d id %d", tc, th)
		}
		var counts [17]int
		n := 0
		for l := 1; l <= 16; l++ {
			counts[l] = int(b[l])
			n += counts[l]
		}
		if n > 256 || len(b) < 17+n {
			return errors.New("jpeg: bad DHT segment")
		}
		t := &d.huff[tc][th]
		*t = huffTable{set: true, nvals: n}
		copy(t.vals[:], b[17:17+n])
		code, k := int32(0), 0
		for l := 1; l <= 16; l++ {
			t.valptr[l] = int32(k)
			t.mincode[l] = code
			code += int32(counts[l])
			k += counts[l]
			if code >= 1<<l {
				// The all-ones code of each length is reserved.
				return errors.New("jpeg: bad Huffman table")
			}
			if counts[l] > 0 {
				t.maxcode[l] = code - 1
			} else {
				t.maxcode[l] = -1
			}
			if l <= lookBits {
				for c := t.mincode[l]; c < code; c++ {
					v := uint16(l)<<8 | uint16(t.vals[t.valptr[l]+c-t.mincode[l]])
					shift := lookBits - l
					for j := range int32(1) << shift {
						t.lookup[c<<shift|j] = v
					}
				}
			}
			code <<= 1
		}
		b = b[17+n:]
	}
	return nil
}

// usable reports whether a table can be used; DC tables may only hold
// difference categories 0..15, as libjpeg requires.
func (t *huffTable) usable(dc bool) error {
	if !t.set {
		return errors.New("jpeg: scan uses an undefined Huffman table")
	}
	if dc {
		for _, v := range t.vals[:t.nvals] {
			if v > 15 {
				return errors.New("jpeg: bad DC Huffman table")
			}
		}
	}
	return nil
}

// resetBits empties the bit reader at the start of a scan or interval.
func (d *decoder) resetBits() {
	d.acc, d.nacc, d.npad, d.atEnd = 0, 0, 0, false
}

// fill tops up acc from the entropy-coded segment, undoing 0xFF00 byte
// stuffing and stopping at a marker; past the segment's end it appends zero
// bits, counted in npad, so that reading them can be detected.
func (d *decoder) fill() {
	for d.nacc <= 56 {
		if d.atEnd {
			d.nacc += 8
			d.npad += 8
			continue
		}
		if d.pos >= len(d.data) {
			d.atEnd = true
			continue
		}
		c := d.data[d.pos]
		if c == 0xff {
			p := d.pos + 1
			for p < len(d.data) && d.data[p] == 0xff {
				p++
			}
			if p >= len(d.data) || d.data[p] != 0 {
				d.atEnd = true // a marker (or the end): leave pos at it
				continue
			}
			d.pos = p + 1
		} else {
			d.pos++
		}
		d.acc |= uint64(c) << (56 - d.nacc)
		d.nacc += 8
	}
}

func (d *decoder) consume(n int) error {
	d.acc <<= n
	d.nacc -= n
	if d.nacc < d.npad {
		return d.truncated()
	}
	return nil
}

func (d *decoder) bits(n int) (int32, error) {
	if n == 0 {
		return 0, nil
	}
	if d.nacc < n {
		d.fill()
	}
	v := int32(d.acc >> (64 - n))
	return v, d.consume(n)
}

// receiveExtend reads s bits and sign-extends them (T.81 F.2.2.1).
func (d *decoder) receiveExtend(s int) (int32, error) {
	v, err := d.bits(s)
	if err != nil || s == 0 {
		return 0, err
	}
	if v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v, nil
}

func (d *decoder) symbol(t *huffTable) (int, error) {
	if d.nacc < 16 {
		d.fill()
	}
	if v := t.lookup[d.acc>>(64-lookBits)]; v != 0 {
		return int(v & 0xff), d.consume(int(v >> 8))
	}
	for l := lookBits + 1; l <= 16; l++ {
		code := int32(d.acc >> (64 - l))
		if code <= t.maxcode[l] {
			v := t.vals[t.valptr[l]+code-t.mincode[l]]
			return int(v), d.consume(l)
		}
	}
	return 0, errors.New("jpeg: bad Huffman code")
}
