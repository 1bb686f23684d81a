package pytorch

import (
	"encoding/binary"
	"fmt"
)

// Pickle opcodes used by the encoder (protocol 2).
const (
	opProto      = 0x80
	opGlobal     = 'c'
	opEmptyTuple = ')'
	opReduce     = 'R'
	opMark       = '('
	opTuple      = 't'
	opBinUnicode = 'X'
	opBinPersID  = 'Q'
	opBinInt1    = 'K'
	opBinInt     = 'J'
	opLong1      = 0x8a
	opNewFalse   = 0x89
	opSetItems   = 'u'
	opBinPut     = 'q'
	opLongBinPut = 'r'
	opBinGet     = 'h'
	opLongBinGet = 'j'
	opStop       = '.'
)

// pickler is a minimal, deterministic protocol-2 pickle encoder for
// state_dicts. Globals are memoized so each appears once.
type pickler struct {
	b    []byte
	memo map[string]uint32
}

func newPickler() *pickler {
	return &pickler{b: []byte{opProto, 2}, memo: map[string]uint32{}}
}

func (p *pickler) global(module, name string) {
	key := module + "\n" + name
	if i, ok := p.memo[key]; ok {
		if i < 256 {
			p.b = append(p.b, opBinGet, byte(i))
		} else {
			p.b = append(p.b, opLongBinGet)
			p.b = binary.LittleEndian.AppendUint32(p.b, i)
		}
		return
	}
	p.b = append(p.b, opGlobal)
	p.b = append(p.b, key...)
	p.b = append(p.b, '\n')
	i := uint32(len(p.memo))
	p.memo[key] = i
	if i < 256 {
		p.b = append(p.b, opBinPut, byte(i))
	} else {
		p.b = append(p.b, opLongBinPut)
		p.b = binary.LittleEndian.AppendUint32(p.b, i)
	}
}

func (p *pickler) str(s string) {
	p.b = append(p.b, opBinUnicode)
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(s)))
	p.b = append(p.b, s...)
}

func (p *pickler) int(v int64) {
	switch {
	case v >= 0 && v < 256:
		p.b = append(p.b, opBinInt1, byte(v))
	case v >= -1<<31 && v < 1<<31:
		p.b = append(p.b, opBinInt)
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(int32(v)))
	default:
		// LONG1: little-endian two's complement, 8 bytes is always enough.
		p.b = append(p.b, opLong1, 8)
		p.b = binary.LittleEndian.AppendUint64(p.b, uint64(v))
	}
}

func (p *pickler) ints(vs []int64) {
	p.b = append(p.b, opMark)
	for _, v := range vs {
		p.int(v)
	}
	p.b = append(p.b, opTuple)
}

// orderedDict pushes collections.OrderedDict().
func (p *pickler) orderedDict() {
	p.global("collections", "OrderedDict")
	p.b = append(p.b, opEmptyTuple, opReduce)
}

// storageTypes maps a dtype name to torch's legacy typed storage class.
var storageTypes = map[string]string{
	"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
	"bfloat16": "BFloat16Storage", "int8": "CharStorage", "int16": "ShortStorage",
	"int32": "IntStorage", "int64": "LongStorage", "uint8": "ByteStorage", "bool": "BoolStorage",
}

// tensorRef describes one state_dict entry for the pickle.
type tensorRef struct {
	name        string
	dtype       string
	storageKey  string
	storageSize int64 // elements
	offset      int64
	shape       []int64
	stride      []int64
}

// encodeStateDict returns data.pkl for an OrderedDict of refs, in order.
func encodeStateDict(refs []tensorRef) ([]byte, error) {
	p := newPickler()
	p.orderedDict()
	const batch = 1000
	for i, r := range refs {
		if i%batch == 0 {
			p.b = append(p.b, opMark)
		}
		st, ok := storageTypes[r.dtype]
		if !ok {
			return nil, fmt.Errorf("pytorch: tensor %q: no torch storage type for dtype %s", r.name, r.dtype)
		}
		p.str(r.name)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.b = append(p.b, opMark)
		// Persistent id ('storage', torch.XStorage, key, 'cpu', numel).
		p.b = append(p.b, opMark)
		p.str("storage")
		p.global("torch", st)
		p.str(r.storageKey)
		p.str("cpu")
		p.int(r.storageSize)
		p.b = append(p.b, opTuple, opBinPersID)
		p.int(r.offset)
		p.ints(r.shape)
		p.ints(r.stride)
		p.b = append(p.b, opNewFalse)
		p.orderedDict()
		p.b = append(p.b, opTuple, opReduce)
		if i%batch == batch-1 || i == len(refs)-1 {
			p.b = append(p.b, opSetItems)
		}
	}
	p.b = append(p.b, opStop)
	return p.b, nil
}
