// Command tasks is the load side of bench/tasks: the same go-beanstalk
// load against each beanstalkd-protocol server given, in one run. For each
// connection count, RUNS times, it goes round the servers: puts N 100-byte
// jobs (put), then reserves and deletes them (reserve+delete); it prints
// the median rate of each cell and the ratio of the first server to the
// others.
// With -push-api it measures push delivery latency instead (push.go).
// With -phase put or -phase rd it runs one phase against one server, so
// that a profiler attached to the server sees that phase alone:
//
//	go run ./bench/tasks -n 20000 -runs 3 pier=127.0.0.1:1 beanstalkd-b=127.0.0.1:2 ...
//	perf stat -e raw_syscalls:sys_enter,context-switches -p <pid> &
//	go run ./bench/tasks -phase put -tube t1 -n 50000 -conns 1 127.0.0.1:1
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	bs "github.com/beanstalkd/go-beanstalk"
)

func main() {
	n := flag.Int("n", 20000, "jobs per cell and run")
	runs := flag.Int("runs", 3, "runs per cell; the median is reported")
	size := flag.Int("size", 100, "job body bytes")
	conns := flag.String("conns", "1,8", "connection counts")
	pids := flag.String("pids", "", "name=pid,...: also report each server's CPU time per job (user+system from /proc, put+reserve+delete, drain included)")
	settle := flag.Duration("settle", 0, "pause between the put and reserve+delete phases (pier: longer than its drain delay, 1s, stores every task in JetStream before it is reserved)")
	phase := flag.String("phase", "", "run one phase only, for profiling a server: put (N jobs onto -tube) or rd (reserve and delete N jobs of -tube); prints jobs/s")
	phaseTube := flag.String("tube", "profile", "the tube of -phase")
	pushAPI := flag.String("push-api", "", "measure push latency instead: the engine API URL ($PIER_TOKEN, -push-gateway, app tasks-python)")
	pushGW := flag.String("push-gateway", "", "the gateway URL, for -push-api")
	pushRate := flag.Int("push-rate", 1000, "tasks/s enqueued, for -push-api")
	pushFor := flag.Duration("push-for", 5*time.Second, "how long to enqueue, for -push-api")
	flag.Parse()
	if *pushAPI != "" {
		p50, p99, n, err := pushLatency(*pushAPI, os.Getenv("PIER_TOKEN"), *pushGW, "localhost", "tasks-python", "email", *pushRate, *pushFor)
		if err != nil {
			fmt.Fprintln(os.Stderr, "push latency:", err)
			os.Exit(1)
		}
		fmt.Printf("push delivery at %d tasks/s (%d tasks, enqueue to handler): p50 %v  p99 %v\n",
			*pushRate, n, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
		return
	}
	if *phase != "" {
		if err := onePhase(*phase, flag.Arg(0), *phaseTube, *n, *size); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: tasks [flags] name=host:port ...")
		os.Exit(2)
	}
	var counts []int
	for _, c := range strings.Split(*conns, ",") {
		var v int
		fmt.Sscan(c, &v)
		counts = append(counts, v)
	}
	body := make([]byte, *size)
	for i := range body {
		body[i] = 'x'
	}
	pidOf := map[string]int{}
	for _, kv := range strings.Split(*pids, ",") {
		if name, v, ok := strings.Cut(kv, "="); ok {
			var pid int
			fmt.Sscan(v, &pid)
			pidOf[name] = pid
		}
	}
	type cell struct{ put, rd, cpu float64 }
	type samples struct{ puts, rds, cpus []float64 }
	results := map[string]map[int]cell{}
	// paired[name][c]: the first server's rate over name's, run by run
	// (the servers take turns within a run, so a ratio of one run is
	// less disturbed by the machine's load changing than a ratio of
	// medians taken over the whole bench).
	type pairs struct{ put, rd []float64 }
	paired := map[string]map[int]*pairs{}
	var names, addrs []string
	for _, arg := range flag.Args() {
		name, addr, _ := strings.Cut(arg, "=")
		names, addrs = append(names, name), append(addrs, addr)
		results[name] = map[int]cell{}
		paired[name] = map[int]*pairs{}
	}
	// Each run goes round the servers in turn, so that a machine whose
	// load changes during the bench weighs on all of them alike.
	for _, c := range counts {
		got := make([]samples, len(names))
		for range *runs {
			for k, name := range names {
				addr := addrs[k]
				cpu0, cpuOK := cpuTime(pidOf[name])
				tube := fmt.Sprintf("bench%d", time.Now().UnixNano()%1e9)
				p, err := put(addr, tube, c, *n, body)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s put: %v\n", name, err)
					os.Exit(1)
				}
				time.Sleep(*settle)
				r, err := reserveDelete(addr, tube, c, *n)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s reserve+delete: %v\n", name, err)
					os.Exit(1)
				}
				got[k].puts, got[k].rds = append(got[k].puts, p), append(got[k].rds, r)
				if cpuOK {
					// Whatever the server does later for these jobs (pier's
					// drain, 1 s behind) counts too.
					time.Sleep(1500 * time.Millisecond)
					cpu1, _ := cpuTime(pidOf[name])
					got[k].cpus = append(got[k].cpus, float64((cpu1-cpu0).Microseconds())/float64(*n))
				}
			}
		}
		for k, name := range names {
			g := got[k]
			pr := &pairs{}
			for i := range g.puts {
				pr.put = append(pr.put, got[0].puts[i]/g.puts[i])
				pr.rd = append(pr.rd, got[0].rds[i]/g.rds[i])
			}
			paired[name][c] = pr
			results[name][c] = cell{median(g.puts), median(g.rds), 0}
			if len(g.cpus) > 0 {
				results[name][c] = cell{median(g.puts), median(g.rds), median(g.cpus)}
			}
			fmt.Fprintf(os.Stderr, "%-16s conns=%d put %8.0f/s  reserve+delete %8.0f/s\n", name, c, median(g.puts), median(g.rds))
		}
	}
	fmt.Printf("jobs/s, median of %d runs of %d jobs of %d bytes", *runs, *n, *size)
	if *settle > 0 {
		fmt.Printf(", %v between put and reserve+delete", *settle)
	}
	fmt.Println()
	fmt.Printf("%-16s", "server")
	for _, c := range counts {
		fmt.Printf(" %12s %15s", fmt.Sprintf("put(%d)", c), fmt.Sprintf("res+del(%d)", c))
	}
	fmt.Println()
	for _, name := range names {
		fmt.Printf("%-16s", name)
		for _, c := range counts {
			fmt.Printf(" %12.0f %15.0f", results[name][c].put, results[name][c].rd)
		}
		fmt.Println()
	}
	if len(pidOf) > 0 {
		fmt.Printf("\nserver CPU µs per job (put + reserve + delete), median\n%-16s", "server")
		for _, c := range counts {
			fmt.Printf(" %12s", fmt.Sprintf("conns=%d", c))
		}
		fmt.Println()
		for _, name := range names {
			fmt.Printf("%-16s", name)
			for _, c := range counts {
				fmt.Printf(" %12.1f", results[name][c].cpu)
			}
			fmt.Println()
		}
		fmt.Println()
	}
	first := names[0]
	for _, other := range names[1:] {
		fmt.Printf("%-16s", first+"/"+other)
		for _, c := range counts {
			fmt.Printf(" %12.2f %15.2f", results[first][c].put/results[other][c].put, results[first][c].rd/results[other][c].rd)
		}
		fmt.Println()
	}
	if *runs > 1 && len(names) > 1 {
		fmt.Printf("\nthe same ratios run by run (the servers take turns in each run): median [lowest-highest]\n")
		for _, other := range names[1:] {
			fmt.Printf("%-16s", first+"/"+other)
			for _, c := range counts {
				pr := paired[other][c]
				fmt.Printf(" %16s %16s", spread(pr.put), spread(pr.rd))
			}
			fmt.Println()
		}
	}
}

// spread renders v as "median [lowest-highest]".
func spread(v []float64) string {
	return fmt.Sprintf("%.2f [%.2f-%.2f]", median(v), slices.Min(v), slices.Max(v))
}

// onePhase runs one phase of the load against addr (host:port or
// name=host:port) on tube, over the first of -conns, and prints its rate:
// a profiler attached to the server sees that phase alone.
func onePhase(phase, addr, tube string, n, size int) error {
	if _, a, ok := strings.Cut(addr, "="); ok {
		addr = a
	}
	conns := 1
	fmt.Sscan(strings.Split(flag.Lookup("conns").Value.String(), ",")[0], &conns)
	var (
		rate float64
		err  error
	)
	switch phase {
	case "put":
		rate, err = put(addr, tube, conns, n, bytes.Repeat([]byte{'x'}, size))
	case "rd":
		rate, err = reserveDelete(addr, tube, conns, n)
	default:
		return fmt.Errorf("-phase %q: want put or rd", phase)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", phase, err)
	}
	fmt.Printf("%s conns=%d: %.0f jobs/s\n", phase, conns, rate)
	return nil
}

// put stores n jobs over conns connections and returns jobs/s.
func put(addr, tube string, conns, n int, body []byte) (float64, error) {
	cs, err := dialAll(addr, conns)
	if err != nil {
		return 0, err
	}
	defer closeAll(cs)
	start := time.Now()
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i, c := range cs {
		share := n / conns
		if i == 0 {
			share += n % conns
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := bs.NewTube(c, tube)
			for range share {
				if _, err := t.Put(body, 0, 0, 2*time.Minute); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// reserveDelete takes and deletes n jobs over conns connections.
func reserveDelete(addr, tube string, conns, n int) (float64, error) {
	cs, err := dialAll(addr, conns)
	if err != nil {
		return 0, err
	}
	defer closeAll(cs)
	var (
		mu   sync.Mutex
		left = n
	)
	start := time.Now()
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := bs.NewTubeSet(c, tube)
			for {
				mu.Lock()
				if left == 0 {
					mu.Unlock()
					return
				}
				left--
				mu.Unlock()
				id, _, err := ts.Reserve(10 * time.Second)
				if err != nil {
					errs <- fmt.Errorf("reserve: %w", err)
					return
				}
				if err := c.Delete(id); err != nil {
					errs <- fmt.Errorf("delete: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func dialAll(addr string, n int) ([]*bs.Conn, error) {
	var cs []*bs.Conn
	for range n {
		c, err := bs.Dial("tcp", addr)
		if err != nil {
			closeAll(cs)
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func closeAll(cs []*bs.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// cpuTime is the user+system CPU time process pid has used so far (from
// /proc/<pid>/stat, in clock ticks of 10 ms); false when unknown.
func cpuTime(pid int) (time.Duration, bool) {
	if pid == 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command name (which may hold spaces), from field 3.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, false
	}
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}
