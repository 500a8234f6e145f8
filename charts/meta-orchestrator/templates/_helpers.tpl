{{/* The release's full name, at most 63 characters (a DNS label). */}}
{{- define "meta-orchestrator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "meta-orchestrator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "meta-orchestrator.labels" -}}
{{ include "meta-orchestrator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "meta-orchestrator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "meta-orchestrator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "meta-orchestrator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
What the operator does in a namespace whose MetaFlows it runs (a ClusterRole's rules when it
watches every namespace, a Role's in each watched one otherwise).
*/}}
{{- define "meta-orchestrator.flowRules" -}}
# MetaFlows: watched; child flows (flowRefs) created and, when stopped, deleted.
- apiGroups: [meta-orchestrator.io]
  resources: [metaflows]
  verbs: [get, list, watch, patch, create, update, delete]
# ownerReferences with blockOwnerDeletion, where OwnerReferencesPermissionEnforcement is on.
- apiGroups: [meta-orchestrator.io]
  resources: [metaflows/finalizers]
  verbs: [update]
- apiGroups: [meta-orchestrator.io]
  resources: [metaflows/status]
  verbs: [get, patch]
# MetaSchemas: watched (a finalizer while the operator handles one); each spec's MetaFlow is
# generated and created owned by it; its status says which, or why none.
- apiGroups: [meta-orchestrator.io]
  resources: [metaschemas]
  verbs: [get, list, watch, patch, update]
- apiGroups: [meta-orchestrator.io]
  resources: [metaschemas/status]
  verbs: [get, patch]
- apiGroups: [meta-orchestrator.io]
  resources: [metaschemas/finalizers]
  verbs: [update]
# One pod per macro unit and per micro section. `patch` is held only to be granted to each micro
# pod's quarterback, whose Role names that one pod (a Role cannot grant more than its maker holds).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete, deletecollection, patch]
# The per-flow journal and each micro pod's work, in ConfigMaps owned by the flow; an ended
# flow's journal chunks are deleted once compacted into the store.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch, delete]
# Each micro pod's quarterback: a ServiceAccount, a Role naming its pod, a RoleBinding.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* The operator's command line, from the values. */}}
{{- define "meta-orchestrator.args" -}}
- operator
- --leader-elect
- --lease-namespace={{ .Release.Namespace }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
- --qps={{ .Values.apiBudget.qps }}
- --burst={{ .Values.apiBudget.burst }}
- --image={{ include "meta-orchestrator.image" . }}
- --image-pull-policy={{ .Values.pods.imagePullPolicy }}
{{- with .Values.store.claim }}
- --store-claim={{ . }}
{{- end }}
- --store-dir={{ .Values.store.dir }}
{{- /* An ended flow's journal leaves etcd for the store only when the operator's store outlives it. */}}
{{- if .Values.store.operatorClaim }}
- --compact-journal
{{- else }}
- --keep-journal
{{- end }}
{{- range $key, $value := .Values.pods.nodeSelector }}
- --node-selector={{ $key }}={{ $value }}
{{- end }}
{{- range .Values.pods.tolerations }}
- --toleration={{ . }}
{{- end }}
- --run-as-user={{ .Values.pods.runAsUser }}
{{- if .Values.pods.writableRoot }}
- --writable-step-root
{{- end }}
- --metrics-port={{ .Values.metrics.port }}
- --health-port={{ .Values.health.port }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
