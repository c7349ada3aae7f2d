// Writes a single-layer OCI image-layout tar from static binaries, for `ctr images import`: the
// node's images are built here, never pulled. Reproducible: fixed timestamps and owners.
//
//	ociimage -out img.tar -name pando.test/pause:1 -entrypoint /pause -user 65532 -file SRC:/pause [-env K=V]
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

var epoch = time.Unix(0, 0).UTC()

func digest(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

func main() {
	out := flag.String("out", "", "the tar to write")
	name := flag.String("name", "", "the image name (io.containerd.image.name)")
	entrypoint := flag.String("entrypoint", "", "the image's entrypoint")
	user := flag.String("user", "", "the image's user (uid or uid:gid)")
	var fs, env files
	flag.Var(&fs, "file", "SRC:DEST, a file put in the layer with mode 0755 (repeatable)")
	flag.Var(&env, "env", "K=V, an environment variable of the image's config beside PATH=/ (repeatable)")
	flag.Parse()
	if *out == "" || *name == "" || len(fs) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	for _, e := range env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			fmt.Fprintf(os.Stderr, "ociimage: -env %q: want K=V\n", e)
			os.Exit(2)
		}
	}
	if err := run(*out, *name, *entrypoint, *user, fs, env); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(out, name, entrypoint, user string, fs, env files) error {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	dirs := map[string]bool{}
	for _, f := range fs {
		src, dest, ok := strings.Cut(f, ":")
		if !ok {
			return fmt.Errorf("-file %q: want SRC:DEST", f)
		}
		body, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		dest = strings.TrimPrefix(dest, "/")
		parts := strings.Split(dest, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
					return err
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dest, Mode: 0o755, Size: int64(len(body)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBytes := layer.Bytes()
	cfg := map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string{entrypoint}, "User": user, "Env": append([]string{"PATH=/"}, env...)},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{digest(layerBytes)}},
		"history":      []map[string]any{{"created": epoch.Format(time.RFC3339), "created_by": "test/cluster/cmd/ociimage"}},
	}
	if arch := os.Getenv("GOARCH"); arch != "" {
		cfg["architecture"] = arch
	}
	cfgBytes, _ := json.Marshal(cfg)
	manifest := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(cfgBytes), "size": len(cfgBytes)},
		"layers":        []map[string]any{{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layerBytes), "size": len(layerBytes)}},
	}
	manBytes, _ := json.Marshal(manifest)
	tag := name[strings.LastIndex(name, ":")+1:]
	index := map[string]any{
		"schemaVersion": 2,
		"manifests": []map[string]any{{
			"mediaType": "application/vnd.oci.image.manifest.v1+json",
			"digest":    digest(manBytes),
			"size":      len(manBytes),
			"annotations": map[string]string{
				"io.containerd.image.name":          name,
				"org.opencontainers.image.ref.name": tag,
			},
		}},
	}
	idxBytes, _ := json.Marshal(index)

	f, err := os.Create(out + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	ot := tar.NewWriter(f)
	put := func(path string, b []byte) error {
		if err := ot.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := ot.Write(b)
		return err
	}
	blob := func(b []byte) string { return "blobs/sha256/" + strings.TrimPrefix(digest(b), "sha256:") }
	for _, e := range []struct {
		p string
		b []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idxBytes},
		{blob(manBytes), manBytes},
		{blob(cfgBytes), cfgBytes},
		{blob(layerBytes), layerBytes},
	} {
		if err := put(e.p, e.b); err != nil {
			return err
		}
	}
	if err := ot.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(out+".tmp", out)
}
