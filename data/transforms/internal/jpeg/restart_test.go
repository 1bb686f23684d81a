package jpeg

import (
	"bytes"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"testing"
)

// Pillow 9 cannot write restart markers or one scan per component, so this
// test makes such files: it re-encodes the coefficients of Pillow's
// sequential fixtures with a restart interval, interleaved or not. libjpeg's output depends only on the coefficients,
// quantization tables and sampling factors, so the re-encoded file must
// still decode to Pillow's bytes for the original.

type bitWriter struct {
	out  bytes.Buffer
	acc  uint32
	nacc int
}

func (w *bitWriter) put(v uint32, n int) {
	for i := n - 1; i >= 0; i-- {
		w.acc = w.acc<<1 | (v>>i)&1
		w.nacc++
		if w.nacc == 8 {
			w.out.WriteByte(byte(w.acc))
			if w.acc == 0xff {
				w.out.WriteByte(0)
			}
			w.acc, w.nacc = 0, 0
		}
	}
}

// flush pads the last byte with 1 bits, as encoders do.
func (w *bitWriter) flush() {
	for w.nacc != 0 {
		w.put(1, 1)
	}
}

// category returns the magnitude category of v and its low bits (T.81 F.1.2).
func category(v int32) (int, uint32) {
	a, s := v, 0
	if a < 0 {
		a = -a
	}
	for a > 0 {
		s++
		a >>= 1
	}
	if v < 0 {
		v += 1<<s - 1
	}
	return s, uint32(v) & (1<<s - 1)
}

// reencode writes the decoded frame of d as a sequential file with the given
// restart interval: one interleaved scan, or with separate one scan per
// component. Every symbol gets an 8-bit code (enough for the at most 12 DC
// and 162 AC symbols).
func reencode(d *decoder, interval int, separate bool) []byte {
	var syms [2]map[int]bool
	syms[0], syms[1] = map[int]bool{}, map[int]bool{}
	var codes [2]map[int]uint32
	scans := [][]int{}
	if separate {
		for ci := range d.comps {
			scans = append(scans, []int{ci})
		}
	} else {
		all := []int{}
		for ci := range d.comps {
			all = append(all, ci)
		}
		scans = append(scans, all)
	}
	// encode writes one scan's entropy-coded data; with codes unset it only
	// collects the symbols used.
	encode := func(scan []int) []byte {
		var body bitWriter
		emit := func(tc, sym int) {
			if codes[tc] == nil {
				syms[tc][sym] = true
				return
			}
			body.put(codes[tc][sym], 8)
		}
		bits := func(v uint32, n int) {
			if codes[0] != nil {
				body.put(v, n)
			}
		}
		block := func(ci int, blk []int16, pred *int32) {
			s, v := category(int32(blk[0]) - *pred)
			*pred = int32(blk[0])
			emit(0, s)
			bits(v, s)
			run := 0
			for k := 1; k < 64; k++ {
				x := int32(blk[zigzag[k]])
				if x == 0 {
					run++
					continue
				}
				for run > 15 {
					emit(1, 0xf0)
					run -= 16
				}
				s, v := category(x)
				emit(1, run<<4|s)
				bits(v, s)
				run = 0
			}
			if run > 0 {
				emit(1, 0)
			}
		}
		preds := make([]int32, len(d.comps))
		nx, ny := d.mcusX, d.mcusY
		if len(scan) == 1 {
			c := &d.comps[scan[0]]
			nx, ny = (c.cw+7)/8, (c.ch+7)/8
		}
		rst := 0
		for m := range nx * ny {
			if m > 0 && m%interval == 0 {
				if codes[0] != nil {
					body.flush()
					body.out.Write([]byte{0xff, byte(0xd0 + rst)})
				}
				rst = (rst + 1) & 7
				clear(preds)
			}
			mx, my := m%nx, m/nx
			if len(scan) == 1 {
				c := &d.comps[scan[0]]
				block(scan[0], c.coef[64*(my*c.bw+mx):][:64], &preds[scan[0]])
				continue
			}
			for _, ci := range scan {
				c := &d.comps[ci]
				for by := range c.v {
					for bx := range c.h {
						block(ci, c.coef[64*((my*c.v+by)*c.bw+mx*c.h+bx):][:64], &preds[ci])
					}
				}
			}
		}
		body.flush()
		return body.out.Bytes()
	}
	for _, scan := range scans {
		encode(scan)
	}
	for tc := range 2 {
		codes[tc] = map[int]uint32{}
		for s := range 256 {
			if syms[tc][s] {
				codes[tc][s] = uint32(len(codes[tc]))
			}
		}
	}

	var f bytes.Buffer
	seg := func(marker byte, payload []byte) {
		f.Write([]byte{0xff, marker, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)})
		f.Write(payload)
	}
	f.Write([]byte{0xff, 0xd8})
	seg(0xe0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
	for ci := range d.comps {
		q := []byte{byte(ci)}
		for k := range 64 {
			q = append(q, byte(d.comps[ci].q[zigzag[k]]))
		}
		seg(0xdb, q)
	}
	sof := []byte{8, byte(d.height >> 8), byte(d.height), byte(d.width >> 8), byte(d.width), byte(len(d.comps))}
	for ci, c := range d.comps {
		sof = append(sof, c.id, byte(c.h<<4|c.v), byte(ci))
	}
	seg(0xc0, sof)
	for tc := range 2 {
		p := []byte{byte(tc << 4)}
		var counts [16]byte
		counts[7] = byte(len(codes[tc]))
		p = append(p, counts[:]...)
		for s := range 256 {
			if syms[tc][s] {
				p = append(p, byte(s))
			}
		}
		seg(0xc4, p)
	}
	seg(0xdd, []byte{byte(interval >> 8), byte(interval)})
	for _, scan := range scans {
		sos := []byte{byte(len(scan))}
		for _, ci := range scan {
			sos = append(sos, d.comps[ci].id, 0x00)
		}
		seg(0xda, append(sos, 0, 63, 0))
		f.Write(encode(scan))
	}
	f.Write([]byte{0xff, 0xd9})
	return f.Bytes()
}

func TestRestartIntervals(t *testing.T) {
	for _, name := range []string{"base_q50_444", "base_q95_422", "base_q75_420", "base_q100_420", "gray_base_q80"} {
		data, err := os.ReadFile(filepath.Join(fixtureDir, name+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		d := &decoder{data: data, maxSamples: DefaultMaxSamples, keepCoef: true}
		if err := d.decode(); err != nil {
			t.Fatal(err)
		}
		want, err := d.image()
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			interval int
			separate bool
		}{{1, false}, {3, false}, {7, false}, {2, true}, {1000, true}} {
			interval := tc.interval
			t.Run(fmt.Sprintf("%s/every%d/separate=%v", name, interval, tc.separate), func(t *testing.T) {
				re := reencode(d, interval, tc.separate)
				if n := bytes.Count(re, []byte{0xff, 0xd0}); interval < d.mcusX*d.mcusY && n == 0 {
					t.Fatalf("re-encoded file has no RST0 marker")
				}
				got, err := Decode(re)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !samePlanes(got, want) {
					t.Fatalf("restart-coded file decodes differently from the original")
				}
			})
		}
	}
}

// samePlanes reports whether a and b hold the same samples inside the image
// (padding blocks outside it are coded only by interleaved scans).
func samePlanes(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	switch a.(type) {
	case *image.Gray, *image.YCbCr:
	default:
		return false
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				return false
			}
		}
	}
	return true
}
