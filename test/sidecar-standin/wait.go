package main

import (
	"fmt"
	"os"
	"time"
)

// waitReady is `pando-sidecar wait DURATION`: what a pod's own init container runs when it needs
// the sidecar up (test/e2e/node-cases.e2e.ts). It polls the ready file, which the sidecar of the
// same pod writes, until it exists (exit 0, logging how long it waited) or DURATION has passed
// (exit 1). The injected sidecar has no startup probe, so the kubelet starts the next init
// container as soon as the sidecar's process runs, not when it is ready: a one-shot check races.
func waitReady(readyFile string, args []string) {
	timeout := 30 * time.Second
	if len(args) > 0 {
		d, err := time.ParseDuration(args[0])
		if err != nil {
			fmt.Fprintf(os.Stderr, "pando-sidecar wait: %v\n", err)
			os.Exit(2)
		}
		timeout = d
	}
	t0 := time.Now()
	for {
		if _, err := os.Stat(readyFile); err == nil {
			logf("wait: the sidecar is ready (%s) after %d ms", readyFile, time.Since(t0).Milliseconds())
			os.Exit(0)
		}
		if time.Since(t0) >= timeout {
			logf("wait: no sidecar ready file %s after %s; exiting 1", readyFile, timeout)
			os.Exit(1)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
