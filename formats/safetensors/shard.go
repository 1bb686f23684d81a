package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// IndexSuffix ends the name of a sharded checkpoint's index file
// ("model.safetensors.index.json").
const IndexSuffix = ".index.json"

// MaxIndexSize bounds the size of an index file read by ReadIndex.
const MaxIndexSize = 64 << 20

// Index is a sharded checkpoint's index file, as Hugging Face writes it.
type Index struct {
	// Metadata holds "total_size" (the sum of the tensors' byte sizes) and
	// whatever else the writer put there.
	Metadata map[string]any `json:"metadata"`
	// WeightMap maps each tensor name to the shard file holding it, a name
	// relative to the index's directory.
	WeightMap map[string]string `json:"weight_map"`
}

// Marshal encodes the index as Hugging Face does: two-space indented JSON
// with sorted keys and a final newline.
func (x *Index) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("safetensors: encoding index: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseIndex decodes an index file's bytes; name is used in errors. Shard
// names must be plain file names (no directories), since they are resolved
// in the index's own directory.
func ParseIndex(b []byte, name string) (*Index, error) {
	var x Index
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("safetensors: %s: invalid index JSON: %w", name, err)
	}
	if x.WeightMap == nil {
		return nil, fmt.Errorf("safetensors: %s: index has no weight_map", name)
	}
	for k, f := range x.WeightMap {
		if f == "" || f != filepath.Base(f) || f == "." || f == ".." || strings.ContainsAny(f, `/\`) {
			return nil, fmt.Errorf("safetensors: %s: tensor %q maps to %q, not a file name in the index's directory", name, k, f)
		}
	}
	return &x, nil
}

// ReadIndex reads and decodes the index file at path.
func ReadIndex(path string) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if len(b) > MaxIndexSize {
		return nil, fmt.Errorf("safetensors: %s: index larger than %d bytes", path, MaxIndexSize)
	}
	return ParseIndex(b, path)
}

// Shards returns the index's shard file names, sorted.
func (x *Index) Shards() []string {
	set := map[string]bool{}
	for _, f := range x.WeightMap {
		set[f] = true
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var errs []error
	for _, c := range m {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// OpenIndex opens the sharded safetensors checkpoint whose index file is at
// path: every shard it names, in file-name order, tensors in offset order
// within a shard. Every name in the weight map must be in the shard it names,
// and no name may be in two shards. The returned File's Metadata merges the
// shards' metadata (the first shard wins on conflicts).
func OpenIndex(path string) (*File, error) {
	x, err := ReadIndex(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	out := &File{Name: path}
	var closers multiCloser
	fail := func(err error) (*File, error) {
		closers.Close()
		return nil, err
	}
	where := map[string]string{}
	for _, shard := range x.Shards() {
		f, err := Open(filepath.Join(dir, shard))
		if err != nil {
			return fail(err)
		}
		closers = append(closers, f)
		for _, nt := range f.Tensors {
			if prev, dup := where[nt.Name]; dup {
				return fail(fmt.Errorf("safetensors: %s: tensor %q is in shards %s and %s", path, nt.Name, prev, shard))
			}
			where[nt.Name] = shard
			out.Tensors = append(out.Tensors, nt)
		}
		for _, s := range f.Skipped {
			if prev, dup := where[s.Name]; dup {
				return fail(fmt.Errorf("safetensors: %s: tensor %q is in shards %s and %s", path, s.Name, prev, shard))
			}
			where[s.Name] = shard
			out.Skipped = append(out.Skipped, s)
		}
		for k, v := range f.Metadata {
			if out.Metadata == nil {
				out.Metadata = map[string]string{}
			}
			if _, ok := out.Metadata[k]; !ok {
				out.Metadata[k] = v
			}
		}
	}
	for name, shard := range x.WeightMap {
		if where[name] != shard {
			return fail(fmt.Errorf("safetensors: %s: tensor %q is not in shard %s", path, name, shard))
		}
	}
	out.closer = closers
	return out, nil
}

// PlanShards splits tensors, in order, into shards of at most maxSize tensor
// bytes, as transformers does: a tensor starts a new shard when it would
// push a non-empty shard over maxSize, so a tensor larger than maxSize gets
// a shard of its own. maxSize <= 0 means one shard.
func PlanShards(tensors []Named, maxSize int64) [][]Named {
	if len(tensors) == 0 {
		return [][]Named{nil}
	}
	shards := [][]Named{nil}
	var size int64
	for _, nt := range tensors {
		n := nt.Tensor.NumBytes()
		last := len(shards) - 1
		if maxSize > 0 && size+n > maxSize && len(shards[last]) > 0 {
			shards = append(shards, nil)
			last++
			size = 0
		}
		shards[last] = append(shards[last], nt)
		size += n
	}
	return shards
}

// ShardPaths returns the paths of the n shards of the checkpoint whose
// single-file path would be path, and its index file, in Hugging Face's
// naming: DIR/model.safetensors gives DIR/model-00001-of-0000N.safetensors
// and DIR/model.safetensors.index.json. For n == 1 it returns path itself
// and no index.
func ShardPaths(path string, n int) (shards []string, index string) {
	if n <= 1 {
		return []string{path}, ""
	}
	ext := filepath.Ext(path)
	base := strings.TrimSuffix(path, ext)
	for i := 1; i <= n; i++ {
		shards = append(shards, fmt.Sprintf("%s-%05d-of-%05d%s", base, i, n, ext))
	}
	return shards, path + IndexSuffix
}

// ParseSize reads a size as Hugging Face's convert_file_size_to_int does:
// a plain integer is bytes; KB, MB, GB (and TB) are powers of 10; KiB, MiB,
// GiB (and TiB) powers of 2; units are case-insensitive, except that a
// lowercase final "b" in KB/MB/GB/TB means bits (divided by 8).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	type unit struct {
		suffix string
		mult   int64
		bits   bool
	}
	units := []unit{
		{"TIB", 1 << 40, false}, {"GIB", 1 << 30, false}, {"MIB", 1 << 20, false}, {"KIB", 1 << 10, false},
		{"TB", 1e12, true}, {"GB", 1e9, true}, {"MB", 1e6, true}, {"KB", 1e3, true},
	}
	mult, div := int64(1), int64(1)
	up := strings.ToUpper(t)
	for _, u := range units {
		if strings.HasSuffix(up, u.suffix) {
			if u.bits && strings.HasSuffix(t, "b") {
				div = 8
			}
			mult = u.mult
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("safetensors: size %q: want an integer with an optional unit, such as 5GB or 500MiB", s)
	}
	if v > math.MaxInt64/mult {
		return 0, fmt.Errorf("safetensors: size %q is too large", s)
	}
	return v * mult / div, nil
}
