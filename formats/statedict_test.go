package formats

import (
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
			c.Meta = append(c.Meta, Meta{k, "1"})
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

func TestKeyFor(t *testing.T) {
	one, _ := tensor.FromBytes(tensor.Uint8, []int64{1}, []byte{1})
	flat := func(names ...string) *Checkpoint {
		c := &Checkpoint{}
		for _, n := range names {
			c.Tensors = append(c.Tensors, Named{Name: n, Tensor: one})
		}
		return c
	}
	graph := []string{"conv.weight", "conv.bias", "fc.weight"}
	tests := []struct {
		name  string
		c     *Checkpoint
		want  string
		found int
	}{
		{"state_dict", flat("conv.weight", "conv.bias", "fc.weight", "bn.num_batches_tracked"), "", 3},
		{"lightning", flat("state_dict.model.conv.weight", "state_dict.model.conv.bias", "state_dict.model.fc.weight", "optimizer.x"), "state_dict.model", 3},
		{"dataparallel", flat("module.conv.weight", "module.conv.bias", "module.fc.weight"), "module", 3},
		// More of the names under "ema." than at the top; a tie prefers
		// the top.
		{"partial", flat("conv.weight", "ema.conv.weight", "ema.conv.bias"), "ema", 2},
		{"tie", flat("conv.weight", "ema.conv.weight"), "", 1},
		{"nothing", flat("x", "y"), "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, n := KeyFor(tt.c, graph); got != tt.want || n != tt.found {
				t.Errorf("got %q (%d), want %q (%d)", got, n, tt.want, tt.found)
			}
		})
	}
}
