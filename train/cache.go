package train

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/ckptkit/ckpt/data"
	"github.com/ckptkit/ckpt/nn"
)

// Extract runs the model up to its classifier (the classifier's input, in
// eval mode, through nn.Infer) over every image of l, in dataset order; the
// loader must not shuffle. Images the loader skipped have nil features.
func (m *Model) Extract(ctx context.Context, l *data.Loader, epoch int, progress func(done, total int)) ([][]float32, error) {
	if l.Shuffle {
		return nil, errors.New("train: Extract needs a loader in dataset order")
	}
	if m.Graph != nil {
		return m.extract(ctx, l, epoch, progress, m.extractONNX)
	}
	// The classifier's field has its concrete type (*nn.Linear), so it is
	// replaced by a Linear that is the identity: x·I + 0 is x exactly.
	d := m.Head.InFeatures
	eye := nn.NewLinear(nil, d, d, false)
	w := eye.Weight.Data()
	clear(w)
	for i := range d {
		w[i*d+i] = 1
	}
	if err := setModule(m.Module, m.HeadPath, eye); err != nil {
		return nil, err
	}
	defer setModule(m.Module, m.HeadPath, m.Head)
	return m.extract(ctx, l, epoch, progress, func(x *nn.Tensor) *nn.Tensor { return nn.Infer(m.Module, x) })
}

// extract runs forward (the backbone) on every batch of l in eval mode.
func (m *Model) extract(ctx context.Context, l *data.Loader, epoch int, progress func(done, total int), forward func(*nn.Tensor) *nn.Tensor) ([][]float32, error) {
	wasTraining := m.Module.Training()
	m.Module.Eval()
	defer func() {
		if wasTraining {
			m.Module.Train()
		}
	}()
	out := make([][]float32, l.Data.Len())
	ch, errf := l.Epoch(ctx, epoch)
	done := 0
	for b := range ch {
		y := forward(nn.New(b.X, b.Len(), 3, b.Size, b.Size))
		d := y.Numel() / b.Len()
		for p, i := range b.Indices {
			out[i] = append([]float32(nil), y.Data()[p*d:(p+1)*d]...)
		}
		done += b.Len()
		if progress != nil {
			progress(done, l.Data.Len())
		}
	}
	if err := errf(); err != nil {
		return nil, err
	}
	return out, nil
}

// CacheKey identifies cached features: what produced them (Arch, Layer,
// Preprocess, Views, Seed) and what they were computed from (the weights'
// SHA-256 and the images' paths, sizes and modification times).
type CacheKey struct {
	Arch       string          `json:"arch"`
	Layer      string          `json:"layer"`
	Preprocess json.RawMessage `json:"preprocess"`
	Views      int             `json:"views"`
	Seed       uint64          `json:"seed"`
	Weights    string          `json:"weights_sha256"`
	Images     string          `json:"images_sha256"`
}

// name is the cache file's name: the producing settings, so that a change
// of weights or images finds the stale file and replaces it.
func (k CacheKey) name(split string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%d\x00%s", k.Arch, k.Layer, k.Preprocess, k.Views, k.Seed, split)
	return fmt.Sprintf("features-%s-%s-%s.bin", k.Arch, split, hex.EncodeToString(h.Sum(nil))[:16])
}

// FileSHA256 hashes a file's bytes.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("train: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("train: hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ImagesSHA256 fingerprints a dataset: every sample's path, label, size and
// modification time.
func ImagesSHA256(d *data.Dataset) (string, error) {
	h := sha256.New()
	for _, s := range d.Samples {
		st, err := os.Stat(s.Path)
		if err != nil {
			return "", fmt.Errorf("train: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\n", s.Path, s.Label, st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

const cacheMagic = "CKPTFEAT1\n"

// maxCacheHeader bounds the JSON header of a cache file.
const maxCacheHeader = 1 << 20

type cacheHeader struct {
	Key   CacheKey `json:"key"`
	N     int      `json:"n"`
	D     int      `json:"d"`
	Views int      `json:"views"`
	// Missing lists images without features (skipped as unreadable).
	Missing []int `json:"missing,omitempty"`
}

// ErrStaleCache is wrapped by LoadCache's error for a cache file computed
// from other weights or images.
var ErrStaleCache = errors.New("stale feature cache")

// LoadCache reads the features cached in dir for key and split. It returns
// (nil, nil) when there is no cache file, an error wrapping ErrStaleCache
// when the file was computed from other weights or images, and an error for
// a damaged file.
//
// Layout: "CKPTFEAT1\n", a little-endian uint32 header length, the JSON
// header (key, n images, d features, views, missing images), then
// views×n×d little-endian float32 values (zeros for missing images).
func LoadCache(dir string, key CacheKey, split string) ([][][]float32, error) {
	path := filepath.Join(dir, key.name(split))
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	r := bufio.NewReader(f)
	magic := make([]byte, len(cacheMagic)+4)
	if _, err := io.ReadFull(r, magic); err != nil || string(magic[:len(cacheMagic)]) != cacheMagic {
		return nil, fmt.Errorf("train: %s: not a feature cache", path)
	}
	hl := binary.LittleEndian.Uint32(magic[len(cacheMagic):])
	if hl > maxCacheHeader {
		return nil, fmt.Errorf("train: %s: header of %d bytes over the limit of %d", path, hl, maxCacheHeader)
	}
	hb := make([]byte, hl)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, fmt.Errorf("train: %s: truncated header: %w", path, err)
	}
	var h cacheHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("train: %s: header: %w", path, err)
	}
	if h.Key.Weights != key.Weights {
		return nil, fmt.Errorf("train: %s: %w: computed from other weights", path, ErrStaleCache)
	}
	if h.Key.Images != key.Images {
		return nil, fmt.Errorf("train: %s: %w: the images changed", path, ErrStaleCache)
	}
	kb, _ := json.Marshal(key)
	hk, _ := json.Marshal(h.Key)
	if string(kb) != string(hk) {
		return nil, fmt.Errorf("train: %s: %w: computed with other settings", path, ErrStaleCache)
	}
	if h.N < 0 || h.D <= 0 || h.Views <= 0 {
		return nil, fmt.Errorf("train: %s: bad sizes n=%d d=%d views=%d", path, h.N, h.D, h.Views)
	}
	want := int64(len(magic)) + int64(hl) + 4*int64(h.N)*int64(h.D)*int64(h.Views)
	if want != st.Size() || int64(h.N)*int64(h.D)*int64(h.Views) > math.MaxInt32 {
		return nil, fmt.Errorf("train: %s: %d bytes, want %d for %d×%d×%d features", path, st.Size(), want, h.Views, h.N, h.D)
	}
	missing := map[int]bool{}
	for _, i := range h.Missing {
		missing[i] = true
	}
	views := make([][][]float32, h.Views)
	buf := make([]byte, 4*h.D)
	for v := range views {
		views[v] = make([][]float32, h.N)
		for i := range h.N {
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, fmt.Errorf("train: %s: %w", path, err)
			}
			if missing[i] {
				continue
			}
			row := make([]float32, h.D)
			for j := range row {
				row[j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
			}
			views[v][i] = row
		}
	}
	return views, nil
}

// SaveCache writes features for key and split to dir (created if needed),
// replacing a stale file atomically.
func SaveCache(dir string, key CacheKey, split string, views [][][]float32) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	h := cacheHeader{Key: key, Views: len(views)}
	if len(views) > 0 {
		h.N = len(views[0])
	}
	for i, row := range views[0] {
		if row == nil {
			h.Missing = append(h.Missing, i)
		} else {
			h.D = len(row)
		}
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, key.name(split))
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	w.WriteString(cacheMagic)
	binary.Write(w, binary.LittleEndian, uint32(len(hb)))
	w.Write(hb)
	buf := make([]byte, 4*h.D)
	for _, v := range views {
		for _, row := range v {
			clear(buf)
			for j, x := range row {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(x))
			}
			w.Write(buf)
		}
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("train: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("train: writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
