package data

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ckptkit/ckpt/data/transforms"
)

// Transform turns a decoded RGB image into a 3×Size×Size float32 tensor.
// Random transforms draw from r, which the loader seeds per sample and
// epoch; deterministic ones ignore it.
type Transform interface {
	Apply(img *transforms.RGB, r *rand.Rand) ([]float32, error)
	// Size is the side of the square output.
	Size() int
}

// Preprocess is the evaluation transform of an architecture's weights:
// resize the shorter side to Resize, center crop Crop×Crop, scale to [0, 1],
// normalize. Its JSON form is config.json's "preprocess" object.
type Preprocess struct {
	Resize        int                      `json:"resize"`
	Crop          int                      `json:"crop"`
	Interpolation transforms.Interpolation `json:"interpolation"`
	Mean          [3]float32               `json:"mean"`
	Std           [3]float32               `json:"std"`
}

// WithImageSize returns p for crops of side s, the resize keeping p's
// resize/crop ratio (rounded to the nearest pixel) and mean and std
// unchanged; s <= 0 returns p.
func (p Preprocess) WithImageSize(s int) Preprocess {
	if s <= 0 || s == p.Crop {
		return p
	}
	p.Resize = int(math.Round(float64(s) * float64(p.Resize) / float64(p.Crop)))
	p.Crop = s
	return p
}

// EvalTransform is the deterministic evaluation transform of p.
type EvalTransform struct{ P Preprocess }

// Size returns the crop size.
func (t EvalTransform) Size() int { return t.P.Crop }

// Apply resizes, center-crops and normalizes img as torchvision's
// ImageClassification preset does.
func (t EvalTransform) Apply(img *transforms.RGB, _ *rand.Rand) ([]float32, error) {
	p := t.P
	if p.Resize <= 0 || p.Crop <= 0 {
		return nil, fmt.Errorf("data: resize %d and crop %d must be positive", p.Resize, p.Crop)
	}
	w, h := transforms.ResizedSize(img.W, img.H, p.Resize)
	if w != img.W || h != img.H {
		var err error
		if img, err = transforms.Resize(img, w, h, p.Interpolation); err != nil {
			return nil, err
		}
	}
	return transforms.Normalize(transforms.CenterCrop(img, p.Crop, p.Crop), p.Mean, p.Std), nil
}

// TrainTransform is torchvision's training recipe for classification:
// RandomResizedCrop(Size, scale=Scale, ratio=Ratio) with the architecture's
// interpolation, RandomHorizontalFlip(p=0.5) unless NoFlip, then
// normalization with Mean and Std.
type TrainTransform struct {
	Crop          int
	Scale, Ratio  [2]float64
	Interpolation transforms.Interpolation
	Mean, Std     [3]float32
	NoFlip        bool
}

// NewTrainTransform returns the training transform for evaluation
// preprocessing p: crops of p.Crop with torchvision's default scale (0.08,
// 1) and ratio (3/4, 4/3).
func NewTrainTransform(p Preprocess) TrainTransform {
	return TrainTransform{Crop: p.Crop, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3},
		Interpolation: p.Interpolation, Mean: p.Mean, Std: p.Std}
}

// Size returns the crop size.
func (t TrainTransform) Size() int { return t.Crop }

// Apply crops, resizes, flips and normalizes img.
func (t TrainTransform) Apply(img *transforms.RGB, r *rand.Rand) ([]float32, error) {
	top, left, h, w := RandomResizedCrop(img.W, img.H, t.Scale, t.Ratio, r)
	crop := cropRGB(img, left, top, w, h)
	out, err := transforms.Resize(crop, t.Crop, t.Crop, t.Interpolation)
	if err != nil {
		return nil, err
	}
	if !t.NoFlip && r.Float64() < 0.5 {
		flipRGB(out)
	}
	return transforms.Normalize(out, t.Mean, t.Std), nil
}

// RandomResizedCrop draws the crop window of torchvision's
// RandomResizedCrop.get_params for a w×h image: up to ten tries of an area
// fraction from scale and a log-uniform aspect ratio from ratio, falling back
// to the whole image's central crop with the ratio clamped to range.
func RandomResizedCrop(w, h int, scale, ratio [2]float64, r *rand.Rand) (top, left, ch, cw int) {
	area := float64(w * h)
	logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * (scale[0] + r.Float64()*(scale[1]-scale[0]))
		aspect := math.Exp(logLo + r.Float64()*(logHi-logLo))
		cw = int(math.Round(math.Sqrt(target * aspect)))
		ch = int(math.Round(math.Sqrt(target / aspect)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			top = r.IntN(h - ch + 1)
			left = r.IntN(w - cw + 1)
			return top, left, ch, cw
		}
	}
	in := float64(w) / float64(h)
	switch {
	case in < ratio[0]:
		cw, ch = w, int(math.Round(float64(w)/ratio[0]))
	case in > ratio[1]:
		ch, cw = h, int(math.Round(float64(h)*ratio[1]))
	default:
		cw, ch = w, h
	}
	return (h - ch) / 2, (w - cw) / 2, ch, cw
}

func cropRGB(img *transforms.RGB, x, y, w, h int) *transforms.RGB {
	out := &transforms.RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for r := range h {
		copy(out.Pix[3*r*w:3*(r+1)*w], img.Pix[3*((y+r)*img.W+x):])
	}
	return out
}

func flipRGB(img *transforms.RGB) {
	for y := range img.H {
		row := img.Pix[3*y*img.W : 3*(y+1)*img.W]
		for i, j := 0, img.W-1; i < j; i, j = i+1, j-1 {
			for c := range 3 {
				row[3*i+c], row[3*j+c] = row[3*j+c], row[3*i+c]
			}
		}
	}
}
