{{/* Labels of every object; the selector labels are the first two. */}}
{{- define "herald.labels" -}}
app.kubernetes.io/name: herald
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end }}

{{- define "herald.selector" -}}
app.kubernetes.io/name: herald
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- define "herald.image" -}}
{{ .image.repository }}:{{ .image.tag | default (printf "v%s" .root.Chart.AppVersion) }}
{{- end }}

{{/* Objects copied from config/ (files/): the namespace is the release's. */}}
{{- define "herald.file" -}}
{{ .root.Files.Get .path | replace "namespace: herald-system" (printf "namespace: %s" .root.Release.Namespace) }}
{{- end }}
