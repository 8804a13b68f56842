{{/* Names, labels and shared pieces of the image-interpreter chart. */}}

{{- define "imginterp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "imginterp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects: (dict "root" $ "component" "pose") */}}
{{- define "imginterp.componentName" -}}
{{- printf "%s-%s" (include "imginterp.fullname" .root | trunc 50 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "imginterp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a component: (dict "root" $ "component" "pose") */}}
{{- define "imginterp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imginterp.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Standard labels of a component: (dict "root" $ "component" "pose") */}}
{{- define "imginterp.labels" -}}
helm.sh/chart: {{ include "imginterp.chart" .root }}
{{ include "imginterp.selectorLabels" . }}
app.kubernetes.io/part-of: image-interpreter
{{- with .root.Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* Full image reference: (dict "root" $ "image" .image "what" "families.pose.image") */}}
{{- define "imginterp.image" -}}
{{- $repository := required (printf "%s.repository is required" (.what | default "image")) .image.repository -}}
{{- $tag := .image.tag | default .root.Values.global.image.tag | default .root.Chart.AppVersion -}}
{{- with .root.Values.global.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .) $repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The NATS URL services and gateway connect to (precedence in values.yaml). */}}
{{- define "imginterp.natsUrl" -}}
{{- if .Values.nats.external.url -}}
{{- .Values.nats.external.url -}}
{{- else if .Values.natsChart.enabled -}}
{{- printf "nats://%s:4222" (required "natsChart.fullnameOverride is required with natsChart.enabled=true: it names the official chart's NATS Service" .Values.natsChart.fullnameOverride) -}}
{{- else if .Values.nats.statefulset.enabled -}}
{{- printf "nats://%s:4222" (include "imginterp.componentName" (dict "root" . "component" "nats")) -}}
{{- else -}}
{{- required "nats.external.url is required when nats.statefulset.enabled=false and natsChart.enabled=false: the services need a NATS JetStream server" .Values.nats.external.url -}}
{{- end -}}
{{- end -}}

{{- define "imginterp.modelStoreClaim" -}}
{{- .Values.modelStore.existingClaim | default (include "imginterp.componentName" (dict "root" . "component" "models")) -}}
{{- end -}}

{{/* gRPC health probes on a port: (dict "root" $ "port" 8101) */}}
{{- define "imginterp.grpcProbes" -}}
{{- $p := .root.Values.probes -}}
startupProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: {{ $p.startup.periodSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
livenessProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
readinessProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
{{- end -}}

{{/* Container security: non-root, read-only root file system, no privileges. */}}
{{- define "imginterp.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* env entries from a name -> value map, sorted by name. */}}
{{- define "imginterp.envFromMap" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}
