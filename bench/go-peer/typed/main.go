// The typed Go peer of the benchmark: the PandoCore injection written as most Go injectors are.
// The review and the pod are decoded with encoding/json into k8s.io/api types
// (admission/v1.AdmissionReview, core/v1.Pod) and the JSON Patch operations are built by hand from
// the decision, without a diff: the shape of Linkerd's proxy injector
// (controller/proxy-injector/webhook.go with its patch builder) and of HashiCorp's
// vault-k8s agent injector (agent-inject/handler.go, patch operations appended one by one).
//
// It mirrors ../main.go (the map-and-diff peer) and app/inject/ for what the benchmark sends:
// labelled Pod CREATEs, with or without our injection already applied. Same flags and config file.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	labelProtect         = "pandocore.xyz/protect"
	annotationMode       = "pandocore.xyz/mode"
	annotationStatus     = "pandocore.xyz/status"
	annotationVersion    = "pandocore.xyz/version"
	annotationConfigHash = "pandocore.xyz/config-hash"
	statusInjected       = "injected"
	sidecarName          = "pando-sidecar"
	sidecarAccount       = "pando-sidecar"
	envMode              = "PANDO_MODE"
	envLicense           = "PANDO_LICENSE_KEY"
	licenseSecret        = "pando-license"
	licenseSecretKey     = "license-key"
	tokenMountPath       = "/var/run/secrets/kubernetes.io/serviceaccount"
	maxBodyBytes         = 7 << 20
)

var modes = []string{"monitor", "enforce", "debug"}

// injectionConfig is written by the harness from the webhook's Config and InjectionPlan.
type injectionConfig struct {
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

type operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

type outcome struct {
	reason   string
	patch    []operation
	warnings []string
}

type webhook struct {
	config   injectionConfig
	excluded map[string]bool
	requests corev1.ResourceList
	limits   corev1.ResourceList
	log      *slog.Logger
}

func escape(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

func resourceList(in map[string]string) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for k, v := range in {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[corev1.ResourceName(k)] = q
	}
	return out, nil
}

func (w *webhook) sidecar(mode string, tokenVolume string) corev1.Container {
	yes, no := true, false
	always := corev1.ContainerRestartPolicyAlways
	runAsUser := w.config.RunAsUser
	c := corev1.Container{
		Name:            sidecarName,
		Image:           w.config.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Resources:       corev1.ResourceRequirements{Requests: w.requests.DeepCopy(), Limits: w.limits.DeepCopy()},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             &yes,
			RunAsUser:                &runAsUser,
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			Privileged:               &no,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		Env: []corev1.EnvVar{
			{Name: envMode, Value: mode},
			{Name: envLicense, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: licenseSecret}, Key: licenseSecretKey,
			}}},
		},
	}
	if w.config.Native {
		c.RestartPolicy = &always
	}
	if tokenVolume != "" {
		c.VolumeMounts = []corev1.VolumeMount{{Name: tokenVolume, ReadOnly: true, MountPath: tokenMountPath}}
	}
	return c
}

func tokenVolume(spec *corev1.PodSpec) string {
	for _, v := range spec.Volumes {
		if !strings.HasPrefix(v.Name, "kube-api-access-") || v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil {
				return v.Name
			}
		}
	}
	return ""
}

func sidecarIndexes(list []corev1.Container) []int {
	var at []int
	for i, c := range list {
		if c.Name == sidecarName {
			at = append(at, i)
		}
	}
	return at
}

func (w *webhook) isCurrent(pod *corev1.Pod, mode string) bool {
	a := pod.Annotations
	if a[annotationVersion] != w.config.Version || a[annotationConfigHash] != w.config.ConfigHash {
		return false
	}
	init, main := sidecarIndexes(pod.Spec.InitContainers), sidecarIndexes(pod.Spec.Containers)
	if len(init)+len(main) != 1 {
		return false
	}
	c := func() corev1.Container {
		if len(init) == 1 {
			return pod.Spec.InitContainers[init[0]]
		}
		return pod.Spec.Containers[main[0]]
	}()
	for _, e := range c.Env {
		if e.Name == envMode {
			return e.Value == mode
		}
	}
	return false
}

func (w *webhook) review(request *admissionv1.AdmissionRequest) (outcome, error) {
	isPod := request.Kind.Group == "" && request.Kind.Version == "v1" && request.Kind.Kind == "Pod" &&
		request.Resource.Group == "" && request.Resource.Resource == "pods" && request.SubResource == ""
	if !isPod {
		return outcome{reason: "not-a-pod"}, nil
	}
	if request.Operation != admissionv1.Create {
		return outcome{reason: "operation-not-create"}, nil
	}
	var pod corev1.Pod
	if err := json.Unmarshal(request.Object.Raw, &pod); err != nil {
		return outcome{reason: "error-invalid-object"}, nil
	}
	if len(pod.Spec.Containers) == 0 {
		return outcome{reason: "error-invalid-object"}, nil
	}
	if pod.Labels[labelProtect] != "true" {
		return outcome{reason: "not-labelled"}, nil
	}
	namespace := request.Namespace
	if namespace == "" {
		namespace = pod.Namespace
	}
	if namespace == w.config.Namespace {
		return outcome{reason: "own-namespace"}, nil
	}
	if w.excluded[namespace] {
		return outcome{reason: "namespace-excluded"}, nil
	}
	var warnings []string
	mode := w.config.DefaultMode
	if requested, ok := pod.Annotations[annotationMode]; ok {
		if slices.Contains(modes, requested) {
			mode = requested
		} else {
			warnings = append(warnings, fmt.Sprintf("pandocore: %s %q is not monitor, enforce or debug; using %s", annotationMode, requested, mode))
		}
	}
	reason := "injected"
	existing := len(sidecarIndexes(pod.Spec.InitContainers)) + len(sidecarIndexes(pod.Spec.Containers))
	if pod.Annotations[annotationStatus] != statusInjected {
		if existing > 0 {
			return outcome{reason: "unmanaged-sidecar"}, nil
		}
	} else if w.isCurrent(&pod, mode) {
		return outcome{reason: "already-injected", warnings: warnings}, nil
	} else {
		reason = "reinjected"
	}

	// The operations, built by hand: old sidecars out (highest index first), the new one in.
	var ops []operation
	initLeft := len(pod.Spec.InitContainers)
	for _, i := range slices.Backward(sidecarIndexes(pod.Spec.InitContainers)) {
		ops = append(ops, operation{Op: "remove", Path: fmt.Sprintf("/spec/initContainers/%d", i)})
		initLeft--
	}
	for _, i := range slices.Backward(sidecarIndexes(pod.Spec.Containers)) {
		ops = append(ops, operation{Op: "remove", Path: fmt.Sprintf("/spec/containers/%d", i)})
	}
	sidecar := w.sidecar(mode, tokenVolume(&pod.Spec))
	if w.config.Native {
		if pod.Spec.InitContainers == nil {
			ops = append(ops, operation{Op: "add", Path: "/spec/initContainers", Value: []corev1.Container{sidecar}})
		} else {
			ops = append(ops, operation{Op: "add", Path: "/spec/initContainers/0", Value: sidecar})
		}
	} else {
		ops = append(ops, operation{Op: "add", Path: "/spec/containers/-", Value: sidecar})
		if pod.Spec.InitContainers != nil && initLeft == 0 {
			ops = append(ops, operation{Op: "remove", Path: "/spec/initContainers"})
		}
	}
	account := pod.Spec.ServiceAccountName
	if account == "" {
		account = pod.Spec.DeprecatedServiceAccount
	}
	if account == "" || account == "default" {
		op := "replace"
		if pod.Spec.ServiceAccountName == "" {
			op = "add"
		}
		ops = append(ops, operation{Op: op, Path: "/spec/serviceAccountName", Value: sidecarAccount})
		if pod.Spec.DeprecatedServiceAccount != "" {
			ops = append(ops, operation{Op: "replace", Path: "/spec/serviceAccount", Value: sidecarAccount})
		}
	} else if account != sidecarAccount {
		warnings = append(warnings, fmt.Sprintf("pandocore: service account %q must be bound to ClusterRole pando-sidecar", account))
	}
	ours := map[string]string{annotationStatus: statusInjected, annotationVersion: w.config.Version, annotationConfigHash: w.config.ConfigHash}
	if pod.Annotations == nil {
		ops = append(ops, operation{Op: "add", Path: "/metadata/annotations", Value: ours})
	} else {
		for _, k := range []string{annotationStatus, annotationVersion, annotationConfigHash} {
			if pod.Annotations[k] != ours[k] {
				ops = append(ops, operation{Op: "add", Path: "/metadata/annotations/" + escape(k), Value: ours[k]})
			}
		}
	}
	return outcome{reason: reason, patch: ops, warnings: warnings}, nil
}

func writeError(rw http.ResponseWriter, status int, code, message string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(map[string]string{"code": code, "message": message})
}

func (w *webhook) serveMutate(rw http.ResponseWriter, r *http.Request) {
	started := time.Now()
	if r.Method != http.MethodPost {
		writeError(rw, http.StatusMethodNotAllowed, "PANDO_NOT_FOUND", "POST only")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(rw, http.StatusUnsupportedMediaType, "PANDO_UNSUPPORTED_MEDIA_TYPE", "application/json only")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxBodyBytes))
	if err != nil {
		writeError(rw, http.StatusRequestEntityTooLarge, "PANDO_BODY_TOO_LARGE", err.Error())
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		writeError(rw, http.StatusBadRequest, "PANDO_BAD_JSON", err.Error())
		return
	}
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" || review.Request == nil || review.Request.UID == "" {
		writeError(rw, http.StatusBadRequest, "PANDO_NOT_ADMISSION_REVIEW", "not an admission.k8s.io/v1 AdmissionReview request")
		return
	}
	request := review.Request
	result, err := w.review(request)
	if err != nil {
		result = outcome{reason: "error-internal", warnings: []string{"pandocore: sidecar not injected: " + err.Error()}}
	}
	response := &admissionv1.AdmissionResponse{UID: request.UID, Allowed: true, Warnings: result.warnings, AuditAnnotations: map[string]string{"reason": result.reason}}
	if len(result.patch) > 0 {
		patch, err := json.Marshal(result.patch)
		if err != nil {
			writeError(rw, http.StatusInternalServerError, "PANDO_INTERNAL", err.Error())
			return
		}
		patchType := admissionv1.PatchTypeJSONPatch
		response.PatchType = &patchType
		response.Patch = patch
	}
	answer, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: response})
	if err != nil {
		writeError(rw, http.StatusInternalServerError, "PANDO_INTERNAL", err.Error())
		return
	}
	rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = rw.Write(answer)
	w.log.Info("review", "uid", string(request.UID), "namespace", request.Namespace, "operation", string(request.Operation),
		"reason", result.reason, "durationMs", float64(time.Since(started).Microseconds())/1e3)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9443", "listen address")
	certFile := flag.String("cert", "", "PEM serving certificate")
	keyFile := flag.String("key", "", "PEM private key")
	configFile := flag.String("config", "", "injection config (JSON) written by the harness")
	flag.Parse()

	raw, err := os.ReadFile(*configFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pando-go-peer-typed:", err)
		os.Exit(2)
	}
	var config injectionConfig
	if err := json.Unmarshal(raw, &config); err != nil {
		fmt.Fprintln(os.Stderr, "pando-go-peer-typed: config:", err)
		os.Exit(2)
	}
	excluded := map[string]bool{}
	for _, ns := range config.ExcludedNamespaces {
		excluded[ns] = true
	}
	requests, err := resourceList(config.Requests)
	if err == nil {
		var limits corev1.ResourceList
		limits, err = resourceList(config.Limits)
		if err == nil {
			w := &webhook{config: config, excluded: excluded, requests: requests, limits: limits, log: slog.New(slog.NewJSONHandler(os.Stdout, nil))}
			serve(w, *addr, *certFile, *keyFile)
		}
	}
	fmt.Fprintln(os.Stderr, "pando-go-peer-typed: resources:", err)
	os.Exit(2)
}

func serve(w *webhook, addr, certFile, keyFile string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/mutate", w.serveMutate)
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(rw, `{"status":"ok"}`)
	})
	server := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 95 * time.Second}
	if err := server.ListenAndServeTLS(certFile, keyFile); err != nil {
		fmt.Fprintln(os.Stderr, "pando-go-peer-typed:", err)
		os.Exit(1)
	}
}
