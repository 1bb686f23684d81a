package inspect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/pickle"
)

// Options are the inputs of `ckpt inspect`.
type Options struct {
	IO *cmdutil.IOStreams
	// File is the checkpoint to list.
	File string
	// JSON prints one JSON object instead of the table.
	JSON bool
	// Hash adds each tensor's SHA-256 fingerprint.
	Hash bool
	// Now is the clock of the progress bar (time.Now when nil).
	Now func() time.Time
}

// NewCmdInspect returns the inspect command. runF, when not nil, is called
// with the parsed options instead of inspectRun (tests of flag parsing).
func NewCmdInspect(ios *cmdutil.IOStreams, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: ios}
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "List the tensors of a checkpoint",
		Long: `List the tensors of a checkpoint: name, dtype, shape and number of
elements, with the file's format, the tensor count, the total number of
parameters (and of buffers, counted apart where the file says which tensors
are buffers: the module tree of whole-model pickles and TorchScript, the
BatchNorm statistics of a state_dict) and bytes, its metadata and, for whole-model pickles and
TorchScript archives, the module tree with class names; for ONNX models, the
graph's producer, opsets, node count, inputs and outputs.

FILE may be any PyTorch file (torch.save of every era: zip, legacy, tar;
torch.jit.save; torch.save(model)), a .safetensors file, a sharded
checkpoint's .index.json, or an ONNX model (its initializers). The format is
recognized from the content, not the extension. Nothing in the file is
executed: pickles are read by an allow-list, and a file that calls anything
else is refused.

Tensors are named by their path in the saved object, dict keys and list
indices joined by "." (state_dict.conv1.weight, optimizer.state.0.exp_avg);
tensors inside module objects by their state_dict key.

--hash adds the SHA-256 of each tensor's elements in row-major order as
little-endian bytes of its own dtype: the fingerprint is equal whatever the
file format, so it proves a conversion kept every value. Listing reads only
the file's index; hashing reads every byte (with a progress bar on a
terminal).`,
		Example: `  # the table, for any format
  ckpt inspect resnet50.pth
  ckpt inspect model.safetensors.index.json

  # fingerprints, to compare against a converted copy
  ckpt inspect --hash resnet50.pth
  ckpt inspect --hash --json model.onnx | jq -r '.tensors[] | "\(.sha256)  \(.name)"'

  # a training checkpoint's metadata
  ckpt inspect --json checkpoint.pt | jq .metadata`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if runF != nil {
				return runF(opts)
			}
			return inspectRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON object: format, tensors, totals, metadata, modules, classes, graph")
	cmd.Flags().BoolVar(&opts.Hash, "hash", false, "add the SHA-256 of each tensor's little-endian row-major elements")
	return cmd
}

// Listing is what inspect prints: the JSON object of --json, and the
// content of the table.
type Listing struct {
	Format  string   `json:"format"`
	Tensors []Tensor `json:"tensors"`
	// Parameters counts the elements of every tensor, less those of the
	// buffers where the file tells them apart (see Buffers).
	Parameters int64 `json:"parameters"`
	// Buffers counts the elements of the buffers (BatchNorm statistics
	// and the like), where the file says which tensors are buffers: the
	// module tree of a whole-model pickle or TorchScript archive, or the
	// names of a torchvision-shaped state_dict (running_mean, running_var,
	// num_batches_tracked). BuffersFrom says which: "modules" or "names";
	// "" when the file does not tell, and Parameters counts every tensor.
	Buffers     int64  `json:"buffers,omitempty"`
	BuffersFrom string `json:"buffers_from,omitempty"`
	Bytes       int64  `json:"bytes"`
	// Skipped lists the file's tensors of a type ckpt has no dtype for
	// (ONNX UINT16, STRING, complex, float8 initializers), which are not
	// in Tensors, Parameters or Bytes.
	Skipped []Skipped `json:"skipped,omitempty"`
	// Metadata holds the non-tensor values in file order: JSON text for
	// values of PyTorch files ("7", "\"resnet50\""), the strings of
	// safetensors' __metadata__, of a PyTorch file's metadata record
	// (archive/extra/ckpt_metadata.json) and of ONNX metadata_props.
	Metadata Metadata `json:"metadata,omitempty"`
	Modules  *Module  `json:"modules,omitempty"`
	Classes  []string `json:"classes,omitempty"`
	// Graph summarizes an ONNX model's graph.
	Graph *Graph `json:"graph,omitempty"`
}

// Tensor is one row of the listing.
type Tensor struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	// Elements is the number of elements (not in the JSON: the shape says it).
	Elements int64  `json:"-"`
	SHA256   string `json:"sha256,omitempty"`
}

// Skipped is a tensor of the file that ckpt cannot represent: its name,
// the file format's name for its type ("UINT16") and its shape.
type Skipped struct {
	Name  string  `json:"name"`
	Type  string  `json:"type"`
	Shape []int64 `json:"shape"`
}

// Module is a node of the module tree.
type Module struct {
	Name     string    `json:"name"`
	Class    string    `json:"class"`
	Params   []string  `json:"params,omitempty"`
	Buffers  []string  `json:"buffers,omitempty"`
	Children []*Module `json:"children,omitempty"`
}

// Metadata is ordered key-value metadata; it marshals as a JSON object that
// keeps the order.
type Metadata []formats.Meta

// MarshalJSON encodes m as an object, in order.
func (m Metadata) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// UnmarshalJSON decodes an object into m, keeping the order of its keys.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("inspect: metadata is not a JSON object")
	}
	*m = (*m)[:0]
	for dec.More() {
		var k, v string
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ = tok.(string)
		if err := dec.Decode(&v); err != nil {
			return err
		}
		*m = append(*m, formats.Meta{Key: k, Value: v})
	}
	_, err := dec.Token()
	return err
}

func inspectRun(opts *Options) error {
	c, err := cmdutil.Open(opts.File)
	if err != nil {
		return err
	}
	defer c.Close()
	l, err := List(c, opts.Hash, cmdutil.NewProgress(opts.IO, "hashing "+opts.File, opts.Now))
	if err != nil {
		return cmdutil.FileError(opts.File, err)
	}
	if opts.JSON {
		return l.WriteJSON(opts.IO.Out)
	}
	return l.WriteTable(opts.IO.Out)
}

// List builds the listing of c; with hash it reads every tensor's bytes,
// several tensors at a time, reporting progress to p (which may be nil).
func List(c *formats.Checkpoint, hash bool, p *cmdutil.Progress) (*Listing, error) {
	l := &Listing{Format: c.Format, Tensors: make([]Tensor, len(c.Tensors)), Metadata: Metadata(c.Meta)}
	for i, nt := range c.Tensors {
		t := nt.Tensor
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		l.Tensors[i] = Tensor{Name: nt.Name, DType: t.DType.String(), Shape: shape, Elements: t.NumElements()}
		l.Parameters += t.NumElements()
		l.Bytes += t.NumBytes()
	}
	for _, s := range c.Skipped {
		shape := s.Shape
		if shape == nil {
			shape = []int64{}
		}
		l.Skipped = append(l.Skipped, Skipped{s.Name, s.Type, shape})
	}
	if pf := c.Pickle; pf != nil {
		l.Modules = module(pf.Modules)
		l.Classes = pf.Classes
	}
	isBuffer, from := bufferTest(c)
	if from != "" {
		l.BuffersFrom = from
		for i, nt := range c.Tensors {
			if isBuffer(nt.Name) {
				l.Buffers += l.Tensors[i].Elements
			}
		}
		l.Parameters -= l.Buffers
	}
	l.Graph = graphOf(c.ONNX)
	if hash {
		sums, err := hashAll(c.Tensors, l.Bytes, p)
		if err != nil {
			return nil, err
		}
		for i, s := range sums {
			l.Tensors[i].SHA256 = hex.EncodeToString(s[:])
		}
	}
	return l, nil
}

// bnBuffers are the buffers of torch's BatchNorm layers, the only buffers
// of torchvision's classifiers.
var bnBuffers = []string{"running_mean", "running_var", "num_batches_tracked"}

// bufferTest returns a test of whether a tensor of c is a buffer, and
// where it knows that from: "modules" (the module tree a whole-model pickle
// or TorchScript archive records), "names" (a state_dict with BatchNorm
// statistics), or "" when c does not tell.
func bufferTest(c *formats.Checkpoint) (func(string) bool, string) {
	if pf := c.Pickle; pf != nil && pf.Modules != nil {
		bufs := map[string]bool{}
		var walk func(m *pickle.Module, prefix string)
		walk = func(m *pickle.Module, prefix string) {
			for _, b := range m.Buffers {
				bufs[prefix+b] = true
			}
			for _, ch := range m.Children {
				walk(ch, prefix+ch.Name+".")
			}
		}
		root := ""
		if pf.Modules.Name != "" {
			root = pf.Modules.Name + "."
		}
		walk(pf.Modules, root)
		return func(n string) bool { return bufs[n] }, "modules"
	}
	byName := func(n string) bool {
		i := strings.LastIndexByte(n, '.')
		return slices.Contains(bnBuffers, n[i+1:])
	}
	for _, nt := range c.Tensors {
		if byName(nt.Name) {
			return byName, "names"
		}
	}
	return nil, ""
}

func module(m *pickle.Module) *Module {
	if m == nil {
		return nil
	}
	out := &Module{Name: m.Name, Class: m.Class, Params: m.Params, Buffers: m.Buffers}
	for _, ch := range m.Children {
		out.Children = append(out.Children, module(ch))
	}
	return out
}

// hashAll returns the SHA-256 of every tensor, hashing up to GOMAXPROCS
// tensors at once; the digest of each equals tensor.Tensor.SHA256.
func hashAll(ts []formats.Named, total int64, p *cmdutil.Progress) ([][32]byte, error) {
	sums := make([][32]byte, len(ts))
	errs := make([]error, len(ts))
	var done atomic.Int64
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(ts), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ts) {
					return
				}
				h := sha256.New()
				w := &countWriter{w: h, add: func(n int) { p.Update(done.Add(int64(n)), total) }}
				if _, err := ts[i].Tensor.WriteTo(w); err != nil {
					errs[i] = fmt.Errorf("tensor %q: %w", ts[i].Name, err)
					next.Store(int64(len(ts)))
					return
				}
				h.Sum(sums[i][:0])
			}
		}()
	}
	wg.Wait()
	p.Done()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return sums, nil
}

// countWriter reports the bytes written through it.
type countWriter struct {
	w   io.Writer
	add func(int)
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.add(n)
	return n, err
}

// WriteJSON writes the listing as one indented JSON object with one line
// per tensor, so that the output reads well and diffs line by line.
func (l *Listing) WriteJSON(w io.Writer) error {
	var b bytes.Buffer
	field := func(name string, v any, last bool) error {
		j, err := json.MarshalIndent(v, "  ", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "  %q: %s", name, cmdutil.CompactNumbers(j))
		if !last {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
		return nil
	}
	b.WriteString("{\n")
	if err := field("format", l.Format, false); err != nil {
		return err
	}
	b.WriteString("  \"tensors\": [")
	for i, t := range l.Tensors {
		j, err := json.Marshal(t)
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		b.Write(j)
	}
	if len(l.Tensors) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("],\n")
	rest := []struct {
		name string
		v    any
		skip bool
	}{
		{"parameters", l.Parameters, false},
		{"buffers", l.Buffers, l.BuffersFrom == ""},
		{"buffers_from", l.BuffersFrom, l.BuffersFrom == ""},
		{"bytes", l.Bytes, false},
		{"skipped", l.Skipped, len(l.Skipped) == 0},
		{"metadata", l.Metadata, len(l.Metadata) == 0},
		{"modules", l.Modules, l.Modules == nil},
		{"classes", l.Classes, len(l.Classes) == 0},
		{"graph", l.Graph, l.Graph == nil},
	}
	last := 0
	for i, r := range rest {
		if !r.skip {
			last = i
		}
	}
	for i, r := range rest {
		if r.skip {
			continue
		}
		if err := field(r.name, r.v, i == last); err != nil {
			return err
		}
	}
	b.WriteString("}\n")
	_, err := w.Write(b.Bytes())
	return err
}

// WriteTable writes the listing as text: a header with the totals, the
// tensor table, then metadata, module tree and classes where there are any.
func (l *Listing) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "format:      %s\n", l.Format)
	fmt.Fprintf(&b, "tensors:     %d", len(l.Tensors))
	if n := len(l.Skipped); n > 0 {
		fmt.Fprintf(&b, " (and %d skipped: no ckpt dtype, listed below)", n)
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "parameters:  %s\n", total(l.Parameters, false))
	switch l.BuffersFrom {
	case "modules":
		fmt.Fprintf(&b, "buffers:     %s (as the module tree records them)\n", total(l.Buffers, false))
	case "names":
		fmt.Fprintf(&b, "buffers:     %s (BatchNorm statistics, by name)\n", total(l.Buffers, false))
	}
	fmt.Fprintf(&b, "bytes:       %s\n", total(l.Bytes, true))
	if len(l.Tensors) > 0 {
		b.WriteByte('\n')
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		hashed := l.Tensors[0].SHA256 != ""
		fmt.Fprint(tw, "NAME\tDTYPE\tSHAPE\tELEMENTS")
		if hashed {
			fmt.Fprint(tw, "\tSHA256")
		}
		fmt.Fprintln(tw)
		for _, t := range l.Tensors {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d", t.Name, t.DType, cmdutil.Shape(t.Shape), t.Elements)
			if hashed {
				fmt.Fprintf(tw, "\t%s", t.SHA256)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	if len(l.Skipped) > 0 {
		fmt.Fprintf(&b, "\nskipped, no ckpt dtype (%d):\n", len(l.Skipped))
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, s := range l.Skipped {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, s.Type, cmdutil.Shape(s.Shape))
		}
		tw.Flush()
	}
	if len(l.Metadata) > 0 {
		b.WriteString("\nmetadata:\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, m := range l.Metadata {
			fmt.Fprintf(tw, "  %s\t%s\n", m.Key, oneLine(m.Value, 100))
		}
		tw.Flush()
	}
	if l.Modules != nil {
		b.WriteString("\nmodules:\n")
		var rows [][3]string
		moduleRows(&rows, l.Modules, 1)
		w0, w1 := 0, 0
		for _, r := range rows {
			w0, w1 = max(w0, len(r[0])), max(w1, len(r[1]))
		}
		for _, r := range rows {
			line := fmt.Sprintf("%-*s  %-*s  %s", w0, r[0], w1, r[1], r[2])
			b.WriteString(strings.TrimRight(line, " "))
			b.WriteByte('\n')
		}
	}
	if l.Graph != nil {
		writeGraph(&b, l.Graph)
	}
	if len(l.Classes) > 0 {
		b.WriteString("\nclasses:\n")
		for _, c := range l.Classes {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// total formats a count for the header: exact and grouped while that reads
// at a glance ("570", "6,568 B"), the short form first from 100,000 on
// ("11.7 M (11,689,512)", "46.8 MB (46,827,520)").
func total(n int64, bytes bool) string {
	if n < 100_000 {
		if bytes {
			return cmdutil.Grouped(n) + " B"
		}
		return cmdutil.Grouped(n)
	}
	short := cmdutil.Count(n)
	if bytes {
		short = cmdutil.Bytes(n)
	}
	return short + " (" + cmdutil.Grouped(n) + ")"
}

// moduleRows appends one row per module of the tree under m: the
// attribute name indented by depth, the class, and the module's own
// parameters and buffers.
func moduleRows(rows *[][3]string, m *Module, depth int) {
	name := m.Name
	if name == "" {
		name = "(root)"
	}
	var own []string
	own = append(own, m.Params...)
	own = append(own, m.Buffers...)
	*rows = append(*rows, [3]string{strings.Repeat("  ", depth) + name, m.Class, strings.Join(own, " ")})
	for _, ch := range m.Children {
		moduleRows(rows, ch, depth+1)
	}
}

// oneLine shortens a metadata value for the table: newlines become spaces
// and values longer than n runes are cut with "...".
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return s
}
