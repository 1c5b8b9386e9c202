{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, "grpcguard" unless nameOverride. */}}
{{- define "grpcguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource name: the release name, or "<release>-<chart>" when the
release name does not already contain the chart name. Kept to 50 characters so that
"<fullname>-webhook-tls" and the like stay under 63.
*/}}
{{- define "grpcguard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "grpcguard-0.1.0" */}}
{{- define "grpcguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The webhook's Deployment, Service and ServiceAccount name. */}}
{{- define "grpcguard.webhookName" -}}
{{- printf "%s-webhook" (include "grpcguard.fullname" .) -}}
{{- end -}}

{{- define "grpcguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "grpcguard.webhookName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the webhook's tls.crt / tls.key. */}}
{{- define "grpcguard.tlsSecretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else -}}
{{- printf "%s-webhook-tls" (include "grpcguard.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The DNS names the API server may use for the webhook Service. */}}
{{- define "grpcguard.serviceDNSNames" -}}
{{- $svc := include "grpcguard.webhookName" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{/* The labels the chart owns on every resource (others may not override them). */}}
{{- define "grpcguard.standardLabels" -}}
helm.sh/chart: {{ include "grpcguard.chart" . }}
{{ include "grpcguard.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: grpcguard
{{- end -}}

{{/*
Labels of one resource: (list $root component extraLabels). The chart's own labels win
over extraLabels, which win over commonLabels, so that a user value never produces a
duplicate key (which the API server rejects) nor changes a selector.
*/}}
{{- define "grpcguard.componentLabels" -}}
{{- $root := index . 0 -}}
{{- $own := include "grpcguard.standardLabels" $root | fromYaml -}}
{{- with index . 1 }}{{ $_ := set $own "app.kubernetes.io/component" . }}{{ end -}}
{{- toYaml (merge $own (index . 2) $root.Values.commonLabels) -}}
{{- end -}}

{{- define "grpcguard.labels" -}}
{{- include "grpcguard.componentLabels" (list . "" (dict)) -}}
{{- end -}}

{{- define "grpcguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "grpcguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of the webhook's own objects (selector labels plus the component). */}}
{{- define "grpcguard.webhookSelectorLabels" -}}
{{ include "grpcguard.selectorLabels" . }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "grpcguard.webhookLabels" -}}
{{- include "grpcguard.componentLabels" (list . "webhook" (dict)) -}}
{{- end -}}

{{/* repository:tag or repository@digest; the tag defaults to the appVersion. */}}
{{- define "grpcguard.image" -}}
{{- $img := index . 0 -}}
{{- $root := index . 1 -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The namespaceSelector of both webhook configurations: the namespaces labelled
grpcguard-injection=enabled, never the release namespace nor the system ones.
*/}}
{{- define "grpcguard.namespaceSelector" -}}
matchExpressions:
  - key: grpcguard-injection
    operator: In
    values: ["enabled"]
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ concat (list .Release.Namespace "kube-system" "kube-public" "kube-node-lease") .Values.webhook.excludeNamespaces | uniq | toJson }}
{{- end -}}

{{/*
The certificates of the default mode, as YAML {caCert, tlsCert, tlsKey} (PEM): those in
the existing Secret when there is one (helm upgrade), else new ones. `helm template` and
`--dry-run` cannot look the Secret up and always show new ones.
*/}}
{{- define "grpcguard.generatedCerts" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "grpcguard.tlsSecretName" .) -}}
{{- $data := dig "data" (dict) $secret -}}
{{- if and (hasKey $data "ca.crt") (hasKey $data "tls.crt") (hasKey $data "tls.key") -}}
caCert: {{ index $data "ca.crt" | b64dec | quote }}
tlsCert: {{ index $data "tls.crt" | b64dec | quote }}
tlsKey: {{ index $data "tls.key" | b64dec | quote }}
{{- else -}}
{{- $days := int .Values.certValidityDays -}}
{{- $ca := genCA (printf "%s-webhook-ca" (include "grpcguard.fullname" .)) $days -}}
{{- $dns := include "grpcguard.serviceDNSNames" . | fromJsonArray -}}
{{- $cert := genSignedCert (index $dns 2) nil $dns $days $ca -}}
caCert: {{ $ca.Cert | quote }}
tlsCert: {{ $cert.Cert | quote }}
tlsKey: {{ $cert.Key | quote }}
{{- end -}}
{{- end -}}

{{/* The caBundle (base64 PEM) in default and existingSecret modes; empty with cert-manager. */}}
{{- define "grpcguard.caBundle" -}}
{{- $b := .Values.existingSecretCABundle -}}
{{- if contains "-----BEGIN" $b -}}
{{- $b | b64enc -}}
{{- else -}}
{{- $b | nospace -}}
{{- end -}}
{{- end -}}

{{/* injection.nativeSidecar resolved to "true" or "false" (auto: by the Kubernetes version). */}}
{{- define "grpcguard.nativeSidecar" -}}
{{- $v := toString .Values.injection.nativeSidecar -}}
{{- if eq $v "auto" -}}
{{- semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- end -}}

{{/* Refuses contradictory values with a message that names the fix. */}}
{{- define "grpcguard.validateValues" -}}
{{- if and .Values.certManager.enabled .Values.existingSecret -}}
{{- fail "certManager.enabled and existingSecret are exclusive: choose one certificate mode" -}}
{{- end -}}
{{- if and .Values.existingSecret (not .Values.existingSecretCABundle) -}}
{{- fail "existingSecret needs existingSecretCABundle: the CA (PEM or base64 PEM) that signed the Secret's tls.crt, e.g. --set-file existingSecretCABundle=certs/ca.crt" -}}
{{- end -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and $pdb.enabled (gt (int .Values.replicaCount) 1) (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int .Values.replicaCount)) -}}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be below replicaCount (%d), or no node could ever be drained" (int $pdb.minAvailable) (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and .Values.injection.enabled (eq (toString .Values.injection.nativeSidecar) "true") (semverCompare "<1.29.0-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "injection.nativeSidecar=true needs Kubernetes 1.29 or later (this is %s): set injection.nativeSidecar=false" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}

{{/* clientConfig of a webhook: dict root (the top context), path, caBundle. */}}
{{- define "grpcguard.clientConfig" -}}
service:
  name: {{ include "grpcguard.webhookName" .root }}
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: {{ .root.Values.service.port | int64 }}
{{- with .caBundle }}
caBundle: {{ . }}
{{- end }}
{{- end }}
