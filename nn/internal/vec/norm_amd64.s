//go:build amd64 && !purego

#include "textflag.h"

// func sumSqDevAVX2(p *float32, n int, mu float32) float32
// The sum of (p[i]-mu)² over i < n in float32: sixteen lanes, a pairwise
// reduction, then the tail in order.
TEXT ·sumSqDevAVX2(SB), NOSPLIT, $0-28
	MOVQ         p+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS mu+16(FP), Y2
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1

ssd16:
	CMPQ        CX, $16
	JLT         ssd8
	VMOVUPS     (SI), Y3
	VMOVUPS     32(SI), Y4
	VSUBPS      Y2, Y3, Y3
	VSUBPS      Y2, Y4, Y4
	VFMADD231PS Y3, Y3, Y0
	VFMADD231PS Y4, Y4, Y1
	ADDQ        $64, SI
	SUBQ        $16, CX
	JMP         ssd16

ssd8:
	CMPQ        CX, $8
	JLT         ssdreduce
	VMOVUPS     (SI), Y3
	VSUBPS      Y2, Y3, Y3
	VFMADD231PS Y3, Y3, Y0
	ADDQ        $32, SI
	SUBQ        $8, CX

ssdreduce:
	VADDPS       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VADDPS       X1, X0, X0

ssdtail:
	TESTQ       CX, CX
	JZ          ssddone
	VMOVSS      (SI), X3
	VSUBSS      X2, X3, X3
	VFMADD231SS X3, X3, X0
	ADDQ        $4, SI
	DECQ        CX
	JMP         ssdtail

ssddone:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func normAffineAVX2(dst, src, w, b *float32, n int, a, c float32)
// dst[i] = (src[i]·a + c)·w[i] + b[i] for i < n, both steps fused
// multiply-adds.
TEXT ·normAffineAVX2(SB), NOSPLIT, $0-48
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         w+16(FP), R8
	MOVQ         b+24(FP), R9
	MOVQ         n+32(FP), CX
	VBROADCASTSS a+40(FP), Y4
	VBROADCASTSS c+44(FP), Y5

na8:
	CMPQ        CX, $8
	JLT         natail
	VMOVUPS     (SI), Y0
	VFMADD213PS Y5, Y4, Y0
	VMOVUPS     (R8), Y1
	VFMADD213PS (R9), Y1, Y0
	VMOVUPS     Y0, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	ADDQ        $32, R8
	ADDQ        $32, R9
	SUBQ        $8, CX
	JMP         na8

natail:
	TESTQ       CX, CX
	JZ          nadone
	VMOVSS      (SI), X0
	VFMADD213SS X5, X4, X0
	VMOVSS      (R8), X1
	VFMADD213SS (R9), X1, X0
	VMOVSS      X0, (DI)
	ADDQ        $4, SI
	ADDQ        $4, DI
	ADDQ        $4, R8
	ADDQ        $4, R9
	DECQ        CX
	JMP         natail

nadone:
	VZEROUPPER
	RET
