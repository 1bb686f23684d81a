package tensor

// Named is a stored tensor and its name: a state_dict key, a safetensors
// entry, an ONNX initializer. It is the one named-tensor type of ckpt; the
// readers, writers and nn's state dicts all use it (their Named names are
// aliases of this one), so tensors move between them without copying.
type Named struct {
	Name   string
	Tensor *Tensor
}

// Source is anything that holds named stored tensors: nn's StateDict and
// TensorMap, a formats.Checkpoint, a prefix or rename wrapper. Names lists the
// names in the source's order; Tensor returns nil for an unknown name.
type Source interface {
	Names() []string
	Tensor(name string) *Tensor
}

// Names returns the names of ts in order.
func Names(ts []Named) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}
