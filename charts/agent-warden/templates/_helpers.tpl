{{/* The chart's name, or nameOverride: the app.kubernetes.io/name label and part of fullname. */}}
{{- define "agent-warden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Base name of the operator's objects: fullnameOverride, else the release name when it already says
the name, else release-name. Capped at 50 so suffixes like -webhook-tls stay within 63.
*/}}
{{- define "agent-warden.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "agent-warden.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "agent-warden.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "agent-warden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "agent-warden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-warden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
The one image of the operator and of every injected sidecar: repository@digest when image.digest
is set (the digest pins it; the tag is then left out), else repository:tag (tag defaults to the
chart's appVersion).
*/}}
{{- define "agent-warden.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The operator's ServiceAccount: created as fullname-operator unless named; an existing one must be named. */}}
{{- define "agent-warden.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "agent-warden.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false (the operator's RBAC is bound to it)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The webhook Service, and both webhook configurations, carry this one name: the operator is told
webhook.serviceName in its config and patches caBundle into the Mutating- and
ValidatingWebhookConfiguration of the same name (different kinds may share a name).
*/}}
{{- define "agent-warden.webhookName" -}}
{{- printf "%s-webhook" (include "agent-warden.fullname" .) -}}
{{- end -}}

{{- define "agent-warden.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "agent-warden.fullname" .) -}}
{{- end -}}

{{- define "agent-warden.certificateName" -}}
{{- printf "%s-webhook" (include "agent-warden.fullname" .) -}}
{{- end -}}

{{/*
Which namespaces the webhooks see: never the operator's own (its pods must start even when no
webhook answers). The pod webhook adds the injection opt-in beside it.
*/}}
{{- define "agent-warden.excludeOwnNamespace" -}}
- key: kubernetes.io/metadata.name
  operator: NotIn
  values: [{{ .Release.Namespace | quote }}]
{{- end -}}

{{/*
The caBundle the live webhook configuration of this kind already carries ("" if none).
Self mode: the operator patches caBundle at run time; on `helm upgrade` the chart renders the live
value unchanged, so an upgrade never wipes the CA the operator installed (an empty caBundle would
break every webhook call until the operator re-patched it). `helm template` and GitOps tools that
cannot look up see "" and leave the field out, which also leaves the live value alone.
cert-manager mode: its CA injector fills caBundle in (annotation below), so the chart never sets it.
Usage: include "agent-warden.liveCaBundle" (dict "root" . "kind" "MutatingWebhookConfiguration")
*/}}
{{- define "agent-warden.liveCaBundle" -}}
{{- $root := .root -}}
{{- $ca := "" -}}
{{- if eq $root.Values.webhook.certMode "self" -}}
{{- $live := lookup "admissionregistration.k8s.io/v1" .kind "" (include "agent-warden.webhookName" $root) -}}
{{- range (dig "webhooks" list $live) -}}
{{- if not $ca -}}{{- $ca = dig "clientConfig" "caBundle" "" . -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $ca -}}
{{- end -}}

{{- define "agent-warden.webhookAnnotations" -}}
{{- if eq .Values.webhook.certMode "cert-manager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "agent-warden.certificateName" .) }}
{{- end -}}
{{- end -}}

{{/* The operator's config file; its checksum rolls the operator pods when it changes. */}}
{{- define "agent-warden.operatorConfig" -}}
sidecar:
  image: {{ include "agent-warden.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
  {{- with .Values.sidecar.ports }}
  ports:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.sidecar.runAsUser }}
  runAsUser: {{ . }}
  {{- end }}
  {{- with .Values.sidecar.runAsGroup }}
  runAsGroup: {{ . }}
  {{- end }}
lockdown: {{ .Values.lockdown }}
{{- if .Values.otlp.endpoint }}
otlp:
  endpoint: {{ .Values.otlp.endpoint | quote }}
  protocol: {{ .Values.otlp.protocol | quote }}
  {{- with .Values.otlp.headers.secretName }}
  headersSecret: {name: {{ . | quote }}, key: {{ $.Values.otlp.headers.secretKey | quote }}}
  {{- end }}
  {{- with .Values.otlp.tls.caConfigMap }}
  caConfigMap: {name: {{ . | quote }}, key: {{ $.Values.otlp.tls.caKey | quote }}}
  {{- end }}
  {{- with .Values.otlp.tls.clientCertSecret }}
  clientCertSecret: {{ . | quote }}
  {{- end }}
{{- end }}
webhook:
  port: {{ .Values.webhook.port }}
  serviceName: {{ include "agent-warden.webhookName" . }}
  secretName: {{ include "agent-warden.webhookSecretName" . }}
  certMode: {{ .Values.webhook.certMode }}
approvals:
  ttl: {{ .Values.approvals.ttl | quote }}
{{- end -}}
