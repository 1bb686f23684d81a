package convert

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/formats/onnx"
	"github.com/ckptkit/ckpt/formats/pytorch"
	"github.com/ckptkit/ckpt/internal/cli/clitest"
	"github.com/ckptkit/ckpt/internal/cli/cmdutil"
	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

func TestNewCmdConvert(t *testing.T) {
	tests := []struct {
		args    []string
		want    Options
		wantErr bool
	}{
		{args: []string{"a.pt", "b.safetensors"}, want: Options{In: "a.pt", Out: "b.safetensors"}},
		{
			args: []string{"--key", "state_dict", "--strip-prefix", "module.", "--rename", `^a\.(.*)=b.$1`, "--rename", "x=y=z",
				"--dtype", "bfloat16", "--max-shard-size", "2GB", "--format", "safetensors", "--force", "--json", "in.pt", "out"},
			want: Options{In: "in.pt", Out: "out", Key: "state_dict", StripPrefix: "module.", Renames: []string{`^a\.(.*)=b.$1`, "x=y=z"},
				DType: "bfloat16", MaxShardSize: "2GB", Format: "safetensors", Force: true, JSON: true},
		},
		{args: []string{"--graph", "m.onnx", "ft.pt", "out.onnx"}, want: Options{In: "ft.pt", Out: "out.onnx", Graph: "m.onnx"}},
		{args: []string{"--exclude", "^optimizer\\.", "--exclude", "_u16$", "a.onnx", "b.pt"}, want: Options{In: "a.onnx", Out: "b.pt", Excludes: []string{`^optimizer\.`, "_u16$"}}},
		{args: []string{"a.pt"}, wantErr: true},
		{args: []string{"a.pt", "b.pt", "c.pt"}, wantErr: true},
		{args: []string{"--shard", "1GB", "a.pt", "b.pt"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got := clitest.Parse(t, NewCmdConvert, tt.args, tt.wantErr)
			if got == nil {
				return
			}
			got.IO = nil
			if g, w := *got, tt.want; g.In != w.In || g.Out != w.Out || g.Key != w.Key || g.StripPrefix != w.StripPrefix ||
				!slices.Equal(g.Renames, w.Renames) || !slices.Equal(g.Excludes, w.Excludes) || g.DType != w.DType || g.MaxShardSize != w.MaxShardSize ||
				g.Format != w.Format || g.Force != w.Force || g.JSON != w.JSON || g.Graph != w.Graph {
				t.Errorf("got %+v, want %+v", g, w)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		want    func(*plan) bool
		wantErr string
	}{
		{"extension safetensors", Options{Out: "x.safetensors"}, func(p *plan) bool { return p.save.Format == formats.Safetensors }, ""},
		{"extension pth", Options{Out: "x.pth"}, func(p *plan) bool { return p.save.Format == formats.PyTorch }, ""},
		{"explicit format wins", Options{Out: "x.bin", Format: "ONNX", WeightsOnly: true}, func(p *plan) bool { return p.save.Format == formats.ONNX }, ""},
		{"dtype alias", Options{Out: "x.pt", DType: "half"}, func(p *plan) bool { return p.transform.DType == tensor.Float16 }, ""},
		{"shard size decimal", Options{Out: "x.safetensors", MaxShardSize: "2GB"}, func(p *plan) bool { return p.save.MaxShardSize == 2_000_000_000 }, ""},
		{"shard size binary", Options{Out: "x.safetensors", MaxShardSize: "1MiB"}, func(p *plan) bool { return p.save.MaxShardSize == 1<<20 }, ""},
		{"renames in order", Options{Out: "x.pt", Renames: []string{"a=b", "^b$=c"}}, func(p *plan) bool {
			return len(p.transform.Rename) == 2 && p.transform.Rename[1].Replacement == "c"
		}, ""},
		{"graph", Options{Out: "x.onnx", Graph: "g.onnx"}, func(p *plan) bool { return p.save.Graph == "g.onnx" }, ""},
		{"integer dtype", Options{Out: "x.pt", DType: "int8"}, nil, `--dtype "int8": want float16, bfloat16 or float32`},
		{"float64 dtype", Options{Out: "x.pt", DType: "float64"}, nil, `--dtype "float64"`},
		{"bad rename", Options{Out: "x.pt", Renames: []string{"no-equals"}}, nil, `--rename "no-equals"`},
		{"bad regexp", Options{Out: "x.pt", Renames: []string{"a(=b"}}, nil, `--rename "a(=b": not a valid regular expression (error parsing regexp: missing closing )`},
		{"empty pattern", Options{Out: "x.pt", Renames: []string{"=b"}}, nil, `--rename "=b": want REGEX=REPLACEMENT`},
		{"unknown extension", Options{Out: "x.h5"}, nil, "x.h5: cannot tell the format"},
		{"unknown format", Options{Out: "x.pt", Format: "gguf"}, nil, `--format "gguf"`},
		{"pytorch shards", Options{Out: "x.pt", MaxShardSize: "1GB"}, func(p *plan) bool { return p.save.MaxShardSize == 1e9 }, ""},
		{"no onnx shards", Options{Out: "x.onnx", Graph: "g.onnx", MaxShardSize: "1GB"}, nil, "--max-shard-size needs safetensors or PyTorch output"},
		{"excludes", Options{Out: "x.pt", Excludes: []string{"^a", "b$"}}, func(p *plan) bool {
			return len(p.transform.Exclude) == 2 && p.transform.Exclude[1].String() == "b$"
		}, ""},
		{"bad exclude", Options{Out: "x.pt", Excludes: []string{"a("}}, nil, `--exclude "a(": not a valid regular expression`},
		{"bad shard size", Options{Out: "x.safetensors", MaxShardSize: "lots"}, nil, `--max-shard-size "lots"`},
		{"graph needs onnx", Options{Out: "x.safetensors", Graph: "g.onnx"}, nil, "--graph needs ONNX output"},
		{"onnx needs graph", Options{Out: "x.onnx"}, nil, "ONNX output needs --graph MODEL.onnx"},
		{"onnx format needs graph", Options{Out: "x.bin", Format: "onnx"}, nil, "ONNX output needs --graph"},
		{"weights only", Options{Out: "x.onnx", WeightsOnly: true}, func(p *plan) bool { return p.save.Format == formats.ONNX && p.save.Graph == "" }, ""},
		{"weights only needs onnx", Options{Out: "x.pt", WeightsOnly: true}, nil, "--weights-only is for ONNX output without --graph"},
		{"weights only and graph", Options{Out: "x.onnx", Graph: "g.onnx", WeightsOnly: true}, nil, "--weights-only is for ONNX output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.opts.parse()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
					t.Errorf("got error %v (exit %d), want a usage error containing %q", err, cmdutil.ExitCode(err), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(p) {
				t.Errorf("got plan %+v, not what %s wants", p, tt.name)
			}
		})
	}
}

// fixture returns the path of a fixture under the repository's testdata.
func fixture(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(clitest.Root(t), "testdata", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// inTemp copies fixtures into a temporary directory and makes it the
// working directory, so outputs name files as a user there would.
func inTemp(t *testing.T, fixtures ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range fixtures {
		b, err := os.ReadFile(fixture(t, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	return dir
}

// fakeClock advances a quarter second each time it is read.
func fakeClock() func() time.Time {
	now := time.Unix(0, 0)
	return func() time.Time { now = now.Add(250 * time.Millisecond); return now }
}

// TestGolden checks the summary, as text and as JSON, of conversions of
// fixtures made by testdata/gen/pickle_fixtures.py and formats_fixtures.py.
func TestGolden(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		opts    Options
	}{
		{"pt_to_safetensors", "pickle/checkpoint.pt", Options{In: "checkpoint.pt", Out: "out.safetensors"}},
		{"pt_to_safetensors_json", "pickle/checkpoint.pt", Options{In: "checkpoint.pt", Out: "out.safetensors", JSON: true}},
		{"key_to_pt", "pickle/checkpoint.pt", Options{In: "checkpoint.pt", Out: "out.pt", Key: "state_dict"}},
		{"rename_strip", "pickle/zip_state_dict.pt", Options{In: "zip_state_dict.pt", Out: "out.pt", StripPrefix: "bn1.", Renames: []string{`^conv(\d)\.=c$1.`}}},
		{"cast_float16", "formats/cast.safetensors", Options{In: "cast.safetensors", Out: "out.safetensors", DType: "float16"}},
		{"sharded", "pickle/checkpoint.pt", Options{In: "checkpoint.pt", Out: "shards/model.safetensors", MaxShardSize: "1kB"}},
		{"sharded_json", "pickle/checkpoint.pt", Options{In: "checkpoint.pt", Out: "shards/model.safetensors", MaxShardSize: "1kB", JSON: true}},
		{"onnx_extract", "onnx/cnn.onnx", Options{In: "cnn.onnx", Out: "cnn.pt"}},
		// A training checkpoint to PyTorch keeps its structure, unless
		// tensors are left out.
		{"pt_to_pt_json", "pickle/checkpoint.pt", Options{In: "checkpoint.pt", Out: "out.pt", JSON: true}},
		{"pt_to_pt_exclude", "pickle/checkpoint.pt", Options{In: "checkpoint.pt", Out: "out.pt", Excludes: []string{`^optimizer\.`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inTemp(t, tt.fixture)
			ios, stdout, stderr := clitest.Streams()
			opts := tt.opts
			opts.IO, opts.Now = ios, fakeClock()
			if err := convertRun(&opts); err != nil {
				t.Fatal(err)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr = %q, want nothing when it is not a terminal", stderr)
			}
			clitest.Golden(t, tt.name, stdout.Bytes())
		})
	}
}

// hashes returns name -> SHA-256 of every tensor of the checkpoint at path.
func hashes(t *testing.T, path string) map[string]string {
	t.Helper()
	c, err := formats.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := map[string]string{}
	for _, nt := range c.Tensors {
		s, err := nt.Tensor.SHA256()
		if err != nil {
			t.Fatal(err)
		}
		m[nt.Name] = string(hexString(s[:]))
	}
	return m
}

func hexString(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

// TestCastMatchesTorch converts cast.safetensors (values chosen to
// overflow, flush and round) to each target dtype and checks the result's
// fingerprints and the overflow and flush counts against what torch 1.13
// computed (testdata/formats/cast.json, by testdata/gen/formats_fixtures.py).
func TestCastMatchesTorch(t *testing.T) {
	b, err := os.ReadFile(fixture(t, "formats/cast.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]struct {
		SHA256              map[string]string
		Overflow, Underflow int64
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	for _, dt := range []string{"float16", "bfloat16", "float32"} {
		t.Run(dt, func(t *testing.T) {
			w, ok := want[dt]
			if !ok {
				t.Fatalf("cast.json has no %s entry", dt)
			}
			dir := inTemp(t, "formats/cast.safetensors")
			ios, stdout, _ := clitest.Streams()
			out := filepath.Join(dir, "out.safetensors")
			if err := convertRun(&Options{IO: ios, In: "cast.safetensors", Out: out, DType: dt, JSON: true}); err != nil {
				t.Fatal(err)
			}
			var s Summary
			if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			if s.Cast == nil || s.Cast.Overflow != w.Overflow || s.Cast.Underflow != w.Underflow {
				t.Errorf("cast = %+v, want overflow %d, underflow %d", s.Cast, w.Overflow, w.Underflow)
			}
			got := hashes(t, out)
			for name, h := range w.SHA256 {
				if got[name] != h {
					t.Errorf("tensor %s: got sha256 %s, want %s", name, got[name], h)
				}
			}
		})
	}
}

// TestGraph writes the state_dict of a second model instance (cnn_b.bin,
// from testdata/gen/onnx_fixtures.py) into the ONNX export of the first
// (cnn.onnx): every initializer receives B's bytes, and the tensors the
// graph does not use (num_batches_tracked) are reported. A checkpoint that
// does not fit the graph is refused with every problem listed and nothing
// written.
func TestGraph(t *testing.T) {
	graph := fixture(t, "onnx/cnn.onnx")
	dir := t.TempDir()
	src := filepath.Join(dir, "finetuned.safetensors")
	entries := clitest.CNNB(t, src)

	t.Run("replaced", func(t *testing.T) {
		ios, stdout, _ := clitest.Streams()
		out := filepath.Join(dir, "deployed.onnx")
		if err := convertRun(&Options{IO: ios, In: src, Out: out, Graph: graph, JSON: true}); err != nil {
			t.Fatal(err)
		}
		var s Summary
		if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		if want := []string{"bn1.num_batches_tracked", "bn2.num_batches_tracked"}; !slices.Equal(s.Unused, want) {
			t.Errorf("unused = %v, want %v", s.Unused, want)
		}
		if s.Tensors != len(entries)-2 {
			t.Errorf("summary counts %d tensors written, want %d", s.Tensors, len(entries)-2)
		}
		got := hashes(t, out)
		if len(got) != len(entries)-2 {
			t.Errorf("output has %d initializers, want %d", len(got), len(entries)-2)
		}
		for _, e := range entries {
			if h, ok := got[e.Name]; ok && h != e.SHA256 {
				t.Errorf("initializer %s: got sha256 %s, want B's %s", e.Name, h, e.SHA256)
			} else if !ok && !strings.HasSuffix(e.Name, "num_batches_tracked") {
				t.Errorf("initializer %s missing from the output", e.Name)
			}
		}
	})

	t.Run("golden", func(t *testing.T) {
		inTemp(t, "onnx/cnn.onnx")
		clitest.CNNB(t, "b.safetensors")
		ios, stdout, _ := clitest.Streams()
		if err := convertRun(&Options{IO: ios, In: "b.safetensors", Out: "deployed.onnx", Graph: "cnn.onnx", Now: fakeClock()}); err != nil {
			t.Fatal(err)
		}
		clitest.Golden(t, "graph", stdout.Bytes())
	})

	t.Run("unreadable graph", func(t *testing.T) {
		pt := fixture(t, "pickle/zip_state_dict.pt")
		for _, g := range []string{filepath.Join(dir, "nope.onnx"), pt} {
			ios, _, _ := clitest.Streams()
			err := convertRun(&Options{IO: ios, In: src, Out: filepath.Join(dir, "x.onnx"), Graph: g})
			// The fault is the graph's: the error names it first.
			if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.HasPrefix(err.Error(), g+": ") || strings.Contains(err.Error(), "x.onnx") {
				t.Errorf("--graph %s: got %v, want exit 2 naming the graph first", g, err)
			}
		}
	})

	t.Run("mismatch", func(t *testing.T) {
		ios, _, _ := clitest.Streams()
		out := filepath.Join(dir, "bad.onnx")
		err := convertRun(&Options{IO: ios, In: fixture(t, "pickle/zip_state_dict.pt"), Out: out, Graph: graph})
		if cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
			t.Fatalf("got %v (exit %d), want exit %d", err, cmdutil.ExitCode(err), cmdutil.ExitInvalid)
		}
		msg := err.Error()
		// zip_state_dict.pt has conv1 [4,3,3,3] where the graph has
		// [8,3,3,3], and no conv2, bn2 or fc of the graph's shapes.
		for _, want := range []string{graph + ": ", `initializer "conv1.weight": shape`, "initializers missing from the checkpoint (5): conv2.weight, bn2.weight, bn2.bias, bn2.running_mean, bn2.running_var"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not contain %q", msg, want)
			}
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("error %q spans lines, want one", msg)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a refused convert (stat: %v)", out, err)
		}
		leftovers(t, dir)
	})
}

// leftovers fails if a temporary file of an interrupted write is left in dir.
func leftovers(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

// TestExisting checks that an existing output is kept unless --force, and
// that a failed conversion leaves no file behind.
func TestExisting(t *testing.T) {
	dir := inTemp(t, "pickle/zip_state_dict.pt", "pickle/checkpoint.pt")
	out := filepath.Join(dir, "out.safetensors")
	if err := os.WriteFile(out, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	ios, _, _ := clitest.Streams()
	err := convertRun(&Options{IO: ios, In: "zip_state_dict.pt", Out: out})
	if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.Contains(err.Error(), "exists (use --force") {
		t.Errorf("got %v, want an exit-2 error saying it exists", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Errorf("existing output changed to %d bytes without --force", len(b))
	}
	if err := convertRun(&Options{IO: ios, In: "zip_state_dict.pt", Out: out, Force: true}); err != nil {
		t.Fatalf("with --force: %v", err)
	}
	if got, want := hashes(t, out), hashes(t, "zip_state_dict.pt"); len(got) != len(want) || len(got) == 0 {
		t.Errorf("after --force: %d tensors, want %d", len(got), len(want))
	}
	// A failure after reading starts (a --key that matches nothing) leaves
	// no output and no temporary file.
	bad := filepath.Join(dir, "bad.pt")
	err = convertRun(&Options{IO: ios, In: "checkpoint.pt", Out: bad, Key: "nothing"})
	if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.HasPrefix(err.Error(), "checkpoint.pt: ") {
		t.Errorf("got %v, want an exit-2 error about checkpoint.pt", err)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists after a failed convert", bad)
	}
	leftovers(t, dir)
}

// TestSharded checks that a sharded output reads back, through its index,
// as the same tensors.
func TestSharded(t *testing.T) {
	dir := inTemp(t, "pickle/checkpoint.pt")
	ios, stdout, _ := clitest.Streams()
	out := filepath.Join(dir, "out", "model.safetensors")
	if err := convertRun(&Options{IO: ios, In: "checkpoint.pt", Out: out, MaxShardSize: "1kB", JSON: true}); err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "out", "model.safetensors.index.json")
	if len(s.Files) < 3 || s.Files[len(s.Files)-1] != index {
		t.Fatalf("files = %v, want several shards and %s last", s.Files, index)
	}
	got, want := hashes(t, index), hashes(t, "checkpoint.pt")
	if len(got) != len(want) {
		t.Errorf("index lists %d tensors, want %d", len(got), len(want))
	}
	for name, h := range want {
		if got[name] != h {
			t.Errorf("tensor %s: got sha256 %s, want %s", name, got[name], h)
		}
	}
}

// TestProgress checks that the bar is drawn on a terminal and never
// otherwise.
func TestProgress(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		dir := inTemp(t, "pickle/checkpoint.pt")
		ios, _, stderr := clitest.Streams()
		ios.ErrIsTerminal = terminal
		clock := time.Unix(0, 0)
		now := func() time.Time { clock = clock.Add(time.Second); return clock }
		if err := convertRun(&Options{IO: ios, In: "checkpoint.pt", Out: filepath.Join(dir, "o.pt"), Now: now}); err != nil {
			t.Fatal(err)
		}
		got := stderr.String()
		if terminal && (!strings.Contains(got, "writing "+filepath.Join(dir, "o.pt")+" [") || !strings.HasSuffix(got, "\r\x1b[K")) {
			t.Errorf("terminal: stderr = %q, want a bar, cleared at the end", got)
		}
		if !terminal && got != "" {
			t.Errorf("not a terminal: stderr = %q, want nothing", got)
		}
	}
}

// TestRemoveTemps checks the clean-up an interrupted convert runs: the
// temporary files of the output and its shards go; older files and other
// files stay.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-time.Second)
	files := map[string]bool{ // name -> removed
		".model.safetensors.tmp-123":                true,
		".model-00001-of-00002.safetensors.tmp-456": true,
		".model.safetensors.index.json.tmp-789":     true,
		".other.safetensors.tmp-1":                  false,
		"model.safetensors":                         false,
		".model.safetensors.tmp-old":                false,
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := start.Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, ".model.safetensors.tmp-old"), old, old); err != nil {
		t.Fatal(err)
	}
	removeTemps(filepath.Join(dir, "model.safetensors"), start)
	for name, removed := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if gone := errors.Is(err, os.ErrNotExist); gone != removed {
			t.Errorf("%s: removed = %v, want %v", name, gone, removed)
		}
	}
}

// TestSkipped converts dtypes.onnx (onnx_fixtures.py), whose UINT16,
// UINT32, UINT64, COMPLEX64 and STRING initializers ckpt has no dtype for:
// refused, naming each, with nothing written; accepted once --exclude
// leaves them out, which the summary counts.
func TestSkipped(t *testing.T) {
	dir := inTemp(t, "onnx/dtypes.onnx")
	ios, stdout, _ := clitest.Streams()
	err := convertRun(&Options{IO: ios, In: "dtypes.onnx", Out: "all.safetensors"})
	if cmdutil.ExitCode(err) != cmdutil.ExitInvalid {
		t.Fatalf("got %v (exit %d), want exit 2", err, cmdutil.ExitCode(err))
	}
	for _, want := range []string{"dtypes.onnx: convert: 5 tensor(s) have no ckpt dtype", `"u16_raw" (UINT16)`, `"str_typed" (STRING)`, "--exclude"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if _, err := os.Stat("all.safetensors"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("all.safetensors exists after a refused convert (stat: %v)", err)
	}
	leftovers(t, dir)
	if err := convertRun(&Options{IO: ios, In: "dtypes.onnx", Out: "some.safetensors", Excludes: []string{`^(u16_raw|u32_typed|u64_typed|c64_typed|str_typed)$`}, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Excluded != 5 || s.Tensors != 23 {
		t.Errorf("summary: %d excluded, %d tensors written; want 5, 23", s.Excluded, s.Tensors)
	}
	// Written back into the graph, the initializers no checkpoint can
	// hold keep their values, and the summary says so.
	ios, stdout, _ = clitest.Streams()
	if err := convertRun(&Options{IO: ios, In: "some.safetensors", Out: "back.onnx", Graph: "dtypes.onnx"}); err != nil {
		t.Fatal(err)
	}
	if want := "kept as they were (5): u16_raw, u32_typed, u64_typed, c64_typed, str_typed\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("summary %q does not contain %q", stdout, want)
	}
}

// TestUnaliased writes weights into a graph where one parameter is an
// Identity alias of another initializer, as torch.onnx.export leaves
// parameters that were equal at export: the summary names it.
func TestUnaliased(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	f32 := func(vals ...float32) *tensor.Tensor {
		b := make([]byte, 4*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		x, err := tensor.FromBytes(tensor.Float32, []int64{int64(len(vals))}, b)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	g, err := onnx.FromTensors([]onnx.Named{{Name: "bn1.weight", Tensor: f32(1, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	g.Graph.Node = []*onnx.Node{
		{OpType: "Identity", Input: []string{"bn1.weight"}, Output: []string{"bn2.weight"}},
		{OpType: "Mul", Input: []string{"bn1.weight", "bn2.weight"}, Output: []string{"y"}},
	}
	if err := onnx.Write("graph.onnx", g); err != nil {
		t.Fatal(err)
	}
	c := &formats.Checkpoint{Tensors: []formats.Named{{Name: "bn1.weight", Tensor: f32(1, 2)}, {Name: "bn2.weight", Tensor: f32(3, 4)}}}
	if _, err := formats.Save("ft.safetensors", c, formats.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, asJSON := range []bool{false, true} {
		ios, stdout, _ := clitest.Streams()
		out := fmt.Sprintf("out%v.onnx", asJSON)
		if err := convertRun(&Options{IO: ios, In: "ft.safetensors", Out: out, Graph: "graph.onnx", JSON: asJSON}); err != nil {
			t.Fatal(err)
		}
		if asJSON {
			var s Summary
			if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Unaliased, []string{"bn2.weight"}) {
				t.Errorf("unaliased = %v, want [bn2.weight]", s.Unaliased)
			}
		} else if want := "now initializers of their own (1): bn2.weight\n"; !strings.Contains(stdout.String(), want) {
			t.Errorf("summary %q does not contain %q", stdout, want)
		}
	}
}

// TestOutputDirectory: OUT naming a directory is a usage error that says
// to name a file, with or without --force.
func TestOutputDirectory(t *testing.T) {
	dir := inTemp(t, "pickle/zip_state_dict.pt")
	for _, force := range []bool{false, true} {
		ios, _, _ := clitest.Streams()
		err := convertRun(&Options{IO: ios, In: "zip_state_dict.pt", Out: dir, Format: "safetensors", Force: force})
		if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.Contains(err.Error(), "is a directory: name the file to write") {
			t.Errorf("force %v: got %v, want a usage error saying OUT is a directory", force, err)
		}
	}
}

// TestStripPrefixUnused: a --strip-prefix no name has is said, not silent.
func TestStripPrefixUnused(t *testing.T) {
	inTemp(t, "pickle/zip_state_dict.pt")
	ios, stdout, _ := clitest.Streams()
	if err := convertRun(&Options{IO: ios, In: "zip_state_dict.pt", Out: "o.safetensors", StripPrefix: "modle."}); err != nil {
		t.Fatal(err)
	}
	if want := `no tensor name starts with --strip-prefix "modle.": names kept`; !strings.Contains(stdout.String(), want) {
		t.Errorf("summary %q does not contain %q", stdout, want)
	}
}

// TestONNXNeedsGraph: ONNX output without --graph would be a file without
// nodes that ONNX Runtime refuses (issue 11 item 6); convert refuses it in
// one line that names --graph and writes nothing, unless --weights-only.
func TestONNXNeedsGraph(t *testing.T) {
	dir := inTemp(t, "pickle/zip_state_dict.pt")
	ios, stdout, _ := clitest.Streams()
	err := convertRun(&Options{IO: ios, In: "zip_state_dict.pt", Out: "model.onnx"})
	if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.Contains(err.Error(), "--graph") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v (exit %d), want a one-line usage error naming --graph", err, cmdutil.ExitCode(err))
	}
	if _, err := os.Stat(filepath.Join(dir, "model.onnx")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("model.onnx written by a refused convert (stat: %v)", err)
	}
	if stdout.Len() > 0 {
		t.Errorf("got output %q, want none", stdout)
	}
	if err := convertRun(&Options{IO: ios, In: "zip_state_dict.pt", Out: "weights.onnx", WeightsOnly: true}); err != nil {
		t.Fatalf("--weights-only: %v", err)
	}
	m, err := onnx.Open("weights.onnx")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if n := len(m.Graph.Node); n != 0 || len(m.Graph.Initializer) == 0 {
		t.Errorf("--weights-only: got %d nodes and %d initializers, want 0 nodes and the weights", n, len(m.Graph.Initializer))
	}
}

// TestGraphTrainingCheckpoint: --graph finds the weights inside a training
// checkpoint (issue 11 item 10), instead of reporting every initializer
// missing: under "state_dict", and under Lightning's "state_dict" with its
// "model." prefix. The checkpoints wrap the weights of CNN B
// (testdata/gen/onnx_fixtures.py) with an epoch and an optimizer.
func TestGraphTrainingCheckpoint(t *testing.T) {
	for _, tt := range []struct{ name, prefix, golden string }{
		{"state_dict", "", "graph_training_checkpoint"},
		{"lightning", "model.", "graph_lightning_checkpoint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inTemp(t, "onnx/cnn.onnx")
			entries := clitest.CNNB(t, "b.safetensors")
			b, err := formats.Open("b.safetensors")
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			sd := &pickle.Dict{Ordered: true}
			for _, nt := range b.Tensors {
				sd.Keys, sd.Values = append(sd.Keys, tt.prefix+nt.Name), append(sd.Values, nt.Tensor)
			}
			group := &pickle.Dict{Keys: []any{"lr", "params"}, Values: []any{0.1, []any{int64(0), int64(1)}}}
			ckpt := &pickle.Dict{Keys: []any{"epoch", "state_dict", "optimizer"}, Values: []any{int64(5), sd,
				&pickle.Dict{Keys: []any{"state", "param_groups"}, Values: []any{&pickle.Dict{}, []any{group}}}}}
			f, err := os.Create("train.pt")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pytorch.WriteObject(f, ckpt); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			ios, stdout, _ := clitest.Streams()
			if err := convertRun(&Options{IO: ios, In: "train.pt", Out: "deployed.onnx", Graph: "cnn.onnx", Now: fakeClock()}); err != nil {
				t.Fatal(err)
			}
			clitest.Golden(t, tt.golden, stdout.Bytes())
			got := hashes(t, "deployed.onnx")
			for _, e := range entries {
				if h, ok := got[e.Name]; ok && h != e.SHA256 {
					t.Errorf("initializer %s: got sha256 %s, want B's %s", e.Name, h, e.SHA256)
				} else if !ok && !strings.HasSuffix(e.Name, "num_batches_tracked") {
					t.Errorf("initializer %s missing from the output", e.Name)
				}
			}
		})
	}
}

// TestGraphNotONNX: a --graph file that is not ONNX is named as such in
// one line (issue 11 item 10), not with a protobuf field error.
func TestGraphNotONNX(t *testing.T) {
	dir := inTemp(t, "pickle/zip_state_dict.pt", "formats/dtypes.safetensors")
	for _, g := range []string{"zip_state_dict.pt", "dtypes.safetensors"} {
		ios, _, _ := clitest.Streams()
		err := convertRun(&Options{IO: ios, In: "zip_state_dict.pt", Out: "x.onnx", Graph: g})
		if cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.Contains(err.Error(), "not an ONNX model") ||
			strings.Contains(err.Error(), "offset") || strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), g+": ") {
			t.Errorf("--graph %s: got %v (exit %d), want one line naming it, saying not an ONNX model", g, err, cmdutil.ExitCode(err))
		}
	}
	leftovers(t, dir)
}

// TestNoTensors: a saved object of numbers only (a scheduler's state_dict,
// made by testdata/gen/pickle_counter.py) converts PyTorch to PyTorch with its
// structure, and is refused for a format that holds only tensors.
func TestNoTensors(t *testing.T) {
	inTemp(t, "pickle/multisteplr_state.pt")
	ios, _, _ := clitest.Streams()
	if err := convertRun(&Options{IO: ios, In: "multisteplr_state.pt", Out: "x.safetensors"}); cmdutil.ExitCode(err) != cmdutil.ExitInvalid || !strings.Contains(err.Error(), "no tensors") {
		t.Errorf("to safetensors: got %v, want a no-tensors error", err)
	}
	if err := convertRun(&Options{IO: ios, In: "multisteplr_state.pt", Out: "x.pt"}); err != nil {
		t.Fatalf("to PyTorch: %v", err)
	}
	a, err := formats.Open("multisteplr_state.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := formats.Open("x.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := formats.Diff(a, b, 0)
	if err != nil || !r.Equal() || len(a.Meta) == 0 {
		t.Errorf("read back: %+v (%v), want the %d values equal", r, err, len(a.Meta))
	}
}
