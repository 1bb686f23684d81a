package formats

import (
	"archive/zip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/formats/pytorch"
	"github.com/ckptkit/ckpt/formats/safetensors"
	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/tensor"
)

// benchDir holds generated benchmark inputs across runs.
func benchDir(b *testing.B) string {
	d := filepath.Join(os.TempDir(), "ckpt-bench")
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.Fatal(err)
	}
	return d
}

// resnet50 returns a torchvision ResNet-50 state_dict saved by torch
// (testdata/gen/formats_fixtures.py state-dict), generating it once.
func resnet50(b *testing.B) string {
	p := filepath.Join(benchDir(b), "resnet50.pt")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	py := testenv.Python(b)
	out, err := exec.Command(py, script, "state-dict", "resnet50", p, "0").CombinedOutput()
	if err != nil {
		b.Fatalf("generating %s: %v\n%s", p, err, out)
	}
	return p
}

// copyFile is the "cp" reference: the same bytes read and written with
// io.Copy (copy_file_range, as GNU cp does), then synced unless sync is
// false, as Save syncs.
func copyFile(src, dst string, sync bool) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if sync {
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

// BenchmarkConvertResNet50 converts ResNet-50 .pt -> .safetensors (and,
// for comparison, .pt -> .pt, which must CRC every byte and so cannot use
// copy_file_range) from the page cache (Open, then Save to a new file) and
// reports, beside MB/s, the
// ratio of its time to a plain io.Copy of the same file ("x-cp"). In
// "fsync" both sync the output (Save always does); in "page-cache" neither
// does, which isolates the CPU cost of converting from the disk's.
func BenchmarkConvertResNet50(b *testing.B) {
	src := resnet50(b)
	for _, ext := range []string{".safetensors", ".pt"} {
		for _, sync := range []bool{true, false} {
			name := "to" + ext + "/fsync"
			if !sync {
				name = "to" + ext + "/page-cache"
			}
			b.Run(name, func(b *testing.B) {
				noSync = !sync
				defer func() { noSync = false }()
				benchConvert(b, src, ext, sync)
			})
		}
	}
}

func benchConvert(b *testing.B, src, ext string, sync bool) {
	st, _ := os.Stat(src)
	dir := b.TempDir()
	dst := filepath.Join(dir, "out"+ext)
	cp := filepath.Join(dir, "cp.pt")
	// Both write a new file each time: replacing an existing one adds the
	// cost of freeing its blocks, which is not what is measured here.
	// Warm the page cache, then time the reference (best of 5).
	if err := copyFile(src, cp, sync); err != nil {
		b.Fatal(err)
	}
	cpTime := time.Duration(1 << 62)
	for range 5 {
		os.Remove(cp)
		t0 := time.Now()
		if err := copyFile(src, cp, sync); err != nil {
			b.Fatal(err)
		}
		cpTime = min(cpTime, time.Since(t0))
	}
	os.Remove(cp)
	b.SetBytes(st.Size())
	var best time.Duration = 1 << 62
	for b.Loop() {
		t0 := time.Now()
		c, err := Open(src)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Save(dst, c, SaveOptions{}); err != nil {
			b.Fatal(err)
		}
		c.Close()
		best = min(best, time.Since(t0))
		os.Remove(dst)
	}
	b.ReportMetric(float64(best)/float64(cpTime), "x-cp(best-of-both)")
	b.ReportMetric(float64(st.Size())/cpTime.Seconds()/1e6, "cp-MB/s")
}

// peakRSS returns VmHWM from /proc/self/status in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return -1
}

// resetPeakRSS resets VmHWM (Linux >= 4.0).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// patternReader yields deterministic non-zero bytes without storing them.
type patternReader struct{}

func (patternReader) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		x := uint64(off + int64(i))
		p[i] = byte(x*0x9e3779b97f4a7c15>>56) | 1
	}
	return len(p), nil
}

// bigCheckpoint writes (once) a 4 GB safetensors file of eight 500 MB
// float32 tensors, streaming from patternReader.
func bigCheckpoint(b *testing.B) (string, int64) {
	const n, each = 8, 500_000_000
	p := filepath.Join(benchDir(b), "big-4GB.safetensors")
	if st, err := os.Stat(p); err == nil && st.Size() > n*each {
		return p, each
	}
	var ts []Named
	for i := range n {
		t := tensor.New(tensor.Float32, []int64{each / 4 / 1000, 1000}, tensor.NewStorage(patternReader{}, int64(i)*each, each))
		ts = append(ts, Named{Name: fmt.Sprintf("layer%d.weight", i), Tensor: t})
	}
	if _, err := Save(p, &Checkpoint{Tensors: ts}, SaveOptions{Force: true}); err != nil {
		b.Fatal(err)
	}
	return p, each
}

// BenchmarkBigConvertMemory converts a generated 4 GB checkpoint
// (safetensors -> pt -> safetensors, and a float16 cast) and reports the
// peak RSS of each step next to the largest tensor. Set CKPT_BIG=1 to run
// it; it needs about 12 GB in os.TempDir().
func BenchmarkBigConvertMemory(b *testing.B) {
	if os.Getenv("CKPT_BIG") != "1" {
		b.Skip("set CKPT_BIG=1 to generate and convert a 4 GB checkpoint")
	}
	src, largest := bigCheckpoint(b)
	dir := benchDir(b)
	pt := filepath.Join(dir, "big-4GB.pt")
	back := filepath.Join(dir, "big-4GB-back.safetensors")
	half := filepath.Join(dir, "big-4GB-half.safetensors")
	step := func(name, in, out string, opts Options) {
		runtime.GC()
		resetPeakRSS()
		t0 := time.Now()
		c, err := Open(in)
		if err != nil {
			b.Fatal(err)
		}
		tc, _, err := Transform(c, opts)
		if err != nil {
			b.Fatal(err)
		}
		res, err := Save(out, tc, SaveOptions{Force: true})
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
		el := time.Since(t0)
		peak := peakRSS()
		b.ReportMetric(float64(peak)/(1<<20), name+"-peakRSS-MiB")
		b.ReportMetric(float64(peak)/float64(largest), name+"-peak/largest")
		b.Logf("%s: %d bytes in %v (%.0f MB/s), peak RSS %.1f MiB, largest tensor %.1f MiB",
			name, res.Bytes, el, float64(res.Bytes)/el.Seconds()/1e6, float64(peak)/(1<<20), float64(largest)/(1<<20))
	}
	for b.Loop() {
		step("st-to-pt", src, pt, Options{})
		step("pt-to-st", pt, back, Options{})
		step("cast-f16", src, half, Options{DType: tensor.Float16})
	}
	// Entries past 4 GiB are still 64-byte aligned.
	zr, err := zip.OpenReader(pt)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range zr.File {
		if off, err := f.DataOffset(); err != nil || off%pytorch.Alignment != 0 {
			b.Fatalf("%s: data at %d (%v), not %d-aligned", f.Name, off, err, pytorch.Alignment)
		}
	}
	zr.Close()
	// The round trip is exact.
	a, err := safetensors.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	c, err := safetensors.Open(back)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for i := range a.Tensors {
		ha, _ := a.Tensors[i].Tensor.SHA256()
		hc, _ := c.Tensors[i].Tensor.SHA256()
		if ha != hc || a.Tensors[i].Name != c.Tensors[i].Name {
			b.Fatalf("tensor %d differs after st -> pt -> st", i)
		}
	}
}

// BenchmarkCast casts 64 MiB of float32 from memory to float16 and
// bfloat16, streaming through io.Discard.
func BenchmarkCast(b *testing.B) {
	const n = 16 << 20
	buf := make([]byte, 4*n)
	patternReader{}.ReadAt(buf, 0)
	src := tensor.New(tensor.Float32, []int64{n}, tensor.NewStorageBytes(buf))
	for _, to := range []tensor.DType{tensor.Float16, tensor.BFloat16} {
		b.Run(to.String(), func(b *testing.B) {
			b.SetBytes(4 * n)
			for b.Loop() {
				t, err := Cast(src, to, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := t.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
