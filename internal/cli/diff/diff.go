package diff

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
)

// Options are the inputs of `ckpt diff`.
type Options struct {
	IO *cmdutil.IOStreams
	// A and B are the checkpoints compared.
	A, B string
	// JSON prints the report as one JSON object.
	JSON bool
	// ATol, when > 0, accepts values within this absolute difference (and
	// different dtypes of equal shapes, as after a cast).
	ATol float64
	// TensorsOnly compares the tensors only, not the metadata.
	TensorsOnly bool
}

// NewCmdDiff returns the diff command. runF, when not nil, is called with
// the parsed options instead of diffRun (tests of flag parsing).
func NewCmdDiff(ios *cmdutil.IOStreams, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: ios}
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Compare the tensors and metadata of two checkpoints, across formats",
		Long: `Compare two checkpoints tensor by tensor, by name, whatever their formats
(any two files 'ckpt inspect' reads), and their metadata (the non-tensor
values 'ckpt inspect' lists: epoch, arch, hyper-parameters) key by key.
Reported: tensors only in A, only in B, dtype or shape mismatches, for every
common tensor whether its bytes are equal or else the largest absolute
difference of its values, and metadata only in A, only in B or with other
values (both shown). --tensors-only leaves the metadata out.

A safetensors file's "format" entry (Hugging Face's framework marker, which
'ckpt convert' adds) is compared only against another safetensors file.

Without --atol, A and B are equal when they have the same metadata and the
same tensor names, dtypes, shapes and identical bytes. With --atol, tensor
values within that absolute difference count as equal and dtypes may differ
where shapes agree, as after 'convert --dtype'; metadata must still be
equal. NaN equals NaN.
Tensors of a type ckpt has no dtype for (ONNX UINT16, STRING, complex,
float8: 'ckpt inspect' lists them as skipped) cannot be read: a common one
is reported as not compared, and the files are not called equal.

Exit status: 0 equal, 1 different (the report says how), 2 a file could not
be read.`,
		Example: `  # did the conversion keep every value?
  ckpt diff resnet50.pth resnet50.safetensors

  # a float16 copy against the original, within float16's rounding
  ckpt diff --atol 1e-3 model.pt model-fp16.safetensors

  # the weights only, whatever the epoch or optimizer settings
  ckpt diff --tensors-only epoch10.pt epoch20.pt

  # the report as JSON, for scripts
  ckpt diff --json a.pt b.onnx | jq '.tensors[] | select(.bytes_equal | not)'

  # in a script: branch on the exit status
  ckpt diff old.pt new.pt > /dev/null || echo "weights changed"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.A, opts.B = args[0], args[1]
			if runF != nil {
				return runF(opts)
			}
			return diffRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as one JSON object")
	cmd.Flags().Float64Var(&opts.ATol, "atol", 0, "accept values within this absolute `TOLERANCE` (and dtypes that differ)")
	cmd.Flags().BoolVar(&opts.TensorsOnly, "tensors-only", false, "compare the tensors only, not the metadata (epoch, arch, hyper-parameters)")
	return cmd
}

func diffRun(opts *Options) error {
	if opts.ATol < 0 || math.IsNaN(opts.ATol) {
		return cmdutil.UsageError("--atol %v: want a tolerance >= 0", opts.ATol)
	}
	a, err := cmdutil.Open(opts.A)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := cmdutil.Open(opts.B)
	if err != nil {
		return err
	}
	defer b.Close()
	r, err := formats.Diff(a, b, opts.ATol)
	if err != nil {
		return fmt.Errorf("%s vs %s: %w", opts.A, opts.B, err)
	}
	rep := NewReport(opts.A, opts.B, a, b, r, opts.TensorsOnly)
	if opts.JSON {
		if err := cmdutil.WriteJSON(opts.IO.Out, rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(opts.IO.Out); err != nil {
		return err
	}
	if !rep.Equal {
		return cmdutil.ErrDifference
	}
	return nil
}

// Report is the result of diff, as --json prints it.
type Report struct {
	A     Side    `json:"a"`
	B     Side    `json:"b"`
	Equal bool    `json:"equal"`
	ATol  float64 `json:"atol"`
	// OnlyA and OnlyB list the names found in one checkpoint only.
	OnlyA []string `json:"only_a"`
	OnlyB []string `json:"only_b"`
	// Mismatched lists the common names whose dtype or shape differ.
	Mismatched []Mismatch `json:"mismatched"`
	// Tensors compares every common tensor of equal shape, in A's order.
	Tensors []TensorDiff `json:"tensors"`
	// NotCompared lists common names that one side or both hold in a type
	// ckpt has no dtype for (ONNX UINT16, STRING, ...): unread, so the
	// checkpoints are not reported equal.
	NotCompared []string `json:"not_compared"`
	// TensorsOnly is set with --tensors-only: metadata is not compared,
	// and the three lists below are absent.
	TensorsOnly bool `json:"tensors_only"`
	// MetaOnlyA and MetaOnlyB list the metadata keys found in one
	// checkpoint only; MetaDiffer the common keys with other values.
	MetaOnlyA  []string   `json:"meta_only_a,omitempty"`
	MetaOnlyB  []string   `json:"meta_only_b,omitempty"`
	MetaDiffer []MetaDiff `json:"meta_differ,omitempty"`

	metaA, metaB map[string]string // the values, for the text report
}

// MetaDiff is a metadata key with other values in A and B, as JSON text
// ("3", "\"resnet18\"", "0.1").
type MetaDiff struct {
	Key string `json:"key"`
	A   string `json:"a"`
	B   string `json:"b"`
}

// Side describes one checkpoint compared.
type Side struct {
	File    string `json:"file"`
	Format  string `json:"format"`
	Tensors int    `json:"tensors"`
}

// Mismatch is a common name with a different dtype or shape.
type Mismatch struct {
	Name   string  `json:"name"`
	DTypeA string  `json:"dtype_a"`
	DTypeB string  `json:"dtype_b"`
	ShapeA []int64 `json:"shape_a"`
	ShapeB []int64 `json:"shape_b"`
}

// TensorDiff compares one tensor's values.
type TensorDiff struct {
	Name       string `json:"name"`
	BytesEqual bool   `json:"bytes_equal"`
	// MaxAbsDiff is the largest absolute difference; +Inf (a NaN against a
	// number, infinities of different sign) is written as the string "inf".
	MaxAbsDiff Float `json:"max_abs_diff"`
}

// Float is a float64 that marshals +Inf as the string "inf", which JSON
// numbers cannot express.
type Float float64

// MarshalJSON encodes f as a number, or "inf".
func (f Float) MarshalJSON() ([]byte, error) {
	if math.IsInf(float64(f), 1) {
		return []byte(`"inf"`), nil
	}
	return []byte(strconv.FormatFloat(float64(f), 'g', -1, 64)), nil
}

// NewReport builds the report of r, the comparison of a (read from file
// fa) and b (from fb); tensorsOnly leaves the metadata out.
func NewReport(fa, fb string, a, b *formats.Checkpoint, r *formats.DiffReport, tensorsOnly bool) *Report {
	rep := &Report{
		A:     Side{fa, a.Format, len(a.Tensors)},
		B:     Side{fb, b.Format, len(b.Tensors)},
		Equal: r.Equal(), ATol: r.ATol,
		OnlyA: nonNil(r.OnlyA), OnlyB: nonNil(r.OnlyB),
		Mismatched: []Mismatch{}, Tensors: []TensorDiff{}, NotCompared: nonNil(r.NotCompared),
		TensorsOnly: tensorsOnly,
	}
	if tensorsOnly {
		rep.Equal = r.TensorsEqual()
	} else {
		rep.metaA, rep.metaB = a.Metadata(), b.Metadata()
		rep.MetaOnlyA, rep.MetaOnlyB = r.MetaOnlyA, r.MetaOnlyB
		for _, m := range r.MetaDiffer {
			rep.MetaDiffer = append(rep.MetaDiffer, MetaDiff(m))
		}
	}
	for _, m := range r.Mismatched {
		rep.Mismatched = append(rep.Mismatched, Mismatch{m.Name, m.DTypeA.String(), m.DTypeB.String(), m.ShapeA, m.ShapeB})
	}
	for _, t := range r.Tensors {
		rep.Tensors = append(rep.Tensors, TensorDiff{t.Name, t.BytesEqual, Float(t.MaxAbsDiff)})
	}
	return rep
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// WriteText writes the report for a person: what differs, then one result
// line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "a: %s (%s, %s)\n", r.A.File, r.A.Format, cmdutil.Plural(r.A.Tensors, "tensor"))
	fmt.Fprintf(&b, "b: %s (%s, %s)\n", r.B.File, r.B.Format, cmdutil.Plural(r.B.Tensors, "tensor"))
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s (%d):\n", title, len(lines))
		for _, l := range lines {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	section("only in a", r.OnlyA)
	section("only in b", r.OnlyB)
	if p, inA := prefixHint(r.OnlyA, r.OnlyB); p != "" {
		side, other := "a", "b"
		if !inA {
			side, other = "b", "a"
		}
		fmt.Fprintf(&b, "hint: %s's names are %s's with the prefix %q (ckpt convert --key %s or --strip-prefix %s)\n",
			side, other, p, strings.TrimSuffix(p, "."), p)
	}
	var shape, dtype []string
	dtypeOnly := map[string]int{} // names whose dtype alone differs -> index in dtype
	for _, m := range r.Mismatched {
		l := fmt.Sprintf("%s: %s %s vs %s %s", m.Name, m.DTypeA, cmdutil.Shape(m.ShapeA), m.DTypeB, cmdutil.Shape(m.ShapeB))
		if slices.Equal(m.ShapeA, m.ShapeB) {
			dtypeOnly[m.Name] = len(dtype)
			dtype = append(dtype, l)
		} else {
			shape = append(shape, l)
		}
	}
	var differ, within []string
	same := 0
	for _, t := range r.Tensors {
		d := fmt.Sprintf("max abs diff %s", num(float64(t.MaxAbsDiff)))
		i, isDType := dtypeOnly[t.Name]
		switch {
		case t.BytesEqual:
			same++
		case isDType && r.ATol <= 0:
			// Without --atol a dtype change is the difference; say how far
			// the values moved on its line.
			dtype[i] += ", " + d
		case r.ATol > 0 && float64(t.MaxAbsDiff) <= r.ATol:
			within = append(within, t.Name+": "+d)
		default:
			differ = append(differ, t.Name+": "+d)
		}
	}
	section("shape differs", shape)
	if r.ATol > 0 {
		section("dtype differs (values compared within --atol)", dtype)
	} else {
		section("dtype differs", dtype)
	}
	section("values differ", differ)
	section("not compared, no ckpt dtype", r.NotCompared)
	section(fmt.Sprintf("within --atol %s", num(r.ATol)), within)
	section("metadata only in a", metaLines(r.MetaOnlyA, r.metaA))
	section("metadata only in b", metaLines(r.MetaOnlyB, r.metaB))
	var metaDiffer []string
	for _, m := range r.MetaDiffer {
		metaDiffer = append(metaDiffer, fmt.Sprintf("%s: %s vs %s", m.Key, short(m.A), short(m.B)))
	}
	section("metadata differs", metaDiffer)
	fmt.Fprintf(&b, "%s compared: %d with identical bytes", cmdutil.Plural(len(r.Tensors), "tensor"), same)
	if r.ATol > 0 {
		fmt.Fprintf(&b, ", %d within %s", len(within), num(r.ATol))
	} else if len(dtype) > 0 {
		fmt.Fprintf(&b, ", %d of another dtype", len(dtype))
	}
	fmt.Fprintf(&b, ", %d with other values\n", len(differ))
	if r.TensorsOnly {
		b.WriteString("metadata not compared (--tensors-only)\n")
	}
	if r.Equal {
		b.WriteString("equal\n")
	} else {
		var why []string
		for _, x := range []struct {
			n    int
			what string
		}{{len(r.OnlyA), "only in a"}, {len(r.OnlyB), "only in b"}, {len(shape), "shape differs"}, {len(dtype), "dtype differs"}, {len(differ), "values differ"}, {len(r.NotCompared), "not compared"},
			{len(r.MetaOnlyA), "metadata only in a"}, {len(r.MetaOnlyB), "metadata only in b"}, {len(r.MetaDiffer), "metadata differs"}} {
			if x.n > 0 && (x.what != "dtype differs" || r.ATol <= 0) {
				why = append(why, fmt.Sprintf("%d %s", x.n, x.what))
			}
		}
		fmt.Fprintf(&b, "not equal: %s\n", strings.Join(why, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// metaLines renders metadata keys as "key = value".
func metaLines(keys []string, values map[string]string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + " = " + short(values[k])
	}
	return out
}

// short cuts a metadata value to one readable line.
func short(v string) string {
	const max = 60
	if len(v) > max {
		return v[:max-3] + "..."
	}
	return v
}

// prefixHint finds a prefix P such that most names only in one checkpoint
// are P plus a name only in the other (a training checkpoint's
// "state_dict.", DataParallel's "module."). inA tells which side has it.
func prefixHint(onlyA, onlyB []string) (p string, inA bool) {
	try := func(long, short []string) string {
		if len(long) == 0 || len(short) == 0 {
			return ""
		}
		set := make(map[string]bool, len(short))
		for _, s := range short {
			set[s] = true
		}
		for _, s := range short {
			if !strings.HasSuffix(long[0], s) || len(long[0]) == len(s) {
				continue
			}
			p := long[0][:len(long[0])-len(s)]
			n := 0
			for _, l := range long {
				if rest, ok := strings.CutPrefix(l, p); ok && set[rest] {
					n++
				}
			}
			if 2*n >= len(short) {
				return p
			}
		}
		return ""
	}
	if p := try(onlyA, onlyB); p != "" {
		return p, true
	}
	return try(onlyB, onlyA), false
}

// num formats a difference briefly: "0", "0.00123", "1.5e-08", "inf".
func num(f float64) string {
	if math.IsInf(f, 1) {
		return "inf"
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}
