// The node's CNI plugin: it creates nothing and reports an eth0 with 127.0.0.1/8, so that every pod
// gets its own network namespace with only lo, and no address of any other range is ever used.
// containerd 1.6's CRI refuses a sandbox whose CNI result names no eth0 with an IP (a conflist with
// only the loopback plugin fails every pod with "failed to find network info for sandbox").
// The CNI spec: CNI_COMMAND is ADD, DEL, CHECK or VERSION; the network config comes on stdin.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	conf := map[string]any{}
	if in, err := io.ReadAll(os.Stdin); err == nil && len(in) > 0 {
		_ = json.Unmarshal(in, &conf)
	}
	version, _ := conf["cniVersion"].(string)
	if version == "" {
		version = "1.0.0"
	}
	out := json.NewEncoder(os.Stdout)
	switch os.Getenv("CNI_COMMAND") {
	case "ADD":
		netns := os.Getenv("CNI_NETNS")
		_ = out.Encode(map[string]any{
			"cniVersion": version,
			"interfaces": []map[string]any{{"name": "eth0", "sandbox": netns}},
			"ips":        []map[string]any{{"address": "127.0.0.1/8", "interface": 0}},
		})
	case "DEL", "CHECK":
		// Nothing was created, so nothing to delete or check.
	case "VERSION":
		_ = out.Encode(map[string]any{"cniVersion": version, "supportedVersions": []string{"0.4.0", "1.0.0"}})
	default:
		fmt.Fprintf(os.Stderr, "pando-cni: unknown CNI_COMMAND %q\n", os.Getenv("CNI_COMMAND"))
		os.Exit(1)
	}
}
