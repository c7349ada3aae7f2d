// The Go peer of the benchmark: a small mutating webhook doing the PandoCore injection. Served as
// the Kubernetes e2e test webhook (agnhost) is, with net/http + crypto/tls and encoding/json; the
// patch is not hand-written as agnhost's are but, as in our webhook, the diff of the raw object and
// a mutated copy (gomodules.xyz/jsonpatch/v2, what controller-runtime's PatchResponseFromRaw uses).
//
// It mirrors app/inject/decide.ts, sidecar.ts and mutate.ts for what the benchmark sends: labelled
// Pod CREATEs, with or without our injection already applied. The injection config (image, version,
// config hash, resources, ...) comes from a JSON file the harness writes from the webhook's own
// config, so both servers inject the same sidecar. Not mirrored: namespace readiness lookups (off in
// the benchmark) and pod-level resources checks (no benchmark pod sets them).
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

	"gomodules.xyz/jsonpatch/v2"

	"pandocore.xyz/bench/go-peer/peer"
)

type groupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

type groupVersionResource struct {
	Group    string `json:"group"`
	Version  string `json:"version"`
	Resource string `json:"resource"`
}

type admissionRequest struct {
	UID         string                `json:"uid"`
	Kind        groupVersionKind      `json:"kind"`
	Resource    *groupVersionResource `json:"resource,omitempty"`
	SubResource string                `json:"subResource,omitempty"`
	Name        string                `json:"name,omitempty"`
	Namespace   string                `json:"namespace,omitempty"`
	Operation   string                `json:"operation"`
	Object      json.RawMessage       `json:"object,omitempty"`
}

type admissionResponse struct {
	UID              string            `json:"uid"`
	Allowed          bool              `json:"allowed"`
	PatchType        string            `json:"patchType,omitempty"`
	Patch            []byte            `json:"patch,omitempty"` // encoding/json writes []byte as base64
	Warnings         []string          `json:"warnings,omitempty"`
	AuditAnnotations map[string]string `json:"auditAnnotations,omitempty"`
}

type admissionReview struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Request    *admissionRequest  `json:"request,omitempty"`
	Response   *admissionResponse `json:"response,omitempty"`
}

type object = map[string]any

type outcome struct {
	reason   string
	patch    []byte
	warnings []string
}

type webhook struct {
	config   peer.InjectionConfig
	excluded map[string]bool
	log      *slog.Logger
}

func asObject(v any) object {
	o, _ := v.(object)
	return o
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func stringAt(o object, key string) string {
	s, _ := o[key].(string)
	return s
}

func sidecars(spec object) int {
	n := 0
	for _, list := range []any{spec["initContainers"], spec["containers"]} {
		for _, c := range asList(list) {
			if stringAt(asObject(c), "name") == peer.SidecarName {
				n++
			}
		}
	}
	return n
}

func (w *webhook) isCurrent(annotations, spec object, mode string) bool {
	if stringAt(annotations, peer.AnnotationVersion) != w.config.Version || stringAt(annotations, peer.AnnotationConfigHash) != w.config.ConfigHash {
		return false
	}
	if sidecars(spec) != 1 {
		return false
	}
	for _, list := range []any{spec["initContainers"], spec["containers"]} {
		for _, c := range asList(list) {
			container := asObject(c)
			if stringAt(container, "name") != peer.SidecarName {
				continue
			}
			for _, e := range asList(container["env"]) {
				env := asObject(e)
				if stringAt(env, "name") == peer.EnvMode {
					return stringAt(env, "value") == mode
				}
			}
		}
	}
	return false
}

// sidecar builds a fresh container for the mode, as InjectionPlan.sidecar does.
func (w *webhook) sidecar(mode string, tokenVolume string) object {
	requests, limits := object{}, object{}
	for k, v := range w.config.Requests {
		requests[k] = v
	}
	for k, v := range w.config.Limits {
		limits[k] = v
	}
	container := object{
		"name":            peer.SidecarName,
		"image":           w.config.Image,
		"imagePullPolicy": "IfNotPresent",
		"resources":       object{"requests": requests, "limits": limits},
		"securityContext": object{
			"runAsNonRoot":             true,
			"runAsUser":                w.config.RunAsUser,
			"allowPrivilegeEscalation": false,
			"readOnlyRootFilesystem":   true,
			"privileged":               false,
			"capabilities":             object{"drop": []any{"ALL"}},
			"seccompProfile":           object{"type": "RuntimeDefault"},
		},
		"terminationMessagePolicy": "FallbackToLogsOnError",
		"env": []any{
			object{"name": peer.EnvMode, "value": mode},
			object{"name": peer.EnvLicense, "valueFrom": object{"secretKeyRef": object{"name": peer.LicenseSecret, "key": peer.LicenseSecretKey}}},
		},
	}
	if w.config.Native {
		container["restartPolicy"] = "Always"
	}
	if tokenVolume != "" {
		container["volumeMounts"] = []any{object{"name": tokenVolume, "readOnly": true, "mountPath": peer.TokenMountPath}}
	}
	return container
}

// tokenVolume is the projected ServiceAccount token volume the API server added, if any.
func tokenVolume(spec object) string {
	for _, v := range asList(spec["volumes"]) {
		volume := asObject(v)
		name := stringAt(volume, "name")
		if !strings.HasPrefix(name, "kube-api-access-") {
			continue
		}
		for _, s := range asList(asObject(volume["projected"])["sources"]) {
			if _, ok := asObject(s)["serviceAccountToken"]; ok {
				return name
			}
		}
	}
	return ""
}

func withoutSidecar(list []any) []any {
	out := make([]any, 0, len(list)+1)
	for _, c := range list {
		if stringAt(asObject(c), "name") != peer.SidecarName {
			out = append(out, c)
		}
	}
	return out
}

func (w *webhook) review(request *admissionRequest) (outcome, error) {
	isPod := request.Kind.Group == "" && request.Kind.Version == "v1" && request.Kind.Kind == "Pod" &&
		(request.Resource == nil || (request.Resource.Group == "" && request.Resource.Resource == "pods")) &&
		request.SubResource == ""
	if !isPod {
		return outcome{reason: "not-a-pod"}, nil
	}
	if request.Operation != "CREATE" {
		return outcome{reason: "operation-not-create"}, nil
	}
	var pod object
	if err := json.Unmarshal(request.Object, &pod); err != nil {
		return outcome{reason: "error-invalid-object"}, nil
	}
	metadata := asObject(pod["metadata"])
	spec := asObject(pod["spec"])
	if spec == nil || asList(spec["containers"]) == nil {
		return outcome{reason: "error-invalid-object"}, nil
	}
	if stringAt(asObject(metadata["labels"]), peer.LabelProtect) != "true" {
		return outcome{reason: "not-labelled"}, nil
	}
	namespace := request.Namespace
	if namespace == "" {
		namespace = stringAt(metadata, "namespace")
	}
	if namespace == w.config.Namespace {
		return outcome{reason: "own-namespace"}, nil
	}
	if w.excluded[namespace] {
		return outcome{reason: "namespace-excluded"}, nil
	}
	var warnings []string
	annotations := asObject(metadata["annotations"])
	mode := w.config.DefaultMode
	if requested, ok := annotations[peer.AnnotationMode].(string); ok {
		if slices.Contains(peer.Modes, requested) {
			mode = requested
		} else {
			warnings = append(warnings, fmt.Sprintf("pandocore: %s %q is not monitor, enforce or debug; using %s", peer.AnnotationMode, requested, mode))
		}
	}
	reason := "injected"
	if stringAt(annotations, peer.AnnotationStatus) != peer.StatusInjected {
		if sidecars(spec) > 0 {
			return outcome{reason: "unmanaged-sidecar"}, nil
		}
	} else if w.isCurrent(annotations, spec, mode) {
		return outcome{reason: "already-injected", warnings: warnings}, nil
	} else {
		reason = "reinjected"
	}

	// Mutate a copy that shares what it does not change; the original stays for the diff.
	newSpec := object{}
	for k, v := range spec {
		newSpec[k] = v
	}
	sidecar := w.sidecar(mode, tokenVolume(spec))
	containers := withoutSidecar(asList(spec["containers"]))
	initContainers := withoutSidecar(asList(spec["initContainers"]))
	if w.config.Native {
		newSpec["initContainers"] = append([]any{sidecar}, initContainers...)
		newSpec["containers"] = containers
	} else {
		newSpec["containers"] = append(containers, sidecar)
		if len(initContainers) > 0 {
			newSpec["initContainers"] = initContainers
		} else {
			delete(newSpec, "initContainers")
		}
	}
	account := stringAt(spec, "serviceAccountName")
	if account == "" {
		account = stringAt(spec, "serviceAccount")
	}
	if account == "" || account == "default" {
		newSpec["serviceAccountName"] = peer.SidecarAccount
		if _, ok := spec["serviceAccount"]; ok {
			newSpec["serviceAccount"] = peer.SidecarAccount
		}
	} else if account != peer.SidecarAccount {
		warnings = append(warnings, fmt.Sprintf("pandocore: service account %q must be bound to ClusterRole pando-sidecar", account))
	}
	newAnnotations := object{}
	for k, v := range annotations {
		newAnnotations[k] = v
	}
	newAnnotations[peer.AnnotationStatus] = peer.StatusInjected
	newAnnotations[peer.AnnotationVersion] = w.config.Version
	newAnnotations[peer.AnnotationConfigHash] = w.config.ConfigHash
	newMetadata := object{}
	for k, v := range metadata {
		newMetadata[k] = v
	}
	newMetadata["annotations"] = newAnnotations
	mutated := object{}
	for k, v := range pod {
		mutated[k] = v
	}
	mutated["metadata"] = newMetadata
	mutated["spec"] = newSpec

	mutatedJSON, err := json.Marshal(mutated)
	if err != nil {
		return outcome{}, err
	}
	ops, err := jsonpatch.CreatePatch(request.Object, mutatedJSON)
	if err != nil {
		return outcome{}, err
	}
	if len(ops) == 0 {
		return outcome{reason: reason, warnings: warnings}, nil
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return outcome{}, err
	}
	return outcome{reason: reason, patch: patch, warnings: warnings}, nil
}

func (w *webhook) serveMutate(rw http.ResponseWriter, r *http.Request) {
	started := time.Now()
	body, ok := peer.ReadBody(rw, r)
	if !ok {
		return
	}
	var review admissionReview
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
		// Fail open, as the webhook does.
		result = outcome{reason: "error-internal", warnings: []string{"pandocore: sidecar not injected: " + err.Error()}}
	}
	response := &admissionResponse{UID: request.UID, Allowed: true, Warnings: result.warnings, AuditAnnotations: map[string]string{"reason": result.reason}}
	if len(result.patch) > 0 {
		response.PatchType = "JSONPatch"
		response.Patch = result.patch
	}
	answer, err := json.Marshal(admissionReview{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview", Response: response})
	if err != nil {
		peer.WriteError(rw, http.StatusInternalServerError, "PANDO_INTERNAL", err.Error())
		return
	}
	rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = rw.Write(answer)
	// One line per review, as the webhook logs with pino.
	w.log.Info("review", "uid", request.UID, "namespace", request.Namespace, "operation", request.Operation,
		"reason", result.reason, "durationMs", float64(time.Since(started).Microseconds())/1e3)
}

func main() {
	peer.Main("pando-go-peer", func(config peer.InjectionConfig) (http.HandlerFunc, error) {
		w := &webhook{config: config, excluded: config.Excluded(), log: slog.New(slog.NewJSONHandler(os.Stdout, nil))}
		return w.serveMutate, nil
	})
}
