{{/*
The namespace every namespaced object goes to: the release's (`helm install
-n NAMESPACE`; documented default lifecycle-jobs-system). Everything that
names it follows: the webhooks' Service reference, the RBAC subjects, the
admission policies' username of the server, the certificate names. The server
reads it from its pod. Call with the root context.
*/}}
{{- define "lj.namespace" -}}{{ .Release.Namespace }}{{- end -}}

{{- define "lj.selfManaged" -}}{{- if eq .Values.certificates.mode "self-managed" -}}true{{- end -}}{{- end -}}

{{/* Image reference: repository:tag, the tag defaulting to v<appVersion>. */}}
{{- define "lj.image" -}}
{{- $img := index .root.Values.image .which -}}
{{- printf "%s:%s" $img.repository (default (printf "v%s" .root.Chart.AppVersion) $img.tag) -}}
{{- end -}}

{{/*
Labels of every object: the ones manifests/ sets (name, part-of), Helm's, and
commonLabels. Call with (dict "root" $ "extra" (dict ...)).
*/}}
{{- define "lj.labels" -}}
{{- range $k, $v := .extra }}
{{ $k }}: {{ $v | quote }}
{{- end }}
app.kubernetes.io/part-of: lifecycle-jobs
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.labels and metadata.annotations of an object. */}}
{{- define "lj.meta" -}}
labels:
  {{- include "lj.labels" . | trim | nindent 2 }}
{{- $ann := merge (dict) (.annotations | default dict) .root.Values.commonAnnotations }}
{{- with $ann }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* lj.meta of an object labelled app.kubernetes.io/name=lifecycle-webhook (most of them). */}}
{{- define "lj.metaStd" -}}
{{- include "lj.meta" (dict "root" .root "annotations" .annotations "extra" (dict "app.kubernetes.io/name" "lifecycle-webhook")) -}}
{{- end -}}

{{/* securityContext of every container the chart runs (restricted Pod Security). */}}
{{- define "lj.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities:
    drop:
      - ALL
{{- end -}}
