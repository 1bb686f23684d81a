package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Extensions are the image file extensions a folder dataset lists (lower
// case); other files are ignored, as torchvision's ImageFolder ignores them.
var Extensions = []string{".jpg", ".jpeg", ".png", ".webp"}

// MaxSamples bounds the number of images a dataset may list, so that a
// directory tree or CSV file cannot make a listing exhaust memory.
const MaxSamples = 50_000_000

// Sample is one labelled image.
type Sample struct {
	Path  string
	Label int
}

// Dataset is a list of labelled images with its class names, in index order.
type Dataset struct {
	// Root is the directory (or CSV file) the dataset was read from.
	Root    string
	Classes []string
	Samples []Sample
}

// Len returns the number of samples.
func (d *Dataset) Len() int { return len(d.Samples) }

// Counts returns the number of samples of each class.
func (d *Dataset) Counts() []int {
	c := make([]int, len(d.Classes))
	for _, s := range d.Samples {
		c[s.Label]++
	}
	return c
}

// ImageFolder lists DIR/<class>/... as torchvision's ImageFolder does: the
// class names are the sorted names of DIR's subdirectories, and the images
// are every file with an image extension under each, recursively, in sorted
// path order. Hidden files and directories are skipped. A class directory
// without images is an error, as it is in torchvision.
func ImageFolder(dir string) (*Dataset, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	d := &Dataset{Root: dir}
	for _, e := range entries {
		if isDir(dir, e) && !strings.HasPrefix(e.Name(), ".") {
			d.Classes = append(d.Classes, e.Name())
		}
	}
	sort.Strings(d.Classes)
	if len(d.Classes) == 0 {
		return nil, fmt.Errorf("data: %s: no class directories (want DIR/<class>/<image>)", dir)
	}
	for label, c := range d.Classes {
		n := len(d.Samples)
		root := filepath.Join(dir, c)
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(e.Name(), ".") && p != root {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if e.IsDir() || !isImage(p) {
				return nil
			}
			if len(d.Samples) >= MaxSamples {
				return fmt.Errorf("more than %d images", MaxSamples)
			}
			d.Samples = append(d.Samples, Sample{Path: p, Label: label})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("data: %s: %w", root, err)
		}
		if len(d.Samples) == n {
			return nil, fmt.Errorf("data: class %q (%s) has no images with extension %s", c, root, strings.Join(Extensions, ", "))
		}
	}
	return d, nil
}

func isDir(dir string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink != 0 {
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		return err == nil && st.IsDir()
	}
	return false
}

func isImage(p string) bool {
	return slices.Contains(Extensions, strings.ToLower(filepath.Ext(p)))
}

// ReadCSV lists the images of a CSV file of path,label rows (a first row
// "path,label" is a header and skipped). Relative paths are taken from the
// CSV file's directory; class names are the sorted distinct labels.
func ReadCSV(path string) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 2
	r.TrimLeadingSpace = true
	base := filepath.Dir(path)
	var rows [][2]string
	classes := map[string]bool{}
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("data: %s: %w", path, err)
		}
		if line == 1 && strings.EqualFold(rec[0], "path") && strings.EqualFold(rec[1], "label") {
			continue
		}
		if rec[0] == "" || rec[1] == "" {
			return nil, fmt.Errorf("data: %s: line %d: empty path or label", path, line)
		}
		if len(rows) >= MaxSamples {
			return nil, fmt.Errorf("data: %s: more than %d rows", path, MaxSamples)
		}
		p := rec[0]
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		rows = append(rows, [2]string{p, rec[1]})
		classes[rec[1]] = true
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("data: %s: no rows", path)
	}
	d := &Dataset{Root: path}
	for c := range classes {
		d.Classes = append(d.Classes, c)
	}
	sort.Strings(d.Classes)
	index := map[string]int{}
	for i, c := range d.Classes {
		index[c] = i
	}
	for _, r := range rows {
		d.Samples = append(d.Samples, Sample{Path: r[0], Label: index[r[1]]})
	}
	return d, nil
}

// Split divides d into a training and a validation set, stratified by class:
// in every class with at least two images, round(frac × count) of them (at
// least one, at most count-1) go to validation, chosen by a shuffle seeded
// with seed. Both sets keep d's classes and its sample order.
func (d *Dataset) Split(frac float64, seed uint64) (train, val *Dataset, err error) {
	if !(frac > 0 && frac < 1) {
		return nil, nil, fmt.Errorf("data: validation fraction %v must be between 0 and 1", frac)
	}
	byClass := make([][]int, len(d.Classes))
	for i, s := range d.Samples {
		byClass[s.Label] = append(byClass[s.Label], i)
	}
	inVal := make([]bool, len(d.Samples))
	r := rand.New(rand.NewPCG(seed, 0x73706c6974)) // "split"
	for _, idx := range byClass {
		if len(idx) < 2 {
			continue
		}
		k := int(frac*float64(len(idx)) + 0.5)
		k = max(1, min(k, len(idx)-1))
		perm := slices.Clone(idx)
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		for _, i := range perm[:k] {
			inVal[i] = true
		}
	}
	train = &Dataset{Root: d.Root, Classes: d.Classes}
	val = &Dataset{Root: d.Root, Classes: d.Classes}
	for i, s := range d.Samples {
		if inVal[i] {
			val.Samples = append(val.Samples, s)
		} else {
			train.Samples = append(train.Samples, s)
		}
	}
	return train, val, nil
}

// Splits is a training set and a validation set over the same classes.
type Splits struct {
	Train, Val *Dataset
	// Layout says where the validation set came from: "folders"
	// (DIR/train and DIR/val), "split" (a seeded stratified split) or
	// "none".
	Layout string
	// MissingInVal lists the training classes that have no validation
	// image; their validation metrics are empty. They keep their index.
	MissingInVal []string
}

// OpenOptions controls Open.
type OpenOptions struct {
	// ValSplit is the fraction of each class held out for validation when
	// the data has no validation folder; 0 means no validation set.
	ValSplit float64
	// Seed seeds the split.
	Seed uint64
}

// ClassMismatchError reports validation classes the training set lacks:
// their images cannot be given a label of the trained classifier.
type ClassMismatchError struct {
	Dir   string
	Extra []string
}

func (e *ClassMismatchError) Error() string {
	return fmt.Sprintf("data: %s has classes the training set lacks: %s (class indices come from the training set; add training images or remove these)",
		e.Dir, strings.Join(e.Extra, ", "))
}

// ValDirs are the names a validation folder beside DIR/train may have.
var ValDirs = []string{"val", "valid", "validation"}

// Open reads a dataset for training: a CSV file of path,label rows; a
// directory with train/ and one of val/, valid/ or validation/ (each an
// ImageFolder); or a single ImageFolder, split with opts.ValSplit. With
// separate folders the class indices are the training set's; a validation
// class absent from training is a *ClassMismatchError, a training class
// absent from validation is listed in MissingInVal.
func Open(path string, opts OpenOptions) (*Splits, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if !st.IsDir() {
		d, err := ReadCSV(path)
		if err != nil {
			return nil, err
		}
		return splitOne(d, opts)
	}
	trainDir := filepath.Join(path, "train")
	if st, err := os.Stat(trainDir); err == nil && st.IsDir() {
		for _, v := range ValDirs {
			valDir := filepath.Join(path, v)
			if st, err := os.Stat(valDir); err == nil && st.IsDir() {
				train, err := ImageFolder(trainDir)
				if err != nil {
					return nil, err
				}
				val, err := ImageFolder(valDir)
				if err != nil {
					return nil, err
				}
				return alignClasses(train, val)
			}
		}
		d, err := ImageFolder(trainDir)
		if err != nil {
			return nil, err
		}
		return splitOne(d, opts)
	}
	d, err := ImageFolder(path)
	if err != nil {
		return nil, err
	}
	return splitOne(d, opts)
}

func splitOne(d *Dataset, opts OpenOptions) (*Splits, error) {
	if opts.ValSplit == 0 {
		return &Splits{Train: d, Layout: "none"}, nil
	}
	train, val, err := d.Split(opts.ValSplit, opts.Seed)
	if err != nil {
		return nil, err
	}
	s := &Splits{Train: train, Val: val, Layout: "split"}
	s.MissingInVal = missing(val)
	return s, nil
}

func missing(val *Dataset) []string {
	var out []string
	for i, n := range val.Counts() {
		if n == 0 {
			out = append(out, val.Classes[i])
		}
	}
	return out
}

// alignClasses relabels val with train's class indices.
func alignClasses(train, val *Dataset) (*Splits, error) {
	index := map[string]int{}
	for i, c := range train.Classes {
		index[c] = i
	}
	var extra []string
	for _, c := range val.Classes {
		if _, ok := index[c]; !ok {
			extra = append(extra, c)
		}
	}
	if len(extra) > 0 {
		return nil, &ClassMismatchError{Dir: val.Root, Extra: extra}
	}
	out := &Dataset{Root: val.Root, Classes: train.Classes}
	for _, s := range val.Samples {
		out.Samples = append(out.Samples, Sample{Path: s.Path, Label: index[val.Classes[s.Label]]})
	}
	return &Splits{Train: train, Val: out, Layout: "folders", MissingInVal: missing(out)}, nil
}

// Relabel returns d with its labels mapped to the class names of classes
// (the order a trained classifier uses), for evaluating a model on a dataset
// read on its own. A class of d absent from classes is a
// *ClassMismatchError.
func (d *Dataset) Relabel(classes []string) (*Dataset, error) {
	s, err := alignClasses(&Dataset{Root: d.Root, Classes: classes}, d)
	if err != nil {
		return nil, err
	}
	return s.Val, nil
}
