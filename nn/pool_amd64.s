//go:build amd64 && !purego

#include "textflag.h"

// STEP does 8 floats at AX: dst = b > a ? b : a, then b where b is NaN.
// VMAXPS m, b, r is Intel's MAXPS r, b, m: b when b > m, else m (also when
// either is NaN, or both are zeros), so equal values keep a.
#define STEP(off, rb, rr, rm) \
	VMOVUPS   off(DX)(AX*4), rb \
	VMAXPS    off(SI)(AX*4), rb, rr \
	VCMPPS    $3, rb, rb, rm \
	VBLENDVPS rm, rb, rr, rr \
	VMOVUPS   rr, off(DI)(AX*4)

// func maxKeepFirstAVX2(dst, a, b *float32, n int)
// n >= 8. The last n%8 floats are done by redoing the last 8: the step is
// idempotent (max(max(a, b), b) = max(a, b) here), so this is right also
// when dst is a.
TEXT ·maxKeepFirstAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	XORQ AX, AX
	MOVQ CX, BX
	ANDQ $-32, BX
	JZ   by8

loop32:
	STEP(0, Y0, Y1, Y2)
	STEP(32, Y3, Y4, Y5)
	STEP(64, Y6, Y7, Y8)
	STEP(96, Y9, Y10, Y11)
	ADDQ $32, AX
	CMPQ AX, BX
	JLT  loop32

by8:
	MOVQ CX, BX
	SUBQ $8, BX // start of the last 8

loop8:
	CMPQ AX, BX
	JGT  last
	STEP(0, Y0, Y1, Y2)
	ADDQ $8, AX
	JMP  loop8

last:
	CMPQ AX, CX
	JGE  done
	MOVQ BX, AX
	STEP(0, Y0, Y1, Y2)

done:
	VZEROUPPER
	RET

// STEP16 is STEP on 16 floats, the NaN test into a mask register.
#define STEP16(off, zb, zr) \
	VMOVUPS off(DX)(AX*4), zb \
	VMAXPS  off(SI)(AX*4), zb, zr \
	VCMPPS  $3, zb, zb, K1 \
	VMOVUPS zb, K1, zr \
	VMOVUPS zr, off(DI)(AX*4)

// func maxKeepFirstAVX512(dst, a, b *float32, n int)
// n >= 16; the last n%16 are done by redoing the last 16, as in
// maxKeepFirstAVX2.
TEXT ·maxKeepFirstAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	XORQ AX, AX
	MOVQ CX, BX
	ANDQ $-64, BX
	JZ   z16

zloop64:
	STEP16(0, Z0, Z1)
	STEP16(64, Z2, Z3)
	STEP16(128, Z4, Z5)
	STEP16(192, Z6, Z7)
	ADDQ $64, AX
	CMPQ AX, BX
	JLT  zloop64

z16:
	MOVQ CX, BX
	SUBQ $16, BX // start of the last 16

zloop16:
	CMPQ AX, BX
	JGT  zlast
	STEP16(0, Z0, Z1)
	ADDQ $16, AX
	JMP  zloop16

zlast:
	CMPQ AX, CX
	JGE  zdone
	MOVQ BX, AX
	STEP16(0, Z0, Z1)

zdone:
	VZEROUPPER
	RET

// EVEN8 stores at DI+off the even floats of the 16 at SI+2*off.
#define EVEN8(off, r0, r1) \
	VMOVUPS   (2*off)(SI)(AX*8), r0 \
	VMOVUPS   (2*off+32)(SI)(AX*8), r1 \
	VSHUFPS   $0x88, r1, r0, r0 \
	VPERMPD   $0xd8, r0, r0 \
	VMOVUPS   r0, off(DI)(AX*4)

// func everyOtherAVX2(dst, src *float32, n int)
// n >= 8; the last n%8 are done by redoing the last 8.
TEXT ·everyOtherAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
	MOVQ CX, BX
	ANDQ $-32, BX
	JZ   eby8

eloop32:
	EVEN8(0, Y0, Y1)
	EVEN8(32, Y2, Y3)
	EVEN8(64, Y4, Y5)
	EVEN8(96, Y6, Y7)
	ADDQ $32, AX
	CMPQ AX, BX
	JLT  eloop32

eby8:
	MOVQ CX, BX
	SUBQ $8, BX

eloop8:
	CMPQ AX, BX
	JGT  elast
	EVEN8(0, Y0, Y1)
	ADDQ $8, AX
	JMP  eloop8

elast:
	CMPQ AX, CX
	JGE  edone
	MOVQ BX, AX
	EVEN8(0, Y0, Y1)

edone:
	VZEROUPPER
	RET

// func addToAVX2(dst, src *float32, n int)
// dst[i] += src[i] for i < n, n a multiple of 8.
TEXT ·addToAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
	MOVQ CX, BX
	ANDQ $-32, BX
	JZ   aby8

aloop32:
	VMOVUPS (DI)(AX*4), Y0
	VMOVUPS 32(DI)(AX*4), Y1
	VMOVUPS 64(DI)(AX*4), Y2
	VMOVUPS 96(DI)(AX*4), Y3
	VADDPS  (SI)(AX*4), Y0, Y0
	VADDPS  32(SI)(AX*4), Y1, Y1
	VADDPS  64(SI)(AX*4), Y2, Y2
	VADDPS  96(SI)(AX*4), Y3, Y3
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	VMOVUPS Y2, 64(DI)(AX*4)
	VMOVUPS Y3, 96(DI)(AX*4)
	ADDQ    $32, AX
	CMPQ    AX, BX
	JLT     aloop32

aby8:
	CMPQ AX, CX
	JGE  adone

aloop8:
	VMOVUPS (DI)(AX*4), Y0
	VADDPS  (SI)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	CMPQ    AX, CX
	JLT     aloop8

adone:
	VZEROUPPER
	RET

// EVENADD8 adds to the 8 floats at DI+off the even floats of the 16 at
// SI+2*off.
#define EVENADD8(off, r0, r1) \
	VMOVUPS (2*off)(SI)(AX*8), r0 \
	VMOVUPS (2*off+32)(SI)(AX*8), r1 \
	VSHUFPS $0x88, r1, r0, r0 \
	VPERMPD $0xd8, r0, r0 \
	VADDPS  off(DI)(AX*4), r0, r0 \
	VMOVUPS r0, off(DI)(AX*4)

// func addEvenToAVX2(dst, src *float32, n int)
// dst[i] += src[2*i] for i < n, n a multiple of 8; reads src[:2*n].
TEXT ·addEvenToAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
	MOVQ CX, BX
	ANDQ $-32, BX
	JZ   vby8

vloop32:
	EVENADD8(0, Y0, Y1)
	EVENADD8(32, Y2, Y3)
	EVENADD8(64, Y4, Y5)
	EVENADD8(96, Y6, Y7)
	ADDQ $32, AX
	CMPQ AX, BX
	JLT  vloop32

vby8:
	CMPQ AX, CX
	JGE  vdone

vloop8:
	EVENADD8(0, Y0, Y1)
	ADDQ $8, AX
	CMPQ AX, CX
	JLT  vloop8

vdone:
	VZEROUPPER
	RET

// func divToAVX2(dst, a, b *float32, n int)
// dst[i] = a[i] / b[i] for i < n, n a multiple of 8 (VDIVPS rounds as
// DIVSS does: the same bits as Go's float32 division).
TEXT ·divToAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	XORQ AX, AX

dloop8:
	CMPQ    AX, CX
	JGE     ddone
	VMOVUPS (SI)(AX*4), Y0
	VDIVPS  (DX)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     dloop8

ddone:
	VZEROUPPER
	RET
