// Package peer holds what both Go peers of the benchmark share and is no part of how either decodes
// or patches: the names, the injection config the harness writes, the HTTP checks before decoding,
// the error answers, and the TLS server with its flags.
package peer

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

const (
	LabelProtect         = "pandocore.xyz/protect"
	AnnotationMode       = "pandocore.xyz/mode"
	AnnotationStatus     = "pandocore.xyz/status"
	AnnotationVersion    = "pandocore.xyz/version"
	AnnotationConfigHash = "pandocore.xyz/config-hash"
	StatusInjected       = "injected"
	SidecarName          = "pando-sidecar"
	SidecarAccount       = "pando-sidecar"
	EnvMode              = "PANDO_MODE"
	EnvLicense           = "PANDO_LICENSE_KEY"
	LicenseSecret        = "pando-license"
	LicenseSecretKey     = "license-key"
	TokenMountPath       = "/var/run/secrets/kubernetes.io/serviceaccount"
	maxBodyBytes         = 7 << 20
)

var Modes = []string{"monitor", "enforce", "debug"}

// InjectionConfig is written by the harness from the webhook's Config and InjectionPlan.
type InjectionConfig struct {
	Image              string            `json:"image"`
	Version            string            `json:"version"`
	ConfigHash         string            `json:"configHash"`
	Native             bool              `json:"native"`
	DefaultMode        string            `json:"defaultMode"`
	Namespace          string            `json:"namespace"`
	ExcludedNamespaces []string          `json:"excludedNamespaces"`
	Requests           map[string]string `json:"requests"`
	Limits             map[string]string `json:"limits"`
	RunAsUser          int64             `json:"runAsUser"`
}

// Excluded is the set of ExcludedNamespaces.
func (c InjectionConfig) Excluded() map[string]bool {
	excluded := map[string]bool{}
	for _, ns := range c.ExcludedNamespaces {
		excluded[ns] = true
	}
	return excluded
}

func WriteError(rw http.ResponseWriter, status int, code, message string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(map[string]string{"code": code, "message": message})
}

// ReadBody checks method and content type and reads the body within the limit; on false the error
// answer is already written.
func ReadBody(rw http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Method != http.MethodPost {
		WriteError(rw, http.StatusMethodNotAllowed, "PANDO_NOT_FOUND", "POST only")
		return nil, false
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		WriteError(rw, http.StatusUnsupportedMediaType, "PANDO_UNSUPPORTED_MEDIA_TYPE", "application/json only")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxBodyBytes))
	if err != nil {
		WriteError(rw, http.StatusRequestEntityTooLarge, "PANDO_BODY_TOO_LARGE", err.Error())
		return nil, false
	}
	return body, true
}

// Main parses the flags, reads the config, and serves /mutate (from build) and /healthz over TLS.
func Main(name string, build func(InjectionConfig) (http.HandlerFunc, error)) {
	addr := flag.String("addr", "127.0.0.1:9443", "listen address")
	certFile := flag.String("cert", "", "PEM serving certificate")
	keyFile := flag.String("key", "", "PEM private key")
	configFile := flag.String("config", "", "injection config (JSON) written by the harness")
	flag.Parse()
	fail := func(code int, err error) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(code)
	}
	raw, err := os.ReadFile(*configFile)
	if err != nil {
		fail(2, err)
	}
	var config InjectionConfig
	if err := json.Unmarshal(raw, &config); err != nil {
		fail(2, fmt.Errorf("config: %w", err))
	}
	mutate, err := build(config)
	if err != nil {
		fail(2, fmt.Errorf("config: %w", err))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mutate", mutate)
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(rw, `{"status":"ok"}`)
	})
	server := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 95 * time.Second}
	// ALPN_REPORT_FILE (the cluster benchmark): one line per TLS connection with the protocol it
	// negotiated, as bench/alpn-report.mjs writes for the Node servers. net/http adds h2 and
	// http/1.1 to NextProtos as without a TLSConfig.
	if report := os.Getenv("ALPN_REPORT_FILE"); report != "" {
		var mu sync.Mutex
		server.TLSConfig = &tls.Config{VerifyConnection: func(state tls.ConnectionState) error {
			protocol := state.NegotiatedProtocol
			if protocol == "" {
				protocol = "none"
			}
			mu.Lock()
			defer mu.Unlock()
			f, err := os.OpenFile(report, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err == nil {
				_, _ = f.WriteString(protocol + "\n")
				_ = f.Close()
			}
			return nil
		}}
	}
	fail(1, server.ListenAndServeTLS(*certFile, *keyFile))
}
