// many parks N goroutines (the dump benchmark's target): each blocks on a channel, a mutex,
// a select or a sleep at a call depth of 1 to 16, some under pprof labels; one goroutine
// spins so the process is not idle. It prints "ready PID" once all are parked, then waits.
//
// Usage: many N
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"
)

var parked sync.WaitGroup
var block = make(chan int)
var mu sync.Mutex

//go:noinline
func descend(depth, kind int) {
	if depth > 0 {
		descend(depth-1, kind)
		return
	}
	parked.Done()
	switch kind {
	case 0:
		<-block
	case 1:
		mu.Lock()
	case 2:
		select {
		case <-block:
		case <-time.After(24 * time.Hour):
		}
	default:
		time.Sleep(24 * time.Hour)
	}
}

//go:noinline
func spin() {
	x := 0
	for {
		x++
	}
}

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil {
		panic(err)
	}
	mu.Lock()
	parked.Add(n)
	for i := 0; i < n; i++ {
		i := i
		if i%10 == 0 {
			labels := pprof.Labels("shard", strconv.Itoa(i%7), "job", "bench")
			go pprof.Do(context.Background(), labels, func(context.Context) { descend(1+i%16, i%4) })
		} else {
			go descend(1+i%16, i%4)
		}
	}
	go spin()
	parked.Wait()
	time.Sleep(200 * time.Millisecond)
	fmt.Printf("ready %d\n", os.Getpid())
	select {}
}
