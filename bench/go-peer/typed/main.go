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
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"pandocore.xyz/bench/go-peer/peer"
)

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
	config   peer.InjectionConfig
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
		Name:            peer.SidecarName,
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
			{Name: peer.EnvMode, Value: mode},
			{Name: peer.EnvLicense, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: peer.LicenseSecret}, Key: peer.LicenseSecretKey,
			}}},
		},
	}
	if w.config.Native {
		c.RestartPolicy = &always
	}
	if tokenVolume != "" {
		c.VolumeMounts = []corev1.VolumeMount{{Name: tokenVolume, ReadOnly: true, MountPath: peer.TokenMountPath}}
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
		if c.Name == peer.SidecarName {
			at = append(at, i)
		}
	}
	return at
}

func (w *webhook) isCurrent(pod *corev1.Pod, mode string) bool {
	a := pod.Annotations
	if a[peer.AnnotationVersion] != w.config.Version || a[peer.AnnotationConfigHash] != w.config.ConfigHash {
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
		if e.Name == peer.EnvMode {
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
	if pod.Labels[peer.LabelProtect] != "true" {
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
	if requested, ok := pod.Annotations[peer.AnnotationMode]; ok {
		if slices.Contains(peer.Modes, requested) {
			mode = requested
		} else {
			warnings = append(warnings, fmt.Sprintf("pandocore: %s %q is not monitor, enforce or debug; using %s", peer.AnnotationMode, requested, mode))
		}
	}
	reason := "injected"
	existing := len(sidecarIndexes(pod.Spec.InitContainers)) + len(sidecarIndexes(pod.Spec.Containers))
	if pod.Annotations[peer.AnnotationStatus] != peer.StatusInjected {
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
		ops = append(ops, operation{Op: op, Path: "/spec/serviceAccountName", Value: peer.SidecarAccount})
		if pod.Spec.DeprecatedServiceAccount != "" {
			ops = append(ops, operation{Op: "replace", Path: "/spec/serviceAccount", Value: peer.SidecarAccount})
		}
	} else if account != peer.SidecarAccount {
		warnings = append(warnings, fmt.Sprintf("pandocore: service account %q must be bound to ClusterRole pando-sidecar", account))
	}
	ours := map[string]string{peer.AnnotationStatus: peer.StatusInjected, peer.AnnotationVersion: w.config.Version, peer.AnnotationConfigHash: w.config.ConfigHash}
	if pod.Annotations == nil {
		ops = append(ops, operation{Op: "add", Path: "/metadata/annotations", Value: ours})
	} else {
		for _, k := range []string{peer.AnnotationStatus, peer.AnnotationVersion, peer.AnnotationConfigHash} {
			if pod.Annotations[k] != ours[k] {
				ops = append(ops, operation{Op: "add", Path: "/metadata/annotations/" + escape(k), Value: ours[k]})
			}
		}
	}
	return outcome{reason: reason, patch: ops, warnings: warnings}, nil
}

func (w *webhook) serveMutate(rw http.ResponseWriter, r *http.Request) {
	started := time.Now()
	body, ok := peer.ReadBody(rw, r)
	if !ok {
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		peer.WriteError(rw, http.StatusBadRequest, "PANDO_BAD_JSON", err.Error())
		return
	}
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" || review.Request == nil || review.Request.UID == "" {
		peer.WriteError(rw, http.StatusBadRequest, "PANDO_NOT_ADMISSION_REVIEW", "not an admission.k8s.io/v1 AdmissionReview request")
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
			peer.WriteError(rw, http.StatusInternalServerError, "PANDO_INTERNAL", err.Error())
			return
		}
		patchType := admissionv1.PatchTypeJSONPatch
		response.PatchType = &patchType
		response.Patch = patch
	}
	answer, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: response})
	if err != nil {
		peer.WriteError(rw, http.StatusInternalServerError, "PANDO_INTERNAL", err.Error())
		return
	}
	rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = rw.Write(answer)
	w.log.Info("review", "uid", string(request.UID), "namespace", request.Namespace, "operation", string(request.Operation),
		"reason", result.reason, "durationMs", float64(time.Since(started).Microseconds())/1e3)
}

func main() {
	peer.Main("pando-go-peer-typed", func(config peer.InjectionConfig) (http.HandlerFunc, error) {
		requests, err := resourceList(config.Requests)
		if err != nil {
			return nil, err
		}
		limits, err := resourceList(config.Limits)
		if err != nil {
			return nil, err
		}
		w := &webhook{config: config, excluded: config.Excluded(), requests: requests, limits: limits, log: slog.New(slog.NewJSONHandler(os.Stdout, nil))}
		return w.serveMutate, nil
	})
}
