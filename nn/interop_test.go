package nn

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/internal/testenv"
)

// torchPython is the interpreter that has PyTorch (the first
// python3 on PATH may not).
const torchPython = "/usr/bin/python3"

func haveTorch(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping torch interop in -short mode")
	}
	testenv.Python(t) // skips without torch; fails under CKPT_REQUIRE_INTEROP=1
}

// TestTorchInterop asks torch for fresh reference values with a random seed
// and randomly perturbed shapes (testdata/gen/nn_layers.py --random-shapes),
// and runs the same comparisons as TestTorchParity.
func TestTorchInterop(t *testing.T) {
	haveTorch(t)
	seed := time.Now().UnixNano() % 1000000
	out := filepath.Join(t.TempDir(), "layers.json")
	cmd := exec.Command(torchPython, "../testdata/gen/nn_layers.py", "--seed", fmt.Sprint(seed), "--out", out, "--random-shapes")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generator failed: %v\n%s", err, b)
	}
	t.Logf("seed %d", seed)
	d := loadFixture(t, out)
	for i := range d.Cases {
		c := &d.Cases[i]
		t.Run(c.Name, func(t *testing.T) { runCase(t, c) })
	}
}
