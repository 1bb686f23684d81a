package train

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

func label(img draw.Image, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func encodePNG(img image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err) // encoding to memory does not fail
	}
	return b.Bytes()
}

// ConfusionPNG draws m's confusion matrix as a PNG: rows are true classes,
// columns predictions, each cell shaded by its share of the row and labelled
// with its count when the cells are large enough; rows are labelled with the
// class index and name, columns with the index.
func ConfusionPNG(m *Metrics) []byte {
	n := len(m.Classes)
	cell := max(6, min(48, 640/max(1, n)))
	left, top := 110, 34
	title := fmt.Sprintf("confusion (rows: true, columns: predicted)  top-1 %.2f%%  n=%d", 100*m.Top1, m.N)
	w, h := max(left+n*cell+10, 7*len(title)+8), top+n*cell+30
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	label(img, 4, 14, title, color.Black)
	for i, row := range m.Confusion {
		total := 0
		for _, v := range row {
			total += v
		}
		if cell >= 13 {
			name := fmt.Sprintf("%d %s", i, m.Classes[i])
			if len(name) > 14 {
				name = name[:14]
			}
			label(img, 4, top+i*cell+cell/2+4, name, color.Black)
			if s := fmt.Sprint(i); 7*len(s) < cell {
				label(img, left+i*cell+(cell-7*len(s))/2, top-4, s, color.Black)
			}
		}
		for j, v := range row {
			f := 0.0
			if total > 0 {
				f = float64(v) / float64(total)
			}
			c := color.RGBA{uint8(255 - 200*f), uint8(255 - 150*f), 255, 255}
			r := image.Rect(left+j*cell, top+i*cell, left+(j+1)*cell-1, top+(i+1)*cell-1)
			draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
			if cell >= 28 && v > 0 {
				tc := color.Color(color.Black)
				if f > 0.6 {
					tc = color.White
				}
				label(img, r.Min.X+3, r.Min.Y+cell/2+4, fmt.Sprint(v), tc)
			}
		}
	}
	return encodePNG(img)
}

// CurvesPNG draws the loss (left) and top-1 accuracy (right) per epoch of
// the history, training in blue and validation in orange.
func CurvesPNG(hist []EpochStats) []byte {
	const pw, ph, pad = 360, 240, 40
	img := image.NewRGBA(image.Rect(0, 0, 2*pw+3*pad, ph+2*pad))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	blue, orange := color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}
	panel := func(x0 int, title string, get func(EpochStats) (float64, float64)) {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, s := range hist {
			a, b := get(s)
			for _, v := range []float64{a, b} {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
		if lo > hi {
			lo, hi = 0, 1
		}
		if hi-lo < 1e-9 {
			hi = lo + 1
		}
		frame := image.Rect(x0, pad, x0+pw, pad+ph)
		for x := frame.Min.X; x <= frame.Max.X; x++ {
			img.Set(x, frame.Max.Y, color.Gray{120})
		}
		for y := frame.Min.Y; y <= frame.Max.Y; y++ {
			img.Set(frame.Min.X, y, color.Gray{120})
		}
		label(img, x0, pad-8, fmt.Sprintf("%s  [%.3g, %.3g]", title, lo, hi), color.Black)
		pt := func(i int, v float64) (int, int) {
			x := frame.Min.X
			if len(hist) > 1 {
				x += i * pw / (len(hist) - 1)
			}
			return x, frame.Max.Y - int((v-lo)/(hi-lo)*float64(ph))
		}
		for k, c := range []color.Color{blue, orange} {
			px, py, ok := 0, 0, false
			for i, s := range hist {
				a, b := get(s)
				v := []float64{a, b}[k]
				if math.IsNaN(v) || math.IsInf(v, 0) {
					ok = false
					continue
				}
				x, y := pt(i, v)
				for dx := -1; dx <= 1; dx++ {
					for dy := -1; dy <= 1; dy++ {
						img.Set(x+dx, y+dy, c)
					}
				}
				if ok {
					line(img, px, py, x, y, c)
				}
				px, py, ok = x, y, true
			}
		}
		label(img, x0, pad+ph+16, "epoch 1.."+fmt.Sprint(len(hist)), color.Black)
	}
	panel(pad, "loss", func(s EpochStats) (float64, float64) { return s.TrainLoss, s.ValLoss })
	panel(2*pad+pw, "top-1", func(s EpochStats) (float64, float64) { return s.TrainTop1, s.ValTop1 })
	label(img, pad+pw-120, pad+ph+32, "train", blue)
	label(img, pad+pw-60, pad+ph+32, "val", orange)
	return encodePNG(img)
}

func line(img draw.Image, x0, y0, x1, y1 int, c color.Color) {
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		img.Set(x0+(x1-x0)*i/n, y0+(y1-y0)*i/n, c)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
