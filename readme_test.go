package ckpt_test

import (
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn/models"
)

// TestReadmeLibrary builds the README's "As a Go library" program as its own
// module against this checkout, so the README's code compiles as written;
// without -short it also runs it, on random resnet50 weights and a
// generated image, from a scratch directory.
func TestReadmeLibrary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := libraryProgram(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	goMod := "module readme\n\ngo 1.26\n\nrequire github.com/ckptkit/ckpt v0.0.0\n\nreplace github.com/ckptkit/ckpt => " + root + "\n"
	for name, data := range map[string][]byte{"main.go": []byte(src), "go.mod": []byte(goMod), "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "readme")
	build := exec.Command(goBin, "build", "-mod=mod", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=", "GOPROXY=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's library program does not build: %v\n%s", err, out)
	}
	if testing.Short() {
		return
	}

	m, err := models.Build("resnet50", models.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := formats.SaveStateDict(filepath.Join(dir, "resnet50.pth"), m.StateDict(), nil, formats.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	writeJPEG(t, filepath.Join(dir, "cat.jpg"))
	run := exec.Command(bin)
	run.Dir = dir
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's library program failed: %v\n%s", err, out)
	}
	for _, want := range []string{"loaded 320 tensors", "top-5 classes:", "loss "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "resnet50-5class.safetensors")); err != nil {
		t.Errorf("the program did not save its result: %v", err)
	}
}

// libraryProgram returns the first Go block of the README's library section.
func libraryProgram(readme string) (string, error) {
	_, sec, ok := strings.Cut(readme, "\n## As a Go library\n")
	if !ok {
		return "", errString("README has no \"## As a Go library\" section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	_, code, ok := strings.Cut(sec, "```go\n")
	if !ok {
		return "", errString("the library section has no ```go block")
	}
	code, _, ok = strings.Cut(code, "```")
	if !ok {
		return "", errString("the library section's ```go block is not closed")
	}
	return code, nil
}

type errString string

func (e errString) Error() string { return string(e) }

func writeJPEG(t *testing.T, path string) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(5 * y), 128, 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := jpeg.Encode(f, img, nil); err != nil {
		t.Fatal(err)
	}
}
