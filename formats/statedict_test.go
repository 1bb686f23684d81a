package formats

import (
	"strings"
	"testing"

	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

func TestStateDictKey(t *testing.T) {
	one, _ := tensor.FromBytes(tensor.Uint8, []int64{1}, []byte{1})
	flat := func(names ...string) *Checkpoint {
		c := &Checkpoint{}
		for _, n := range names {
			c.Tensors = append(c.Tensors, Named{Name: n, Tensor: one})
		}
		return c
	}
	// saved gives the checkpoint a saved dict with these top-level keys.
	saved := func(c *Checkpoint, keys ...string) *Checkpoint {
		d := &pickle.Dict{}
		for _, k := range keys {
			d.Keys, d.Values = append(d.Keys, k), append(d.Values, &pickle.Dict{})
		}
		c.Object = d
		return c
	}
	withMeta := func(c *Checkpoint, keys ...string) *Checkpoint {
		for _, k := range keys {
			c.Meta = append(c.Meta, Meta{Key: k, Value: "1"})
		}
		return c
	}
	tests := []struct {
		name string
		c    *Checkpoint
		want string
	}{
		{"state_dict", flat("conv.weight", "fc.bias"), ""},
		{"training checkpoint", saved(flat("state_dict.conv.weight", "optimizer.state.0.exp_avg"), "epoch", "state_dict", "optimizer"), "state_dict"},
		{"lightning", saved(flat("state_dict.model.conv.weight"), "epoch", "state_dict"), "state_dict"},
		{"dataparallel inside", saved(flat("state_dict.module.conv.weight", "state_dict.module.fc.bias"), "state_dict"), "state_dict.module"},
		{"dataparallel", flat("module.conv.weight", "module.fc.bias"), "module"},
		{"model key", saved(flat("model.conv.weight"), "model", "epoch"), "model"},
		{"first known key wins", saved(flat("model.w", "state_dict.w"), "model", "state_dict"), "state_dict"},
		// A wrapper module whose submodule is called model: its state_dict
		// keys are "model.x", not a dict under "model".
		{"wrapper state_dict", saved(flat("model.conv.weight", "model.fc.bias"), "model.conv.weight", "model.fc.bias"), ""},
		// Without a saved object (safetensors), names and metadata decide.
		{"flat training checkpoint", flat("state_dict.w", "optimizer.state.0.m"), "state_dict"},
		{"flat with metadata", withMeta(flat("model.w"), "epoch"), "model"},
		{"flat wrapper", flat("model.w", "model.b"), ""},
		{"mixed module", flat("module.w", "head.b"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StateDictKey(tt.c); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStateDict(t *testing.T) {
	c := open(t, "../testdata/pickle/checkpoint.pt")
	sd, key, err := StateDict(c, "")
	if err != nil {
		t.Fatal(err)
	}
	if key != "state_dict" || sd.Tensor("conv1.weight") == nil || sd.Tensor("optimizer.state.0.momentum_buffer") != nil {
		t.Errorf("got key %q and %d tensors, want the state_dict", key, len(sd.Tensors))
	}
	if _, _, err := StateDict(c, "nope"); err == nil {
		t.Error("key nope: got no error")
	}
	plain := open(t, "../testdata/pickle/zip_state_dict.pt")
	if sd, key, err := StateDict(plain, ""); err != nil || key != "" || sd != plain {
		t.Errorf("a state_dict: got key %q, %v; want itself", key, err)
	}
}

func TestFindPrefix(t *testing.T) {
	classifiers := []string{"fc.weight", "classifier.1.weight"}
	graph := []string{"conv.weight", "conv.bias", "fc.weight"}
	tests := []struct {
		name     string
		keys     []string
		expected []string
		want     string
		matched  bool
		wantErr  string
	}{
		{"top level", []string{"conv1.weight", "fc.weight", "fc.bias"}, classifiers, "", true, ""},
		{"lightning", []string{"state_dict.model.conv1.weight", "state_dict.model.fc.weight", "optimizer_states.0.state.0.exp_avg"}, classifiers, "state_dict.model.", true, ""},
		{"backbone", []string{"backbone.conv1.weight", "backbone.fc.weight"}, classifiers, "backbone.", true, ""},
		{"encoder", []string{"encoder.features.0.weight", "encoder.classifier.1.weight"}, classifiers, "encoder.", true, ""},
		{"net", []string{"net.module.conv1.weight", "net.module.fc.weight", "epoch_loss"}, classifiers, "net.module.", true, ""},
		{"aux head inside", []string{"model.Conv2d_1a_3x3.conv.weight", "model.AuxLogits.fc.weight", "model.fc.weight"}, classifiers, "model.", true, ""},
		{"no classifier, common prefix", []string{"backbone.conv1.weight", "backbone.layer1.0.conv1.weight"}, classifiers, "backbone.", false, ""},
		{"no classifier, no prefix", []string{"conv1.weight", "layer1.0.conv1.weight"}, classifiers, "", false, ""},
		{"model and its EMA", []string{"model.fc.weight", "model.conv1.weight", "ema.fc.weight", "ema.conv1.weight"}, classifiers, "", true, `"ema.", "model."`},
		{"not at a dot", []string{"xfc.weight", "conv1.weight"}, classifiers, "", false, ""},
		// By a graph's initializer names, as convert --graph looks.
		{"graph: state_dict", []string{"conv.weight", "conv.bias", "fc.weight", "bn.num_batches_tracked"}, graph, "", true, ""},
		{"graph: lightning", []string{"state_dict.model.conv.weight", "state_dict.model.conv.bias", "state_dict.model.fc.weight", "optimizer.x"}, graph, "state_dict.model.", true, ""},
		{"graph: dataparallel", []string{"module.conv.weight", "module.conv.bias", "module.fc.weight"}, graph, "module.", true, ""},
		{"graph: nothing", []string{"x", "y"}, graph, "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, matched, err := FindPrefix(tt.keys, tt.expected)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error naming %s", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || matched != tt.matched {
				t.Errorf("got %q (matched %v), %v; want %q (matched %v)", got, matched, err, tt.want, tt.matched)
			}
		})
	}
}
