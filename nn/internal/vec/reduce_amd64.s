//go:build amd64 && !purego

#include "textflag.h"

// func maxAVX2(p *float32, n int) float32
// The largest of p[0..n), n >= 1, with VMAXPS's operand rule (a NaN is not
// reliably propagated).
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ         p+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS (SI), Y0
	VMOVAPS      Y0, Y1

max16:
	CMPQ   CX, $16
	JLT    max8
	VMAXPS (SI), Y0, Y0
	VMAXPS 32(SI), Y1, Y1
	ADDQ   $64, SI
	SUBQ   $16, CX
	JMP    max16

max8:
	CMPQ   CX, $8
	JLT    maxreduce
	VMAXPS (SI), Y0, Y0
	ADDQ   $32, SI
	SUBQ   $8, CX

maxreduce:
	VMAXPS       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0

maxtail:
	TESTQ  CX, CX
	JZ     maxdone
	VMAXSS (SI), X0, X0
	ADDQ   $4, SI
	DECQ   CX
	JMP    maxtail

maxdone:
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// func sumAVX2(p *float32, n int) float32
// The sum of p[0..n) in float32, sixteen lanes then a pairwise reduction,
// then the tail in order.
TEXT ·sumAVX2(SB), NOSPLIT, $0-20
	MOVQ   p+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1

sum16:
	CMPQ   CX, $16
	JLT    sum8
	VADDPS (SI), Y0, Y0
	VADDPS 32(SI), Y1, Y1
	ADDQ   $64, SI
	SUBQ   $16, CX
	JMP    sum16

sum8:
	CMPQ   CX, $8
	JLT    sumreduce
	VADDPS (SI), Y0, Y0
	ADDQ   $32, SI
	SUBQ   $8, CX

sumreduce:
	VADDPS       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VADDPS       X1, X0, X0

sumtail:
	TESTQ  CX, CX
	JZ     sumdone
	VADDSS (SI), X0, X0
	ADDQ   $4, SI
	DECQ   CX
	JMP    sumtail

sumdone:
	VZEROUPPER
	MOVSS X0, ret+16(FP)
	RET

// func addAVX2(dst, src *float32, n int)
// dst[i] += src[i] for i < n.
TEXT ·addAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

add16:
	CMPQ    CX, $16
	JLT     add8
	VMOVUPS (DI), Y1
	VMOVUPS 32(DI), Y2
	VADDPS  (SI), Y1, Y1
	VADDPS  32(SI), Y2, Y2
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	ADDQ    $64, DI
	ADDQ    $64, SI
	SUBQ    $16, CX
	JMP     add16

add8:
	CMPQ    CX, $8
	JLT     addtail
	VMOVUPS (DI), Y1
	VADDPS  (SI), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	SUBQ    $8, CX

addtail:
	TESTQ  CX, CX
	JZ     adddone
	VMOVSS (DI), X1
	VADDSS (SI), X1, X1
	VMOVSS X1, (DI)
	ADDQ   $4, DI
	ADDQ   $4, SI
	DECQ   CX
	JMP    addtail

adddone:
	VZEROUPPER
	RET
