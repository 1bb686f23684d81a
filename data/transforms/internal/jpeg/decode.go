package jpeg

import (
	"errors"
	"fmt"
	"image"
	"image/color"
)

// MaxSide is the largest width or height Decode accepts.
const MaxSide = 16384

// DefaultMaxSamples bounds the component samples of a frame (the sum over
// components of their block-padded plane sizes, and for an image of four
// components the full-resolution plane each subsampled one is upsampled to)
// that Decode allocates. Each sample costs 1 byte, and 2 more in a
// progressive file (its coefficients, kept until the last scan).
const DefaultMaxSamples = 1 << 27

// maxScans bounds the scans a file may hold, and maxVisits how many times
// its scans may visit each coefficient on average: a progressive scan walks
// every block of its component even when the file says nothing about them
// (end-of-band runs), so these bound decoding time by frame size. A valid
// scan script visits a coefficient at most 14 times (first scan and 13
// refinements).
const (
	maxScans  = 256
	maxVisits = 16
)

// ErrUnsupported is wrapped by errors for valid JPEG features this package
// does not decode (see the package documentation).
var ErrUnsupported = errors.New("unsupported JPEG feature")

// ErrTooLarge is wrapped by errors for frames over MaxSide or the sample
// budget, which are refused before anything is allocated.
var ErrTooLarge = errors.New("image too large")

func unsupported(what string) error {
	return fmt.Errorf("jpeg: %s: %w", what, ErrUnsupported)
}

// truncated reports data that ends early, or entropy-coded data that runs
// into the next marker, at the current offset.
func (d *decoder) truncated() error {
	return fmt.Errorf("jpeg: truncated or corrupt data at offset %d of %d", d.pos, len(d.data))
}

// Decode decodes a JPEG image held in data with the default sample budget.
// The result is an *image.Gray for one component, an *image.YCbCr for three
// and an *image.CMYK for four; each has its origin at (0, 0).
func Decode(data []byte) (image.Image, error) {
	return DecodeLimit(data, DefaultMaxSamples)
}

// DecodeLimit is Decode with a budget of maxSamples component samples.
func DecodeLimit(data []byte, maxSamples int) (image.Image, error) {
	d := &decoder{data: data, maxSamples: maxSamples}
	if err := d.decode(); err != nil {
		return nil, err
	}
	return d.image()
}

// DecodeConfig returns the size and colour model of the JPEG image held in
// data from its frame header, without decoding it. It refuses what Decode
// refuses up to the frame header (sizes over MaxSide, unsupported frame
// types and sampling factors), but not frames over the sample budget.
func DecodeConfig(data []byte) (image.Config, error) {
	d := &decoder{data: data, maxSamples: DefaultMaxSamples, configOnly: true}
	if err := d.decode(); err != nil {
		return image.Config{}, err
	}
	cfg := image.Config{Width: d.width, Height: d.height, ColorModel: color.YCbCrModel}
	switch len(d.comps) {
	case 1:
		cfg.ColorModel = color.GrayModel
	case 4:
		cfg.ColorModel = color.CMYKModel
	}
	return cfg, nil
}

type component struct {
	id     byte
	h, v   int // sampling factors
	tq     int // quantization table selector
	q      [64]int32
	qSet   bool
	bw, bh int     // blocks per row and column in the MCU-padded plane
	cw, ch int     // samples per row and column that belong to the image
	coef   []int16 // progressive only: 64 per block, natural order
	pix    []uint8 // samples, 8*bw per row
	dcPred int32
	td, ta int // Huffman table selectors of the current scan
	// coefBits[k] is the successive-approximation bit position last
	// decoded for coefficient k (zigzag order), -1 before any scan.
	coefBits [64]int
}

type decoder struct {
	data       []byte
	pos        int
	maxSamples int
	keepCoef   bool // keep sequential coefficients too (tests re-encode them)
	configOnly bool // stop after the frame header, allocating nothing

	frame       bool
	progressive bool
	width       int
	height      int
	comps       []component
	hmax, vmax  int
	mcusX       int
	mcusY       int

	quant    [4][64]int32
	quantSet [4]bool
	huff     [2][4]huffTable

	restartInterval int
	scans           int
	visits, samples int64 // coefficient visits by scans so far; frame size
	jfif            bool
	adobe           bool
	adobeTransform  byte
	ycck            bool // four components coded as YCbCr and K (colorSpace)

	// Entropy decoder state.
	acc    uint64 // bits, most significant first
	nacc   int    // bits in acc
	npad   int    // of those, zero bits appended past the end of the segment
	atEnd  bool   // the segment ended (marker or end of data)
	eobrun int
}

func (d *decoder) u16() (int, error) {
	if d.pos+2 > len(d.data) {
		return 0, d.truncated()
	}
	v := int(d.data[d.pos])<<8 | int(d.data[d.pos+1])
	d.pos += 2
	return v, nil
}

// segment returns the payload of a marker segment whose length field is at
// d.pos, and moves past it.
func (d *decoder) segment() ([]byte, error) {
	n, err := d.u16()
	if err != nil {
		return nil, err
	}
	if n < 2 || d.pos+n-2 > len(d.data) {
		return nil, fmt.Errorf("jpeg: marker segment length %d at offset %d exceeds the data", n, d.pos-2)
	}
	b := d.data[d.pos : d.pos+n-2]
	d.pos += n - 2
	return b, nil
}

// nextMarker skips to the next marker and returns its code. Bytes that are
// not a marker are skipped, as libjpeg does (with a warning).
func (d *decoder) nextMarker() (byte, error) {
	for {
		for d.pos < len(d.data) && d.data[d.pos] != 0xff {
			d.pos++
		}
		for d.pos < len(d.data) && d.data[d.pos] == 0xff {
			d.pos++
		}
		if d.pos >= len(d.data) {
			return 0, d.truncated()
		}
		m := d.data[d.pos]
		d.pos++
		if m != 0 {
			return m, nil
		}
	}
}

func (d *decoder) decode() error {
	if len(d.data) < 2 || d.data[0] != 0xff || d.data[1] != 0xd8 {
		return errors.New("jpeg: missing SOI marker")
	}
	d.pos = 2
	for {
		m, err := d.nextMarker()
		if err != nil {
			return err
		}
		switch {
		case m == 0xd9: // EOI
			if !d.frame || d.scans == 0 {
				return errors.New("jpeg: no image data before EOI")
			}
			return nil
		case m >= 0xd0 && m <= 0xd7, m == 0x01: // RSTn, TEM: no payload
			continue
		case m == 0xc0 || m == 0xc1 || m == 0xc2:
			if d.frame {
				return errors.New("jpeg: more than one frame")
			}
			b, err := d.segment()
			if err != nil {
				return err
			}
			if err := d.sof(b, m == 0xc2); err != nil {
				return err
			}
			if d.configOnly {
				return nil
			}
		case m == 0xc3 || (m >= 0xc5 && m <= 0xcf && m != 0xc8 && m != 0xcc):
			return unsupported(fmt.Sprintf("frame type SOF%d (lossless, hierarchical or arithmetic)", m-0xc0))
		case m == 0xcc:
			return unsupported("arithmetic coding (DAC)")
		case m == 0xdc:
			return unsupported("DNL marker")
		case m == 0xc4:
			b, err := d.segment()
			if err != nil {
				return err
			}
			if err := d.dht(b); err != nil {
				return err
			}
		case m == 0xdb:
			b, err := d.segment()
			if err != nil {
				return err
			}
			if err := d.dqt(b); err != nil {
				return err
			}
		case m == 0xdd:
			b, err := d.segment()
			if err != nil {
				return err
			}
			if len(b) != 2 {
				return errors.New("jpeg: bad DRI length")
			}
			d.restartInterval = int(b[0])<<8 | int(b[1])
		case m == 0xda:
			if !d.frame {
				return errors.New("jpeg: SOS before SOF")
			}
			b, err := d.segment()
			if err != nil {
				return err
			}
			if d.scans++; d.scans > maxScans {
				return fmt.Errorf("jpeg: more than %d scans", maxScans)
			}
			if d.scans == 1 {
				if err := d.colorSpace(); err != nil {
					return err
				}
			}
			if err := d.sos(b); err != nil {
				return err
			}
		case m == 0xe0:
			b, err := d.segment()
			if err != nil {
				return err
			}
			if len(b) >= 5 && string(b[:5]) == "JFIF\x00" {
				d.jfif = true
			}
		case m == 0xee:
			b, err := d.segment()
			if err != nil {
				return err
			}
			if len(b) >= 12 && string(b[:5]) == "Adobe" {
				d.adobe, d.adobeTransform = true, b[11]
			}
		default: // APPn, COM and others with a length
			if _, err := d.segment(); err != nil {
				return err
			}
		}
	}
}

func (d *decoder) sof(b []byte, progressive bool) error {
	if len(b) < 6 {
		return errors.New("jpeg: short SOF segment")
	}
	if b[0] != 8 {
		return unsupported(fmt.Sprintf("%d-bit samples", b[0]))
	}
	d.height = int(b[1])<<8 | int(b[2])
	d.width = int(b[3])<<8 | int(b[4])
	n := int(b[5])
	if d.height == 0 {
		return unsupported("height defined by DNL")
	}
	if d.width == 0 || d.width > MaxSide || d.height > MaxSide {
		return fmt.Errorf("jpeg: image of %dx%d pixels is outside 1..%d per side: %w", d.width, d.height, MaxSide, ErrTooLarge)
	}
	if len(b) != 6+3*n {
		return errors.New("jpeg: bad SOF length")
	}
	if n != 1 && n != 3 && n != 4 {
		return unsupported(fmt.Sprintf("%d components", n))
	}
	d.comps = make([]component, n)
	for i := range d.comps {
		c := &d.comps[i]
		c.id = b[6+3*i]
		c.h, c.v = int(b[7+3*i]>>4), int(b[7+3*i]&15)
		c.tq = int(b[8+3*i])
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return fmt.Errorf("jpeg: component %d has sampling factors %dx%d", i, c.h, c.v)
		}
		if c.tq > 3 {
			return fmt.Errorf("jpeg: component %d uses quantization table %d", i, c.tq)
		}
		for j := range i {
			if d.comps[j].id == c.id {
				return fmt.Errorf("jpeg: duplicate component id %d", c.id)
			}
		}
		d.hmax, d.vmax = max(d.hmax, c.h), max(d.vmax, c.v)
		for k := range c.coefBits {
			c.coefBits[k] = -1
		}
	}
	switch n {
	case 1:
		// A single component is not interleaved: blocks cover the image.
		c := &d.comps[0]
		c.h, c.v, d.hmax, d.vmax = 1, 1, 1, 1
	case 4:
		// CMYK or YCCK: each component is upsampled on its own (Upsample),
		// which libjpeg does for any factors that divide the largest ones
		// (jdsample.c; others it refuses).
		for i, c := range d.comps {
			if d.hmax%c.h != 0 || d.vmax%c.v != 0 {
				return unsupported(fmt.Sprintf("4 components with sampling factors %dx%d of %dx%d (component %d)", c.h, c.v, d.hmax, d.vmax, i))
			}
		}
	default:
		y, cb, cr := d.comps[0], d.comps[1], d.comps[2]
		if cb.h != cr.h || cb.v != cr.v || y.h != d.hmax || y.v != d.vmax ||
			y.h%cb.h != 0 || y.v%cb.v != 0 || y.h/cb.h > 2 || y.v/cb.v > 2 {
			return unsupported(fmt.Sprintf("sampling factors %dx%d,%dx%d,%dx%d", y.h, y.v, cb.h, cb.v, cr.h, cr.v))
		}
	}
	d.mcusX = (d.width + 8*d.hmax - 1) / (8 * d.hmax)
	d.mcusY = (d.height + 8*d.vmax - 1) / (8 * d.vmax)
	total := 0
	for i := range d.comps {
		c := &d.comps[i]
		c.bw, c.bh = d.mcusX*c.h, d.mcusY*c.v
		c.cw = (d.width*c.h + d.hmax - 1) / d.hmax
		c.ch = (d.height*c.v + d.vmax - 1) / d.vmax
		total += 64 * c.bw * c.bh
	}
	d.samples = int64(total)
	if d.configOnly {
		return nil
	}
	if n == 4 {
		// A subsampled component of four is upsampled to a full-resolution
		// plane before the planes are interleaved; count those too.
		for _, c := range d.comps {
			if c.h != d.hmax || c.v != d.vmax {
				total += d.width * d.height
			}
		}
	}
	if total > d.maxSamples {
		return fmt.Errorf("jpeg: %dx%d frame needs %d samples, over the limit of %d: %w", d.width, d.height, total, d.maxSamples, ErrTooLarge)
	}
	for i := range d.comps {
		c := &d.comps[i]
		c.pix = make([]uint8, 64*c.bw*c.bh)
		if progressive || d.keepCoef {
			c.coef = make([]int16, 64*c.bw*c.bh)
		}
	}
	d.frame, d.progressive = true, progressive
	return nil
}

// colorSpace applies libjpeg's guess of an image's colour space from the
// markers before the first scan. Four components are CMYK, or YCCK if an
// Adobe marker has a transform other than 0. Of three, JFIF means YCbCr;
// otherwise an Adobe marker with transform 0, or component ids 'R','G','B',
// mean RGB, which is not decoded here.
func (d *decoder) colorSpace() error {
	if len(d.comps) == 4 {
		// libjpeg-turbo (jdapimin.c): CMYK unless an Adobe marker says
		// otherwise; transform 2 is YCCK, and so is any other non-zero
		// value (with a warning).
		d.ycck = d.adobe && d.adobeTransform != 0
		return nil
	}
	if len(d.comps) != 3 || d.jfif {
		return nil
	}
	if d.adobe {
		if d.adobeTransform == 0 {
			return unsupported("RGB-coded image (Adobe transform 0)")
		}
		return nil
	}
	if d.comps[0].id == 'R' && d.comps[1].id == 'G' && d.comps[2].id == 'B' {
		return unsupported("RGB-coded image (component ids R, G, B)")
	}
	return nil
}

func (d *decoder) dqt(b []byte) error {
	for len(b) > 0 {
		pq, tq := b[0]>>4, int(b[0]&15)
		if tq > 3 || pq > 1 {
			return fmt.Errorf("jpeg: bad DQT table %d precision %d", tq, pq)
		}
		b = b[1:]
		n := 64 * (int(pq) + 1)
		if len(b) < n {
			return errors.New("jpeg: short DQT segment")
		}
		for k := range 64 {
			var v int32
			if pq == 0 {
				v = int32(b[k])
			} else {
				v = int32(b[2*k])<<8 | int32(b[2*k+1])
			}
			d.quant[tq][zigzag[k]] = v
		}
		d.quantSet[tq] = true
		b = b[n:]
	}
	return nil
}

func (d *decoder) sos(b []byte) error {
	if len(b) < 1 {
		return errors.New("jpeg: short SOS segment")
	}
	ns := int(b[0])
	if ns < 1 || ns > len(d.comps) || len(b) != 4+2*ns {
		return errors.New("jpeg: bad SOS segment")
	}
	scan := make([]*component, ns)
	for i := range ns {
		id, t := b[1+2*i], b[2+2*i]
		var c *component
		for j := range d.comps {
			if d.comps[j].id == id {
				c = &d.comps[j]
			}
		}
		if c == nil {
			return fmt.Errorf("jpeg: scan names unknown component %d", id)
		}
		for _, o := range scan[:i] {
			if o == c {
				return fmt.Errorf("jpeg: scan names component %d twice", id)
			}
		}
		c.td, c.ta = int(t>>4), int(t&15)
		if c.td > 3 || c.ta > 3 {
			return errors.New("jpeg: bad Huffman table selector")
		}
		scan[i] = c
	}
	p := b[1+2*ns:]
	ss, se, ah, al := int(p[0]), int(p[1]), int(p[2]>>4), int(p[2]&15)
	if ns > 1 {
		blocks := 0
		for _, c := range scan {
			blocks += c.h * c.v
		}
		if blocks > 10 {
			return errors.New("jpeg: more than 10 blocks in an MCU")
		}
	}
	if d.progressive {
		bad := false
		if ss == 0 {
			bad = se != 0
		} else {
			bad = se < ss || se > 63 || ns != 1
		}
		if ah != 0 && al != ah-1 {
			bad = true
		}
		if al > 13 || bad {
			return fmt.Errorf("jpeg: bad progressive scan Ss=%d Se=%d Ah=%d Al=%d", ss, se, ah, al)
		}
		for _, c := range scan {
			for k := ss; k <= se; k++ {
				c.coefBits[k] = al
			}
		}
	} else {
		ss, se, ah, al = 0, 63, 0, 0
		for _, c := range scan {
			for k := range 64 {
				c.coefBits[k] = 0
			}
		}
	}
	for _, c := range scan {
		d.visits += int64((c.cw+7)/8) * int64((c.ch+7)/8) * int64(se-ss+1)
	}
	if d.visits > maxVisits*d.samples {
		return fmt.Errorf("jpeg: scans visit each coefficient more than %d times", maxVisits)
	}
	for _, c := range scan {
		if !c.qSet {
			if !d.quantSet[c.tq] {
				return fmt.Errorf("jpeg: quantization table %d is not defined", c.tq)
			}
			c.q, c.qSet = d.quant[c.tq], true
		}
		if ss == 0 && ah == 0 {
			if err := d.huff[0][c.td].usable(true); err != nil {
				return err
			}
		}
		if se > 0 {
			if err := d.huff[1][c.ta].usable(false); err != nil {
				return err
			}
		}
	}
	return d.scan(scan, ss, se, ah, al)
}

// idct writes block b of c (row-major in the padded plane) from its
// coefficients.
func (c *component) idct(blk []int16, b int) {
	stride := 8 * c.bw
	idctIslow(blk, &c.q, c.pix[8*(b/c.bw)*stride+8*(b%c.bw):], stride)
}

// image assembles the decoded planes after all scans.
func (d *decoder) image() (image.Image, error) {
	if d.progressive {
		for i := range d.comps {
			// libjpeg smooths blocks of a progressive image when one of its
			// first coefficients is not fully known; that is not done here.
			for k := range 10 {
				if d.comps[i].coefBits[k] != 0 {
					return nil, unsupported("progressive image with incomplete coefficients")
				}
			}
		}
	}
	planes := make([][]uint8, len(d.comps))
	for i := range d.comps {
		c := &d.comps[i]
		if !c.qSet {
			return nil, fmt.Errorf("jpeg: component %d has no scan", i)
		}
		if d.progressive {
			for b := range c.bw * c.bh {
				c.idct(c.coef[64*b:][:64], b)
			}
		}
		planes[i] = c.pix
	}
	r := image.Rect(0, 0, d.width, d.height)
	if len(d.comps) == 1 {
		return &image.Gray{Pix: planes[0], Stride: 8 * d.comps[0].bw, Rect: r}, nil
	}
	if len(d.comps) == 4 {
		return d.cmyk(planes, r), nil
	}
	// Chroma stays at component resolution: package transforms upsamples
	// it as libjpeg-turbo does (Upsample).
	y, cb := d.comps[0], d.comps[1]
	var ratio image.YCbCrSubsampleRatio
	switch [2]int{y.h / cb.h, y.v / cb.v} {
	case [2]int{1, 1}:
		ratio = image.YCbCrSubsampleRatio444
	case [2]int{2, 1}:
		ratio = image.YCbCrSubsampleRatio422
	case [2]int{2, 2}:
		ratio = image.YCbCrSubsampleRatio420
	default: // [1, 2], the only other layout sof accepts
		ratio = image.YCbCrSubsampleRatio440
	}
	return &image.YCbCr{
		Y: planes[0], Cb: planes[1], Cr: planes[2],
		YStride: 8 * y.bw, CStride: 8 * cb.bw,
		SubsampleRatio: ratio, Rect: r,
	}, nil
}

// fullRes returns the plane of component i upsampled to the image's size
// (stride d.width) as libjpeg-turbo upsamples it.
func (d *decoder) fullRes(i int, plane []uint8) []uint8 {
	c := d.comps[i]
	return Upsample(plane, 8*c.bw, c.cw, c.ch, d.hmax/c.h, d.vmax/c.v, d.width, d.height)
}

// cmyk interleaves the four planes of a CMYK or YCCK image, each upsampled
// to full resolution as libjpeg-turbo does it (Upsample), as Pillow opens
// it. libjpeg converts YCCK to CMYK (jdcolor.c ycck_cmyk_convert): C, M
// and Y are 255 minus the red, green and blue that YCbCr -> RGB gives the
// first three components, clamped to 0..255 by the same fixed-point tables;
// K passes through. Pillow then reads every CMYK JPEG as inverted samples
// (raw mode "CMYK;I", the Adobe convention it assumes) and inverts them
// back, so its C, M and Y of a YCCK image are that red, green and blue, and
// its K is 255 minus the file's.
func (d *decoder) cmyk(planes [][]uint8, r image.Rectangle) *image.CMYK {
	var strides [4]int
	for i, c := range d.comps {
		strides[i] = 8 * c.bw
		if c.h != d.hmax || c.v != d.vmax {
			planes[i], strides[i] = d.fullRes(i, planes[i]), d.width
		}
	}
	img := image.NewCMYK(r)
	for y := range d.height {
		row := img.Pix[y*img.Stride:][:4*d.width]
		var in [4][]uint8
		for c := range 4 {
			in[c] = planes[c][y*strides[c]:][:d.width]
		}
		if d.ycck {
			for x := range d.width {
				row[4*x], row[4*x+1], row[4*x+2] = YCbCrToRGB(in[0][x], in[1][x], in[2][x])
				row[4*x+3] = ^in[3][x]
			}
			continue
		}
		for x := range d.width {
			for c := range 4 {
				row[4*x+c] = ^in[c][x]
			}
		}
	}
	return img
}

// zigzag maps the k-th coefficient in zigzag (file) order to its natural
// (row-major) position; entries 64..79 absorb run lengths that overshoot the
// block in corrupt data, as libjpeg's table does.
var zigzag = [80]int{
	0, 1, 8, 16, 9, 2, 3, 10,
	17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34,
	27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36,
	29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46,
	53, 60, 61, 54, 47, 55, 62, 63,
	63, 63, 63, 63, 63, 63, 63, 63,
	63, 63, 63, 63, 63, 63, 63, 63,
}
