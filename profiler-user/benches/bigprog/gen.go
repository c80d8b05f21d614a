package main

// Generated-size code for the bench: L0..L11 double the number of distinct generic shapes at
// every level (P[T, int8] and P[T, int16] have different layouts), so Heavy is compiled
// 2^12 times, each with inlined helpers: many functions, inline trees and a big pclntab.

import (
	"fmt"
	"sort"
	"strings"
)

type P[A, B any] struct {
	a A
	b B
}

func add3(x int) int      { return x*3 + 1 }
func twice(x int) int     { return add3(x) + add3(x+1) }
func mix(s string) string { return strings.ToUpper(s) + fmt.Sprint(twice(len(s))) }

// Heavy is big enough not to be inlined itself.
func Heavy[T any](x T, n int) int {
	s := fmt.Sprintf("%v", x)
	parts := strings.Split(s, " ")
	sort.Strings(parts)
	total := 0
	for i, p := range parts {
		total += twice(len(mix(p))) * (i + 1)
		if total > n*1000 {
			total -= add3(n)
		}
	}
	m := map[string]int{}
	for _, p := range parts {
		m[p] += len(p)
	}
	for k, v := range m {
		total += len(k) * v
	}
	return total
}

//go:noinline
func L0[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L1[P[T, int8]](P[T, int8]{a: x}, n-1) + L1[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L1[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L2[P[T, int8]](P[T, int8]{a: x}, n-1) + L2[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L2[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L3[P[T, int8]](P[T, int8]{a: x}, n-1) + L3[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L3[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L4[P[T, int8]](P[T, int8]{a: x}, n-1) + L4[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L4[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L5[P[T, int8]](P[T, int8]{a: x}, n-1) + L5[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L5[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L6[P[T, int8]](P[T, int8]{a: x}, n-1) + L6[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L6[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L7[P[T, int8]](P[T, int8]{a: x}, n-1) + L7[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L7[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L8[P[T, int8]](P[T, int8]{a: x}, n-1) + L8[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L8[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L9[P[T, int8]](P[T, int8]{a: x}, n-1) + L9[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L9[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L10[P[T, int8]](P[T, int8]{a: x}, n-1) + L10[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L10[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + L11[P[T, int8]](P[T, int8]{a: x}, n-1) + L11[P[T, int16]](P[T, int16]{a: x}, n-2)
}

//go:noinline
func L11[T any](x T, n int) int {
	if n < -36 {
		return 0
	}
	return Heavy(x, n) + 0
}

func generated(n int) int { return L0[int](n, n) }
