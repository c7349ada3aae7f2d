// The node's pause image (containerd's sandbox_image) and the e2e's app container: built here,
// never pulled. With no argument it waits for SIGTERM or SIGINT and exits 0, as the Kubernetes pause
// program does; with a duration (e.g. "3s") it exits 0 after that long, which a Job's container needs.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	// As PID 1 of a sandbox, reap whatever is re-parented here.
	signal.Ignore(syscall.SIGCHLD)
	var after <-chan time.Time
	if len(os.Args) > 1 {
		d, err := time.ParseDuration(os.Args[1])
		if err != nil {
			fmt.Fprintf(os.Stderr, "pause: %v\n", err)
			os.Exit(2)
		}
		fmt.Printf("pause: exiting 0 in %s\n", d)
		after = time.After(d)
	}
	select {
	case s := <-stop:
		fmt.Printf("pause: %s, exiting 0\n", s)
	case <-after:
		fmt.Println("pause: done")
	}
}
