package nn

import "fmt"

// WindowPartitionShifted is WindowPartition(x.Roll([-sh, -sw], [1, 2]), wh,
// ww): Swin's shifted windows of x [B, H, W, C] as [B·nW, wh·ww, C]. When
// no graph is recorded it is one gather of token rows (window token (i, j)
// of window (wy, wx) reads x[(wy·wh+i+sh) mod H, (wx·ww+j+sw) mod W]) in
// place of the roll's copy and the partition's permuted copy; otherwise it
// is composed of those two differentiable ops.
func WindowPartitionShifted(x *Tensor, wh, ww, sh, sw int) *Tensor {
	if x.Dim() != 4 || wh <= 0 || ww <= 0 || x.shape[1]%wh != 0 || x.shape[2]%ww != 0 {
		shapeErr("WindowPartitionShifted", fmt.Sprintf("want [B, H, W, C] with H, W multiples of %dx%d", wh, ww), x.shape)
	}
	if needGrad(x) {
		if sh != 0 || sw != 0 {
			x = x.Roll([]int{-sh, -sw}, []int{1, 2})
		}
		return WindowPartition(x, wh, ww)
	}
	b, h, w, c := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	nwh, nww := h/wh, w/ww
	out := newResultData([]int{b * nwh * nww, wh * ww, c}, false, x)
	windowGather(out.data, x.data, b, h, w, c, wh, ww, sh, sw, false)
	return out
}

// WindowReverseShifted is WindowReverse(x, wh, ww, h, w).Roll([sh, sw], [1,
// 2]): windows [B·nW, wh·ww, C] back into the map [B, h, w, C], rolled back
// by Swin's shift, as one scatter of token rows when no graph is recorded.
func WindowReverseShifted(x *Tensor, wh, ww, h, w, sh, sw int) *Tensor {
	if x.Dim() != 3 || wh <= 0 || ww <= 0 || h%wh != 0 || w%ww != 0 || x.shape[1] != wh*ww || x.shape[0]%((h/wh)*(w/ww)) != 0 {
		shapeErr("WindowReverseShifted", fmt.Sprintf("windows of %dx%d do not tile %dx%d", wh, ww, h, w), x.shape)
	}
	if needGrad(x) {
		y := WindowReverse(x, wh, ww, h, w)
		if sh != 0 || sw != 0 {
			y = y.Roll([]int{sh, sw}, []int{1, 2})
		}
		return y
	}
	c := x.shape[2]
	b := x.shape[0] / ((h / wh) * (w / ww))
	out := newResultData([]int{b, h, w, c}, false, x)
	windowGather(x.data, out.data, b, h, w, c, wh, ww, sh, sw, true)
	return out
}

// windowGather copies the token rows of the map m [b, h, w, c] into the
// windows win [b·nW, wh·ww, c] (back: from the windows into the map), the
// map read at the window position shifted by (sh, sw) modulo its size.
// Windows are spread over the threads.
func windowGather(win, m []float32, b, h, w, c, wh, ww, sh, sw int, back bool) {
	nwh, nww := h/wh, w/ww
	sh, sw = (sh%h+h)%h, (sw%w+w)%w
	nwin := b * nwh * nww
	parallelFor(nwin, nwin*wh*ww*c, func(lo, hi int) {
		for wi := lo; wi < hi; wi++ {
			bi, wy, wx := wi/(nwh*nww), wi/nww%nwh, wi%nww
			for i := range wh {
				y := wy*wh + i + sh
				if y >= h {
					y -= h
				}
				for j := range ww {
					x := wx*ww + j + sw
					if x >= w {
						x -= w
					}
					wr := win[((wi*wh+i)*ww+j)*c:][:c]
					mr := m[((bi*h+y)*w+x)*c:][:c]
					if back {
						copy(mr, wr)
					} else {
						copy(wr, mr)
					}
				}
			}
		}
	})
}
