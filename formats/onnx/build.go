package onnx

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// IRVersion is the ONNX IR version FromTensors writes (onnx 1.12's).
const IRVersion = 8

// FromTensors returns a model whose graph has no nodes and holds ts as its
// initializers, in order: the ONNX form of a plain checkpoint (a
// weights-only file that ONNX tools can read and that Initializers gives
// back unchanged). It fails on a dtype with no ONNX data type or an invalid
// tensor; the tensors are read when the model is written.
func FromTensors(ts []Named) (*Model, error) {
	g := &Graph{Name: "ckpt"}
	seen := make(map[string]bool, len(ts))
	for _, n := range ts {
		if seen[n.Name] {
			return nil, fmt.Errorf("onnx: tensor %q: duplicate name", n.Name)
		}
		seen[n.Name] = true
		t := &TensorProto{Name: n.Name}
		if err := t.SetData(n.Tensor); err != nil {
			return nil, err
		}
		g.Initializer = append(g.Initializer, t)
	}
	return &Model{
		IRVersion:    IRVersion,
		ProducerName: "ckpt",
		Graph:        g,
		OpsetImport:  []*OperatorSetID{{Domain: "", Version: 13}},
	}, nil
}

// Detect reports whether head, the first bytes of a file, looks like an
// ONNX ModelProto as every ONNX writer lays it out: an ir_version field
// (field 1, a small varint) first, then another ModelProto field. It needs
// at least 3 bytes and reads at most the first two fields.
func Detect(head []byte) bool {
	num, typ, n := protowire.ConsumeTag(head)
	if n < 0 || num != 1 || typ != protowire.VarintType {
		return false
	}
	head = head[n:]
	v, n := protowire.ConsumeVarint(head)
	if n < 0 || v == 0 || v > 100 {
		return false
	}
	head = head[n:]
	num, typ, n = protowire.ConsumeTag(head)
	if n < 0 {
		return false
	}
	switch num {
	case 2, 3, 4, 6, 7, 8, 14, 20, 25:
		return typ == protowire.BytesType
	case 5:
		return typ == protowire.VarintType
	}
	return false
}
