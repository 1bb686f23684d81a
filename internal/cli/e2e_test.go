package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/internal/cli/clitest"
)

// listing is the part of `inspect --json --hash` that a lossless
// conversion keeps.
type listing struct {
	Tensors []struct {
		Name, DType, SHA256 string
		Shape               []int64
	}
	Skipped  []struct{ Name, Type string }
	Metadata map[string]string
}

func inspectHash(t *testing.T, path string) listing {
	t.Helper()
	code, stdout, stderr := run("inspect", "--json", "--hash", path)
	if code != 0 {
		t.Fatalf("inspect %s: exit %d: %s", path, code, stderr)
	}
	var l listing
	if err := json.Unmarshal([]byte(stdout), &l); err != nil {
		t.Fatalf("inspect %s: %v", path, err)
	}
	for _, x := range l.Tensors {
		if len(x.SHA256) != 64 {
			t.Fatalf("inspect %s: tensor %q has sha256 %q", path, x.Name, x.SHA256)
		}
	}
	return l
}

// TestRoundTrip converts every kind of fixture (testdata/gen scripts made
// them with torch 1.13 and onnx) to safetensors and back to PyTorch, and
// checks with the CLI itself that nothing changed: diff says equal (exit
// 0) at each step, and inspect --hash lists the same names, dtypes, shapes
// and fingerprints for all three files.
func TestRoundTrip(t *testing.T) {
	root := clitest.Root(t)
	var inputs []string
	for _, pat := range []string{"testdata/pickle/*.pt", "testdata/onnx/*.onnx", "testdata/formats/*.pt", "testdata/formats/dtypes.safetensors"} {
		m, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, m...)
	}
	if len(inputs) < 15 {
		t.Fatalf("found %d fixtures, want every kind", len(inputs))
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			dir := t.TempDir()
			st := filepath.Join(dir, "model.safetensors")
			pt := filepath.Join(dir, "model.pt")
			// Tensors without a ckpt dtype (dtypes.onnx's UINT16 and
			// STRING initializers) make convert refuse the file, naming
			// them, until --exclude leaves them out; diff then reports
			// them only in the source.
			src := inspectHash(t, in)
			if len(src.Tensors) == 0 {
				// A scheduler's state_dict (optim_cases.py) holds numbers
				// only: there is nothing to convert.
				if code, _, stderr := run("convert", in, st); code != 2 || !strings.Contains(stderr, "no tensors") {
					t.Errorf("convert: exit %d, stderr %q; want 2, no tensors", code, stderr)
				}
				return
			}
			skipped := src.Skipped
			var exclude []string
			for _, s := range skipped {
				exclude = append(exclude, "--exclude", "^"+regexp.QuoteMeta(s.Name)+"$")
			}
			if len(skipped) > 0 {
				code, _, stderr := run("convert", in, st)
				if code != 2 || !strings.Contains(stderr, fmt.Sprintf("%q (%s)", skipped[0].Name, skipped[0].Type)) {
					t.Errorf("convert without --exclude: exit %d, stderr %q; want 2 naming %s", code, stderr, skipped[0].Name)
				}
			}
			for i, step := range [][]string{{in, st}, {st, pt}} {
				args := []string{"convert", step[0], step[1]}
				if i == 0 {
					args = append(args, exclude...)
				}
				if code, _, stderr := run(args...); code != 0 {
					t.Fatalf("convert %s %s: exit %d: %s", step[0], step[1], code, stderr)
				}
				want := 0
				if len(skipped) > 0 {
					want = 1
				}
				if code, stdout, stderr := run("diff", "--tensors-only", in, step[1]); code != want {
					t.Errorf("diff --tensors-only %s %s: exit %d, want %d: %s%s", in, step[1], code, want, stdout, stderr)
				}
				// Safetensors keeps the metadata, and so does PyTorch output
				// of a flat safetensors file, in its metadata record.
				if code, stdout, stderr := run("diff", in, step[1]); code != want {
					t.Errorf("diff %s %s: exit %d, want %d: %s%s", in, step[1], code, want, stdout, stderr)
				}
			}
			want := inspectHash(t, in)
			for _, out := range []string{st, pt} {
				got := inspectHash(t, out)
				if !slices.EqualFunc(got.Tensors, want.Tensors, func(a, b struct {
					Name, DType, SHA256 string
					Shape               []int64
				}) bool {
					return a.Name == b.Name && a.DType == b.DType && a.SHA256 == b.SHA256 && slices.Equal(a.Shape, b.Shape)
				}) {
					t.Errorf("inspect --hash %s:\ngot  %v\nwant %v", filepath.Base(out), got.Tensors, want.Tensors)
				}
			}
		})
	}
}

// TestShardedRoundTrip writes a sharded safetensors checkpoint and checks
// that inspect and diff read it whole through its index: the same
// fingerprints as the source, and equal; then back to one PyTorch file.
func TestShardedRoundTrip(t *testing.T) {
	in := filepath.Join(clitest.Root(t), "testdata", "pickle", "checkpoint.pt")
	dir := t.TempDir()
	out := filepath.Join(dir, "model.safetensors")
	if code, _, stderr := run("convert", "--max-shard-size", "1kB", in, out); code != 0 {
		t.Fatalf("convert: exit %d: %s", code, stderr)
	}
	index := out + ".index.json"
	shards, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if len(shards) < 2 {
		t.Fatalf("got shards %v, want several", shards)
	}
	want, got := inspectHash(t, in), inspectHash(t, index)
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("index lists %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for i := range want.Tensors {
		g, w := got.Tensors[i], want.Tensors[i]
		if g.Name != w.Name || g.SHA256 != w.SHA256 {
			t.Errorf("tensor %d: got %s %s, want %s %s", i, g.Name, g.SHA256, w.Name, w.SHA256)
		}
	}
	back := filepath.Join(dir, "whole.pt")
	if code, _, stderr := run("convert", index, back); code != 0 {
		t.Fatalf("convert back: exit %d: %s", code, stderr)
	}
	for _, f := range []string{index, back} {
		if code, stdout, _ := run("diff", "--tensors-only", in, f); code != 0 {
			t.Errorf("diff --tensors-only %s: exit %d:\n%s", f, code, stdout)
		}
	}
	// The index keeps checkpoint.pt's metadata, and so does the flat
	// PyTorch file made from it, in its metadata record.
	for _, f := range []string{index, back} {
		if code, stdout, _ := run("diff", in, f); code != 0 {
			t.Errorf("diff %s: exit %d:\n%s", f, code, stdout)
		}
	}
}
