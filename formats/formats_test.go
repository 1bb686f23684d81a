package formats

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats/pytorch"
	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

const fixtures = "../testdata/formats/"

// desc is torch's view of a fixture, written by
// testdata/gen/formats_fixtures.py next to it.
type desc struct {
	Tensors []struct {
		Name    string  `json:"name"`
		DType   string  `json:"dtype"`
		Shape   []int64 `json:"shape"`
		SHA256  string  `json:"sha256"`
		Storage int     `json:"storage"`
	} `json:"tensors"`
	Metadata map[string]any `json:"metadata"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func open(t *testing.T, path string) *Checkpoint {
	t.Helper()
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func hashOf(t *testing.T, x *tensor.Tensor) string {
	t.Helper()
	s, err := x.SHA256()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(s[:])
}

// checkDesc compares names (in order), dtypes, shapes and hashes, with
// names mapped by rename.
func checkDesc(t *testing.T, c *Checkpoint, d desc, rename func(string) string) {
	t.Helper()
	if len(c.Tensors) != len(d.Tensors) {
		var names []string
		for _, nt := range c.Tensors {
			names = append(names, nt.Name)
		}
		t.Fatalf("got %d tensors %v, want %d", len(c.Tensors), names, len(d.Tensors))
	}
	for i, w := range d.Tensors {
		g := c.Tensors[i]
		name := w.Name
		if rename != nil {
			name = rename(name)
		}
		if g.Name != name || g.Tensor.DType.String() != w.DType || fmt.Sprint(g.Tensor.Shape) != fmt.Sprint(w.Shape) {
			t.Errorf("tensor %d: got %s %s%v, want %s %s%v", i, g.Name, g.Tensor.DType, g.Tensor.Shape, name, w.DType, w.Shape)
		}
		if h := hashOf(t, g.Tensor); h != w.SHA256 {
			t.Errorf("%s: got sha256 %s, want %s", g.Name, h, w.SHA256)
		}
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		path string
		want Kind
	}{
		{fixtures + "dtypes.safetensors", KindSafetensors},
		{fixtures + "views.pt", KindPyTorch},
		{fixtures + "train.pt", KindPyTorch},
		{"../testdata/onnx/cnn.onnx", KindONNX},
		{"../testdata/onnx/dtypes.onnx", KindONNX},
		// Extensions do not matter.
		{write("weights.onnx", mustRead(t, fixtures+"dtypes.safetensors")), KindSafetensors},
		{write("model.safetensors", mustRead(t, fixtures+"views.pt")), KindPyTorch},
		{write("x.index.json", []byte(` {"weight_map": {}}`)), KindIndex},
		{write("legacy.bin", []byte("\x80\x02\x8a\x0alo")), KindPyTorch},
		// onnx_fixtures.py gave attrs.onnx an unknown top-level field 100,
		// which onnx's parser skips.
		{"../testdata/onnx/attrs.onnx", KindONNX},
		{write("unknown_fields.onnx", []byte("\x08\x08\xa0\x06\x01\xa1\x06\x01\x02\x03\x04\x05\x06\x07\x08\xa5\x06\x01\x02\x03\x04\xa2\x06\x02hi")), KindONNX},
		// A safetensors header of 640 bytes starts "\x80\x02" like a
		// pickle's PROTO 2.
		{write("h640.safetensors", safetensorsHeader(640)), KindSafetensors},
		// Bare pickles package pickle reads (made by pickle_malicious.py):
		// its reader, not detection, says what is wrong with them.
		{"../testdata/malicious/crash_proto9.pkl", KindPyTorch},
		{"../testdata/malicious/crash_long_digits.pkl", KindPyTorch},
		{"../testdata/malicious/payload_os_system_p0.pkl", KindPyTorch},
		{"../testdata/malicious/payload_eval_p1.pkl", KindPyTorch},
		{"../testdata/malicious/inst_os_system.pkl", KindPyTorch},
		{write("int.pkl", []byte("I-12\n.")), KindPyTorch},
		// A download cut short: ir_version first, the graph runs past the
		// end. The ONNX reader says where.
		{write("cut.onnx", mustRead(t, "../testdata/onnx/cnn.onnx")[:1000]), KindONNX},
		{write("cut2.onnx", []byte("\x08\x07\x3a\x10short")), KindONNX},
		{write("global_cut.pkl", append([]byte("c"), bytes.Repeat([]byte("m"), 600)...)), KindPyTorch},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			b := mustRead(t, tt.path)
			got, err := Detect(bytes.NewReader(b), int64(len(b)))
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	for _, tc := range []struct {
		b    []byte
		want string
	}{
		{nil, "formats: empty file"},
		{mustRead(t, "../testdata/npy/f32_2x5.npy"), "formats: a NumPy array (.npy), not a checkpoint"},
	} {
		if _, err := Detect(bytes.NewReader(tc.b), int64(len(tc.b))); !errors.Is(err, ErrUnknownFormat) || err.Error() != tc.want {
			t.Errorf("Detect(%.10q): got %v, want %q matching ErrUnknownFormat", tc.b, err, tc.want)
		}
	}
	for _, bad := range [][]byte{
		nil, []byte("hello world"), {0x08, 0x07, 0xff}, []byte("\x08\xff\x7f\x3a\x10short"),
		[]byte("\x08\x08\x0b\x0c"), // a group: no ONNX writer uses them
		[]byte("\x08\x08\x11\x01"), // ir_version's field 2 as fixed64
		[]byte("Include this\n"), []byte("cat file\n"), []byte("L100 bottles\n"), []byte("(not a pickle)"),
	} {
		if k, err := Detect(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("Detect(%q) = %q, %v; want ErrUnknownFormat", bad, k, err)
		}
	}
}

// safetensorsHeader returns a safetensors file with no tensors and a
// header of n bytes (n >= 2), padded with spaces as the format allows.
func safetensorsHeader(n int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(n))
	b = append(b, "{}"...)
	return append(b, bytes.Repeat([]byte(" "), n-2)...)
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenFixtures(t *testing.T) {
	tests := []struct {
		file, desc, format string
	}{
		{"dtypes.safetensors", "dtypes.json", FormatSafetensors},
		{"views.pt", "views.json", FormatPyTorchZip},
		{"train.pt", "train.json", FormatPyTorchZip},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := open(t, fixtures+tt.file)
			if c.Format != tt.format {
				t.Errorf("got format %q, want %q", c.Format, tt.format)
			}
			var d desc
			readJSON(t, fixtures+tt.desc, &d)
			checkDesc(t, c, d, nil)
		})
	}
}

func TestOpenTrainMetadata(t *testing.T) {
	c := open(t, fixtures+"train.pt")
	var d desc
	readJSON(t, fixtures+"train.json", &d)
	got := c.Metadata()
	for k, v := range d.Metadata {
		want, _ := json.Marshal(v) // torch's value as JSON
		if got[k] != string(want) {
			t.Errorf("metadata %q: got %q, want %q", k, got[k], want)
		}
	}
	if len(got) != len(d.Metadata) {
		t.Errorf("got metadata %v, want %v", got, d.Metadata)
	}
}

// roundTrip saves c as each format in turn (opening each result) and
// returns the last checkpoint.
func roundTrip(t *testing.T, c *Checkpoint, exts ...string) *Checkpoint {
	t.Helper()
	dir := t.TempDir()
	for i, ext := range exts {
		p := filepath.Join(dir, fmt.Sprintf("step%d%s", i, ext))
		if _, err := Save(p, c, SaveOptions{}); err != nil {
			t.Fatalf("save %s: %v", p, err)
		}
		c = open(t, p)
	}
	return c
}

func TestRoundTrips(t *testing.T) {
	chains := [][]string{
		{".safetensors", ".pt"},
		{".pt"},
		{".pt", ".pt"},
		{".safetensors", ".safetensors"},
		{".onnx", ".safetensors"},
	}
	for _, file := range []string{"views", "dtypes", "train"} {
		ext := ".pt"
		if file == "dtypes" {
			ext = ".safetensors"
		}
		var d desc
		readJSON(t, fixtures+file+".json", &d)
		for _, chain := range chains {
			t.Run(file+ext+strings.Join(chain, ""), func(t *testing.T) {
				got := roundTrip(t, open(t, fixtures+file+ext), chain...)
				checkDesc(t, got, d, nil)
			})
		}
	}
}

// TestPyTorchKeepsSharing: tied tensors of views.pt share one storage after
// .pt -> .pt, as torch reported them sharing (views.json); the transposed
// and expanded views get storages of their own.
func TestPyTorchKeepsSharing(t *testing.T) {
	c := roundTrip(t, open(t, fixtures+"views.pt"), ".pt")
	var d desc
	readJSON(t, fixtures+"views.json", &d)
	storages := map[*tensor.Storage]int{}
	for i, w := range d.Tensors {
		st := c.Tensors[i].Tensor.Storage
		if c.Tensors[i].Tensor.NumElements() == 0 {
			continue
		}
		id, ok := storages[st]
		if !ok {
			id = len(storages)
			storages[st] = id
		}
		name := w.Name
		shouldShare := name == "base" || name == "tied" || name == "row"
		if shouldShare && id != d.Tensors[0].Storage {
			t.Errorf("%s: not sharing base's storage", name)
		}
		if !shouldShare && st == c.Tensors[0].Tensor.Storage {
			t.Errorf("%s: shares base's storage, want its own", name)
		}
	}
}

func TestTransform(t *testing.T) {
	var d desc
	readJSON(t, fixtures+"train.json", &d)
	src := open(t, fixtures+"train.pt")
	t.Run("key", func(t *testing.T) {
		c, rep, err := Transform(src, Options{Key: "state_dict"})
		if err != nil {
			t.Fatal(err)
		}
		checkDesc(t, c, d, func(s string) string { return strings.TrimPrefix(s, "state_dict.") })
		if rep.Dropped != 0 {
			t.Errorf("dropped %d, want 0", rep.Dropped)
		}
		if got := c.Metadata()["epoch"]; got != "7" {
			t.Errorf("metadata epoch %q, want 7 (kept outside the key)", got)
		}
	})
	t.Run("key+rename", func(t *testing.T) {
		r1, _ := ParseRename(`^(\d+)\.` + "=layer$1.")
		r2, _ := ParseRename(`running_=run_`)
		c, rep, err := Transform(src, Options{Key: "state_dict", Rename: []Rename{r1, r2}})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, nt := range c.Tensors {
			names = append(names, nt.Name)
		}
		want := []string{"layer0.weight", "layer0.bias", "layer1.weight", "layer1.bias", "layer1.run_mean", "layer1.run_var", "layer1.num_batches_tracked", "layer3.weight", "layer3.bias"}
		if !slices.Equal(names, want) {
			t.Errorf("got %v, want %v", names, want)
		}
		if rep.Renamed != len(want) {
			t.Errorf("renamed %d, want %d", rep.Renamed, len(want))
		}
	})
	t.Run("strip prefix", func(t *testing.T) {
		c, _, err := Transform(src, Options{StripPrefix: "state_dict.1."})
		if err != nil {
			t.Fatal(err)
		}
		if c.Tensor("running_var") == nil || c.Tensor("state_dict.0.weight") == nil {
			t.Errorf("strip-prefix did not give running_var and keep state_dict.0.weight")
		}
	})
	t.Run("strip prefix without the dot", func(t *testing.T) {
		for _, tc := range []struct {
			prefix   string
			stripped int
		}{{"state_dict.1", 5}, {"state_dict.1.", 5}, {"state_dict.9", 0}} {
			c, rep, err := Transform(src, Options{StripPrefix: tc.prefix})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Stripped != tc.stripped {
				t.Errorf("--strip-prefix %q: stripped %d, want %d", tc.prefix, rep.Stripped, tc.stripped)
			}
			if tc.stripped > 0 && c.Tensor("running_var") == nil {
				t.Errorf("--strip-prefix %q: no running_var", tc.prefix)
			}
		}
	})
	errs := []struct {
		name string
		opts Options
		want string
	}{
		{"missing key", Options{Key: "model"}, `key "model" matches no tensor (top-level keys: state_dict)`},
		{"collision", Options{Rename: []Rename{{mustRe(`\.(weight|bias)$`), ".p"}}}, "would both be named"},
		{"bad dtype", Options{DType: tensor.Int8}, "cannot cast to int8"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Transform(src, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
	if _, err := ParseRename("noequals"); err == nil {
		t.Error("ParseRename without '=' gave no error")
	}
}

// TestCast compares casts with torch's .to(dtype) (cast.json, made by
// testdata/gen/formats_fixtures.py): bytes by hash, and the overflow and
// underflow counts torch's results show.
func TestCast(t *testing.T) {
	var want map[string]struct {
		SHA256    map[string]string `json:"sha256"`
		Overflow  int64             `json:"overflow"`
		Underflow int64             `json:"underflow"`
	}
	readJSON(t, fixtures+"cast.json", &want)
	src := open(t, fixtures+"cast.safetensors")
	for _, to := range []tensor.DType{tensor.Float16, tensor.BFloat16, tensor.Float32} {
		t.Run(to.String(), func(t *testing.T) {
			w := want[to.String()]
			c, rep, err := Transform(src, Options{DType: to})
			if err != nil {
				t.Fatal(err)
			}
			// Stream through a safetensors file, as convert does, then
			// hash what was written.
			dir := t.TempDir()
			if _, err := Save(filepath.Join(dir, "c.safetensors"), c, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := Save(filepath.Join(dir, "c.pt"), c, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			back := open(t, filepath.Join(dir, "c.safetensors"))
			for _, nt := range back.Tensors {
				if h := hashOf(t, nt.Tensor); h != w.SHA256[nt.Name] {
					t.Errorf("%s: got sha256 %s, want torch's %s", nt.Name, h, w.SHA256[nt.Name])
				}
				if h := hashOf(t, open(t, filepath.Join(dir, "c.pt")).Tensor(nt.Name)); h != w.SHA256[nt.Name] {
					t.Errorf("%s in .pt: got sha256 %s, want torch's %s", nt.Name, h, w.SHA256[nt.Name])
				}
				if wantDT := to; nt.Name != "idx" && nt.Tensor.DType != wantDT {
					t.Errorf("%s: dtype %s, want %s", nt.Name, nt.Tensor.DType, wantDT)
				}
			}
			if back.Tensor("idx").DType != tensor.Int64 {
				t.Errorf("idx cast to %s, want int64 kept", back.Tensor("idx").DType)
			}
			if rep.Cast.Overflow() != w.Overflow || rep.Cast.Underflow() != w.Underflow {
				t.Errorf("got overflow %d underflow %d, want %d %d", rep.Cast.Overflow(), rep.Cast.Underflow(), w.Overflow, w.Underflow)
			}
			// Reading again does not count twice.
			for _, nt := range c.Tensors {
				hashOf(t, nt.Tensor)
			}
			if rep.Cast.Overflow() != w.Overflow {
				t.Errorf("after a second read: overflow %d, want %d", rep.Cast.Overflow(), w.Overflow)
			}
		})
	}
}

func TestCastStridedSource(t *testing.T) {
	// A transposed float32 view cast to float16 equals the cast of its
	// contiguous copy.
	vals := []float32{1, 2, 3, 4, 5, 65536}
	b := f32bytes(vals)
	base := tensor.New(tensor.Float32, []int64{2, 3}, tensor.NewStorageBytes(b))
	tr := &tensor.Tensor{DType: tensor.Float32, Shape: []int64{3, 2}, Stride: []int64{1, 3}, Storage: base.Storage}
	contig, _ := tr.Bytes()
	ct, _ := tensor.FromBytes(tensor.Float32, []int64{3, 2}, contig)
	st := &CastStats{}
	a, _ := Cast(tr, tensor.Float16, st)
	c, _ := Cast(ct, tensor.Float16, nil)
	if ha, hc := hashOf(t, a), hashOf(t, c); ha != hc {
		t.Errorf("strided cast %s, contiguous cast %s", ha, hc)
	}
	if st.Overflow() != 1 || st.Values() != 6 {
		t.Errorf("got overflow %d of %d values, want 1 of 6", st.Overflow(), st.Values())
	}
}

func f32bytes(v []float32) []byte {
	t := make([]byte, 0, 4*len(v))
	for _, x := range v {
		u := math.Float32bits(x)
		t = append(t, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return t
}

func mustRe(s string) *regexp.Regexp { return regexp.MustCompile(s) }

func TestDiff(t *testing.T) {
	src := open(t, fixtures+"cast.safetensors")
	half, _, err := Transform(src, Options{DType: tensor.Float16})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("identical", func(t *testing.T) {
		r, err := Diff(src, roundTrip(t, src, ".pt"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Equal() || len(r.Tensors) != len(src.Tensors) {
			t.Errorf("got %+v, want equal", r)
		}
	})
	t.Run("cast", func(t *testing.T) {
		r, err := Diff(src, half, 0)
		if err != nil {
			t.Fatal(err)
		}
		if r.Equal() {
			t.Error("float32 vs float16: Equal, want not")
		}
		var mism []string
		for _, m := range r.Mismatched {
			mism = append(mism, m.Name)
		}
		slices.Sort(mism)
		if want := []string{"c32", "c64", "cbf"}; !slices.Equal(mism, want) {
			t.Errorf("mismatched %v, want %v", mism, want)
		}
		for _, td := range r.Tensors {
			if td.Name == "idx" || td.Name == "c16" {
				if !td.BytesEqual {
					t.Errorf("%s: not bytes-equal", td.Name)
				}
			} else if td.BytesEqual || td.MaxAbsDiff == 0 {
				t.Errorf("%s: got %+v, want a difference", td.Name, td)
			}
		}
	})
	t.Run("names and shapes", func(t *testing.T) {
		one, _ := tensor.FromBytes(tensor.Float32, []int64{1}, f32bytes([]float32{1}))
		two, _ := tensor.FromBytes(tensor.Float32, []int64{2}, f32bytes([]float32{1, 2}))
		near, _ := tensor.FromBytes(tensor.Float32, []int64{1}, f32bytes([]float32{1.25}))
		a := &Checkpoint{Tensors: []Named{{Name: "a", Tensor: one}, {Name: "s", Tensor: one}, {Name: "v", Tensor: one}}}
		b := &Checkpoint{Tensors: []Named{{Name: "v", Tensor: near}, {Name: "s", Tensor: two}, {Name: "b", Tensor: one}}}
		r, err := Diff(a, b, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.OnlyA, []string{"a"}) || !slices.Equal(r.OnlyB, []string{"b"}) {
			t.Errorf("only A %v only B %v, want [a] [b]", r.OnlyA, r.OnlyB)
		}
		if len(r.Mismatched) != 1 || r.Mismatched[0].Name != "s" {
			t.Errorf("mismatched %+v, want s", r.Mismatched)
		}
		if len(r.Tensors) != 1 || r.Tensors[0].MaxAbsDiff != 0.25 {
			t.Errorf("tensors %+v, want v with max diff 0.25", r.Tensors)
		}
		a.Tensors, b.Tensors = a.Tensors[2:], b.Tensors[:1]
		if r, _ := Diff(a, b, 0.5); !r.Equal() {
			t.Error("0.25 apart with atol 0.5: not Equal")
		}
		if r, _ := Diff(a, b, 0.1); r.Equal() {
			t.Error("0.25 apart with atol 0.1: Equal")
		}
	})
}

func TestAbsDiff(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	tests := []struct{ x, y, want float64 }{
		{1, 3, 2}, {nan, nan, 0}, {nan, 1, inf}, {inf, inf, 0}, {inf, -inf, inf}, {-1, 1, 2},
	}
	for _, tt := range tests {
		if got := absDiff(tt.x, tt.y); got != tt.want {
			t.Errorf("absDiff(%v, %v) = %v, want %v", tt.x, tt.y, got, tt.want)
		}
	}
}

func TestSaveAtomic(t *testing.T) {
	src := open(t, fixtures+"views.pt")
	dir := t.TempDir()
	out := filepath.Join(dir, "out.safetensors")
	if err := os.WriteFile(out, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Save(out, src, SaveOptions{}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("save over an existing file: got %v, want an error", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Errorf("existing file changed to %q", b)
	}
	if _, err := Save(out, src, SaveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if c := open(t, out); len(c.Tensors) != len(src.Tensors) {
		t.Errorf("forced save: %d tensors, want %d", len(c.Tensors), len(src.Tensors))
	}

	// A tensor whose reads fail midway: Save fails and leaves nothing.
	bad := &Checkpoint{Tensors: []Named{
		{Name: "ok", Tensor: src.Tensors[0].Tensor},
		{Name: "broken", Tensor: tensor.New(tensor.Float32, []int64{1 << 19}, tensor.NewStorage(failingReader{}, 0, 1<<21))},
	}}
	for _, ext := range []string{".safetensors", ".pt", ".onnx"} {
		p := filepath.Join(dir, "bad"+ext)
		if _, err := Save(p, bad, SaveOptions{}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("%s: got %v, want the read error", ext, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"out.safetensors"}) {
		t.Errorf("directory holds %v after failed saves, want only out.safetensors", names)
	}
}

type failingReader struct{}

func (failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= 1<<20 {
		return 0, errors.New("disk on fire")
	}
	clear(p)
	return len(p), nil
}

func TestSaveSharded(t *testing.T) {
	src := open(t, fixtures+"dtypes.safetensors")
	var d desc
	readJSON(t, fixtures+"dtypes.json", &d)
	dir := t.TempDir()
	var calls int
	var last, total int64
	res, err := Save(filepath.Join(dir, "model.safetensors"), src, SaveOptions{MaxShardSize: 64, Progress: func(done, tot int64) {
		if done < last {
			t.Errorf("progress went back from %d to %d", last, done)
		}
		calls++
		last, total = done, tot
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) < 3 || !strings.HasSuffix(res.Files[len(res.Files)-1], "model.safetensors.index.json") {
		t.Fatalf("files %v, want shards and an index", res.Files)
	}
	n := len(res.Files) - 1
	if want := fmt.Sprintf("model-00001-of-%05d.safetensors", n); filepath.Base(res.Files[0]) != want {
		t.Errorf("first shard %s, want %s", filepath.Base(res.Files[0]), want)
	}
	if calls == 0 || last != total || total != res.Bytes {
		t.Errorf("progress: %d calls ending at %d of %d; %d bytes written", calls, last, total, res.Bytes)
	}
	c := open(t, res.Files[n])
	if c.Format != FormatSafetensorsSharded {
		t.Errorf("format %q, want %q", c.Format, FormatSafetensorsSharded)
	}
	checkDesc(t, c, d, nil)
	var x struct {
		Metadata struct {
			TotalSize int64 `json:"total_size"`
		} `json:"metadata"`
	}
	readJSON(t, res.Files[n], &x)
	if x.Metadata.TotalSize != src.NumBytes() {
		t.Errorf("total_size %d, want %d", x.Metadata.TotalSize, src.NumBytes())
	}
	// One shard: no index, the plain name.
	res, err = Save(filepath.Join(dir, "one", "model.safetensors"), src, SaveOptions{MaxShardSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || filepath.Base(res.Files[0]) != "model.safetensors" {
		t.Errorf("files %v, want one model.safetensors", res.Files)
	}
}

func TestSaveMetadata(t *testing.T) {
	src := open(t, fixtures+"train.pt")
	dir := t.TempDir()
	res, err := Save(filepath.Join(dir, "t.safetensors"), src, SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := open(t, res.Files[0]).Metadata()
	for k, v := range src.Metadata() {
		if got[k] != v {
			t.Errorf("metadata %q: got %q, want %q", k, got[k], v)
		}
	}
	if got["format"] != "pt" {
		t.Errorf(`metadata "format" = %q, want "pt"`, got["format"])
	}
	// PyTorch output keeps the saved object, metadata included.
	res, err = Save(filepath.Join(dir, "t.pt"), src, SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Structured || len(res.DroppedMeta) != 0 {
		t.Errorf("structured %v, dropped %v; want the object kept, nothing dropped", res.Structured, res.DroppedMeta)
	}
	if got := open(t, res.Files[0]).Metadata(); !reflect.DeepEqual(got, src.Metadata()) {
		t.Errorf("metadata read back %v, want %v", got, src.Metadata())
	}
	// The state_dict alone: what lies outside it goes into the metadata
	// record, in order.
	sd, _, err := Transform(src, Options{Key: "state_dict"})
	if err != nil {
		t.Fatal(err)
	}
	res, err = Save(filepath.Join(dir, "sd.pt"), sd, SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Structured || len(res.DroppedMeta) != 0 {
		t.Errorf("structured %v, dropped %v, want true, nothing dropped", res.Structured, res.DroppedMeta)
	}
	back := open(t, res.Files[0])
	if got, want := back.Meta, sd.Meta; !reflect.DeepEqual(got, want) {
		t.Errorf("metadata read back %v, want %v", got, want)
	}
	var keys []string
	for _, m := range back.Meta {
		keys = append(keys, m.Key)
	}
	if want := []string{"epoch", "arch", "best_acc1"}; !reflect.DeepEqual(keys, want) || len(back.Pickle.Metadata) != len(want) {
		t.Errorf("metadata keys %v (record %v), want %v in the record", keys, back.Pickle.Metadata, want)
	}
}

func TestFormatFor(t *testing.T) {
	for in, want := range map[string]string{"a.pt": PyTorch, "b.PTH": PyTorch, "c.bin": PyTorch, "d.safetensors": Safetensors, "e.onnx": ONNX} {
		if got, err := FormatFor(in); got != want || err != nil {
			t.Errorf("FormatFor(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := FormatFor("x.h5"); err == nil {
		t.Error("FormatFor(x.h5): no error")
	}
}

// TestPickleFixtureRoundTrips runs every file of testdata/pickle (every
// torch save format, made by testdata/gen with torch 1.13, described by
// torch in manifest.json) through pt -> safetensors -> pt and pt -> pt,
// comparing names, order, dtypes, shapes and SHA-256 with torch's.
func TestPickleFixtureRoundTrips(t *testing.T) {
	var manifest struct {
		Files []struct {
			File string `json:"file"`
			desc
		} `json:"files"`
	}
	readJSON(t, "../testdata/pickle/manifest.json", &manifest)
	if len(manifest.Files) == 0 {
		t.Fatal("manifest lists no files")
	}
	for _, f := range manifest.Files {
		for _, chain := range [][]string{nil, {".safetensors", ".pt"}, {".pt"}, {".onnx"}} {
			t.Run(f.File+strings.Join(chain, ""), func(t *testing.T) {
				c := open(t, "../testdata/pickle/"+f.File)
				checkDesc(t, roundTrip(t, c, chain...), f.desc, nil)
			})
		}
	}
}

// TestONNXFixtureRoundTrips: the initializers of testdata/onnx/cnn.onnx
// (made by testdata/gen/onnx_fixtures.py) survive onnx -> safetensors -> pt
// and onnx -> onnx with the hashes the ONNX reader gives. (dtypes.onnx,
// with initializers no tensor dtype holds, is TestSkipped's.)
func TestONNXFixtureRoundTrips(t *testing.T) {
	for _, file := range []string{"cnn.onnx"} {
		for _, chain := range [][]string{{".safetensors", ".pt"}, {".onnx"}} {
			t.Run(file+strings.Join(chain, ""), func(t *testing.T) {
				src := open(t, "../testdata/onnx/"+file)
				if src.Format != FormatONNX || len(src.Tensors) == 0 {
					t.Fatalf("format %q with %d tensors, want onnx with initializers", src.Format, len(src.Tensors))
				}
				var d desc
				for _, nt := range src.Tensors {
					d.Tensors = append(d.Tensors, struct {
						Name    string  `json:"name"`
						DType   string  `json:"dtype"`
						Shape   []int64 `json:"shape"`
						SHA256  string  `json:"sha256"`
						Storage int     `json:"storage"`
					}{nt.Name, nt.Tensor.DType.String(), nt.Tensor.Shape, hashOf(t, nt.Tensor), 0})
				}
				checkDesc(t, roundTrip(t, src, chain...), d, nil)
			})
		}
	}
}

func TestSaveONNXGraph(t *testing.T) {
	src := open(t, "../testdata/onnx/cnn.onnx")
	dir := t.TempDir()
	// Every initializer from a safetensors copy, plus one the graph lacks.
	st := roundTrip(t, src, ".safetensors")
	extra, _ := tensor.FromBytes(tensor.Int64, nil, make([]byte, 8))
	withExtra := &Checkpoint{Tensors: append(slices.Clone(st.Tensors), Named{Name: "bn.num_batches_tracked", Tensor: extra})}
	res, err := Save(filepath.Join(dir, "g.onnx"), withExtra, SaveOptions{Graph: "../testdata/onnx/cnn.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Unused, []string{"bn.num_batches_tracked"}) {
		t.Errorf("unused %v, want [bn.num_batches_tracked]", res.Unused)
	}
	got := open(t, res.Files[0])
	for _, nt := range src.Tensors {
		if g := got.Tensor(nt.Name); g == nil || hashOf(t, g) != hashOf(t, nt.Tensor) {
			t.Errorf("%s: not carried into the graph", nt.Name)
		}
	}
	// A missing initializer is an error, and nothing is written.
	_, err = Save(filepath.Join(dir, "h.onnx"), &Checkpoint{Tensors: st.Tensors[1:]}, SaveOptions{Graph: "../testdata/onnx/cnn.onnx"})
	if err == nil || !strings.Contains(err.Error(), st.Tensors[0].Name) {
		t.Errorf("got %v, want an error naming %s", err, st.Tensors[0].Name)
	}
	if _, err := os.Stat(filepath.Join(dir, "h.onnx")); err == nil {
		t.Error("h.onnx written despite the error")
	}
}

func TestDiffJSON(t *testing.T) {
	r := &DiffReport{Tensors: []TensorDiff{{"a", false, math.Inf(1)}, {"b", true, 0}}, Mismatched: []Mismatch{{"c", tensor.Float32, tensor.Float16, []int64{2}, []int64{2}}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"only_a":null,"only_b":null,"mismatched":[{"name":"c","dtype_a":"float32","dtype_b":"float16","shape_a":[2],"shape_b":[2]}],"tensors":[{"name":"a","bytes_equal":false,"max_abs_diff":"inf"},{"name":"b","bytes_equal":true,"max_abs_diff":0}],"atol":0}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
}

// TestOpenPyTorchShardedIndex opens a pytorch_model.bin.index.json whose
// shards are torch.save files (the fixtures), as transformers writes them.
func TestOpenPyTorchShardedIndex(t *testing.T) {
	dir := t.TempDir()
	shards := map[string]string{"pytorch_model-00001-of-00002.bin": "views", "pytorch_model-00002-of-00002.bin": "train"}
	wm := map[string]string{}
	var want desc
	for _, name := range []string{"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"} {
		fix := shards[name]
		if err := os.WriteFile(filepath.Join(dir, name), mustRead(t, fixtures+fix+".pt"), 0o644); err != nil {
			t.Fatal(err)
		}
		var d desc
		readJSON(t, fixtures+fix+".json", &d)
		for _, tt := range d.Tensors {
			wm[tt.Name] = name
		}
		want.Tensors = append(want.Tensors, d.Tensors...)
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 1}, "weight_map": wm})
	index := filepath.Join(dir, "pytorch_model.bin.index.json")
	if err := os.WriteFile(index, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c := open(t, index)
	if c.Format != FormatPyTorchSharded {
		t.Errorf("format %q, want %q", c.Format, FormatPyTorchSharded)
	}
	checkDesc(t, c, want, nil)
	if c.Metadata()["epoch"] != "7" {
		t.Errorf("metadata %v lacks the second shard's epoch", c.Metadata())
	}
	// A weight_map entry naming the wrong shard is an error.
	wm["base"] = "pytorch_model-00002-of-00002.bin"
	b, _ = json.Marshal(map[string]any{"weight_map": wm})
	os.WriteFile(index, b, 0o644)
	if _, err := Open(index); err == nil || !strings.Contains(err.Error(), `tensor "base" is not in shard`) {
		t.Errorf("got %v, want a wrong-shard error", err)
	}
}

// FuzzDetect: Detect must not panic or fail with anything but
// ErrUnknownFormat on any input. Seeds: fixtures of every format.
func FuzzDetect(f *testing.F) {
	for _, p := range []string{fixtures + "dtypes.safetensors", fixtures + "views.pt", "../testdata/onnx/cnn.onnx",
		"../testdata/onnx/attrs.onnx", "../testdata/malicious/payload_os_system_p0.pkl", "../testdata/malicious/crash_long_digits.pkl"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 4096)])
	}
	f.Add([]byte(`{"weight_map":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Detect(bytes.NewReader(b), int64(len(b))); err != nil && !errors.Is(err, ErrUnknownFormat) {
			t.Fatalf("got %v, want nil or ErrUnknownFormat", err)
		}
	})
}

// TestSaveShardedPyTorch writes pytorch_model-0000N-of-0000M.bin shards and
// an index, as transformers does, and opens them back through the index.
func TestSaveShardedPyTorch(t *testing.T) {
	src := open(t, fixtures+"views.pt")
	var d desc
	readJSON(t, fixtures+"views.json", &d)
	dir := t.TempDir()
	res, err := Save(filepath.Join(dir, "pytorch_model.bin"), src, SaveOptions{MaxShardSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := len(res.Files) - 1
	if n < 2 || filepath.Base(res.Files[n]) != "pytorch_model.bin.index.json" || filepath.Base(res.Files[0]) != fmt.Sprintf("pytorch_model-00001-of-%05d.bin", n) {
		t.Fatalf("files %v, want pytorch_model-0000i-of-%05d.bin shards and an index", res.Files, n)
	}
	c := open(t, res.Files[n])
	if c.Format != FormatPyTorchSharded {
		t.Errorf("format %q, want %q", c.Format, FormatPyTorchSharded)
	}
	checkDesc(t, c, d, nil)
	if _, err := Save(filepath.Join(dir, "m.onnx"), src, SaveOptions{MaxShardSize: 100}); err == nil {
		t.Error("sharded ONNX: no error")
	}
}

// TestOpenNotIndex: a JSON object that is not an index (a manifest) is
// an unknown format, said as such.
func TestOpenNotIndex(t *testing.T) {
	p := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(p, []byte(`{"files": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(p)
	if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), `without "weight_map"`) {
		t.Errorf("got %v, want ErrUnknownFormat saying there is no weight_map", err)
	}
}

func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), ": a directory without") {
		t.Errorf("empty directory: got %v", err)
	}
	src := open(t, fixtures+"dtypes.safetensors")
	if _, err := Save(filepath.Join(dir, "model.safetensors"), src, SaveOptions{MaxShardSize: 64}); err != nil {
		t.Fatal(err)
	}
	c := open(t, dir)
	if c.Format != FormatSafetensorsSharded || len(c.Tensors) != len(src.Tensors) {
		t.Errorf("got %s with %d tensors, want the sharded checkpoint of %d", c.Format, len(c.Tensors), len(src.Tensors))
	}
}

// TestCastKeepsTies: views.pt's "base" and "tied" (one tensor under two
// names) still share a storage after a float16 cast to .pt.
func TestCastKeepsTies(t *testing.T) {
	src := open(t, fixtures+"views.pt")
	c, rep, err := Transform(src, Options{DType: tensor.Float16})
	if err != nil {
		t.Fatal(err)
	}
	if c.Tensor("base") != c.Tensor("tied") {
		t.Error("base and tied cast separately")
	}
	back := roundTrip(t, c, ".pt")
	if back.Tensor("base").Storage != back.Tensor("tied").Storage {
		t.Error("base and tied do not share a storage after .pt")
	}
	if hashOf(t, back.Tensor("base")) != hashOf(t, back.Tensor("tied")) {
		t.Error("base and tied differ")
	}
	if rep.Cast.Tensors == 0 {
		t.Error("nothing cast")
	}
}

// TestSkipped opens dtypes.onnx (onnx_fixtures.py), whose UINT16, UINT32,
// UINT64, COMPLEX64 and STRING initializers have no tensor dtype: they are
// listed as skipped, Save refuses to lose them, Exclude leaves them out,
// and Diff does not call a file with them equal to anything.
func TestSkipped(t *testing.T) {
	c := open(t, "../testdata/onnx/dtypes.onnx")
	var got []string
	for _, s := range c.Skipped {
		got = append(got, fmt.Sprintf("%s %s %v", s.Name, s.Type, s.Shape))
	}
	want := []string{"u16_raw UINT16 [2]", "u32_typed UINT32 [2]", "u64_typed UINT64 [1]", "c64_typed COMPLEX64 [1]", "str_typed STRING [2]"}
	if !slices.Equal(got, want) {
		t.Fatalf("skipped: got %v, want %v", got, want)
	}
	if len(c.Tensors) != 23 {
		t.Errorf("got %d tensors, want 23", len(c.Tensors))
	}
	dir := t.TempDir()
	_, err := Save(filepath.Join(dir, "all.safetensors"), c, SaveOptions{})
	var se *SkippedError
	if !errors.As(err, &se) || len(se.Skipped) != 5 || !strings.Contains(err.Error(), `"u16_raw" (UINT16)`) {
		t.Fatalf("Save: got %v, want a SkippedError naming u16_raw (UINT16)", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("refused Save left %v", m)
	}
	kept, rep, err := Transform(c, Options{Exclude: []*regexp.Regexp{mustRe(`^(u16|u32|u64|c64|str)_`)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(kept.Skipped) != 0 || len(kept.Tensors) != 23 || rep.Excluded != 5 {
		t.Errorf("after Exclude: %d skipped, %d tensors, %d excluded; want 0, 23, 5", len(kept.Skipped), len(kept.Tensors), rep.Excluded)
	}
	out := filepath.Join(dir, "some.safetensors")
	if _, err := Save(out, kept, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	back := open(t, out)
	for _, tc := range []struct {
		name        string
		a, b        *Checkpoint
		onlyA       int
		notCompared int
	}{
		{"same file", c, open(t, "../testdata/onnx/dtypes.onnx"), 0, 5},
		{"without them", c, back, 5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Diff(tc.a, tc.b, 0)
			if err != nil {
				t.Fatal(err)
			}
			if r.Equal() || len(r.OnlyA) != tc.onlyA || len(r.NotCompared) != tc.notCompared || len(r.Tensors) != 23 {
				t.Errorf("got equal %v, only in a %v, not compared %v, %d compared; want not equal, %d, %d, 23",
					r.Equal(), r.OnlyA, r.NotCompared, len(r.Tensors), tc.onlyA, tc.notCompared)
			}
		})
	}
}

// TestSkippedSafetensors: a safetensors file with U16 and F8_E4M3 tensors
// (as torch >= 2.1 and FP8 checkpoints write) opens, listing them skipped.
func TestSkippedSafetensors(t *testing.T) {
	hdr := `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"u":{"dtype":"U16","shape":[2],"data_offsets":[4,8]},"f8":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[8,9]}}`
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	b = append(append(b, hdr...), make([]byte, 9)...)
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c := open(t, p)
	if got, want := fmt.Sprint(c.Skipped), "[{u U16 [2]} {f8 F8_E4M3 [1]}]"; got != want || len(c.Tensors) != 1 {
		t.Errorf("got skipped %s and %d tensors, want %s and 1", got, len(c.Tensors), want)
	}
}

// TestOpenMetadataRecord opens PyTorch files written with a metadata
// record: its entries follow the pickle's leaves, in order, and are
// outside the saved object; a record key that is also a leaf's path is
// refused.
func TestOpenMetadataRecord(t *testing.T) {
	dir := t.TempDir()
	w := tensor.New(tensor.Float32, []int64{1}, tensor.NewStorageBytes(make([]byte, 4)))
	write := func(name string, obj any, meta []pytorch.Meta) string {
		t.Helper()
		var buf bytes.Buffer
		if _, err := pytorch.WriteObjectMeta(&buf, obj, meta); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	obj := &pickle.Dict{Keys: []any{"epoch", "w"}, Values: []any{int64(7), w}}
	c := open(t, write("ok.pt", obj, []pytorch.Meta{{Key: "z", Value: "1"}, {Key: "arch", Value: "resnet18"}}))
	if want := []Meta{{Key: "epoch", Value: "7"}, {Key: "z", Value: "1"}, {Key: "arch", Value: "resnet18"}}; !reflect.DeepEqual(c.Meta, want) {
		t.Errorf("got metadata %v, want %v", c.Meta, want)
	}
	// Saved again with its structure, the record is written again.
	res, err := Save(filepath.Join(dir, "again.pt"), c, SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again := open(t, res.Files[0]); !res.Structured || !reflect.DeepEqual(again.Meta, c.Meta) || len(res.DroppedMeta) != 0 {
		t.Errorf("saved again: structured %v, metadata %v, dropped %v; want true, %v, none", res.Structured, again.Meta, res.DroppedMeta, c.Meta)
	}
	p := write("clash.pt", obj, []pytorch.Meta{{Key: "epoch", Value: "8"}})
	if _, err := Open(p); err == nil || !strings.Contains(err.Error(), `key "epoch" is also a path of the pickled object`) {
		t.Errorf("got error %v, want the clash on \"epoch\"", err)
	}
}
