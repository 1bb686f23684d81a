package models

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/formats"
	"github.com/ckptkit/ckpt/nn"
)

func TestLookupUnknown(t *testing.T) {
	for _, tc := range []struct {
		name      string
		wantClose string
	}{
		{"resnet5", "resnet50"},
		{"resnet181", "resnet18"},
		{"vgg16bn", "vgg16_bn"},
		{"densenet12", "densenet121"},
		{"inception_v4", "inception_v3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Lookup(tc.name)
			var ue *UnknownError
			if !errors.As(err, &ue) {
				t.Fatalf("got error %v, want *UnknownError", err)
			}
			if !slices.Contains(ue.Close, tc.wantClose) {
				t.Errorf("close names got %v, want them to include %q", ue.Close, tc.wantClose)
			}
			if !strings.HasPrefix(err.Error(), "models: unknown architecture") {
				t.Errorf("message got %q", err)
			}
		})
	}
}

func TestNames(t *testing.T) {
	names := Names()
	if !slices.IsSorted(names) {
		t.Errorf("Names not sorted: %v", names)
	}
	for _, n := range []string{"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
		"resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2", "vgg11", "vgg11_bn", "vgg13",
		"vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "alexnet", "squeezenet1_0", "squeezenet1_1",
		"densenet121", "densenet161", "densenet169", "densenet201", "googlenet", "inception_v3"} {
		if !slices.Contains(names, n) {
			t.Errorf("%s not registered", n)
		}
	}
}

func TestRegisterPanics(t *testing.T) {
	build := func(Config) (nn.Module, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"duplicate", Spec{Name: "resnet18", Build: build, Classifier: "fc.weight"}},
		{"no build", Spec{Name: "x_test_model", Classifier: "fc.weight"}},
		{"no classifier", Spec{Name: "x_test_model", Build: build}},
		{"no preprocessing", Spec{Name: "x_test_model", Build: build, Classifier: "fc.weight"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", tc.spec.Name)
				}
			}()
			Register(tc.spec)
		})
	}
}

// TestPreprocessTable checks that every registered architecture carries the
// transform of its IMAGENET1K_V1 weights from the generated table (decoded
// here independently of meta.go's types).
func TestPreprocessTable(t *testing.T) {
	var raw struct {
		Models map[string]struct {
			Default string
			Weights map[string]map[string]any
		}
		Categories []string
	}
	if err := json.Unmarshal(metaJSON, &raw); err != nil {
		t.Fatal(err)
	}
	for _, name := range Names() {
		s, _ := Lookup(name)
		m, ok := raw.Models[name]
		if !ok {
			t.Errorf("%s: not in torchvision_meta.json", name)
			continue
		}
		if _, ok := m.Weights["IMAGENET1K_V1"]; ok && m.Default != "IMAGENET1K_V1" {
			t.Errorf("%s: default weights got %s, want IMAGENET1K_V1", name, m.Default)
		}
		w := m.Weights[m.Default]
		p := s.Preprocess
		if float64(p.ResizeSize) != w["resize_size"] || float64(p.CropSize) != w["crop_size"] || string(p.Interpolation) != w["interpolation"] {
			t.Errorf("%s: preprocess got %+v, want %v", name, p, w)
		}
		for i := range 3 {
			if float64(p.Mean[i]) != float64(float32(w["mean"].([]any)[i].(float64))) ||
				float64(p.Std[i]) != float64(float32(w["std"].([]any)[i].(float64))) {
				t.Errorf("%s: mean/std got %v %v, want %v %v", name, p.Mean, p.Std, w["mean"], w["std"])
			}
		}
		infos, err := Weights(name)
		if err != nil || len(infos) != len(m.Weights) || infos[0].Name != m.Default {
			t.Errorf("%s: Weights got %v, %v", name, infos, err)
		}
	}
	c := ImageNetClasses()
	if len(c) != 1000 || !slices.Equal(c, raw.Categories) {
		t.Errorf("ImageNetClasses: got %d names, want torchvision's 1000", len(c))
	}
	c[0] = "changed"
	if ImageNetClasses()[0] == "changed" {
		t.Error("ImageNetClasses returned the package's own slice")
	}
}

// fixtureModel loads a committed fixture's state_dict into memory.
func fixtureState(t *testing.T, name string) nn.StateDict {
	t.Helper()
	src := openSource(t, filepath.Join("..", "..", "testdata", "models", name+".pt"))
	var sd nn.StateDict
	for _, n := range src.Names() {
		sd = append(sd, nn.Named{Name: n, Tensor: src.Tensor(n)})
	}
	return sd
}

func fixtureIO(t *testing.T, name string) (x, y *nn.Tensor) {
	return readIO(t, filepath.Join("..", "..", "testdata", "models", name+".io.pt"))
}

func renamed(sd nn.StateDict, f func(string) string) nn.StateDict {
	out := make(nn.StateDict, 0, len(sd))
	for _, n := range sd {
		if k := f(n.Name); k != "" {
			out = append(out, nn.Named{Name: k, Tensor: n.Tensor})
		}
	}
	return out
}

// TestLoadLayouts loads one state_dict saved in the layouts training scripts
// produce and checks that each computes torch's output.
func TestLoadLayouts(t *testing.T) {
	const name = "resnet_basic"
	spec := fixtureSpecs[name]
	spec.Name = name
	sd := fixtureState(t, name)
	x, want := fixtureIO(t, name)
	extra := nn.StateDict{{Name: "optimizer.state.0.momentum_buffer", Tensor: sd[0].Tensor}}
	for _, tc := range []struct {
		name string
		src  nn.StateDict
	}{
		{"plain", sd},
		{"module.", renamed(sd, func(k string) string { return "module." + k })},
		{"state_dict.", append(renamed(sd, func(k string) string { return "state_dict." + k }), extra...)},
		{"model.module.", append(renamed(sd, func(k string) string { return "model.module." + k }), extra...)},
		{"model_state_dict.", append(extra, renamed(sd, func(k string) string { return "model_state_dict." + k })...)},
		// Lightning's checkpoints, and modules wrapping the model.
		{"state_dict.model.", append(renamed(sd, func(k string) string { return "state_dict.model." + k }), extra...)},
		{"backbone.", renamed(sd, func(k string) string { return "backbone." + k })},
		{"encoder.module.", append(extra, renamed(sd, func(k string) string { return "encoder.module." + k })...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, rep, err := load(spec, tc.src, Config{})
			if err != nil {
				t.Fatalf("load: %v\n%v", err, rep)
			}
			if rep.Loaded != len(sd) {
				t.Errorf("loaded %d tensors, want %d", rep.Loaded, len(sd))
			}
			if m.(*ResNet).Training() {
				t.Error("Load returned a model in training mode")
			}
			if nc := m.(*ResNet).FC.OutFeatures; nc != 10 {
				t.Errorf("num_classes got %d, want 10 (from fc.weight)", nc)
			}
			plain, prepared := forward(t, m, x)
			checkBoth(t, plain, prepared, want)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	const name = "resnet_basic"
	spec := fixtureSpecs[name]
	spec.Name = name
	sd := fixtureState(t, name)
	for _, tc := range []struct {
		name           string
		src            nn.StateDict
		cfg            Config
		wantMissing    []string
		wantUnexpected []string
		wantMismatched []string
	}{
		{"missing", renamed(sd, func(k string) string {
			if k == "layer2.0.bn1.running_var" {
				return ""
			}
			return k
		}), Config{}, []string{"layer2.0.bn1.running_var"}, nil, nil},
		{"unexpected", append(slices.Clone(sd), nn.Named{Name: "head.weight", Tensor: sd[0].Tensor}), Config{}, nil, []string{"head.weight"}, nil},
		{"num_classes", sd, Config{NumClasses: 5}, nil, nil, []string{"fc.weight", "fc.bias"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, rep, err := load(spec, tc.src, tc.cfg)
			var le *nn.LoadError
			if !errors.As(err, &le) || m != nil {
				t.Fatalf("got %v, %v; want a *nn.LoadError and no model", m, err)
			}
			if rep == nil || le.Report == nil {
				t.Fatal("no report")
			}
			var mis []string
			for _, x := range rep.Mismatched {
				mis = append(mis, x.Key)
			}
			if !slices.Equal(rep.Missing, tc.wantMissing) || !slices.Equal(rep.Unexpected, tc.wantUnexpected) || !slices.Equal(mis, tc.wantMismatched) {
				t.Errorf("report got missing %v unexpected %v mismatched %v, want %v %v %v",
					rep.Missing, rep.Unexpected, mis, tc.wantMissing, tc.wantUnexpected, tc.wantMismatched)
			}
		})
	}
	if _, _, err := Load("no_such_model", sd, Config{}); err == nil {
		t.Error("Load of an unknown architecture succeeded")
	}
}

// TestDenseNetLegacyKeys loads densenet weights with the key names of the
// files torchvision publishes ("denselayer1.norm.1.weight").
func TestDenseNetLegacyKeys(t *testing.T) {
	const name = "densenet_small"
	spec := fixtureSpecs[name]
	spec.Name = name
	sd := fixtureState(t, name)
	n := 0
	legacy := renamed(sd, func(k string) string {
		for _, p := range []string{"norm1", "norm2", "conv1", "conv2", "relu1", "relu2"} {
			if i := strings.Index(k, "."+p+"."); i >= 0 && strings.Contains(k, "denselayer") {
				n++
				return k[:i] + "." + p[:len(p)-1] + "." + p[len(p)-1:] + k[i+len(p)+1:]
			}
		}
		return k
	})
	if n == 0 {
		t.Fatal("no key renamed")
	}
	x, want := fixtureIO(t, name)
	m, rep, err := load(spec, legacy, Config{})
	if err != nil {
		t.Fatalf("load: %v\n%v", err, rep)
	}
	plain, prepared := forward(t, m, x)
	checkBoth(t, plain, prepared, want)
}

func TestLoadFile(t *testing.T) {
	const name = "resnet_basic"
	spec := fixtureSpecs[name]
	spec.Name = name
	path := filepath.Join("..", "..", "testdata", "models", name+".pt")
	if _, _, err := LoadFile("resnet18", path, Config{}); err == nil {
		t.Error("LoadFile of a small ResNet as resnet18 succeeded")
	} else if !strings.Contains(err.Error(), "models: loading resnet18") {
		t.Errorf("error got %q", err)
	}
	if _, _, err := LoadFile("resnet18", filepath.Join(t.TempDir(), "absent.pt"), Config{}); err == nil {
		t.Error("LoadFile of an absent file succeeded")
	}
}

// TestAuxHeads loads googlenet and inception_v3 weights with and without
// their auxiliary classifiers.
func TestAuxHeads(t *testing.T) {
	for _, tc := range []struct {
		arch   string
		prefix string
		aux    func(nn.Module) bool
	}{
		{"googlenet", "aux1.", func(m nn.Module) bool { return m.(*GoogLeNet).Aux1 != nil && m.(*GoogLeNet).Aux2 != nil }},
		{"inception_v3", "AuxLogits.", func(m nn.Module) bool { return m.(*Inception3).AuxLogits != nil }},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			if testing.Short() && tc.arch == "inception_v3" {
				t.Skip("building inception_v3 with fresh weights takes seconds")
			}
			full, err := Build(tc.arch, Config{NumClasses: 7, AuxLogits: Yes})
			if err != nil {
				t.Fatal(err)
			}
			withAux := full.(stateDicter).StateDict()
			noAux := renamed(withAux, func(k string) string {
				if strings.HasPrefix(k, "aux") || strings.HasPrefix(k, "AuxLogits.") {
					return ""
				}
				return k
			})
			for _, c := range []struct {
				name    string
				src     nn.StateDict
				choice  Choice
				wantAux bool
				wantErr bool
			}{
				{"auto with aux", withAux, Auto, true, false},
				{"auto without aux", noAux, Auto, false, false},
				{"no with aux", withAux, No, false, false},
				{"yes without aux", noAux, Yes, false, true},
			} {
				m, rep, err := Load(tc.arch, c.src, Config{AuxLogits: c.choice})
				if c.wantErr {
					if err == nil || !slices.ContainsFunc(rep.Missing, func(k string) bool { return strings.HasPrefix(k, tc.prefix) }) {
						t.Errorf("%s: got %v, want an error listing missing %s keys", c.name, err, tc.prefix)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", c.name, err)
					continue
				}
				if got := tc.aux(m); got != c.wantAux {
					t.Errorf("%s: aux heads got %v, want %v", c.name, got, c.wantAux)
				}
				if c.wantAux && rep.Loaded != len(withAux) || !c.wantAux && rep.Loaded != len(noAux) {
					t.Errorf("%s: loaded %d tensors", c.name, rep.Loaded)
				}
			}
		})
	}
}

// TestLoadFileFormats writes a fixture's weights as a training checkpoint in
// each format package formats writes (PyTorch zip, safetensors, sharded
// safetensors) and loads it back through LoadFile.
func TestLoadFileFormats(t *testing.T) {
	const name = "resnet_basic"
	spec := fixtureSpecs[name]
	spec.Name = name
	sd := fixtureState(t, name)
	x, want := fixtureIO(t, name)
	c := &formats.Checkpoint{}
	for _, n := range sd {
		c.Tensors = append(c.Tensors, formats.Named{Name: "model_state_dict.module." + n.Name, Tensor: n.Tensor})
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		file string
		opts formats.SaveOptions
		open string
	}{
		{"ckpt.pt", formats.SaveOptions{}, "ckpt.pt"},
		{"ckpt.safetensors", formats.SaveOptions{}, "ckpt.safetensors"},
		{"model.safetensors", formats.SaveOptions{MaxShardSize: 32 << 10}, "model.safetensors.index.json"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			if _, err := formats.Save(filepath.Join(dir, tc.file), c, tc.opts); err != nil {
				t.Fatal(err)
			}
			m, rep, err := loadFile(spec, filepath.Join(dir, tc.open), Config{})
			if err != nil {
				t.Fatalf("load: %v\n%v", err, rep)
			}
			plain, prepared := forward(t, m, x)
			checkBoth(t, plain, prepared, want)
		})
	}
}
