//go:build amd64 && !purego

#include "textflag.h"

// func colTGatherAVX512(dst *float32, nr, n int, x *float32, lanes *colTLanes, mask int)
// Writes rows 0..n-1 of up to 16 panel columns of a colTSource panel: row i,
// lane j (bit j of mask set) gets x[idx[j] + i*sw] when lo[j] <= i < lo[j]+width[j]
// and 0 otherwise; rows are nr floats apart. The lanes are gathered with
// 32-bit indices (the caller checks that x is short enough).
TEXT ·colTGatherAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ nr+8(FP), R8
	SHLQ $2, R8                // row stride in bytes
	MOVQ n+16(FP), CX
	MOVQ x+24(FP), SI
	MOVQ lanes+32(FP), AX
	MOVQ mask+40(FP), DX
	KMOVW DX, K2               // the lanes written

	VMOVDQU32 0(AX), Z5        // idx
	VMOVDQU32 64(AX), Z6       // lo
	VMOVDQU32 128(AX), Z7      // width
	VPBROADCASTD 192(AX), Z8   // sw
	VPXORD    Z3, Z3, Z3       // i, in every lane
	MOVL      $1, BX
	VPBROADCASTD BX, Z9        // 1

row:
	TESTQ      CX, CX
	JEQ        done
	VPSUBD     Z6, Z3, Z4      // i - lo
	VPCMPUD    $1, Z7, Z4, K2, K1 // (i - lo) <u width, in the lanes written
	VPXORD     Z0, Z0, Z0
	VPGATHERDD (SI)(Z5*4), K1, Z0
	VMOVUPS    Z0, K2, (DI)
	VPADDD     Z8, Z5, Z5
	VPADDD     Z9, Z3, Z3
	ADDQ       R8, DI
	DECQ       CX
	JMP        row

done:
	VZEROUPPER
	RET
