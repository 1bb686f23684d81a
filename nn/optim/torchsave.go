package optim

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/big"
	"sort"
	"strconv"

	"github.com/ckptkit/ckpt/nn"
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
// # Layout written
//
// Entries are STORED, under the prefix "archive/", each entry's data starting
// at a multiple of 64 bytes as torch aligns it (an "FB" extra field of 'Z'
// padding in the local header):
//
//	archive/data.pkl     pickle protocol 2
//	archive/data/0 ...   one float32 storage per state tensor, little-endian
//	archive/version      "3\n"
//	archive/byteorder    "little"
//
// Each tensor is rebuilt by torch._utils._rebuild_tensor_v2(('storage',
// torch.FloatStorage, key, 'cpu', numel), 0, size, stride, False,
// collections.OrderedDict()).
func WriteTorch(w io.Writer, sd *StateDict) error {
	p := &pickler{}
	var storages [][]float32
	p.op(0x80, 2) // PROTO 2
	p.op('}')     // the state_dict: a plain dict
	p.op('(')
	p.str("state")
	p.op('}')
	ids := make([]int, 0, len(sd.State))
	for id := range sd.State {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	if len(ids) > 0 {
		p.op('(')
		for _, id := range ids {
			p.int(int64(id))
			p.op('}')
			m := sd.State[id]
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(a, b int) bool {
				ra, rb := stateKeyRank(keys[a]), stateKeyRank(keys[b])
				return ra < rb || ra == rb && keys[a] < keys[b]
			})
			if len(keys) > 0 {
				p.op('(')
				for _, k := range keys {
					p.str(k)
					if m[k] == nil {
						p.op('N')
						continue
					}
					p.tensor(m[k], strconv.Itoa(len(storages)))
					storages = append(storages, m[k].Data())
				}
				p.op('u')
			}
		}
		p.op('u')
	}
	p.str("param_groups")
	p.op(']')
	if len(sd.ParamGroups) > 0 {
		p.op('(')
		for gi, pg := range sd.ParamGroups {
			p.op('}')
			if len(pg) == 0 {
				continue
			}
			p.op('(')
			for _, k := range groupKeyOrder(pg) {
				p.str(k)
				if err := p.value(pg[k]); err != nil {
					return fmt.Errorf("optim: param_groups.%d.%s: %w", gi, k, err)
				}
			}
			p.op('u')
		}
		p.op('e')
	}
	p.op('u') // SETITEMS of the top dict
	p.op('.')

	cw := &countWriter{w: w}
	zw := zip.NewWriter(cw)
	put := func(name string, data []byte) error {
		return writeAligned(zw, cw, "archive/"+name, data)
	}
	if err := put("data.pkl", p.buf.Bytes()); err != nil {
		return err
	}
	for i, s := range storages {
		b := make([]byte, 4*len(s))
		for j, v := range s {
			binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(v))
		}
		if err := put("data/"+strconv.Itoa(i), b); err != nil {
			return err
		}
	}
	if err := put("version", []byte("3\n")); err != nil {
		return err
	}
	if err := put("byteorder", []byte("little")); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("optim: writing torch archive: %w", err)
	}
	return nil
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

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// writeAligned writes one STORED entry whose data starts at a multiple of 64
// bytes: the local header is 30 bytes plus the name plus the extra field,
// which carries torch's "FB" padding block.
func writeAligned(zw *zip.Writer, cw *countWriter, name string, data []byte) error {
	if err := zw.Flush(); err != nil {
		return err
	}
	start := cw.n + 30 + int64(len(name)) + 4 // 4: the extra block's id and size
	pad := int((64 - start%64) % 64)
	extra := make([]byte, 4+pad)
	binary.LittleEndian.PutUint16(extra, 0x4246) // "FB"
	binary.LittleEndian.PutUint16(extra[2:], uint16(pad))
	for i := 4; i < len(extra); i++ {
		extra[i] = 'Z'
	}
	fw, err := zw.CreateRaw(&zip.FileHeader{
		Name:               name,
		Method:             zip.Store,
		CRC32:              crc32.ChecksumIEEE(data),
		CompressedSize64:   uint64(len(data)),
		UncompressedSize64: uint64(len(data)),
		Extra:              extra,
	})
	if err != nil {
		return fmt.Errorf("optim: writing %s: %w", name, err)
	}
	if _, err := fw.Write(data); err != nil {
		return fmt.Errorf("optim: writing %s: %w", name, err)
	}
	return nil
}

// pickler emits pickle protocol 2 opcodes.
type pickler struct{ buf bytes.Buffer }

func (p *pickler) op(b ...byte) { p.buf.Write(b) }

func (p *pickler) str(s string) {
	p.op('X') // BINUNICODE
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
	p.buf.Write(n[:])
	p.buf.WriteString(s)
}

func (p *pickler) int(v int64) {
	switch {
	case v >= 0 && v < 256:
		p.op('K', byte(v)) // BININT1
	case v >= math.MinInt32 && v <= math.MaxInt32:
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(int32(v)))
		p.op('J') // BININT
		p.buf.Write(b[:])
	default:
		p.bigInt(big.NewInt(v))
	}
}

// bigInt writes LONG1: a little-endian two's-complement integer.
func (p *pickler) bigInt(x *big.Int) {
	n := x.BitLen()/8 + 1
	b := make([]byte, n)
	v := new(big.Int).Set(x)
	if v.Sign() < 0 {
		v.Add(v, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	be := v.FillBytes(make([]byte, n))
	for i := range b {
		b[i] = be[n-1-i]
	}
	p.op(0x8a, byte(n)) // LONG1
	p.buf.Write(b)
}

func (p *pickler) float(f float64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], math.Float64bits(f))
	p.op('G') // BINFLOAT
	p.buf.Write(b[:])
}

func (p *pickler) global(module, name string) {
	p.op('c')
	p.buf.WriteString(module + "\n" + name + "\n")
}

func (p *pickler) value(v any) error {
	switch x := v.(type) {
	case nil:
		p.op('N')
	case bool:
		if x {
			p.op(0x88) // NEWTRUE
		} else {
			p.op(0x89) // NEWFALSE
		}
	case float64:
		p.float(x)
	case int:
		p.int(int64(x))
	case int64:
		p.int(x)
	case *big.Int:
		p.bigInt(x)
	case string:
		p.str(x)
	case []float64: // a tuple, as torch's betas
		p.op('(')
		for _, f := range x {
			p.float(f)
		}
		p.op('t')
	case []int: // a list, as torch's params
		p.op(']')
		if len(x) > 0 {
			p.op('(')
			for _, i := range x {
				p.int(int64(i))
			}
			p.op('e')
		}
	default:
		return fmt.Errorf("cannot pickle a %T", v)
	}
	return nil
}

// tensor writes torch._utils._rebuild_tensor_v2 for a contiguous float32
// tensor stored whole in storage key.
func (p *pickler) tensor(t *nn.Tensor, key string) {
	shape := t.Shape()
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.op('(')
	// persistent id ('storage', torch.FloatStorage, key, 'cpu', numel)
	p.op('(')
	p.str("storage")
	p.global("torch", "FloatStorage")
	p.str(key)
	p.str("cpu")
	p.int(int64(t.Numel()))
	p.op('t')
	p.op('Q') // BINPERSID
	p.int(0)  // storage offset
	p.op('(')
	for _, d := range shape {
		p.int(int64(d))
	}
	p.op('t')
	p.op('(')
	stride := 1
	strides := make([]int, len(shape))
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = stride
		stride *= shape[i]
	}
	for _, s := range strides {
		p.int(int64(s))
	}
	p.op('t')
	p.op(0x89) // requires_grad False
	p.global("collections", "OrderedDict")
	p.op(')', 'R') // OrderedDict() for the backward hooks
	p.op('t', 'R')
}
