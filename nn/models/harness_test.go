package models

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ckptkit/ckpt/data/transforms"
	"github.com/ckptkit/ckpt/internal/testenv"
	"github.com/ckptkit/ckpt/nn"
)

// Two torch scripts make the references, one per group of families:
// testdata/gen/models_parity.py (resnet, resnext, wide_resnet, vgg, alexnet,
// squeezenet, densenet, googlenet, inception_v3) and
// testdata/gen/models_fixtures_mobile.py (mobilenet_v2/v3, mnasnet,
// shufflenet_v2, efficientnet v1/v2, regnet, convnext), which randomizes
// BatchNorm statistics differently and keeps each BatchNorm's momentum. Each
// wrote a set of small committed fixtures (--fixtures) and answers requests
// for full-size architectures (--serve). The tests below run both through
// one loop: TestFixtures and TestRecordedPath on the committed sets,
// TestTorchvisionInterop on the full-size architectures.

var genDir = filepath.Join("..", "..", "testdata", "gen")

// fixtureSets are the committed fixtures in testdata/models, per generator:
// manifest is the file the generator's --fixtures run wrote beside them.
var fixtureSets = []struct {
	script, manifest string
	specs            map[string]Spec
}{
	{"models_parity.py", "manifest.json", fixtureSpecs},
	{"models_fixtures_mobile.py", "manifest_mobile.json", mobileFixtureSpecs},
	{"models_transformers.py", "manifest_transformers.json", transformerFixtureSpecs},
}

// allFixtures returns every committed fixture's spec by name.
func allFixtures() map[string]Spec {
	out := map[string]Spec{}
	for _, set := range fixtureSets {
		maps.Copy(out, set.specs)
	}
	return out
}

// TestFixtures checks the committed fixtures of every family (torch 1.13,
// torchvision 0.14, seed 0): output, printed module tree and state_dict
// keys.
func TestFixtures(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "models")
	specs := allFixtures()
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		t.Run(name, func(t *testing.T) {
			spec := specs[name]
			spec.Name = name
			r, _ := runParity(t, spec, dir, name, Config{})
			t.Logf("max|err| %.3g, max|y| %.3g", r.maxErr, r.maxY)
		})
	}
}

// TestRecordedPath runs the fixtures with gradients recorded (the layer-by-
// layer path, not the fused in-place inference one), checks the output
// against torch's, and checks that a backward pass reaches the first
// parameter.
func TestRecordedPath(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "models")
	specs := allFixtures()
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		t.Run(name, func(t *testing.T) {
			spec := specs[name]
			spec.Name = name
			m, rep, err := load(spec, openSource(t, filepath.Join(dir, name+".pt")), Config{})
			if err != nil {
				t.Fatalf("load: %v\n%v", err, rep)
			}
			x, want := readIO(t, filepath.Join(dir, name+".io.pt"))
			y := m.Forward(x) // grad mode: parameters require grad
			if !y.RequiresGrad() {
				t.Fatal("output does not require grad")
			}
			checkOutput(t, y, want)
			y.Sum(false).Backward()
			first := m.(interface{ NamedParameters() []nn.NamedTensor }).NamedParameters()[0]
			if g := first.Tensor.Grad(); g == nil {
				t.Errorf("%s: no gradient after Backward", first.Name)
			}
		})
	}
}

type interopFamily struct{ prefix, script string }

// interopFamilies maps each family, by the prefix of its registry names, to
// the script in testdata/gen that builds its full-size references.
var interopFamilies = []interopFamily{
	{"resnet", "models_parity.py"},
	{"resnext", "models_parity.py"},
	{"wide_resnet", "models_parity.py"},
	{"vgg", "models_parity.py"},
	{"alexnet", "models_parity.py"},
	{"squeezenet", "models_parity.py"},
	{"densenet", "models_parity.py"},
	{"googlenet", "models_parity.py"},
	{"inception_v3", "models_parity.py"},
	{"mobilenet_v", "models_fixtures_mobile.py"},
	{"mnasnet", "models_fixtures_mobile.py"},
	{"shufflenet_v2", "models_fixtures_mobile.py"},
	{"efficientnet_", "models_fixtures_mobile.py"},
	{"regnet_", "models_fixtures_mobile.py"},
	{"convnext_", "models_fixtures_mobile.py"},
	{"vit_", "models_transformers.py"},
	{"swin_", "models_transformers.py"},
	{"maxvit_", "models_transformers.py"},
}

// interopScript returns the generator of a registered architecture, and
// false for one in no family.
func interopScript(name string) (string, bool) {
	for _, f := range interopFamilies {
		if strings.HasPrefix(name, f.prefix) {
			return f.script, true
		}
	}
	return "", false
}

// interopNames are the registered architectures of every family in
// interopFamilies (TestInteropTables checks that this is all of them).
func interopNames() []string {
	var out []string
	for _, n := range Names() {
		if _, ok := interopScript(n); ok {
			out = append(out, n)
		}
	}
	return out
}

// interopSize is the input size and batch of the full-size check per
// architecture: 224 and a batch of two where a forward pass is cheap, one
// image for the VGGs and the largest ResNeXt/wide ResNet, smaller inputs for
// the largest regnets and convnexts (regnet_y_128gf has 644M parameters, 128
// GFLOPs per 224 px image). inception_v3 needs >= 75 and runs at 299 in
// torchvision; 160 keeps CI time down. The deep EfficientNets stay at 128 px
// and two images: with fewer than about 32 values per channel in their last
// stages, torch's own float32 output is already more than 1e-4 from float64.
func interopSize(name string) (size, batch int) {
	switch name {
	case "inception_v3":
		return 160, 2
	case "wide_resnet101_2":
		return 224, 1
	case "regnet_y_128gf", "regnet_y_32gf", "regnet_x_32gf", "regnet_y_16gf", "regnet_x_16gf",
		"convnext_large", "convnext_base":
		return 128, 1
	case "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
		"efficientnet_v2_m", "efficientnet_v2_l", "convnext_small", "regnet_y_8gf", "regnet_x_8gf":
		return 128, 2
	}
	if strings.HasPrefix(name, "vgg") || strings.HasPrefix(name, "resnext101") {
		return 224, 1
	}
	return 224, 2
}

// torchServer is a generator script run with --serve: one JSON request per
// line on stdin ({"arch", "seed", "out", "batch", "size", "kwargs"}), one
// JSON answer per line on stdout, in order.
type torchServer struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner

	closed bool
}

// startTorch runs testdata/gen/script --serve with py until t ends.
func startTorch(t *testing.T, py, script string) *torchServer {
	t.Helper()
	cmd := exec.Command(py, filepath.Join(genDir, script), "--serve")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &torchServer{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(s.close)
	return s
}

// close ends the generator (end of input) and waits for it to exit.
func (s *torchServer) close() {
	if s.closed {
		return
	}
	s.closed = true
	s.in.Close()
	s.cmd.Wait()
}

type torchPreprocess struct {
	ResizeSize    int        `json:"resize_size"`
	CropSize      int        `json:"crop_size"`
	Interpolation string     `json:"interpolation"`
	Mean          [3]float64 `json:"mean"`
	Std           [3]float64 `json:"std"`
}

func (p torchPreprocess) preprocess() Preprocess {
	q := Preprocess{ResizeSize: p.ResizeSize, CropSize: p.CropSize, Interpolation: transforms.Interpolation(p.Interpolation)}
	for i := range 3 {
		q.Mean[i], q.Std[i] = float32(p.Mean[i]), float32(p.Std[i])
	}
	return q
}

// send asks the generator for one architecture; requests queue in the pipe
// and are answered in order by recv.
func (s *torchServer) send(req map[string]any) error {
	b, _ := json.Marshal(req)
	_, err := s.in.Write(append(b, '\n'))
	return err
}

// recv waits for the answer to the oldest request: the preprocessing of the
// architecture's IMAGENET1K_V1 weights, as torchvision builds it.
func (s *torchServer) recv() (Preprocess, error) {
	if !s.out.Scan() {
		return Preprocess{}, fmt.Errorf("generator exited: %v", s.out.Err())
	}
	var resp struct {
		OK         bool            `json:"ok"`
		Error      string          `json:"error"`
		Preprocess torchPreprocess `json:"preprocess"`
	}
	if err := json.Unmarshal(s.out.Bytes(), &resp); err != nil {
		return Preprocess{}, fmt.Errorf("generator said %q: %v", s.out.Text(), err)
	}
	if !resp.OK {
		return Preprocess{}, fmt.Errorf("generator: %s", resp.Error)
	}
	return resp.Preprocess.preprocess(), nil
}

// TestTorchvisionInterop builds registered architectures at full size in
// torchvision with a random seed, each through its family's generator
// (interopFamilies), loads torch's state_dict through Load and compares the
// eval-mode output, the module tree, the state_dict keys and the
// preprocessing of the architecture's IMAGENET1K_V1 weights.
// It checks a representative set unless CKPT_MODELS=all (every architecture)
// or CKPT_MODELS=resnet18,vgg16 (those named) says otherwise.
func TestTorchvisionInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("full-size architectures take minutes")
	}
	py := testenv.Python(t)
	names := selectArchs(interopNames())
	if len(names) == 0 {
		t.Logf("CKPT_MODELS=%q selects no architecture", os.Getenv("CKPT_MODELS"))
		return
	}
	// One generator's architectures after the other's, in interopFamilies'
	// order, so that each generator ends (and frees its memory) once its
	// last architecture is answered.
	group := func(name string) int {
		script, _ := interopScript(name)
		return slices.IndexFunc(interopFamilies, func(f interopFamily) bool { return f.script == script })
	}
	slices.SortStableFunc(names, func(a, b string) int { return group(a) - group(b) })
	servers := map[string]*torchServer{}
	for _, name := range names {
		script, _ := interopScript(name)
		if servers[script] == nil {
			servers[script] = startTorch(t, py, script)
		}
	}
	server := func(name string) *torchServer {
		script, _ := interopScript(name)
		return servers[script]
	}
	seed := time.Now().UnixNano() % 100000
	t.Logf("seed %d", seed)
	base := t.TempDir()
	// sent[i] is the error of sending names[i]'s request; only a request
	// that went out is waited for.
	sent := make([]error, len(names))
	request := func(i int) {
		name := names[i]
		size, batch := interopSize(name)
		req := map[string]any{"arch": name, "seed": seed, "out": filepath.Join(base, name), "batch": batch, "size": size}
		if spec, err := Lookup(name); err == nil && spec.Aux != nil {
			req["kwargs"] = map[string]any{"aux_logits": true, "transform_input": true}
		}
		sent[i] = server(name).send(req)
	}
	// torch generates the next architecture while Go checks this one.
	total := time.Now()
	request(0)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			var pre Preprocess
			genErr := sent[i]
			if genErr == nil {
				pre, genErr = server(name).recv()
			}
			wait := time.Since(start)
			if i+1 < len(names) {
				request(i + 1)
			}
			if i+1 == len(names) || group(names[i+1]) != group(name) {
				server(name).close()
			}
			dir := filepath.Join(base, name)
			defer os.RemoveAll(dir)
			if genErr != nil {
				t.Fatal(genErr)
			}
			spec, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			if spec.Preprocess != pre {
				t.Errorf("preprocess got %+v, torchvision's %+v", spec.Preprocess, pre)
			}
			size, batch := interopSize(name)
			start = time.Now()
			r, fwd := runParity(t, spec, dir, name, Config{})
			if r.maxY > 1e3 {
				// A relative bound says little about a random model whose
				// activations blew up (degenerate BatchNorm statistics).
				t.Errorf("torch's output reaches %.3g: the reference model is ill-conditioned", r.maxY)
			}
			script, _ := interopScript(name)
			t.Logf("%s (%s): max|err| %.3g, max|y| %.3g, batch %d at %d; waited %v for torch, Go load+check %v (forward %v)",
				name, script, r.maxErr, r.maxY, batch, size, wait.Round(time.Millisecond),
				time.Since(start).Round(time.Millisecond), fwd.Round(time.Millisecond))
		})
	}
	t.Logf("total %v", time.Since(total).Round(time.Second))
}

// TestInteropTables checks, without torch, that the tables above cover
// everything: every registered architecture belongs to exactly one family
// (so CKPT_MODELS=all checks each of them once), every family and default
// selection names registered architectures, every generator exists, and each
// set of committed fixtures is exactly the one its generator's manifest lists.
func TestInteropTables(t *testing.T) {
	names := Names()
	for _, n := range names {
		var in []string
		for _, f := range interopFamilies {
			if strings.HasPrefix(n, f.prefix) {
				in = append(in, f.prefix)
			}
		}
		if len(in) != 1 {
			t.Errorf("%s: in interop families %q, want exactly one", n, in)
		}
	}
	if got, want := len(interopNames()), len(names); got != want {
		t.Errorf("interopNames: got %d architectures, want %d (every registered one)", got, want)
	}
	for _, f := range interopFamilies {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, f.prefix) }) {
			t.Errorf("family %q: no registered architecture", f.prefix)
		}
		if _, err := os.Stat(filepath.Join(genDir, f.script)); err != nil {
			t.Errorf("family %q: generator: %v", f.prefix, err)
		}
	}
	for _, n := range defaultInterop {
		if !slices.Contains(names, n) {
			t.Errorf("defaultInterop: %s is not registered", n)
		}
	}

	total := 0
	for _, set := range fixtureSets {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "models", set.manifest))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Generator string
			Fixtures  map[string]json.RawMessage
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", set.manifest, err)
		}
		if want := "testdata/gen/" + set.script + " --fixtures"; m.Generator != want {
			t.Errorf("%s: generator got %q, want %q", set.manifest, m.Generator, want)
		}
		got, want := slices.Sorted(maps.Keys(set.specs)), slices.Sorted(maps.Keys(m.Fixtures))
		if !slices.Equal(got, want) {
			t.Errorf("%s fixtures: Go specs %v, manifest %v", set.script, got, want)
		}
		total += len(set.specs)
	}
	if got := len(allFixtures()); got != total {
		t.Errorf("fixture names: %d distinct of %d, want no name in two sets", got, total)
	}
}
