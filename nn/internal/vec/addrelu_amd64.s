//go:build amd64 && !purego

#include "textflag.h"

// func addReLUAVX2(dst, src *float32, n int)
// dst[i] = max(dst[i]+src[i], 0) with VMAXPS's operand rule: the sum is
// returned when it is NaN or any zero, so NaN and -0 pass through as torch's
// relu leaves them.
TEXT ·addReLUAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0

loop32:
	CMPQ CX, $32
	JLT  loop8
	VMOVUPS (DI), Y1
	VMOVUPS 32(DI), Y2
	VMOVUPS 64(DI), Y3
	VMOVUPS 96(DI), Y4
	VADDPS  (SI), Y1, Y1
	VADDPS  32(SI), Y2, Y2
	VADDPS  64(SI), Y3, Y3
	VADDPS  96(SI), Y4, Y4
	VMAXPS  Y1, Y0, Y1
	VMAXPS  Y2, Y0, Y2
	VMAXPS  Y3, Y0, Y3
	VMAXPS  Y4, Y0, Y4
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	VMOVUPS Y3, 64(DI)
	VMOVUPS Y4, 96(DI)
	ADDQ    $128, DI
	ADDQ    $128, SI
	SUBQ    $32, CX
	JMP     loop32

loop8:
	CMPQ CX, $8
	JLT  tail
	VMOVUPS (DI), Y1
	VADDPS  (SI), Y1, Y1
	VMAXPS  Y1, Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     loop8

tail:
	TESTQ CX, CX
	JZ    done
	VMOVSS (DI), X1
	VADDSS (SI), X1, X1
	VMAXSS X1, X0, X1
	VMOVSS X1, (DI)
	ADDQ   $4, DI
	ADDQ   $4, SI
	DECQ   CX
	JMP    tail

done:
	VZEROUPPER
	RET
