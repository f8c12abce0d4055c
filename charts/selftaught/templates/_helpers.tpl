{{/* Names, labels and small decisions shared by the templates. */}}

{{- define "selftaught.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "selftaught.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "selftaught.selectorLabels" -}}
app.kubernetes.io/name: {{ include "selftaught.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "selftaught.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "selftaught.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: selftaught
{{- end }}

{{- define "selftaught.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "selftaught.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "selftaught.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "selftaught.workerImage" -}}
{{- printf "%s:%s" .Values.worker.image.repository (default .Chart.AppVersion .Values.worker.image.tag) }}
{{- end }}

{{/*
The namespaces the operator watches, one per line; empty means all namespaces (cluster scope
with no list). In namespaced scope an empty list means the release's namespace.
*/}}
{{- define "selftaught.watchedNamespaces" -}}
{{- $namespaces := .Values.watch.namespaces }}
{{- if and (eq .Values.watch.scope "namespaced") (not $namespaces) }}
{{- $namespaces = list .Release.Namespace }}
{{- end }}
{{- range $namespaces | uniq }}
{{ . }}
{{- end }}
{{- end }}

{{/*
Whether a Prometheus Operator resource is rendered: "true" or "".
Call with (dict "enabled" <true|false|"auto"> "root" $).
*/}}
{{- define "selftaught.monitoringEnabled" -}}
{{- $enabled := toString .enabled }}
{{- if or (eq $enabled "true") (and (eq $enabled "auto") (.root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}
{{- print "true" }}
{{- end }}
{{- end }}

{{- /*
Least privilege, no wildcards: exactly the calls the operator makes, as recorded from the real
operator by tests/chart/test_rbac_covers_calls.py (which fails on a missing or an unused grant).
  - selftaughtruns: kopf lists and watches them; the controller gets one before each plan.
    Only event handlers are used, so kopf writes no finalizer or annotation (no patch).
  - selftaughtruns/status: the controller's one merge patch per transition.
  - jobs: created per stage attempt, listed (the run's children) and watched (kopf), deleted
    when stale or superseded (resumeFrom) or stuck.
  - pods: listed for exit codes, termination messages (the JSON summary) and stuck reasons;
    watched by kopf.
  - services: a headless Service per multi-node training stage (owner GC removes it); the
    judge server's Service (spec.serve): read to compare, patched when spec.serve.port changes,
    deleted when spec.serve is removed.
  - deployments: the judge server (spec.serve): created, read (rollout status) and watched,
    patched once per new best judge, deleted when spec.serve is removed.
  - events: the run's story, and kopf's own warnings; both POST core/v1 Events.
  - configmaps (get): a run's configmap://name/key prompt templates, read and checked before
    its first Job (selftaught.controller.templates); never listed, watched or written.
  - kopfpeerings (watched namespaces) or clusterkopfpeerings (whole cluster), only with
    operator.peering.name: kopf watches the peering object and patches its own entry in it
    (tests/reliability/test_peering.py records the calls).
The cluster-scoped "scan" role holds only what kopf's observers list and watch: CRDs (to
discover the SelfTaughtRun resource) and, when it watches a list of namespaces rather than the
whole cluster, namespaces (kopf follows them even when they are exact names).
*/}}
{{- define "selftaught.rules" -}}
- apiGroups: ["selftaught.dev"]
  resources: ["selftaughtruns"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["selftaught.dev"]
  resources: ["selftaughtruns/status"]
  verbs: ["patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "list", "watch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "get", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
{{- if .Values.operator.peering.name }}
- apiGroups: ["kopf.dev"]
  resources: [{{ ternary "kopfpeerings" "clusterkopfpeerings" (include "selftaught.watchedNamespaces" . | trim | ne "") | quote }}]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}
