// shares is the fidelity workload of `cargo xtask bench fidelity`: four functions that take
// known shares of the CPU, with the truth measured by the thread's own CPU clock.
//
//	shares SECONDS PPROF_FILE PPROF_HZ TRUTH_FILE
//
// It calibrates each function alone (ns per iteration), prints "ready PID", waits for a line on
// stdin, then runs SECONDS of work on one locked OS thread calling the functions round-robin with
// iteration counts chosen for 40/30/20/10 % of the CPU, while runtime/pprof profiles it at
// PPROF_HZ. It writes "FUNCTION SHARE CPU_NS" lines (the CPU time really spent in each, from
// CLOCK_THREAD_CPUTIME_ID around every call) to TRUTH_FILE, prints "done" and waits for stdin
// to close, idle, so profilers attached from outside see nothing after the measured phase.
package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

var (
	sink uint64
	mem  = make([]uint64, 1<<19) // 4 MiB
	buf  = make([]byte, 1<<16)
)

//go:noinline
func shareA(n int) uint64 {
	x := sink + 1
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 29
	}
	return x
}

//go:noinline
func shareB(n int) uint64 {
	f := float64(sink%7) + 2
	for i := 0; i < n; i++ {
		f = math.Sqrt(f*f+1.0) * 0.999999
	}
	return uint64(f)
}

//go:noinline
func shareC(n int) uint64 {
	j := sink % uint64(len(mem))
	var acc uint64
	for i := 0; i < n; i++ {
		j = (j*2862933555777941757 + 3037000493) % uint64(len(mem))
		acc += mem[j]
		mem[j] = acc
	}
	return acc
}

//go:noinline
func shareD(n int) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < n; i++ {
		h ^= uint64(buf[i&(len(buf)-1)])
		h *= 1099511628211
	}
	return h
}

var (
	names  = []string{"main.shareA", "main.shareB", "main.shareC", "main.shareD"}
	fns    = []func(int) uint64{shareA, shareB, shareC, shareD}
	shares = []float64{0.40, 0.30, 0.20, 0.10}
)

func threadCPU() int64 {
	var ts syscall.Timespec
	// CLOCK_THREAD_CPUTIME_ID = 3
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: shares SECONDS PPROF_FILE PPROF_HZ TRUTH_FILE")
		os.Exit(2)
	}
	secs, _ := strconv.ParseFloat(os.Args[1], 64)
	hz, _ := strconv.Atoi(os.Args[3])
	runtime.LockOSThread()
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	// Calibration: each function alone.
	nsPerIter := make([]float64, len(fns))
	for i, f := range fns {
		n := 1000
		for {
			t0 := threadCPU()
			sink += f(n)
			dt := threadCPU() - t0
			if dt > 30e6 {
				nsPerIter[i] = float64(dt) / float64(n)
				break
			}
			n *= 2
		}
	}
	const slice = 4e6 // ns of CPU per round
	iters := make([]int, len(fns))
	for i := range fns {
		iters[i] = int(shares[i] * slice / nsPerIter[i])
	}
	fmt.Printf("ready %d\n", os.Getpid())
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(1)
	}
	pf, err := os.Create(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if hz != 100 {
		// StartCPUProfile always asks for 100 Hz; a rate set before it wins (it prints a warning).
		runtime.SetCPUProfileRate(hz)
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	spent := make([]int64, len(fns))
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	for time.Now().Before(deadline) {
		for i, f := range fns {
			t0 := threadCPU()
			sink += f(iters[i])
			spent[i] += threadCPU() - t0
		}
	}
	pprof.StopCPUProfile()
	pf.Close()
	var total int64
	for _, s := range spent {
		total += s
	}
	out := ""
	for i, s := range spent {
		out += fmt.Sprintf("%s %.6f %d\n", names[i], float64(s)/float64(total), s)
	}
	if err := os.WriteFile(os.Args[4], []byte(out), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("done")
	_, _ = in.ReadString('\n')
}
