package pytorch

import (
	"fmt"
	"strconv"

	"github.com/ckptkit/ckpt/pickle"
	"github.com/ckptkit/ckpt/tensor"
)

// storagePlan is one data/N entry: the bytes src.WriteTo produces.
type storagePlan struct {
	key   string
	src   *tensor.Tensor
	bytes int64
}

// planner assigns storages to tensors as the encoder meets them, in pickle
// order: non-empty contiguous views of one source storage with one dtype
// share a copy of the whole storage; every other tensor gets a contiguous
// storage of its own.
type planner struct {
	groups   map[groupKey]int // storage index
	storages []storagePlan
	// keepGrad writes requires_grad as the tensors have it (a saved
	// object); without it every tensor is written as a state_dict holds
	// it, requires_grad False.
	keepGrad bool
}

type groupKey struct {
	st *tensor.Storage
	dt tensor.DType
}

func (p *planner) add(src *tensor.Tensor) int {
	p.storages = append(p.storages, storagePlan{key: strconv.Itoa(len(p.storages)), src: src, bytes: src.NumBytes()})
	return len(p.storages) - 1
}

func (p *planner) ref(t *tensor.Tensor) (pickle.TensorRef, error) {
	if t == nil {
		return pickle.TensorRef{}, fmt.Errorf("pytorch: a tensor is nil")
	}
	if err := t.Validate(); err != nil {
		return pickle.TensorRef{}, fmt.Errorf("pytorch: tensor of shape %v: %w", t.Shape, err)
	}
	if pickle.StorageClass(t.DType) == "" {
		return pickle.TensorRef{}, fmt.Errorf("pytorch: no torch storage type for dtype %s", t.DType)
	}
	if p.groups == nil {
		p.groups = map[groupKey]int{}
	}
	ref := pickle.TensorRef{Shape: t.Shape, Stride: tensor.ContiguousStrides(t.Shape), RequiresGrad: p.keepGrad && t.RequiresGrad}
	shares := t.NumElements() > 0 && t.IsContiguous() && t.Storage.Size()%int64(t.DType.Size()) == 0
	var i int
	if shares {
		k := groupKey{t.Storage, t.DType}
		var ok bool
		if i, ok = p.groups[k]; !ok {
			n := t.Storage.Size() / int64(t.DType.Size())
			i = p.add(tensor.New(t.DType, []int64{n}, t.Storage))
			p.groups[k] = i
		}
		ref.Offset = t.Offset
	} else {
		i = p.add(t)
	}
	s := p.storages[i]
	ref.Storage = pickle.StorageRef{Key: s.key, DType: t.DType, NumElements: s.bytes / int64(t.DType.Size())}
	return ref, nil
}

// encode returns data.pkl for v and the storages its tensors need.
func encode(v any, keepGrad bool) ([]byte, []storagePlan, error) {
	p := &planner{keepGrad: keepGrad}
	enc := &pickle.Encoder{Tensor: p.ref}
	pkl, err := enc.Encode(v)
	if err != nil {
		return nil, nil, fmt.Errorf("pytorch: %w", err)
	}
	return pkl, p.storages, nil
}

// stateDict returns the OrderedDict of tensors, in order, checking that
// names are unique and tensors valid.
func stateDict(tensors []Named) (*pickle.Dict, error) {
	d := &pickle.Dict{Ordered: true, Keys: make([]any, len(tensors)), Values: make([]any, len(tensors))}
	seen := make(map[string]bool, len(tensors))
	for i, nt := range tensors {
		if nt.Tensor == nil {
			return nil, fmt.Errorf("pytorch: tensor %q is nil", nt.Name)
		}
		if err := nt.Tensor.Validate(); err != nil {
			return nil, fmt.Errorf("pytorch: tensor %q: %w", nt.Name, err)
		}
		if pickle.StorageClass(nt.Tensor.DType) == "" {
			return nil, fmt.Errorf("pytorch: tensor %q: no torch storage type for dtype %s", nt.Name, nt.Tensor.DType)
		}
		if seen[nt.Name] {
			return nil, fmt.Errorf("pytorch: tensor %q given twice", nt.Name)
		}
		seen[nt.Name] = true
		d.Keys[i], d.Values[i] = nt.Name, nt.Tensor
	}
	return d, nil
}
