//go:build amd64 && !purego

#include "textflag.h"

// BatchNorm's float64 sums of float32 data (bnstat.go), AVX2 and FMA:
// VCVTPS2PD widens four floats to four doubles; four accumulators of four
// lanes hide the adds' latency; the lanes are summed at the end.

// HSUM sums the four doubles of Y into the low lane of X (T a temporary).
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T \
	VADDPD       T, X, X  \
	VPERMILPD    $1, X, T \
	VADDSD       T, X, X

// func sumF64AVX2(x *float32, n int) float64
TEXT ·sumF64AVX2(SB), NOSPLIT, $0-24
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3

sum16:
	CMPQ      CX, $16
	JLT       sum4
	VCVTPS2PD (SI), Y4
	VCVTPS2PD 16(SI), Y5
	VCVTPS2PD 32(SI), Y6
	VCVTPS2PD 48(SI), Y7
	VADDPD    Y4, Y0, Y0
	VADDPD    Y5, Y1, Y1
	VADDPD    Y6, Y2, Y2
	VADDPD    Y7, Y3, Y3
	ADDQ      $64, SI
	SUBQ      $16, CX
	JMP       sum16

sum4:
	CMPQ      CX, $4
	JLT       sumred
	VCVTPS2PD (SI), Y4
	VADDPD    Y4, Y0, Y0
	ADDQ      $16, SI
	SUBQ      $4, CX
	JMP       sum4

sumred:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	HSUM(Y0, X0, X1)

sum1:
	TESTQ     CX, CX
	JEQ       sumdone
	VCVTSS2SD (SI), X1, X1
	VADDSD    X1, X0, X0
	ADDQ      $4, SI
	DECQ      CX
	JMP       sum1

sumdone:
	VZEROUPPER
	MOVSD X0, ret+16(FP)
	RET

// func sumSqDevF64AVX2(x *float32, n int, mu float64) float64
TEXT ·sumSqDevF64AVX2(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSD mu+16(FP), Y15
	VXORPD       Y0, Y0, Y0
	VXORPD       Y1, Y1, Y1
	VXORPD       Y2, Y2, Y2
	VXORPD       Y3, Y3, Y3

sq16:
	CMPQ        CX, $16
	JLT         sq4
	VCVTPS2PD   (SI), Y4
	VCVTPS2PD   16(SI), Y5
	VCVTPS2PD   32(SI), Y6
	VCVTPS2PD   48(SI), Y7
	VSUBPD      Y15, Y4, Y4
	VSUBPD      Y15, Y5, Y5
	VSUBPD      Y15, Y6, Y6
	VSUBPD      Y15, Y7, Y7
	VFMADD231PD Y4, Y4, Y0
	VFMADD231PD Y5, Y5, Y1
	VFMADD231PD Y6, Y6, Y2
	VFMADD231PD Y7, Y7, Y3
	ADDQ        $64, SI
	SUBQ        $16, CX
	JMP         sq16

sq4:
	CMPQ        CX, $4
	JLT         sqred
	VCVTPS2PD   (SI), Y4
	VSUBPD      Y15, Y4, Y4
	VFMADD231PD Y4, Y4, Y0
	ADDQ        $16, SI
	SUBQ        $4, CX
	JMP         sq4

sqred:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	VADDPD Y2, Y0, Y0
	HSUM(Y0, X0, X1)

sq1:
	TESTQ       CX, CX
	JEQ         sqdone
	VCVTSS2SD   (SI), X1, X1
	VSUBSD      X15, X1, X1
	VFMADD231SD X1, X1, X0
	ADDQ        $4, SI
	DECQ        CX
	JMP         sq1

sqdone:
	VZEROUPPER
	MOVSD X0, ret+24(FP)
	RET

// func sumDotDevF64AVX2(gp, xp *float32, n int, mu float64) (sg, sgx float64)
TEXT ·sumDotDevF64AVX2(SB), NOSPLIT, $0-48
	MOVQ         gp+0(FP), SI
	MOVQ         xp+8(FP), DX
	MOVQ         n+16(FP), CX
	VBROADCASTSD mu+24(FP), Y15
	VXORPD       Y0, Y0, Y0 // Σg
	VXORPD       Y1, Y1, Y1
	VXORPD       Y2, Y2, Y2 // Σg·(x-mu)
	VXORPD       Y3, Y3, Y3

dot8:
	CMPQ        CX, $8
	JLT         dot4
	VCVTPS2PD   (SI), Y4
	VCVTPS2PD   16(SI), Y5
	VCVTPS2PD   (DX), Y6
	VCVTPS2PD   16(DX), Y7
	VSUBPD      Y15, Y6, Y6
	VSUBPD      Y15, Y7, Y7
	VADDPD      Y4, Y0, Y0
	VADDPD      Y5, Y1, Y1
	VFMADD231PD Y4, Y6, Y2
	VFMADD231PD Y5, Y7, Y3
	ADDQ        $32, SI
	ADDQ        $32, DX
	SUBQ        $8, CX
	JMP         dot8

dot4:
	CMPQ        CX, $4
	JLT         dotred
	VCVTPS2PD   (SI), Y4
	VCVTPS2PD   (DX), Y6
	VSUBPD      Y15, Y6, Y6
	VADDPD      Y4, Y0, Y0
	VFMADD231PD Y4, Y6, Y2
	ADDQ        $16, SI
	ADDQ        $16, DX
	SUBQ        $4, CX
	JMP         dot4

dotred:
	VADDPD Y1, Y0, Y0
	VADDPD Y3, Y2, Y2
	HSUM(Y0, X0, X1)
	HSUM(Y2, X2, X3)

dot1:
	TESTQ       CX, CX
	JEQ         dotdone
	VCVTSS2SD   (SI), X4, X4
	VCVTSS2SD   (DX), X6, X6
	VSUBSD      X15, X6, X6
	VADDSD      X4, X0, X0
	VFMADD231SD X4, X6, X2
	ADDQ        $4, SI
	ADDQ        $4, DX
	DECQ        CX
	JMP         dot1

dotdone:
	VZEROUPPER
	MOVSD X0, sg+32(FP)
	MOVSD X2, sgx+40(FP)
	RET

// func axpbyF64AVX2(dst, gp, xp *float32, n int, a, b, c float64)
// dst[i] = float32(a*g[i] + (b*x[i] + c)), in float64.
TEXT ·axpbyF64AVX2(SB), NOSPLIT, $0-56
	MOVQ         dst+0(FP), DI
	MOVQ         gp+8(FP), SI
	MOVQ         xp+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSD a+32(FP), Y13
	VBROADCASTSD b+40(FP), Y14
	VBROADCASTSD c+48(FP), Y15

ax8:
	CMPQ        CX, $8
	JLT         ax4
	VCVTPS2PD   (SI), Y4
	VCVTPS2PD   16(SI), Y5
	VCVTPS2PD   (DX), Y6
	VCVTPS2PD   16(DX), Y7
	VFMADD213PD Y15, Y14, Y6 // b*x + c
	VFMADD213PD Y15, Y14, Y7
	VFMADD231PD Y4, Y13, Y6  // + a*g
	VFMADD231PD Y5, Y13, Y7
	VCVTPD2PSY  Y6, X6
	VCVTPD2PSY  Y7, X7
	VMOVUPS     X6, (DI)
	VMOVUPS     X7, 16(DI)
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         ax8

ax4:
	CMPQ        CX, $4
	JLT         ax1
	VCVTPS2PD   (SI), Y4
	VCVTPS2PD   (DX), Y6
	VFMADD213PD Y15, Y14, Y6
	VFMADD231PD Y4, Y13, Y6
	VCVTPD2PSY  Y6, X6
	VMOVUPS     X6, (DI)
	ADDQ        $16, SI
	ADDQ        $16, DX
	ADDQ        $16, DI
	SUBQ        $4, CX
	JMP         ax4

ax1:
	TESTQ       CX, CX
	JEQ         axdone
	VCVTSS2SD   (SI), X4, X4
	VCVTSS2SD   (DX), X6, X6
	VFMADD213SD X15, X14, X6
	VFMADD231SD X4, X13, X6
	VCVTSD2SS   X6, X6, X6
	VMOVSS      X6, (DI)
	ADDQ        $4, SI
	ADDQ        $4, DX
	ADDQ        $4, DI
	DECQ        CX
	JMP         ax1

axdone:
	VZEROUPPER
	RET

// func maskGradAVX2(dst, gp, zp *float32, n int, lo, hi float32)
// n a multiple of 8: dst = g where z > lo and not z >= hi, else +0.
TEXT ·maskGradAVX2(SB), NOSPLIT, $0-40
	MOVQ         dst+0(FP), DI
	MOVQ         gp+8(FP), SI
	MOVQ         zp+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSS lo+32(FP), Y14
	VBROADCASTSS hi+36(FP), Y15

mask8:
	TESTQ   CX, CX
	JEQ     maskdone
	VMOVUPS (DX), Y0
	VCMPPS  $0x0E, Y14, Y0, Y1 // z > lo
	VCMPPS  $0x0D, Y15, Y0, Y2 // z >= hi
	VANDNPS Y1, Y2, Y1         // not (z >= hi) and (z > lo)
	VANDPS  (SI), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     mask8

maskdone:
	VZEROUPPER
	RET
