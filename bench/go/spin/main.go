// spin is the CPU-bound workload of `cargo xtask bench`.
//
//	spin calibrate THREADS               prints how many work units THREADS goroutines do per second
//	spin fixed UNITS THREADS OUTFILE     does UNITS units split over THREADS goroutines, then writes
//	                                     "wall_ns cpu_ns" (the work only, not process start) to OUTFILE
//	spin busy SECONDS THREADS DEPTH      keeps THREADS goroutines busy for SECONDS, each running its
//	                                     work under DEPTH extra frames of recursion; prints "ready PID"
//
// One unit is a 6-level call tree through 8 different non-inlined functions picked by the data,
// so the stacks vary (8^6 paths) the way a real program's do, not one hot loop.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const treeDepth = 6

var sinks [64]uint64

//go:noinline
func f0(d int, x uint64) uint64 {
	for i := 0; i < 48; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return step(d-1, x)
}

//go:noinline
func f1(d int, x uint64) uint64 {
	for i := 0; i < 48; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return step(d-1, x)
}

//go:noinline
func f2(d int, x uint64) uint64 {
	for i := 0; i < 40; i++ {
		x = (x >> 3) | (x << 61)
		x += 0x9e3779b97f4a7c15
	}
	return step(d-1, x)
}

//go:noinline
func f3(d int, x uint64) uint64 {
	var buf [16]uint64
	for i := range buf {
		buf[i] = x + uint64(i)*0x2545F4914F6CDD1D
	}
	for i := 0; i < 3; i++ {
		for j := range buf {
			x ^= buf[j] * uint64(2*j+1)
		}
	}
	return step(d-1, x)
}

//go:noinline
func f4(d int, x uint64) uint64 {
	f := float64(x%1000) + 1.5
	for i := 0; i < 32; i++ {
		f = f*1.0000001 + 0.5
	}
	return step(d-1, x+uint64(f))
}

//go:noinline
func f5(d int, x uint64) uint64 {
	for i := 0; i < 48; i++ {
		x = x*2862933555777941757 + 3037000493
	}
	return step(d-1, x)
}

//go:noinline
func f6(d int, x uint64) uint64 {
	for i := 0; i < 24; i++ {
		x += x / (uint64(i) | 7)
	}
	return step(d-1, x^0xdeadbeef)
}

//go:noinline
func f7(d int, x uint64) uint64 {
	for i := 0; i < 48; i++ {
		x = x ^ (x >> 11) + 0x632BE59BD9B4E019
	}
	return step(d-1, x)
}

func step(d int, x uint64) uint64 {
	if d == 0 {
		return x
	}
	x = x*0xd1342543de82ef95 + 1
	switch x >> 61 {
	case 0:
		return f0(d, x)
	case 1:
		return f1(d, x)
	case 2:
		return f2(d, x)
	case 3:
		return f3(d, x)
	case 4:
		return f4(d, x)
	case 5:
		return f5(d, x)
	case 6:
		return f6(d, x)
	default:
		return f7(d, x)
	}
}

func units(n int, seed uint64) uint64 {
	x := seed
	for i := 0; i < n; i++ {
		x = step(treeDepth, x+uint64(i))
	}
	return x
}

// pad recurses depth frames deep, then runs fn there.
//
//go:noinline
func pad(depth int, fn func()) {
	if depth <= 0 {
		fn()
		return
	}
	pad(depth-1, fn)
}

func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func fixed(total, threads int) (time.Duration, int64) {
	cpu0 := cpuNanos()
	t0 := time.Now()
	var wg sync.WaitGroup
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			sinks[t*8] = units(total/threads, uint64(t)+1)
		}(t)
	}
	wg.Wait()
	return time.Since(t0), cpuNanos() - cpu0
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: spin calibrate THREADS | fixed UNITS THREADS OUTFILE | busy SECONDS THREADS DEPTH [labels]")
		os.Exit(2)
	}
	arg := func(i int) int {
		v, err := strconv.Atoi(os.Args[i])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		return v
	}
	switch os.Args[1] {
	case "calibrate":
		threads := arg(2)
		n := 1000
		for {
			wall, _ := fixed(n, threads)
			if wall > 300*time.Millisecond {
				fmt.Println(int64(float64(n) / wall.Seconds()))
				return
			}
			n *= 2
		}
	case "fixed":
		wall, cpu := fixed(arg(2), arg(3))
		if err := os.WriteFile(os.Args[4], []byte(fmt.Sprintf("%d %d\n", wall.Nanoseconds(), cpu)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "busy":
		secs, threads, depth := arg(2), arg(3), arg(4)
		// "labels": each goroutine runs under three pprof labels, as a traced request
		// handler does (what the kernel reads per sample).
		labelled := len(os.Args) > 5 && os.Args[5] == "labels"
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		var wg sync.WaitGroup
		for t := 0; t < threads; t++ {
			wg.Add(1)
			go func(t int) {
				defer wg.Done()
				work := func() {
					pad(depth, func() {
						for time.Now().Before(deadline) {
							sinks[t*8] += units(200, sinks[t*8]+1)
						}
					})
				}
				if !labelled {
					work()
					return
				}
				pprof.Do(context.Background(), pprof.Labels(
					"trace_id", fmt.Sprintf("4bf92f3577b34da6a3ce929d0e0e%04x", t),
					"span_id", fmt.Sprintf("00f067aa0ba9%04x", t),
					"worker", strconv.Itoa(t),
				), func(context.Context) { work() })
			}(t)
		}
		fmt.Printf("ready %d\n", os.Getpid())
		wg.Wait()
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
