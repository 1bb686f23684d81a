package inspect

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/internal/cli/clitest"
)

func TestNewCmdInspect(t *testing.T) {
	tests := []struct {
		args    []string
		want    Options
		wantErr bool
	}{
		{args: []string{"m.pt"}, want: Options{File: "m.pt"}},
		{args: []string{"--json", "m.pt"}, want: Options{File: "m.pt", JSON: true}},
		{args: []string{"m.safetensors", "--hash", "--json"}, want: Options{File: "m.safetensors", JSON: true, Hash: true}},
		{args: []string{}, wantErr: true},
		{args: []string{"a.pt", "b.pt"}, wantErr: true},
		{args: []string{"--sha", "a.pt"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got := clitest.Parse(t, NewCmdInspect, tt.args, tt.wantErr)
			if got == nil {
				return
			}
			if got.File != tt.want.File || got.JSON != tt.want.JSON || got.Hash != tt.want.Hash {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// TestGolden checks the table and JSON outputs on fixtures of every source
// kind (made by testdata/gen/pickle_fixtures.py, formats_fixtures.py and
// onnx_fixtures.py). Refresh with go test -update.
func TestGolden(t *testing.T) {
	root := filepath.Join(clitest.Root(t), "testdata")
	tests := []struct {
		name string
		opts Options
	}{
		{"model_zip", Options{File: "pickle/model_zip.pt"}},
		{"torchscript", Options{File: "pickle/torchscript.pt"}},
		{"checkpoint", Options{File: "pickle/checkpoint.pt"}},
		{"checkpoint_json", Options{File: "pickle/checkpoint.pt", JSON: true}},
		{"model_zip_json_hash", Options{File: "pickle/model_zip.pt", JSON: true, Hash: true}},
		{"dtypes_safetensors_hash", Options{File: "formats/dtypes.safetensors", Hash: true}},
		{"cnn_onnx_json", Options{File: "onnx/cnn.onnx", JSON: true}},
		{"cnn_onnx", Options{File: "onnx/cnn.onnx"}},
		// Initializers without a ckpt dtype are listed as skipped.
		{"dtypes_onnx", Options{File: "onnx/dtypes.onnx"}},
		{"dtypes_onnx_json", Options{File: "onnx/dtypes.onnx", JSON: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ios, stdout, stderr := clitest.Streams()
			opts := tt.opts
			opts.IO = ios
			// The golden output names files as a user in testdata/ would.
			t.Chdir(root)
			if err := inspectRun(&opts); err != nil {
				t.Fatal(err)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr = %q, want nothing when it is not a terminal", stderr)
			}
			clitest.Golden(t, tt.name, stdout.Bytes())
		})
	}
}

// manifestFile is one entry of testdata/pickle/manifest.json, which
// testdata/gen/pickle_fixtures.py writes from what torch 1.13 itself
// reports for each fixture.
type manifestFile struct {
	File    string
	Tensors []struct {
		Name, DType, SHA256 string
		Shape               []int64
	}
	Modules *Module
	Classes []string
}

// TestMatchesTorch checks inspect --json --hash on every PyTorch fixture
// against the names, dtypes, shapes, SHA-256 fingerprints, module trees and
// class names torch reported when it wrote them.
func TestMatchesTorch(t *testing.T) {
	dir := filepath.Join(clitest.Root(t), "testdata", "pickle")
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Files []manifestFile }
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Files) == 0 {
		t.Fatal("manifest lists no files")
	}
	for _, want := range m.Files {
		t.Run(want.File, func(t *testing.T) {
			ios, stdout, _ := clitest.Streams()
			if err := inspectRun(&Options{IO: ios, File: filepath.Join(dir, want.File), JSON: true, Hash: true}); err != nil {
				t.Fatal(err)
			}
			var got Listing
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Tensors) != len(want.Tensors) {
				t.Fatalf("got %d tensors, want %d", len(got.Tensors), len(want.Tensors))
			}
			for i, g := range got.Tensors {
				w := want.Tensors[i]
				if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || g.SHA256 != w.SHA256 {
					t.Errorf("tensor %d: got %s %s %v %s, want %s %s %v %s", i, g.Name, g.DType, g.Shape, g.SHA256, w.Name, w.DType, w.Shape, w.SHA256)
				}
			}
			if w := want.Modules; w != nil {
				gj, _ := json.Marshal(got.Modules)
				wj, _ := json.Marshal(w)
				if string(gj) != string(wj) {
					t.Errorf("modules:\ngot  %s\nwant %s", gj, wj)
				}
			}
			if want.Classes != nil && !slices.Equal(got.Classes, want.Classes) {
				t.Errorf("classes: got %v, want %v", got.Classes, want.Classes)
			}
		})
	}
}

// TestMatchesONNX checks inspect --hash on ONNX fixtures against the
// fingerprints numpy computed (testdata/gen/onnx_fixtures.py).
func TestMatchesONNX(t *testing.T) {
	dir := filepath.Join(clitest.Root(t), "testdata", "onnx")
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string][]struct {
		Name, DType, SHA256 string
		Dims                []int64
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"cnn.onnx", "ext.onnx"} {
		t.Run(file, func(t *testing.T) {
			want := m[file]
			if len(want) == 0 {
				t.Fatalf("manifest has no tensors for %s", file)
			}
			ios, stdout, _ := clitest.Streams()
			if err := inspectRun(&Options{IO: ios, File: filepath.Join(dir, file), JSON: true, Hash: true}); err != nil {
				t.Fatal(err)
			}
			var got Listing
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Format != "onnx" || len(got.Tensors) != len(want) {
				t.Fatalf("got format %s with %d tensors, want onnx with %d", got.Format, len(got.Tensors), len(want))
			}
			for i, g := range got.Tensors {
				w := want[i]
				if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Dims) || g.SHA256 != w.SHA256 {
					t.Errorf("tensor %d: got %s %s %v %s, want %s %s %v %s", i, g.Name, g.DType, g.Shape, g.SHA256, w.Name, w.DType, w.Dims, w.SHA256)
				}
			}
		})
	}
}

// TestProgress checks that hashing draws a progress bar on a terminal once
// it has run for ProgressDelay, clears it at the end, and draws nothing
// when stderr is not a terminal.
func TestProgress(t *testing.T) {
	file := filepath.Join(clitest.Root(t), "testdata", "pickle", "model_zip.pt")
	for _, terminal := range []bool{true, false} {
		ios, stdout, stderr := clitest.Streams()
		ios.ErrIsTerminal = terminal
		clock := time.Unix(0, 0)
		now := func() time.Time { clock = clock.Add(time.Second); return clock }
		if err := inspectRun(&Options{IO: ios, File: file, Hash: true, Now: now}); err != nil {
			t.Fatal(err)
		}
		got := stderr.String()
		if terminal {
			if !strings.Contains(got, "hashing "+file+" [") || !strings.HasSuffix(got, "\r\x1b[K") || !strings.Contains(got, "100%") {
				t.Errorf("terminal: stderr = %q, want a bar that reaches 100%% and is cleared", got)
			}
		} else if got != "" {
			t.Errorf("not a terminal: stderr = %q, want nothing", got)
		}
		if !strings.Contains(stdout.String(), "SHA256") {
			t.Errorf("stdout has no SHA256 column:\n%s", stdout)
		}
	}
}

func TestTotal(t *testing.T) {
	tests := []struct {
		n     int64
		bytes bool
		want  string
	}{
		{0, false, "0"},
		{570, false, "570"},
		{99_999, false, "99,999"},
		{100_000, false, "100.0 k (100,000)"},
		{11_689_512, false, "11.7 M (11,689,512)"},
		{512, true, "512 B"},
		{6_568, true, "6,568 B"},
		{46_827_520, true, "46.8 MB (46,827,520)"},
	}
	for _, tt := range tests {
		if got := total(tt.n, tt.bytes); got != tt.want {
			t.Errorf("total(%d, %v) = %q, want %q", tt.n, tt.bytes, got, tt.want)
		}
	}
}

func TestValueString(t *testing.T) {
	batch := &onnx.Dimension{}
	batch.SetParam("batch")
	three := &onnx.Dimension{}
	three.SetValue(3)
	tests := []struct {
		v    *onnx.ValueInfo
		want string
	}{
		{&onnx.ValueInfo{Name: "x", Type: &onnx.Type{Tensor: &onnx.TensorType{ElemType: onnx.Float, Shape: &onnx.Shape{Dim: []*onnx.Dimension{batch, three, {}}}}}}, "x  float32 [batch, 3, ?]"},
		{&onnx.ValueInfo{Name: "s", Type: &onnx.Type{Tensor: &onnx.TensorType{ElemType: onnx.Float16, Shape: &onnx.Shape{}}}}, "s  float16 []"},
		{&onnx.ValueInfo{Name: "r", Type: &onnx.Type{Tensor: &onnx.TensorType{ElemType: onnx.Int64}}}, "r  int64 [?]"},
		{&onnx.ValueInfo{Name: "seq", Type: &onnx.Type{Sequence: &onnx.SequenceType{}}}, "seq  (not a tensor)"},
	}
	for _, tt := range tests {
		if got := valueOf(tt.v).String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// TestMetadataRecord inspects a .pt written with metadata (as a finetune
// run writes best.pt): the record's entries are listed as they are, in
// order, as for a safetensors file.
func TestMetadataRecord(t *testing.T) {
	root := clitest.Root(t)
	src, err := formats.Open(filepath.Join(root, "testdata", "pickle", "zip_state_dict.pt"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), "best.pt")
	meta := map[string]string{"arch": "resnet18", "classes": `["cat","dog"]`}
	if _, err := formats.SaveStateDict(path, src, meta, formats.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	ios, stdout, _ := clitest.Streams()
	if err := inspectRun(&Options{IO: ios, File: path, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var l Listing
	if err := json.Unmarshal(stdout.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	want := Metadata{{Key: "arch", Value: "resnet18"}, {Key: "classes", Value: `["cat","dog"]`}}
	if !slices.Equal(l.Metadata, want) {
		t.Errorf("got metadata %v, want %v", l.Metadata, want)
	}
	ios, stdout, _ = clitest.Streams()
	if err := inspectRun(&Options{IO: ios, File: path}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), `["cat","dog"]`) || !strings.Contains(stdout.String(), "resnet18") {
		t.Errorf("text output lacks the metadata:\n%s", stdout)
	}
}
