// A stand-in for the PandoCore sidecar, for the e2e on a real node (never a chart default: the
// default stays the vendor's image). It behaves as the contract (app/contract.ts) says the sidecar
// does, so that a pod breaks on the node the way it would with the real one:
//   - PANDO_LICENSE_KEY missing or empty: one clear log line, exit 1 (the key is never printed);
//   - logs its PANDO_MODE;
//   - writes a ready file (PANDO_READY_FILE, default /dev/shm/pando-sidecar-ready: /dev/shm stays
//     writable on a read-only root) that `pando-sidecar probe` checks, for an exec probe, and that
//     `pando-sidecar wait DURATION` waits for (a pod's own init container, wait.go);
//   - runs as uid 65532 (the image's user) and writes nothing else;
//   - sleeps until SIGTERM or SIGINT and exits 0.
//
// Two variables only the stand-in's images set (build-node.sh writes one image per version), so
// that versions of the sidecar differ on the node the way real releases do:
//   - PANDO_STANDIN_VERSION: logged at start (each version is its own image, so the kubelet reports
//     the tag the pod asked for);
//   - PANDO_STANDIN_CRASH: the bad version: logs why, then exits 1 at once, every start, so the
//     kubelet restarts it with back-off (CrashLoopBackOff);
//   - PANDO_STANDIN_ALLOC_MIB: the greedy version: 2 s after it is ready (so the kubelet reports it
//     running and ready first), it allocates and touches that many MiB (logged before and, if it
//     survives, after) and keeps them, so a memory limit below that makes the kernel kill it
//     (OOMKilled, exit 137) at every start.
//   - PANDO_STANDIN_READY_DELAY: the slow version: runs this long (a Go duration) before it writes
//     the ready file, as a real sidecar loading its policy does (test/e2e/node-startup-probe.e2e.ts).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

const defaultReadyFile = "/dev/shm/pando-sidecar-ready"

func logf(format string, args ...any) { fmt.Fprintf(os.Stdout, "pando-sidecar: "+format+"\n", args...) }

func main() {
	readyFile := os.Getenv("PANDO_READY_FILE")
	if readyFile == "" {
		readyFile = defaultReadyFile
	}
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		if _, err := os.Stat(readyFile); err != nil {
			fmt.Fprintf(os.Stderr, "pando-sidecar: not ready: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "wait" {
		waitReady(readyFile, os.Args[2:])
	}
	version := os.Getenv("PANDO_STANDIN_VERSION")
	if why := os.Getenv("PANDO_STANDIN_CRASH"); why != "" {
		logf("version=%s is built to crash (PANDO_STANDIN_CRASH: %s); exiting 1", version, why)
		os.Exit(1)
	}
	mode := os.Getenv("PANDO_MODE")
	if mode == "" {
		mode = "monitor"
	}
	if os.Getenv("PANDO_LICENSE_KEY") == "" {
		logf("PANDO_LICENSE_KEY is missing or empty: the license Secret (pando-license, key license-key) must be readable; exiting 1")
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	logf("mode=%s uid=%d (license key present)", mode, os.Getuid())
	if version != "" {
		logf("version=%s", version)
	}
	if delay := os.Getenv("PANDO_STANDIN_READY_DELAY"); delay != "" {
		d, err := time.ParseDuration(delay)
		if err != nil {
			logf("PANDO_STANDIN_READY_DELAY=%q is not a duration; exiting 1", delay)
			os.Exit(1)
		}
		logf("getting ready (%s)", d)
		select {
		case <-time.After(d):
		case s := <-stop:
			logf("%s before ready: exiting 0", s)
			os.Exit(0)
		}
	}
	if err := os.WriteFile(readyFile, []byte(mode+"\n"), 0o644); err != nil {
		logf("cannot write the ready file %s: %v; exiting 1", readyFile, err)
		os.Exit(1)
	}
	logf("ready (%s)", readyFile)
	held := allocate(version)
	s := <-stop
	runtime.KeepAlive(held)
	_ = os.Remove(readyFile)
	logf("%s: exiting 0", s)
}

// allocate waits 2 s, then allocates and touches PANDO_STANDIN_ALLOC_MIB MiB (none when unset) and
// returns them, so that they stay resident in the container's memory cgroup.
func allocate(version string) []byte {
	v := os.Getenv("PANDO_STANDIN_ALLOC_MIB")
	if v == "" {
		return nil
	}
	mib, err := strconv.Atoi(v)
	if err != nil || mib <= 0 {
		logf("PANDO_STANDIN_ALLOC_MIB=%q is not a positive number of MiB; allocating nothing", v)
		return nil
	}
	time.Sleep(2 * time.Second)
	logf("version=%s allocating and touching %d MiB (PANDO_STANDIN_ALLOC_MIB)", version, mib)
	buf := make([]byte, mib<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	logf("holding %d MiB", mib)
	return buf
}
