{{/*
Names, labels and the few values more than one template needs.
Components (app.kubernetes.io/component): operator, chaos, postgresql, redis, cloudflared, dashboard.
*/}}

{{/* Chart name, 63 characters at most. */}}
{{- define "heady.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every object name. Release "heady" gives "heady"; release "prod" gives "prod-heady".
Kept at 40 characters so "<fullname>-<component>-<suffix>" stays a valid DNS label.
*/}}
{{- define "heady.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "heady.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "heady.selectorLabels" -}}
app.kubernetes.io/name: {{ include "heady.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every label of an object. Call with (dict "ctx" $ "component" "operator"). */}}
{{- define "heady.labels" -}}
{{ include "heady.selectorLabels" . }}
app.kubernetes.io/part-of: heady
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "heady.chart" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Object names of the components. */}}
{{- define "heady.operator.fullname" -}}{{ include "heady.fullname" . }}-operator{{- end -}}
{{- define "heady.postgresql.fullname" -}}{{ include "heady.fullname" . }}-postgresql{{- end -}}
{{- define "heady.redis.fullname" -}}{{ include "heady.fullname" . }}-redis{{- end -}}
{{- define "heady.cloudflared.fullname" -}}{{ include "heady.fullname" . }}-cloudflared{{- end -}}

{{- define "heady.operator.serviceAccountName" -}}
{{- default (include "heady.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "heady.chaos.serviceAccountName" -}}
{{- default (printf "%s-chaos" (include "heady.fullname" .)) .Values.chaos.serviceAccount.name -}}
{{- end -}}

{{/* The operator image; the tag defaults to the chart's appVersion. */}}
{{- define "heady.operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* image: repository:tag of a component image block. */}}
{{- define "heady.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* Secret (and key) holding the password of the chart's own Postgres. */}}
{{- define "heady.postgresql.secretName" -}}
{{- default (include "heady.postgresql.fullname" .) .Values.postgresql.auth.existingSecret -}}
{{- end -}}

{{/*
DSN the operator connects with (HEADY_POSTGRES_DSN). It never carries the password: asyncpg
(like libpq) reads PGPASSWORD, which the Deployment sets from the Secret, so a password with
URL-reserved characters needs no escaping. Empty when there is no Postgres at all.
*/}}
{{- define "heady.postgresql.dsn" -}}
{{- $pg := .Values.postgresql -}}
{{- if $pg.enabled -}}
{{- printf "postgresql://%s@%s.%s.svc:%d/%s" $pg.auth.username (include "heady.postgresql.fullname" .) .Release.Namespace (int $pg.port) $pg.auth.database -}}
{{- else if $pg.external.host -}}
{{- $dsn := printf "postgresql://%s@%s:%d/%s" $pg.external.user $pg.external.host (int $pg.external.port) $pg.external.database -}}
{{- if $pg.external.sslmode -}}
{{- $dsn = printf "%s?sslmode=%s" $dsn $pg.external.sslmode -}}
{{- end -}}
{{- $dsn -}}
{{- end -}}
{{- end -}}

{{/* URL of the chart's own Redis (HEADY_REDIS_URL). */}}
{{- define "heady.redis.url" -}}
{{- printf "redis://%s.%s.svc:%d/%d" (include "heady.redis.fullname" .) .Release.Namespace (int .Values.redis.port) (int .Values.redis.database) -}}
{{- end -}}

{{/* Restricted container securityContext (Pod Security Standard "restricted"). */}}
{{- define "heady.restrictedContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
