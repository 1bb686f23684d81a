package optim

import (
	"fmt"
	"io"
	"math/big"
	"sort"

	"github.com/ckptkit/ckpt/formats/pytorch"
	"github.com/ckptkit/ckpt/nn"
	"github.com/ckptkit/ckpt/pickle"
)

// WriteTorch writes sd as torch.save(optimizer.state_dict(), f) does: a zip
// archive (torch >= 1.6) whose data.pkl is the nested dict
//
//	{"state": {0: {"step": T, "exp_avg": T, ...}, ...},
//	 "param_groups": [{"lr": 0.1, ..., "betas": (0.9, 0.999), "params": [0, 1]}]}
//
// with one float32 storage per state tensor, so that in PyTorch
//
//	optimizer.load_state_dict(torch.load(f))
//
// resumes training from where Go left it. Group values are written as
// Python floats, ints, bools, None and strings; []float64 values (betas) as
// tuples and []int values (params) as lists. Keys follow torch 1.13's order
// ("params" last).
//
// The pickle uses only opcodes that torch's weights_only unpickler knows,
// except BINFLOAT for the float hyper-parameters, which torch 1.13's lacks:
// it refuses every optimizer state dict, torch's own included, so load
// without weights_only there.
//
// The file is written by pytorch.WriteObject (torch's zip layout, the
// pickle by pickle.Encoder, the project's one pickle writer); each state
// tensor is rebuilt by torch._utils._rebuild_tensor_v2 from a float32
// storage of its own.
func WriteTorch(w io.Writer, sd *StateDict) error {
	v, err := TorchValue(sd)
	if err != nil {
		return err
	}
	if _, err := pytorch.WriteObject(w, v); err != nil {
		return fmt.Errorf("optim: writing torch archive: %w", err)
	}
	return nil
}

// TorchValue returns sd as the value torch.save pickles for
// optimizer.state_dict(): package pickle's object model, which
// pytorch.WriteObject writes, so it can sit inside a larger checkpoint.
func TorchValue(sd *StateDict) (*pickle.Dict, error) {
	ids := make([]int, 0, len(sd.State))
	for id := range sd.State {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	state := &pickle.Dict{}
	for _, id := range ids {
		m := sd.State[id]
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(a, b int) bool {
			ra, rb := stateKeyRank(keys[a]), stateKeyRank(keys[b])
			return ra < rb || ra == rb && keys[a] < keys[b]
		})
		ps := &pickle.Dict{}
		for _, k := range keys {
			var v any // None for a nil tensor
			if m[k] != nil {
				v = nn.ToStored(m[k])
			}
			ps.Keys, ps.Values = append(ps.Keys, k), append(ps.Values, v)
		}
		state.Keys, state.Values = append(state.Keys, int64(id)), append(state.Values, ps)
	}
	groups := make([]any, len(sd.ParamGroups))
	for gi, pg := range sd.ParamGroups {
		g := &pickle.Dict{}
		for _, k := range groupKeyOrder(pg) {
			v, err := groupValue(pg[k])
			if err != nil {
				return nil, fmt.Errorf("optim: param_groups.%d.%s: %w", gi, k, err)
			}
			g.Keys, g.Values = append(g.Keys, k), append(g.Values, v)
		}
		groups[gi] = g
	}
	return &pickle.Dict{Keys: []any{"state", "param_groups"}, Values: []any{state, groups}}, nil
}

// groupValue converts a param group value: numbers, strings, bools and
// None as they are, []float64 (betas) to a tuple, []int (params) to a list.
func groupValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, float64, int64, string, *big.Int:
		return x, nil
	case int:
		return int64(x), nil
	case []float64:
		t := make(pickle.Tuple, len(x))
		for i, f := range x {
			t[i] = f
		}
		return t, nil
	case []int:
		l := make([]any, len(x))
		for i, n := range x {
			l[i] = int64(n)
		}
		return l, nil
	}
	return nil, fmt.Errorf("cannot pickle a %T", v)
}

// groupKeyOrder returns the keys of a param group in torch 1.13's order:
// the known hyper-parameters, then other keys sorted, "initial_lr", and
// "params" last.
func groupKeyOrder(pg map[string]any) []string {
	var order []string
	seen := map[string]bool{"params": true, "initial_lr": true}
	for _, k := range groupKeys[Adam] {
		if _, ok := pg[k]; ok && !seen[k] {
			order = append(order, k)
			seen[k] = true
		}
	}
	for _, k := range groupKeys[SGD] {
		if _, ok := pg[k]; ok && !seen[k] {
			order = append(order, k)
			seen[k] = true
		}
	}
	var rest []string
	for k := range pg {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	order = append(order, rest...)
	for _, k := range []string{"initial_lr", "params"} {
		if _, ok := pg[k]; ok {
			order = append(order, k)
		}
	}
	return order
}

// SchedulerValue returns a scheduler's StateDict (torch's layout, as
// [LRScheduler.StateDict] and [SequentialLR.StateDict] give it) as package
// pickle's object model, keys sorted, for pytorch.WriteObject.
func SchedulerValue(st map[string]any) *pickle.Dict {
	return pickleValue(st).(*pickle.Dict)
}

// pickleValue turns the maps and slices of a scheduler state into pickle's
// object model: map[string]any into a dict with sorted keys, []float64 and
// []any into lists.
func pickleValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := &pickle.Dict{}
		for _, k := range keys {
			d.Keys = append(d.Keys, k)
			d.Values = append(d.Values, pickleValue(v[k]))
		}
		return d
	case []float64:
		l := make([]any, len(v))
		for i, f := range v {
			l[i] = f
		}
		return l
	case []int:
		l := make([]any, len(v))
		for i, n := range v {
			l[i] = int64(n)
		}
		return l
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = pickleValue(e)
		}
		return l
	}
	return v
}
