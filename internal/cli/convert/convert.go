package convert

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/formats/safetensors"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/tensor"
)

// Options are the inputs of `ckpt convert`, as the flags give them.
type Options struct {
	IO *cmdutil.IOStreams
	// In and Out are the source and target paths.
	In, Out string
	// Excludes are regular expressions: source tensors whose name matches
	// one are left out.
	Excludes []string
	// Key takes one sub-tree of the source as the state_dict.
	Key string
	// Renames are REGEX=REPLACEMENT rules, applied in order.
	Renames []string
	// StripPrefix is removed from every tensor name that has it.
	StripPrefix string
	// DType is the floating dtype to cast to ("" keeps every dtype).
	DType string
	// Graph is an ONNX model whose initializers receive the weights.
	Graph string
	// WeightsOnly allows ONNX output without Graph: a file of initializers
	// and no nodes, which ONNX Runtime refuses to load.
	WeightsOnly bool
	// MaxShardSize splits safetensors or PyTorch output ("2GB", "500MiB";
	// "" for one file).
	MaxShardSize string
	// Format names the target format, overriding Out's extension.
	Format string
	// Force replaces existing output files.
	Force bool
	// JSON prints the summary as a JSON object.
	JSON bool
	// Now is the clock for timing and the progress bar (time.Now when nil).
	Now func() time.Time
}

// NewCmdConvert returns the convert command. runF, when not nil, is called
// with the parsed options instead of convertRun (tests of flag parsing).
func NewCmdConvert(ios *cmdutil.IOStreams, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: ios}
	cmd := &cobra.Command{
		Use:   "convert IN OUT",
		Short: "Convert a checkpoint between PyTorch, safetensors and ONNX",
		Long: `Write the tensors of IN to OUT in another format. IN is any file
'ckpt inspect' reads (PyTorch of every kind, safetensors or a sharded
index, ONNX); OUT's format comes from its extension (.pt, .pth, .bin:
PyTorch zip that torch.load(weights_only=True) reads; .safetensors; .onnx)
or from --format.

The conversion is lossless: every tensor keeps its name, dtype, shape and
bytes ('ckpt inspect --hash' gives the same fingerprints, 'ckpt diff IN OUT'
says equal). Views are written contiguous. Without --key every tensor is
kept, named as 'ckpt inspect' names it; non-tensor values (epoch, arch,
hyper-parameters) go to safetensors __metadata__ or ONNX metadata_props as
JSON text, and are reported when the target cannot hold them.

PyTorch to PyTorch keeps the saved object's structure: a training
checkpoint's nested dicts, lists, tuples, numbers, strings and optimizer
state come back from torch.load as they were saved, so training resumes
from the output (--key K keeps the structure under K; --dtype casts in
place). Whole-model pickles and TorchScript become their state_dict;
--exclude, --strip-prefix, --rename and --max-shard-size write a flat
state_dict of dotted names, and say so. numpy values come back as Python
numbers and torch tensors.

From ONNX, the parameters torch.onnx.export merged into an initializer of
equal value (kept in the graph as Identity nodes, as in exports of a
freshly initialized model) keep their names, so torch's strict
load_state_dict takes the output; BatchNorm's num_batches_tracked is not in
an ONNX export at all.

Changes, applied in this order:
  --exclude R       leave out tensors whose name (as 'ckpt inspect' lists it)
                    matches regular expression R; repeatable
  --key K           keep the tensors under K ("state_dict"), named without "K."
  --strip-prefix P  remove P from names that start with it ("module." or
                    "module"); says so when no name has it
  --rename R=S      rewrite names matching regular expression R to S ($1 for
                    groups); repeatable, applied in turn
  --dtype D         cast floating tensors to float16, bfloat16 or float32 (as
                    torch's .to() rounds); reports how many values overflowed
                    to inf or flushed to zero

Tensors ckpt has no dtype for (ONNX UINT16, UINT32, UINT64, STRING, complex
and float8 initializers, which 'ckpt inspect' lists as skipped) cannot be
converted losslessly: convert refuses a file with any, naming them, unless
--exclude leaves them out.

ONNX output needs --graph MODEL.onnx, which writes the weights into that
graph by initializer name. Without --key, the weights are found in a
training checkpoint under the key prefix that holds the most of the graph's
initializer names ("state_dict", Lightning's "state_dict.model",
DataParallel's "module"). Every missing initializer and dtype or shape
mismatch is listed in one error, and tensors the graph does not use
(num_batches_tracked) are reported, as are parameters torch.onnx.export had
folded into one initializer (Identity aliases), which get initializers of
their own, and the graph's initializers of a type ckpt has no dtype for,
which keep their values; a MODEL that is not ONNX is refused as such.
--weights-only writes ONNX without a graph instead: initializers and no
nodes, a container of weights that ONNX Runtime refuses to load.

--max-shard-size writes Hugging Face shards when the tensors do not fit in
one: DIR/model-00001-of-0000N.safetensors and DIR/model.safetensors.index.json
for OUT=DIR/model.safetensors (pytorch_model-00001-of-0000N.bin and
pytorch_model.bin.index.json for PyTorch output); sizes count as Hugging Face
counts them (2GB = 2*10^9 bytes, 2GiB = 2*2^30).

Output is written to a temporary file in OUT's directory, synced and renamed
into place: a failed or interrupted convert leaves nothing behind. An
existing OUT is kept unless --force.`,
		Example: `  # PyTorch to safetensors, then prove nothing changed
  ckpt convert resnet50.pth resnet50.safetensors
  ckpt diff resnet50.pth resnet50.safetensors

  # a training checkpoint's weights, without DataParallel's prefix
  ckpt convert --key state_dict --strip-prefix module. checkpoint.pt model.safetensors

  # half precision, in 2 GB shards with an index
  ckpt convert --dtype float16 --max-shard-size 2GB model.bin out/model.safetensors

  # fine-tuned weights back into the deployed ONNX graph
  ckpt convert --graph deployed.onnx finetuned.pt deployed-v2.onnx

  # an ONNX model's initializers, without the UINT16 ones ckpt cannot hold
  ckpt convert --exclude '^quant_' model.onnx weights.safetensors

  # rename keys, and print a machine-readable summary
  ckpt convert --rename '^backbone\.(.*)$=$1' --json in.pt out.pt`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.In, opts.Out = args[0], args[1]
			if runF != nil {
				return runF(opts)
			}
			return convertRun(opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.Excludes, "exclude", nil, "leave out tensors whose name matches `REGEX` (repeatable)")
	f.StringVar(&opts.Key, "key", "", "keep only the sub-tree `K` (such as state_dict), named without the \"K.\" prefix")
	f.StringArrayVar(&opts.Renames, "rename", nil, "rename tensors: `REGEX=REPLACEMENT` (repeatable, applied in order)")
	f.StringVar(&opts.StripPrefix, "strip-prefix", "", "remove `PREFIX` from tensor names that start with it (module.)")
	f.StringVar(&opts.DType, "dtype", "", "cast floating tensors to `DTYPE`: float16, bfloat16 or float32")
	f.StringVar(&opts.Graph, "graph", "", "write the weights into the initializers of this ONNX `MODEL` (OUT must be .onnx)")
	f.BoolVar(&opts.WeightsOnly, "weights-only", false, "with ONNX output and no --graph: write initializers only, a file without nodes that ONNX Runtime cannot run")
	f.StringVar(&opts.MaxShardSize, "max-shard-size", "", "split safetensors or PyTorch output into shards of at most `SIZE` (2GB, 500MiB)")
	f.StringVar(&opts.Format, "format", "", "target `FORMAT`: pytorch, safetensors or onnx (default: from OUT's extension)")
	f.BoolVar(&opts.Force, "force", false, "replace OUT if it exists")
	f.BoolVar(&opts.JSON, "json", false, "print the summary as a JSON object")
	return cmd
}

// plan is what the options mean once checked.
type plan struct {
	transform formats.Options
	save      formats.SaveOptions
}

// parse checks the options that need no file: every mistake here is a
// usage error.
func (o *Options) parse() (*plan, error) {
	p := &plan{transform: formats.Options{Key: o.Key, StripPrefix: o.StripPrefix}}
	for _, x := range o.Excludes {
		re, err := regexp.Compile(x)
		if err != nil {
			return nil, cmdutil.UsageError("--exclude %q: not a valid regular expression (%v)", x, err)
		}
		p.transform.Exclude = append(p.transform.Exclude, re)
	}
	for _, r := range o.Renames {
		rule, err := formats.ParseRename(r)
		if err != nil {
			pat, _, ok := strings.Cut(r, "=")
			if !ok || pat == "" {
				return nil, cmdutil.UsageError("--rename %q: want REGEX=REPLACEMENT", r)
			}
			_, rerr := regexp.Compile(pat)
			return nil, cmdutil.UsageError("--rename %q: not a valid regular expression (%v)", r, rerr)
		}
		p.transform.Rename = append(p.transform.Rename, rule)
	}
	if o.DType != "" {
		dt, err := tensor.ParseDType(o.DType)
		if err != nil || (dt != tensor.Float16 && dt != tensor.BFloat16 && dt != tensor.Float32) {
			return nil, cmdutil.UsageError("--dtype %q: want float16, bfloat16 or float32", o.DType)
		}
		p.transform.DType = dt
	}
	format := strings.ToLower(o.Format)
	switch format {
	case "":
		f, err := formats.FormatFor(o.Out)
		if err != nil {
			return nil, cmdutil.UsageError("%s: cannot tell the format from the extension: use .pt, .pth, .bin, .safetensors or .onnx, or --format", o.Out)
		}
		format = f
	case "pt", "torch", formats.PyTorch:
		format = formats.PyTorch
	case formats.Safetensors, formats.ONNX:
	default:
		return nil, cmdutil.UsageError("--format %q: want pytorch, safetensors or onnx", o.Format)
	}
	p.save = formats.SaveOptions{Format: format, Force: o.Force, Graph: o.Graph}
	if o.MaxShardSize != "" {
		if format == formats.ONNX {
			return nil, cmdutil.UsageError("--max-shard-size needs safetensors or PyTorch output: ONNX is not sharded (models over 2 GiB get external data)")
		}
		n, err := safetensors.ParseSize(o.MaxShardSize)
		if err != nil || n <= 0 {
			return nil, cmdutil.UsageError("--max-shard-size %q: want a size such as 2GB, 500MB or 1GiB", o.MaxShardSize)
		}
		p.save.MaxShardSize = n
	}
	if o.Graph != "" && format != formats.ONNX {
		return nil, cmdutil.UsageError("--graph needs ONNX output (OUT.onnx or --format onnx), not %s", format)
	}
	if format == formats.ONNX && o.Graph == "" && !o.WeightsOnly {
		return nil, cmdutil.UsageError("ONNX output needs --graph MODEL.onnx to receive the weights: without it the file has no nodes and ONNX Runtime refuses it (--weights-only writes it anyway)")
	}
	if o.WeightsOnly && (format != formats.ONNX || o.Graph != "") {
		return nil, cmdutil.UsageError("--weights-only is for ONNX output without --graph")
	}
	return p, nil
}

// Summary is what convert did: the one-line summary and the --json object.
type Summary struct {
	Input  string `json:"input"`
	Output string `json:"output"`
	// Format is the target format; SourceFormat the format IN was read as.
	Format       string   `json:"format"`
	SourceFormat string   `json:"source_format"`
	Files        []string `json:"files"`
	// Tensors and Parameters count what was written (not the tensors a
	// --graph does not use).
	Tensors    int   `json:"tensors"`
	Parameters int64 `json:"parameters"`
	// Bytes is the total size of the files written.
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	// Excluded counts tensors left out by --exclude, Dropped those left
	// out by --key; Renamed tensors whose name changed by --strip-prefix or
	// --rename.
	Excluded int `json:"excluded,omitempty"`
	Dropped  int `json:"dropped,omitempty"`
	Renamed  int `json:"renamed,omitempty"`
	// StripPrefixUnused is the --strip-prefix that no tensor name had
	// (a typo, or a checkpoint without DataParallel's prefix).
	StripPrefixUnused string `json:"strip_prefix_unused,omitempty"`
	// Cast is set with --dtype.
	Cast *Cast `json:"cast,omitempty"`
	// DroppedMetadata lists metadata keys the target format cannot hold.
	DroppedMetadata []string `json:"dropped_metadata,omitempty"`
	// Unused lists checkpoint tensors the --graph has no initializer for.
	Unused []string `json:"unused,omitempty"`
	// Unaliased lists the --graph's parameters that torch.onnx.export had
	// made Identity aliases of an equal initializer, and that now have
	// initializers of their own holding their own values.
	Unaliased []string `json:"unaliased,omitempty"`
	// Kept lists the --graph's initializers of a type ckpt has no dtype
	// for (UINT16, STRING, float8), left as they were.
	Kept []string `json:"kept,omitempty"`
	// StateDictKey is the sub-tree --graph took the weights from when no
	// --key was given (a training checkpoint's "state_dict").
	StateDictKey string `json:"state_dict_key,omitempty"`
	// Structure, for PyTorch output of a saved object (a training
	// checkpoint's dict), is "kept" when the output holds it with its
	// structure, or "flattened" when it is a state_dict of dotted names
	// (FlatReason says why).
	Structure  string `json:"structure,omitempty"`
	FlatReason string `json:"flat_reason,omitempty"`
}

// Cast reports what --dtype did.
type Cast struct {
	DType     string `json:"dtype"`
	Tensors   int    `json:"tensors"`
	Values    int64  `json:"values"`
	Overflow  int64  `json:"overflow"`
	Underflow int64  `json:"underflow"`
}

func convertRun(opts *Options) error {
	p, err := opts.parse()
	if err != nil {
		return err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if st, err := os.Stat(opts.Out); err == nil && st.IsDir() {
		return cmdutil.UsageError("%s: is a directory: name the file to write (%s)", opts.Out, filepath.Join(opts.Out, "model."+map[string]string{formats.PyTorch: "pt", formats.Safetensors: "safetensors", formats.ONNX: "onnx"}[p.save.Format]))
	}
	if !opts.Force {
		if _, err := os.Lstat(opts.Out); err == nil {
			return cmdutil.UsageError("%s: exists (use --force to replace it)", opts.Out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return cmdutil.FileError(opts.Out, err)
		}
	}
	start := now()
	src, err := cmdutil.Open(opts.In)
	if err != nil {
		return err
	}
	defer src.Close()
	foundKey := ""
	if opts.Graph != "" && p.transform.Key == "" {
		// The graph wants a model's weights: find them in a training
		// checkpoint, by the graph's initializer names when it can be read
		// (an unreadable graph is reported by Save).
		foundKey = formats.StateDictKey(src)
		if names := initializerNames(opts.Graph); len(names) > 0 {
			p, matched, err := formats.FindPrefix(src.Names(), names)
			if err != nil {
				return cmdutil.UsageError("%s: %v", opts.In, err)
			}
			if matched {
				foundKey = strings.TrimSuffix(p, ".")
			}
		}
		p.transform.Key = foundKey
	}
	c, rep, err := formats.Transform(src, p.transform)
	if err != nil {
		return cmdutil.FileError(opts.In, err)
	}
	if len(c.Skipped) > 0 {
		return cmdutil.FileError(opts.In, fmt.Errorf("convert: %d tensor(s) have no ckpt dtype and cannot be converted losslessly: %s; leave them out with --exclude REGEX",
			len(c.Skipped), formats.SkippedList(c.Skipped, 8)))
	}
	if len(c.Tensors) == 0 && (p.save.Format != formats.PyTorch || c.Object == nil) {
		// A saved object without tensors (a scheduler's state_dict) can
		// still be written as PyTorch.
		if len(src.Tensors) == 0 {
			return cmdutil.FileError(opts.In, fmt.Errorf("convert: no tensors to write: the file holds %d non-tensor values only ('ckpt inspect' lists them)", len(src.Meta)))
		}
		return cmdutil.FileError(opts.In, errors.New("convert: no tensors to write"))
	}
	bar := cmdutil.NewProgress(opts.IO, "writing "+opts.Out, opts.Now)
	p.save.Progress = bar.Update
	stop := onInterrupt(opts.IO, opts.Out, time.Now().Add(-time.Second))
	res, err := formats.Save(opts.Out, c, p.save)
	stop()
	bar.Done()
	if err != nil {
		var re *onnx.ReplaceError
		if errors.As(err, &re) {
			return cmdutil.FileError(opts.Graph, replaceProblems(re))
		}
		var ge *formats.GraphError
		if errors.As(err, &ge) {
			return cmdutil.FileError(ge.Path, ge.Err)
		}
		return cmdutil.FileError(opts.Out, err)
	}
	s := &Summary{
		Input: opts.In, Output: opts.Out, Format: res.Format, SourceFormat: src.Format,
		Files: res.Files, Bytes: res.Bytes,
		Seconds: now().Sub(start).Seconds(), Excluded: rep.Excluded, Dropped: rep.Dropped, Renamed: rep.Renamed,
		DroppedMetadata: res.DroppedMeta, Unused: res.Unused, Unaliased: res.Unaliased, Kept: res.Kept,
		StateDictKey: foundKey,
	}
	if res.Format == formats.PyTorch && src.Object != nil {
		switch {
		case res.Structured:
			s.Structure = "kept"
		case c.Object == nil:
			s.Structure, s.FlatReason = "flattened", "--exclude, --strip-prefix or --rename changed the tensors"
		default:
			s.Structure, s.FlatReason = "flattened", res.FlatReason
		}
	}
	unused := make(map[string]bool, len(res.Unused))
	for _, n := range res.Unused {
		unused[n] = true
	}
	for _, nt := range c.Tensors {
		if !unused[nt.Name] {
			s.Tensors++
			s.Parameters += nt.Tensor.NumElements()
		}
	}
	if opts.StripPrefix != "" && rep.Stripped == 0 {
		s.StripPrefixUnused = opts.StripPrefix
	}
	if cs := rep.Cast; cs != nil && p.transform.DType.Valid() {
		s.Cast = &Cast{DType: p.transform.DType.String(), Tensors: cs.Tensors, Values: cs.Values(), Overflow: cs.Overflow(), Underflow: cs.Underflow()}
	}
	if opts.JSON {
		return cmdutil.WriteJSON(opts.IO.Out, s)
	}
	s.WriteText(opts.IO)
	return nil
}

// initializerNames lists the initializers of the ONNX model at path, or
// nil when it cannot be read.
func initializerNames(path string) []string {
	m, err := onnx.Open(path)
	if err != nil {
		return nil
	}
	defer m.Close()
	var names []string
	if m.Graph != nil {
		for _, t := range m.Graph.Initializer {
			names = append(names, t.Name)
		}
	}
	return names
}

// replaceProblems says what is wrong with the --graph in one line: the
// initializers missing from the checkpoint as one list, each mismatch on
// its own.
func replaceProblems(re *onnx.ReplaceError) error {
	var missing, other []string
	for _, pr := range re.Problems {
		if pr.Kind == onnx.Missing {
			missing = append(missing, pr.Name)
		} else {
			other = append(other, pr.String())
		}
	}
	if len(missing) > 0 {
		other = append(other, fmt.Sprintf("initializers missing from the checkpoint (%d): %s", len(missing), strings.Join(missing, ", ")))
	}
	return fmt.Errorf("%d initializer problem(s), nothing written: %s", len(re.Problems), strings.Join(other, "; "))
}

// WriteText prints the summary for a person: notes first, the one-line
// summary last.
func (s *Summary) WriteText(ios *cmdutil.IOStreams) {
	w := ios.Out
	if s.StateDictKey != "" {
		fmt.Fprintf(w, "weights taken from the checkpoint's %q (as --key %s would)\n", s.StateDictKey, s.StateDictKey)
	}
	if s.Excluded > 0 {
		fmt.Fprintf(w, "left out %s matching --exclude\n", cmdutil.Plural(s.Excluded, "tensor"))
	}
	if s.Dropped > 0 {
		where := "--key"
		if s.StateDictKey != "" {
			where = "the state_dict"
		}
		fmt.Fprintf(w, "left out %s outside %s\n", cmdutil.Plural(s.Dropped, "tensor"), where)
	}
	if s.StripPrefixUnused != "" {
		fmt.Fprintf(w, "no tensor name starts with --strip-prefix %q: names kept\n", s.StripPrefixUnused)
	}
	if s.Renamed > 0 {
		fmt.Fprintf(w, "renamed %s\n", cmdutil.Plural(s.Renamed, "tensor"))
	}
	if c := s.Cast; c != nil {
		fmt.Fprintf(w, "cast %s (%s values) to %s: %d overflowed to inf, %d flushed to zero\n",
			cmdutil.Plural(int(c.Tensors), "tensor"), cmdutil.Count(c.Values), c.DType, c.Overflow, c.Underflow)
	}
	if len(s.DroppedMetadata) > 0 {
		fmt.Fprintf(w, "metadata not kept in %s output (%d): %s\n",
			s.Format, len(s.DroppedMetadata), list(s.DroppedMetadata, 8))
	}
	if s.Structure == "flattened" {
		fmt.Fprintf(w, "wrote a flat state_dict of dotted names, not the saved object's structure: %s\n", s.FlatReason)
	}
	if len(s.Unaliased) > 0 {
		fmt.Fprintf(w, "graph parameters that were Identity aliases of an equal initializer, now initializers of their own (%d): %s\n",
			len(s.Unaliased), list(s.Unaliased, 8))
	}
	if len(s.Kept) > 0 {
		fmt.Fprintf(w, "graph initializers of a type ckpt has no dtype for, kept as they were (%d): %s\n", len(s.Kept), list(s.Kept, 8))
	}
	if len(s.Unused) > 0 {
		fmt.Fprintf(w, "tensors the graph does not use, not written (%d): %s\n", len(s.Unused), list(s.Unused, 8))
	}
	where := s.Output
	if n := len(s.Files); n > 1 {
		where = fmt.Sprintf("%s (%d files: %s ... %s)", s.Output, n, s.Files[0], s.Files[n-1])
	}
	fmt.Fprintf(w, "wrote %s, %s parameters, %s to %s in %.2f s\n",
		cmdutil.Plural(s.Tensors, "tensor"), cmdutil.Count(s.Parameters), cmdutil.Bytes(s.Bytes), where, s.Seconds)
}

// list joins names, showing at most n of them.
func list(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(", ... (%d more)", len(names)-n)
}
