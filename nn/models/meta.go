package models

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/ckptkit/ckpt/data/transforms"
)

// torchvision_meta.json is written by testdata/gen/models_meta.py from
// torchvision 0.14 itself: every classification builder's weights with their
// transforms, parameter counts and accuracies, and the ImageNet class names.
//
//go:embed torchvision_meta.json
var metaJSON []byte

// WeightsInfo is what torchvision records about one set of published weights
// (a member of an enum such as ResNet50_Weights).
type WeightsInfo struct {
	// Name is the enum member, e.g. "IMAGENET1K_V1".
	Name       string
	Preprocess Preprocess
	// NumParams is the architecture's parameter count with these weights.
	NumParams int
	// NumClasses is the number of categories (0 when torchvision lists none).
	NumClasses int
	// Acc1 and Acc5 are the ImageNet-1K top-1 and top-5 accuracies (%) that
	// torchvision reports; 0 when it reports none.
	Acc1, Acc5 float64
}

type metaWeights struct {
	ResizeSize    int        `json:"resize_size"`
	CropSize      int        `json:"crop_size"`
	Interpolation string     `json:"interpolation"`
	Mean          [3]float32 `json:"mean"`
	Std           [3]float32 `json:"std"`
	NumParams     int        `json:"num_params"`
	NumClasses    int        `json:"num_classes"`
	Acc1          float64    `json:"acc1"`
	Acc5          float64    `json:"acc5"`
}

type metaModel struct {
	Default string                 `json:"default"`
	Weights map[string]metaWeights `json:"weights"`
}

type metaFile struct {
	Torchvision string               `json:"torchvision"`
	Models      map[string]metaModel `json:"models"`
	Categories  []string             `json:"categories"`
}

var meta = sync.OnceValue(func() *metaFile {
	var m metaFile
	if err := json.Unmarshal(metaJSON, &m); err != nil {
		panic(fmt.Sprintf("models: embedded torchvision_meta.json: %v", err)) // a build defect
	}
	return &m
})

func (w metaWeights) info(name string) WeightsInfo {
	return WeightsInfo{
		Name: name,
		Preprocess: Preprocess{ResizeSize: w.ResizeSize, CropSize: w.CropSize,
			Interpolation: transforms.Interpolation(w.Interpolation), Mean: w.Mean, Std: w.Std},
		NumParams: w.NumParams, NumClasses: w.NumClasses, Acc1: w.Acc1, Acc5: w.Acc5,
	}
}

// generatedPreprocess returns the transform of name's IMAGENET1K_V1 weights
// (or its default weights when it has no V1).
func generatedPreprocess(name string) (Preprocess, bool) {
	m, ok := meta().Models[name]
	if !ok {
		return Preprocess{}, false
	}
	w, ok := m.Weights[m.Default]
	if !ok {
		return Preprocess{}, false
	}
	return w.info(m.Default).Preprocess, true
}

// Weights lists what torchvision 0.14 publishes for architecture name (any
// torchvision classification builder, registered here or not), the
// IMAGENET1K_V1 weights first, then the others by name.
func Weights(name string) ([]WeightsInfo, error) {
	m, ok := meta().Models[name]
	if !ok {
		var all []string
		for n := range meta().Models {
			all = append(all, n)
		}
		sort.Strings(all)
		return nil, &UnknownError{Name: name, Close: closeNames(name, all)}
	}
	var names []string
	for n := range m.Weights {
		if n != m.Default {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	names = append([]string{m.Default}, names...)
	out := make([]WeightsInfo, len(names))
	for i, n := range names {
		out[i] = m.Weights[n].info(n)
	}
	return out, nil
}

// ImageNetClasses returns the 1000 ImageNet-1K class names in index order,
// as torchvision lists them (torchvision.models._meta._IMAGENET_CATEGORIES).
// The caller may modify the returned slice.
func ImageNetClasses() []string {
	return append([]string(nil), meta().Categories...)
}
