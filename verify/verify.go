package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/ckptkit/ckpt/nn"
)

// Tolerance says how close an output must be to its reference. An element
// passes when |got - want| <= Atol' + Rtol*|want|, where Atol' is Atol, or
// Atol * max(1, max|want|) when Scaled is set (a tolerance relative to the
// output's magnitude, so logits of size 30 are held to the same relative
// precision as logits of size 1).
type Tolerance struct {
	Atol   float64
	Rtol   float64
	Scaled bool
}

// DefaultTolerance is the parity criterion ckpt holds torchvision models to:
// max|err| <= 1e-4 * max(1, max|y|).
var DefaultTolerance = Tolerance{Atol: 1e-4, Scaled: true}

// Report is the result of a comparison.
type Report struct {
	Shape []int `json:"output_shape"`
	// OK is true when every element is within tolerance and, for
	// classification outputs, every row has the same top-1 class.
	OK bool `json:"ok"`
	// MaxAbsErr is max |got - want|; MaxRelErr is max |got - want| / |want|
	// over elements where want is not 0.
	MaxAbsErr float64 `json:"max_abs_err"`
	MaxRelErr float64 `json:"max_rel_err"`
	// Cosine is the cosine similarity of the two outputs as flat vectors.
	Cosine float64 `json:"cosine"`
	// Top1Agree and Top5Agree are the fraction of rows whose top-1 class is
	// the same, and the mean fraction of the reference's top-5 classes found
	// in the output's top 5. They are set for 2-D outputs only.
	Top1Agree *float64 `json:"top1_agree,omitempty"`
	Top5Agree *float64 `json:"top5_agree,omitempty"`
	// AllowedAbsErr is the absolute error allowed for the element with the
	// largest error, after scaling.
	AllowedAbsErr float64 `json:"allowed_abs_err"`
	// Worst locates the element furthest outside (or least inside) its
	// tolerance.
	Worst Element `json:"worst"`
	// Rows has one entry per row of a 2-D output.
	Rows []Row `json:"rows,omitempty"`
	// Failures counts the elements outside tolerance.
	Failures int `json:"failures"`
	// NonFinite counts elements of got that are NaN or Inf where want is
	// finite.
	NonFinite int `json:"non_finite"`
}

// Element is one element of the compared outputs.
type Element struct {
	Index []int   `json:"index"`
	Got   float64 `json:"got"`
	Want  float64 `json:"want"`
}

// Row compares the ranking of one row of a classification output.
type Row struct {
	Top1Got  int  `json:"top1_got"`
	Top1Want int  `json:"top1_want"`
	Top1OK   bool `json:"top1_agree"`
	// Top5Overlap is how many of the reference's top-5 classes are in the
	// output's top 5.
	Top5Overlap int `json:"top5_overlap"`
}

// Compare compares got with the reference want, both of the given shape in
// row-major order. It returns an error if the lengths do not match the shape.
func Compare(got, want []float32, shape []int, tol Tolerance) (*Report, error) {
	n := 1
	for _, s := range shape {
		if s < 0 {
			return nil, fmt.Errorf("verify: negative dimension in shape %v", shape)
		}
		n *= s
	}
	if len(got) != n || len(want) != n {
		return nil, fmt.Errorf("verify: output has %d values and reference %d, want %d for shape %v", len(got), len(want), n, shape)
	}
	r := &Report{Shape: append([]int(nil), shape...)}
	atol := tol.Atol
	if tol.Scaled {
		maxAbs := 1.0
		for _, w := range want {
			maxAbs = math.Max(maxAbs, math.Abs(float64(w)))
		}
		atol *= maxAbs
	}
	var dot, gg, ww float64
	worstMargin := math.Inf(-1)
	worst := -1
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		d := math.Abs(g - w)
		allowed := atol + tol.Rtol*math.Abs(w)
		bad := !(d <= allowed) // NaN differences fail
		if isFinite(w) && !isFinite(g) {
			r.NonFinite++
			bad = true
		}
		if math.IsNaN(w) && math.IsNaN(g) {
			d, bad = 0, false // NaN where the reference has NaN agrees
		}
		if bad {
			r.Failures++
		}
		if d > r.MaxAbsErr || math.IsNaN(d) {
			r.MaxAbsErr = d
		}
		if w != 0 {
			if rel := d / math.Abs(w); rel > r.MaxRelErr || math.IsNaN(rel) {
				r.MaxRelErr = rel
			}
		}
		margin := d - allowed
		if math.IsNaN(d) {
			margin = math.Inf(1)
		}
		if margin > worstMargin {
			worstMargin, worst = margin, i
			r.AllowedAbsErr = allowed
		}
		dot += g * w
		gg += g * g
		ww += w * w
	}
	switch {
	case gg == 0 && ww == 0:
		r.Cosine = 1
	case gg == 0 || ww == 0:
		r.Cosine = 0
	default:
		r.Cosine = dot / math.Sqrt(gg*ww)
	}
	if worst >= 0 {
		r.Worst = Element{Index: unravel(worst, shape), Got: float64(got[worst]), Want: float64(want[worst])}
	}
	r.OK = r.Failures == 0
	if len(shape) == 2 && shape[0] > 0 && shape[1] > 1 {
		rows, cols := shape[0], shape[1]
		var agree1, agree5 float64
		for i := range rows {
			g, w := got[i*cols:(i+1)*cols], want[i*cols:(i+1)*cols]
			tg, tw := nn.TopK(g, 5), nn.TopK(w, 5)
			row := Row{Top1Got: tg[0], Top1Want: tw[0], Top1OK: tg[0] == tw[0]}
			for _, a := range tw {
				for _, b := range tg {
					if a == b {
						row.Top5Overlap++
					}
				}
			}
			if row.Top1OK {
				agree1++
			} else {
				r.OK = false
			}
			agree5 += float64(row.Top5Overlap) / float64(len(tw))
			r.Rows = append(r.Rows, row)
		}
		a1, a5 := agree1/float64(rows), agree5/float64(rows)
		r.Top1Agree, r.Top5Agree = &a1, &a5
	}
	return r, nil
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func unravel(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			idx[d] = i % shape[d]
			i /= shape[d]
		}
	}
	return idx
}

// WriteText prints the report for people, one fact a line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "output shape   %v\n", r.Shape)
	fmt.Fprintf(&b, "max abs error  %.3g (allowed %.3g at worst element %v: got %.7g, want %.7g)\n",
		r.MaxAbsErr, r.AllowedAbsErr, r.Worst.Index, r.Worst.Got, r.Worst.Want)
	fmt.Fprintf(&b, "max rel error  %.3g\n", r.MaxRelErr)
	fmt.Fprintf(&b, "cosine         %.9f\n", r.Cosine)
	if r.Failures > 0 {
		fmt.Fprintf(&b, "out of tol.    %d element", r.Failures)
		if r.Failures != 1 {
			b.WriteString("s")
		}
		if r.NonFinite > 0 {
			fmt.Fprintf(&b, " (%d NaN or Inf)", r.NonFinite)
		}
		b.WriteString("\n")
	}
	if r.Top1Agree != nil {
		agree := 0
		overlap := 0
		for _, row := range r.Rows {
			if row.Top1OK {
				agree++
			}
			overlap += row.Top5Overlap
		}
		rows := "rows"
		if len(r.Rows) == 1 {
			rows = "row"
		}
		fmt.Fprintf(&b, "top-1 agree    %d/%d %s\n", agree, len(r.Rows), rows)
		fmt.Fprintf(&b, "top-5 overlap  %d/%d\n", overlap, 5*len(r.Rows))
		for i, row := range r.Rows {
			if !row.Top1OK {
				fmt.Fprintf(&b, "  row %d: top-1 class %d, reference %d\n", i, row.Top1Got, row.Top1Want)
			}
		}
	}
	if r.OK {
		b.WriteString("result         OK\n")
	} else {
		b.WriteString("result         DIFFERENT\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// MarshalJSON encodes the report, writing null for errors that are NaN or
// infinite (JSON has no such numbers; NonFinite counts them).
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	type element struct {
		Index []int `json:"index"`
		Got   any   `json:"got"`
		Want  any   `json:"want"`
	}
	return json.Marshal(struct {
		*plain
		MaxAbsErr     any     `json:"max_abs_err"`
		MaxRelErr     any     `json:"max_rel_err"`
		Cosine        any     `json:"cosine"`
		AllowedAbsErr any     `json:"allowed_abs_err"`
		Worst         element `json:"worst"`
	}{
		plain:         (*plain)(r),
		MaxAbsErr:     finite(r.MaxAbsErr),
		MaxRelErr:     finite(r.MaxRelErr),
		Cosine:        finite(r.Cosine),
		AllowedAbsErr: finite(r.AllowedAbsErr),
		Worst:         element{r.Worst.Index, finite(r.Worst.Got), finite(r.Worst.Want)},
	})
}

func finite(f float64) any {
	if isFinite(f) {
		return f
	}
	return nil
}
