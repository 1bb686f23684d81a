package formats

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/formats/pytorch"
	"github.com/ckptkit/ckpt/formats/safetensors"
	"github.com/ckptkit/ckpt/tensor"
)

// SaveOptions controls Save.
type SaveOptions struct {
	// Format is PyTorch, Safetensors or ONNX; "" picks it from the target's
	// extension (FormatFor).
	Format string
	// Force allows replacing existing files.
	Force bool
	// MaxShardSize, for safetensors and PyTorch, splits the tensors into
	// shards of at most this many tensor bytes (see safetensors.PlanShards)
	// when they do not fit in one, in Hugging Face's layout:
	// DIR/model-00001-of-0000N.safetensors (or .bin) and
	// DIR/model.safetensors.index.json. 0 writes one file. Storage sharing
	// is kept within a PyTorch shard, not across shards.
	MaxShardSize int64
	// Graph, for ONNX, is an ONNX model whose initializers receive the
	// checkpoint's tensors by name (onnx.Model.ReplaceInitializers). Without
	// it, the ONNX file holds a graph of initializers only.
	Graph string
	// Progress, when set, is called as bytes are written, with the bytes
	// written so far and the total expected.
	Progress func(done, total int64)
}

// SaveResult says what Save wrote.
type SaveResult struct {
	// Format is the target format.
	Format string
	// Files lists the files written, in order (a sharded checkpoint's
	// index last).
	Files []string
	// Bytes is the total size of the files written.
	Bytes int64
	// DroppedMeta lists the metadata keys the target could not hold.
	DroppedMeta []string
	// Unused lists checkpoint tensors the ONNX graph has no initializer for.
	Unused []string
	// Unaliased lists the graph's tensors that were Identity aliases of
	// another initializer (torch.onnx.export's deduplication) and are now
	// initializers of their own (onnx.ReplaceReport.Unaliased).
	Unaliased []string
	// Kept lists the graph's initializers of a type ckpt has no dtype for,
	// left as they were (onnx.ReplaceReport.Kept).
	Kept []string
	// Structured is set when the PyTorch output holds Checkpoint.Object,
	// the saved object with its structure, rather than a flat state_dict.
	Structured bool
	// FlatReason says why the PyTorch output of a checkpoint with an
	// Object is a flat state_dict all the same (sharding, or a value the
	// pickle encoder cannot write back).
	FlatReason string
}

// GraphError is Save's error when SaveOptions.Graph cannot be read: the
// fault is that file's, not the output's.
type GraphError struct {
	Path string
	Err  error
}

// Error returns the reader's message.
func (e *GraphError) Error() string { return e.Err.Error() }

// Unwrap returns the reader's error.
func (e *GraphError) Unwrap() error { return e.Err }

// FormatFor returns the target format for path's extension: .pt, .pth and
// .bin are PyTorch, .safetensors is Safetensors, .onnx is ONNX.
func FormatFor(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".pt", ".pth", ".bin", ".ckpt", ".tar":
		return PyTorch, nil
	case ".safetensors":
		return Safetensors, nil
	case ".onnx":
		return ONNX, nil
	}
	return "", fmt.Errorf("formats: cannot tell the format to write from %q: use .pt, .pth, .bin, .safetensors or .onnx, or name the format", filepath.Base(path))
}

// Save writes c to path in opts.Format (or the format path's extension
// names). PyTorch output holds c.Object with its structure when c has one
// (see SaveResult.Structured), and otherwise an OrderedDict state_dict of
// c's tensors by name; the other formats hold the tensors by name. It refuses a checkpoint with skipped tensors (a
// *SkippedError): the output would lack them, and conversion is lossless. Every file is written to a temporary file in its directory,
// synced, and renamed into place once all are complete; on error nothing is
// left behind. Existing files are kept unless opts.Force: the error then
// wraps fs.ErrExist.
func Save(path string, c *Checkpoint, opts SaveOptions) (*SaveResult, error) {
	format := opts.Format
	if format == "" {
		var err error
		if format, err = FormatFor(path); err != nil {
			return nil, err
		}
	}
	if err := checkNames(c); err != nil {
		return nil, err
	}
	if len(c.Skipped) > 0 {
		return nil, &SkippedError{Skipped: c.Skipped}
	}
	res := &SaveResult{Format: format}
	var err error
	switch format {
	case PyTorch:
		err = savePyTorch(path, c, opts, res)
	case Safetensors:
		err = saveSafetensors(path, c, opts, res)
	case ONNX:
		err = saveONNX(path, c, opts, res)
	default:
		return nil, fmt.Errorf("formats: unknown target format %q (want %s, %s or %s)", format, PyTorch, Safetensors, ONNX)
	}
	if err != nil {
		return nil, err
	}
	if opts.Progress != nil {
		opts.Progress(res.Bytes, res.Bytes)
	}
	return res, nil
}

// SaveStateDict writes the tensors of src - a module's StateDict(), a
// Checkpoint, any tensor.Source - to path, in the format its extension names
// unless opts.Format says otherwise, with meta as the file's metadata (nil
// for none; PyTorch files have no place for it and report it in
// DroppedMeta). It is Save on a Checkpoint holding src's tensors in order:
//
//	formats.SaveStateDict("head.safetensors", model.StateDict(), nil, formats.SaveOptions{})
func SaveStateDict(path string, src tensor.Source, meta map[string]string, opts SaveOptions) (*SaveResult, error) {
	c := &Checkpoint{}
	for _, name := range src.Names() {
		t := src.Tensor(name)
		if t == nil {
			return nil, fmt.Errorf("formats: source lists %q but has no tensor under it", name)
		}
		c.Tensors = append(c.Tensors, Named{Name: name, Tensor: t})
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.Meta = append(c.Meta, Meta{Key: k, Value: meta[k]})
	}
	return Save(path, c, opts)
}

func checkNames(c *Checkpoint) error {
	seen := make(map[string]bool, len(c.Tensors))
	for _, nt := range c.Tensors {
		if seen[nt.Name] {
			return fmt.Errorf("formats: tensor %q appears twice", nt.Name)
		}
		seen[nt.Name] = true
		if nt.Tensor == nil {
			return fmt.Errorf("formats: tensor %q is nil", nt.Name)
		}
	}
	return nil
}

func savePyTorch(path string, c *Checkpoint, opts SaveOptions, res *SaveResult) error {
	if c.Object != nil {
		n, err := pytorch.ObjectDataBytes(c.Object)
		switch {
		case err != nil:
			res.FlatReason = err.Error()
		case opts.MaxShardSize > 0 && n > opts.MaxShardSize:
			res.FlatReason = "sharded output is a state_dict"
		default:
			res.Structured = true
			// The object holds its own leaves; the metadata record
			// holds what lies outside it.
			var meta []pytorch.Meta
			for _, m := range c.Meta {
				if slices.Contains(c.outside, m.Key) && !safetensorsMarker(c, m) {
					meta = append(meta, m)
				}
			}
			files := []outFile{{path, func(w io.Writer) (int64, error) { return pytorch.WriteObjectMeta(w, c.Object, meta) }}}
			return newOutputs(opts, n).run(res, files)
		}
	}
	var meta []pytorch.Meta
	for _, m := range c.Meta {
		if !safetensorsMarker(c, m) {
			meta = append(meta, m)
		}
	}
	// Shards as transformers writes pytorch_model-00001-of-0000N.bin.
	plan := safetensors.PlanShards(c.Tensors, opts.MaxShardSize)
	paths, index := safetensors.ShardPaths(path, len(plan))
	x := &safetensors.Index{Metadata: map[string]any{}, WeightMap: map[string]string{}}
	var files []outFile
	var total, dataSize int64
	for i, shard := range plan {
		for _, nt := range shard {
			x.WeightMap[nt.Name] = filepath.Base(paths[i])
			dataSize += nt.Tensor.NumBytes()
		}
		n, err := pytorch.DataBytes(shard)
		if err != nil {
			return err
		}
		total += n
		files = append(files, outFile{paths[i], func(w io.Writer) (int64, error) { return pytorch.WriteMeta(w, shard, meta) }})
	}
	if index != "" {
		f, n, err := indexFile(index, x, dataSize)
		if err != nil {
			return err
		}
		total += n
		files = append(files, f)
	}
	return newOutputs(opts, total).run(res, files)
}

// indexFile is the outFile of a sharded checkpoint's index.
func indexFile(path string, x *safetensors.Index, dataSize int64) (outFile, int64, error) {
	x.Metadata["total_size"] = dataSize
	b, err := x.Marshal()
	if err != nil {
		return outFile{}, 0, err
	}
	return outFile{path, func(w io.Writer) (int64, error) {
		n, err := w.Write(b)
		return int64(n), err
	}}, int64(len(b)), nil
}

// safetensorsMarker reports whether m is a safetensors file's "format":
// "pt" entry, the framework marker safetensorsMeta adds and transformers
// checks: PyTorch output leaves it out, as a .pt needs no such marker (and
// diff does not compare it across formats).
func safetensorsMarker(c *Checkpoint, m Meta) bool {
	return m.Key == "format" && m.Value == "pt" && (c.Format == FormatSafetensors || c.Format == FormatSafetensorsSharded)
}

// safetensorsMeta is the __metadata__ written: the checkpoint's metadata
// plus Hugging Face's "format": "pt" marker when absent (transformers
// checks it).
func safetensorsMeta(c *Checkpoint) map[string]string {
	m := c.Metadata()
	if m == nil {
		m = map[string]string{}
	}
	if _, ok := m["format"]; !ok {
		m["format"] = "pt"
	}
	return m
}

func saveSafetensors(path string, c *Checkpoint, opts SaveOptions, res *SaveResult) error {
	ts := c.Tensors
	meta := safetensorsMeta(c)
	plan := safetensors.PlanShards(ts, opts.MaxShardSize)
	paths, index := safetensors.ShardPaths(path, len(plan))
	var files []outFile
	var total int64
	x := &safetensors.Index{Metadata: map[string]any{}, WeightMap: map[string]string{}}
	var dataSize int64
	for i, shard := range plan {
		n, err := safetensors.Size(shard, meta)
		if err != nil {
			return err
		}
		total += n
		for _, nt := range shard {
			x.WeightMap[nt.Name] = filepath.Base(paths[i])
			dataSize += nt.Tensor.NumBytes()
		}
		files = append(files, outFile{paths[i], func(w io.Writer) (int64, error) { return safetensors.Write(w, shard, meta) }})
	}
	if index != "" {
		f, n, err := indexFile(index, x, dataSize)
		if err != nil {
			return err
		}
		total += n
		files = append(files, f)
	}
	return newOutputs(opts, total).run(res, files)
}

func saveONNX(path string, c *Checkpoint, opts SaveOptions, res *SaveResult) error {
	if opts.MaxShardSize > 0 {
		return fmt.Errorf("formats: ONNX output cannot be sharded (large models use external data)")
	}
	ts := c.Tensors
	var m *onnx.Model
	if opts.Graph != "" {
		if err := checkGraph(opts.Graph); err != nil {
			return &GraphError{Path: opts.Graph, Err: err}
		}
		g, err := onnx.Open(opts.Graph)
		if err != nil {
			return &GraphError{Path: opts.Graph, Err: err}
		}
		defer g.Close()
		rep, err := g.ReplaceInitializers(ts)
		if err != nil {
			return err
		}
		res.Unused = rep.Unused
		res.Unaliased = rep.Unaliased
		res.Kept = rep.Kept
		for _, e := range c.Meta {
			res.DroppedMeta = append(res.DroppedMeta, e.Key)
		}
		m = g
	} else {
		m = &onnx.Model{
			IRVersion:    8,
			ProducerName: "ckpt",
			OpsetImport:  []*onnx.OperatorSetID{{Domain: "", Version: 17}},
			Graph:        &onnx.Graph{Name: "checkpoint"},
		}
		for _, nt := range c.Tensors {
			tp := &onnx.TensorProto{Name: nt.Name}
			if err := tp.SetData(nt.Tensor); err != nil {
				return err
			}
			m.Graph.Initializer = append(m.Graph.Initializer, tp)
		}
		for _, e := range c.Meta {
			m.MetadataProps = append(m.MetadataProps, &onnx.StringStringEntry{Key: e.Key, Value: e.Value})
		}
	}
	total := c.NumBytes()
	files := []outFile{{path, func(w io.Writer) (int64, error) { return onnx.Encode(w, m, onnx.WriteOptions{}, nil) }}}
	if total > onnx.MaxModelSize {
		// Over protobuf's 2 GiB limit: initializers go to PATH.data, as
		// onnx.save_model(save_as_external_data=True) does.
		dataName := filepath.Base(path) + ".data"
		var data io.Writer
		files = []outFile{
			{path + ".data", func(w io.Writer) (int64, error) { data = w; return 0, nil }},
			{path, func(w io.Writer) (int64, error) {
				return onnx.Encode(w, m, onnx.WriteOptions{ExternalData: dataName, ExternalThreshold: 1024}, data)
			}},
		}
	}
	return newOutputs(opts, total).run(res, files)
}

// checkGraph refuses a --graph file that is not an ONNX model, saying what
// it is instead: onnx.Open would report a protobuf field error.
func checkGraph(path string) error {
	k, err := detectFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return err
		}
		return errors.New("formats: not an ONNX model")
	}
	what := map[Kind]string{KindPyTorch: "a PyTorch file", KindSafetensors: "a safetensors file", KindIndex: "a sharded checkpoint's index"}[k]
	if what != "" {
		return fmt.Errorf("formats: not an ONNX model (%s)", what)
	}
	return nil
}

// outFile is one file to write: its final path and the function that
// writes its content. Writers are flushed only after every file's function
// has run, so one function may keep another file's writer and write to it
// later (ONNX external data).
type outFile struct {
	path  string
	write func(io.Writer) (int64, error)
}

// outputs writes files atomically and reports progress.
type outputs struct {
	opts  SaveOptions
	total int64
	done  int64
}

func newOutputs(opts SaveOptions, total int64) *outputs { return &outputs{opts: opts, total: total} }

// progressWriter counts bytes through to a file and reports them.
type progressWriter struct {
	w io.Writer
	o *outputs
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.add(int64(n))
	return n, err
}

func (p *progressWriter) add(n int64) {
	p.o.done += n
	if p.o.opts.Progress != nil {
		p.o.opts.Progress(min(p.o.done, p.o.total), p.o.total)
	}
}

// sectionFile returns the file a fresh SectionReader reads.
func sectionFile(sr *io.SectionReader) (*os.File, bool) {
	r, _, _ := sr.Outer()
	f, ok := r.(*os.File)
	return f, ok
}

// ReadFrom copies r to the file. When r is a section of an *os.File, the
// buffered bytes are flushed and the section is copied by the kernel
// (copy_file_range), without passing through user memory.
func (p *progressWriter) ReadFrom(r io.Reader) (int64, error) {
	sr, ok := r.(*io.SectionReader)
	var n int64
	if ok {
		if src, ok := sectionFile(sr); ok {
			if dst, ok := p.w.(*os.File); ok {
				var err error
				n, err = p.copyRange(dst, src, sr)
				if err == nil || n > 0 {
					return n, err
				}
				// Not supported here (another file system, an old
				// kernel): fall back to copying.
			}
		}
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	m, err := io.CopyBuffer(struct{ io.Writer }{p}, r, *buf)
	return n + m, err
}

// copyBuffers are ReadFrom's 1 MiB copy buffers, reused: a fresh one per
// tensor cost a state_dict of a few hundred small tensors hundreds of MB
// of allocation and clearing per save.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

type tempFile struct {
	f     *os.File
	w     *flushingWriter
	final string
}

// flushingWriter is a bufio.Writer whose ReadFrom is the underlying
// progressWriter's (after a flush), so sections of files bypass the buffer.
type flushingWriter struct {
	*bufio.Writer
	under *progressWriter
}

// ReadFrom flushes the buffer and lets the progressWriter copy r.
func (f *flushingWriter) ReadFrom(r io.Reader) (int64, error) {
	if err := f.Flush(); err != nil {
		return 0, err
	}
	return f.under.ReadFrom(r)
}

func (o *outputs) run(res *SaveResult, files []outFile) (err error) {
	if !o.opts.Force {
		for _, f := range files {
			if _, err := os.Lstat(f.path); err == nil {
				return fmt.Errorf("formats: %s: %w (overwrite with force)", f.path, fs.ErrExist)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("formats: %w", err)
			}
		}
	}
	var temps []*tempFile
	defer func() {
		if err != nil {
			for _, t := range temps {
				t.f.Close()
				os.Remove(t.f.Name())
			}
		}
	}()
	for _, f := range files {
		dir := filepath.Dir(f.path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("formats: %w", err)
		}
		tf, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".tmp-*")
		if err != nil {
			return fmt.Errorf("formats: %w", err)
		}
		pw := &progressWriter{w: tf, o: o}
		bw := &flushingWriter{Writer: bufio.NewWriterSize(pw, 1<<20), under: pw}
		temps = append(temps, &tempFile{f: tf, w: bw, final: f.path})
		if _, err := f.write(bw); err != nil {
			return fmt.Errorf("formats: writing %s: %w", f.path, err)
		}
	}
	for _, t := range temps {
		if err := t.w.Flush(); err != nil {
			return fmt.Errorf("formats: writing %s: %w", t.final, err)
		}
	}
	for _, t := range temps {
		if err := syncFile(t.f); err != nil {
			return fmt.Errorf("formats: syncing %s: %w", t.final, err)
		}
		st, err := t.f.Stat()
		if err != nil {
			return fmt.Errorf("formats: %w", err)
		}
		res.Bytes += st.Size()
		if err := t.f.Chmod(0o644); err != nil {
			return fmt.Errorf("formats: %w", err)
		}
	}
	for _, t := range temps {
		if err := t.f.Close(); err != nil {
			return fmt.Errorf("formats: closing %s: %w", t.final, err)
		}
	}
	for i, t := range temps {
		if err := place(t.f.Name(), t.final, o.opts.Force); err != nil {
			// Files already placed stay (they are complete); the rest go.
			for _, rest := range temps[i:] {
				os.Remove(rest.f.Name())
			}
			temps = nil
			return err
		}
		res.Files = append(res.Files, t.final)
	}
	temps = nil
	syncDir(filepath.Dir(files[0].path))
	return nil
}

// place moves the complete temporary file tmp to final. Without force it
// refuses to replace an existing file, atomically where the file system
// supports hard links.
func place(tmp, final string, force bool) error {
	if force {
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("formats: %w", err)
		}
		return nil
	}
	if err := os.Link(tmp, final); err == nil {
		os.Remove(tmp)
		return nil
	} else if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("formats: %s: %w (overwrite with force)", final, fs.ErrExist)
	}
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("formats: %s: %w (overwrite with force)", final, fs.ErrExist)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("formats: %w", err)
	}
	return nil
}

// noSync turns off fsync, for benchmarks that compare with a plain copy
// from the page cache.
var noSync = false

func syncFile(f *os.File) error {
	if noSync {
		return nil
	}
	return f.Sync()
}

func syncDir(dir string) {
	if noSync {
		return
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
