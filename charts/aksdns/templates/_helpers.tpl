{{/* Names, labels and shared fragments. */}}

{{- define "aksdns.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, trimmed so that "<fullname>-worker-capture" and the
like stay within 63 characters.
*/}}
{{- define "aksdns.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aksdns.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aksdns.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aksdns.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aksdns.labels" -}}
helm.sh/chart: {{ include "aksdns.chart" . }}
{{ include "aksdns.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aksdns
aksdns.io/cluster: {{ .Values.cluster | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component: (dict "ctx" $ "component" "worker") */}}
{{- define "aksdns.componentLabels" -}}
{{ include "aksdns.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "aksdns.componentSelectorLabels" -}}
{{ include "aksdns.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "aksdns.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end }}

{{- define "aksdns.botServiceAccountName" -}}
{{- if .Values.bot.serviceAccount.create -}}
{{- default (printf "%s-bot" (include "aksdns.fullname" .)) .Values.bot.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.bot.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{- define "aksdns.workerServiceAccountName" -}}
{{- if .Values.worker.serviceAccount.create -}}
{{- default (printf "%s-worker" (include "aksdns.fullname" .)) .Values.worker.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.worker.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/* Secret and key holding the job signing key (AKSDNS_JOB_SIGNING_KEY). */}}
{{- define "aksdns.jobSigningSecretName" -}}
{{- default (printf "%s-job-signing" (include "aksdns.fullname" .)) .Values.jobSigning.existingSecret -}}
{{- end }}

{{- define "aksdns.jobSigningKeyEnv" -}}
- name: AKSDNS_JOB_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "aksdns.jobSigningSecretName" . }}
      key: {{ if .Values.jobSigning.existingSecret }}{{ .Values.jobSigning.existingSecretKey }}{{ else }}key{{ end }}
{{- end }}

{{- define "aksdns.slackSecretName" -}}
{{- default (printf "%s-slack" (include "aksdns.fullname" .)) .Values.slack.existingSecret -}}
{{- end }}

{{/*
Prefix of objects outside the release namespace (cluster-scoped RBAC, Roles in
kube-system and in capture target namespaces): unique per release namespace.
*/}}
{{- define "aksdns.globalName" -}}
{{- printf "%s-%s" .Release.Namespace (include "aksdns.fullname" .) -}}
{{- end }}

{{- define "aksdns.redisName" -}}
{{- printf "%s-redis" (include "aksdns.fullname" .) -}}
{{- end }}

{{/* Secret and key holding the bundled Redis password. */}}
{{- define "aksdns.redisPasswordSecretName" -}}
{{- default (include "aksdns.redisName" .) .Values.redis.auth.existingSecret -}}
{{- end }}

{{- define "aksdns.redisPasswordKey" -}}
{{- if .Values.redis.auth.existingSecret -}}
{{- .Values.redis.auth.existingSecretPasswordKey -}}
{{- else -}}
redis-password
{{- end -}}
{{- end }}

{{/* host:port of the bundled Redis Service. */}}
{{- define "aksdns.redisHost" -}}
{{- printf "%s.%s.svc" (include "aksdns.redisName" .) .Release.Namespace -}}
{{- end }}

{{/*
Fail early on values that cannot work together (the schema covers types).
*/}}
{{- define "aksdns.validate" -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.external.url) (not .Values.redis.external.existingSecret) }}
{{- fail "redis.enabled=false needs redis.external.url or redis.external.existingSecret (the shared Redis of the bot)" }}
{{- end }}
{{- if and .Values.redis.enabled (or .Values.redis.external.url .Values.redis.external.existingSecret) }}
{{- fail "set redis.enabled=false to use redis.external (bundled and external Redis are exclusive)" }}
{{- end }}
{{- if and .Values.redis.external.url (not (regexMatch "^rediss?://" .Values.redis.external.url)) }}
{{- fail "redis.external.url must start with redis:// or rediss://" }}
{{- end }}
{{- if and (not .Values.bot.enabled) (not .Values.worker.enabled) }}
{{- fail "bot.enabled and worker.enabled are both false: nothing to install" }}
{{- end }}
{{- if and (not .Values.bot.enabled) (not .Values.jobSigning.existingSecret) (not .Values.jobSigning.key) }}
{{- fail "bot.enabled=false needs jobSigning.existingSecret (or jobSigning.key): the job signing key of the bot's release" }}
{{- end }}
{{- if and .Values.capture.enabled (not .Values.worker.enabled) }}
{{- fail "capture.enabled needs worker.enabled (capture rights belong to the worker)" }}
{{- end }}
{{- end }}

{{/*
Environment shared by bot and worker: Redis URL (from a Secret), Slack bot token.
The bundled Redis URL is assembled by the kubelet from REDIS_PASSWORD so the
password lives in one Secret key only.
*/}}
{{- define "aksdns.redisEnv" -}}
{{- if .Values.redis.enabled -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "aksdns.redisPasswordSecretName" . }}
      key: {{ include "aksdns.redisPasswordKey" . }}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "aksdns.redisHost" .) | quote }}
{{- else -}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ default (include "aksdns.redisName" .) .Values.redis.external.existingSecret }}
      key: {{ if .Values.redis.external.existingSecret }}{{ .Values.redis.external.existingSecretKey }}{{ else }}redis-url{{ end }}
{{- end }}
{{- end }}

{{- define "aksdns.slackBotTokenEnv" -}}
- name: SLACK_BOT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "aksdns.slackSecretName" . }}
      key: SLACK_BOT_TOKEN
{{- end }}

{{/* Writable scratch space: the root filesystem is read-only. */}}
{{- define "aksdns.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 512Mi
{{- end }}

{{- define "aksdns.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Pod annotations that roll pods when configuration or Slack secret changes. */}}
{{- define "aksdns.checksumAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.slack.existingSecret }}
checksum/slack: {{ include (print .Template.BasePath "/secret-slack.yaml") . | sha256sum }}
{{- end }}
{{- if not .Values.jobSigning.existingSecret }}
checksum/job-signing: {{ include (print .Template.BasePath "/secret-job-signing.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/*
NetworkPolicy ingress rule letting Prometheus scrape /metrics (networkPolicy.metricsFrom; empty = anywhere).
*/}}
{{- define "aksdns.metricsIngress" -}}
{{- if .Values.metrics.enabled }}
- ports:
    - port: {{ .Values.metrics.port }}
      protocol: TCP
  {{- with .Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
