package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

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
// interpolation, RandomHorizontalFlip(p=0.5) unless NoFlip, ColorJitter when
// Jitter is set, TrivialAugmentWide when Trivial is, then normalization with
// Mean and Std.
type TrainTransform struct {
	Crop          int
	Scale, Ratio  [2]float64
	Interpolation transforms.Interpolation
	Mean, Std     [3]float32
	NoFlip        bool
	Jitter        *ColorJitter
	Trivial       bool
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
	if t.Jitter != nil {
		out = t.Jitter.Apply(out, r)
	}
	if t.Trivial {
		if out, err = TrivialAugmentWide(out, r); err != nil {
			return nil, err
		}
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

// ColorJitter is torchvision's ColorJitter(brightness, contrast, saturation,
// hue): each image gets the four adjustments in a random order, each with
// a factor drawn uniformly from its range (brightness, contrast and
// saturation from [max(0, 1-v), 1+v], hue from [-v, v]); a zero value skips
// that adjustment.
type ColorJitter struct {
	Brightness, Contrast, Saturation, Hue float64
}

// ParseColorJitter reads "B,C,S,H" (`--color-jitter 0.4,0.4,0.4,0.1`):
// non-negative, hue at most 0.5.
func ParseColorJitter(s string) (*ColorJitter, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return nil, fmt.Errorf("data: color jitter %q: want four values B,C,S,H", s)
	}
	var v [4]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) {
			return nil, fmt.Errorf("data: color jitter %q: %q is not a non-negative number", s, p)
		}
		v[i] = f
	}
	if v[3] > 0.5 {
		return nil, fmt.Errorf("data: color jitter %q: hue %v is above 0.5", s, v[3])
	}
	return &ColorJitter{v[0], v[1], v[2], v[3]}, nil
}

// String is the "B,C,S,H" form.
func (j ColorJitter) String() string {
	return fmt.Sprintf("%g,%g,%g,%g", j.Brightness, j.Contrast, j.Saturation, j.Hue)
}

// JitterParams are ColorJitter's draws for one image: the order of the
// adjustments (0 brightness, 1 contrast, 2 saturation, 3 hue) and their
// factors (NaN where the adjustment is off).
type JitterParams struct {
	Order   [4]int
	Factors [4]float64
}

// Sample draws the parameters as torchvision's ColorJitter.get_params does
// (from r instead of torch's generator).
func (j ColorJitter) Sample(r *rand.Rand) JitterParams {
	var p JitterParams
	perm := r.Perm(4)
	copy(p.Order[:], perm)
	for i, v := range [4]float64{j.Brightness, j.Contrast, j.Saturation, j.Hue} {
		p.Factors[i] = math.NaN()
		if v == 0 {
			continue
		}
		lo, hi := math.Max(0, 1-v), 1+v
		if i == 3 {
			lo, hi = -v, v
		}
		p.Factors[i] = lo + r.Float64()*(hi-lo)
	}
	return p
}

// Apply draws parameters from r and applies them.
func (j ColorJitter) Apply(img *transforms.RGB, r *rand.Rand) *transforms.RGB {
	return ApplyJitter(img, j.Sample(r))
}

// ApplyJitter applies drawn ColorJitter parameters in their order, as
// ColorJitter.forward does on a PIL image.
func ApplyJitter(img *transforms.RGB, p JitterParams) *transforms.RGB {
	fns := [4]func(*transforms.RGB, float64) *transforms.RGB{
		transforms.AdjustBrightness, transforms.AdjustContrast, transforms.AdjustSaturation, transforms.AdjustHue}
	for _, i := range p.Order {
		if !math.IsNaN(p.Factors[i]) {
			img = fns[i](img, p.Factors[i])
		}
	}
	return img
}

// trivialBins is TrivialAugmentWide's num_magnitude_bins.
const trivialBins = 31

// linspace32 is torch.linspace(start, end, n) in float32: the first half
// counted from start, the second from end, as torch's CPU kernel does.
func linspace32(start, end float32, n, i int) float32 {
	step := (end - start) / float32(n-1)
	if i < n/2 {
		return start + step*float32(i)
	}
	return end - step*float32(n-1-i)
}

// TrivialMagnitude is TrivialAugmentWide's magnitude for operation op at
// bin (0 to 30) of its 31-bin augmentation space, and whether the operation
// is signed (its magnitude negated with probability 1/2).
func TrivialMagnitude(op string, bin int) (float64, bool) {
	lin := func(a, b float32) float64 { return float64(linspace32(a, b, trivialBins, bin)) }
	switch op {
	case "ShearX", "ShearY", "Brightness", "Color", "Contrast", "Sharpness":
		return lin(0, 0.99), true
	case "TranslateX", "TranslateY":
		return lin(0, 32), true
	case "Rotate":
		return lin(0, 135), true
	case "Posterize":
		return float64(8 - int(math.RoundToEven(float64(float32(bin)/float32((trivialBins-1)/6.0))))), false
	case "Solarize":
		return lin(255, 0), false
	}
	return 0, false
}

// TrivialAugmentWide is torchvision's TrivialAugmentWide() on a PIL image:
// one of its 14 operations drawn uniformly, a magnitude bin drawn
// uniformly from 31, negated with probability 1/2 for signed operations,
// with nearest interpolation and black fill.
func TrivialAugmentWide(img *transforms.RGB, r *rand.Rand) (*transforms.RGB, error) {
	op := transforms.TrivialAugmentOps[r.IntN(len(transforms.TrivialAugmentOps))]
	mag := 0.0
	switch op {
	case "Identity", "AutoContrast", "Equalize":
	default:
		var signed bool
		mag, signed = TrivialMagnitude(op, r.IntN(trivialBins))
		if signed && r.IntN(2) == 1 {
			mag = -mag
		}
	}
	return transforms.ApplyOp(img, op, mag)
}
