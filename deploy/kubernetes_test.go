package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	base       = "kubernetes/base"
	production = "kubernetes/overlays/production"

	// The ports tokenservice listens on in its container.
	httpPort    = 8080
	grpcPort    = 9090
	metricsPort = 9464
)

// manifests is one kustomization's output, decoded into the typed API
// structs.
type manifests struct {
	namespaces      []*corev1.Namespace
	serviceAccounts []*corev1.ServiceAccount
	configMaps      []*corev1.ConfigMap
	services        []*corev1.Service
	deployments     []*appsv1.Deployment
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	netpols         []*networkingv1.NetworkPolicy
	serviceMonitors []*monitoringv1.ServiceMonitor
	// objects names every object as apiVersion/kind/namespace/name.
	objects []string
}

// render builds the kustomization in dir as kubectl apply -k would, and
// decodes every object strictly: an unknown kind, an unknown or misspelt
// field, or a value of the wrong type fails the test.
func render(t *testing.T, dir string) *manifests {
	t.Helper()
	m, err := build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func build(dir string) (*manifests, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	m := &manifests{}
	for _, res := range resMap.Resources() {
		b, err := res.AsYAML()
		if err != nil {
			return nil, err
		}
		gvk := res.GetApiVersion() + "/" + res.GetKind()
		var obj interface {
			GetName() string
			GetNamespace() string
		}
		switch gvk {
		case "v1/Namespace":
			obj = appendNew(&m.namespaces)
		case "v1/ServiceAccount":
			obj = appendNew(&m.serviceAccounts)
		case "v1/ConfigMap":
			obj = appendNew(&m.configMaps)
		case "v1/Service":
			obj = appendNew(&m.services)
		case "apps/v1/Deployment":
			obj = appendNew(&m.deployments)
		case "policy/v1/PodDisruptionBudget":
			obj = appendNew(&m.pdbs)
		case "autoscaling/v2/HorizontalPodAutoscaler":
			obj = appendNew(&m.hpas)
		case "networking.k8s.io/v1/NetworkPolicy":
			obj = appendNew(&m.netpols)
		case "monitoring.coreos.com/v1/ServiceMonitor":
			obj = appendNew(&m.serviceMonitors)
		default:
			return nil, fmt.Errorf("%s: %s %s: a kind (or version) these tests do not know; add it to build", dir, gvk, res.GetName())
		}
		if err := decodeStrict(b, obj); err != nil {
			return nil, fmt.Errorf("%s: %s %s does not decode strictly: %w\n%s", dir, gvk, res.GetName(), err, b)
		}
		m.objects = append(m.objects, fmt.Sprintf("%s/%s/%s", gvk, obj.GetNamespace(), obj.GetName()))
	}
	return m, nil
}

// decodeStrict decodes YAML as the API server does with
// fieldValidation=Strict: field names match case-sensitively, and an unknown
// or duplicate field is an error. (encoding/json's DisallowUnknownFields, and
// so sigs.k8s.io/yaml.UnmarshalStrict, would take readOnlyRootFileSystem for
// readOnlyRootFilesystem.)
func decodeStrict(b []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// appendNew appends a new T to *s and returns it to decode into.
func appendNew[T any](s *[]*T) *T {
	v := new(T)
	*s = append(*s, v)
	return v
}

// one returns the only element of s, failing the test unless there is
// exactly one.
func one[T any](t *testing.T, what string, s []*T) *T {
	t.Helper()
	if len(s) != 1 {
		t.Fatalf("%d %s, want 1", len(s), what)
	}
	return s[0]
}

func named[T interface{ GetName() string }](t *testing.T, s []T, name string) T {
	t.Helper()
	for _, v := range s {
		if v.GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %q", zero, name)
	return zero
}

// TestKustomizationsRender renders every kustomization, decodes every object
// strictly, and checks what any of them must be.
func TestKustomizationsRender(t *testing.T) {
	for _, dir := range []string{base, production} {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			d := one(t, "Deployments", m.deployments)
			checkPodSecurity(t, d)
			checkContainers(t, m, d)
			checkServices(t, m, d)
			checkAvailability(t, m, d)
			checkNetworkPolicy(t, m, d)
			checkNoSecretValues(t, m)
			checkServiceMonitor(t, m, d)
		})
	}
}

// TestKustomizationsAreSelfContained: whatever a kustomization's objects
// reference among themselves (the ConfigMap, the ServiceAccount) is in its
// output, under the name kustomize gave it, and in the same namespace.
func TestKustomizationsAreSelfContained(t *testing.T) {
	for _, dir := range []string{base, production} {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			d := one(t, "Deployments", m.deployments)
			named(t, m.serviceAccounts, d.Spec.Template.Spec.ServiceAccountName)
			for _, c := range allContainers(d) {
				for _, ef := range c.EnvFrom {
					if ef.ConfigMapRef == nil {
						t.Errorf("container %s: envFrom other than a ConfigMap", c.Name)
						continue
					}
					named(t, m.configMaps, ef.ConfigMapRef.Name)
				}
			}
			ns := d.Namespace
			for _, o := range m.objects {
				parts := strings.Split(o, "/")
				kind, namespace := parts[len(parts)-3], parts[len(parts)-2]
				if kind == "Namespace" {
					continue
				}
				if namespace != ns {
					t.Errorf("%s: namespace %q, the Deployment's is %q", o, namespace, ns)
				}
			}
		})
	}
}

func allContainers(d *appsv1.Deployment) []corev1.Container {
	return append(slices.Clone(d.Spec.Template.Spec.InitContainers), d.Spec.Template.Spec.Containers...)
}

func checkPodSecurity(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil {
		t.Fatal("the pod has no securityContext")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("the pod shares a host namespace")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token; tokenservice never calls the Kubernetes API")
	}
	for _, c := range allContainers(d) {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s: no securityContext", c.Name)
			continue
		}
		// The container's setting wins over the pod's.
		runAsNonRoot := psc.RunAsNonRoot
		if sc.RunAsNonRoot != nil {
			runAsNonRoot = sc.RunAsNonRoot
		}
		if runAsNonRoot == nil || !*runAsNonRoot {
			t.Errorf("container %s: runAsNonRoot is not true", c.Name)
		}
		uid := psc.RunAsUser
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if uid != nil && *uid == 0 {
			t.Errorf("container %s: runAsUser 0", c.Name)
		}
		seccomp := psc.SeccompProfile
		if sc.SeccompProfile != nil {
			seccomp = sc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container %s: seccompProfile is not RuntimeDefault", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s: privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("container %s: capabilities %+v, want drop [ALL] and no add", c.Name, sc.Capabilities)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
			if req.IsZero() || lim.IsZero() {
				t.Errorf("container %s: %s request %q, limit %q: want both", c.Name, r, req.String(), lim.String())
			} else if lim.Cmp(req) < 0 {
				t.Errorf("container %s: %s limit %s below the request %s", c.Name, r, lim.String(), req.String())
			}
		}
	}
}

// containerPort resolves a probe's or a Service's port (a number, or a name
// of one of c's ports) to a number.
func containerPort(t *testing.T, c *corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Errorf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

func mainContainer(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "tokenservice" {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatal("no container named tokenservice")
	return nil
}

func configOf(t *testing.T, m *manifests, d *appsv1.Deployment) map[string]string {
	t.Helper()
	c := mainContainer(t, d)
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil {
		t.Fatalf("container %s: envFrom %+v, want one ConfigMap", c.Name, c.EnvFrom)
	}
	return named(t, m.configMaps, c.EnvFrom[0].ConfigMapRef.Name).Data
}

func checkContainers(t *testing.T, m *manifests, d *appsv1.Deployment) {
	t.Helper()
	c := mainContainer(t, d)
	if !slices.Equal(c.Args, []string{"serve"}) || len(c.Command) != 0 {
		t.Errorf("container %s runs %q %q, want the image's entrypoint with serve", c.Name, c.Command, c.Args)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if want := map[string]int32{"http": httpPort, "grpc": grpcPort, "metrics": metricsPort}; !mapsEqual(ports, want) {
		t.Errorf("container ports %v, want %v", ports, want)
	}

	// What it listens on, from its settings, is what the ports say.
	cfg := configOf(t, m, d)
	for v, want := range map[string]string{
		"TOKENSERVICE_HTTP_ADDR":    fmt.Sprintf(":%d", httpPort),
		"TOKENSERVICE_GRPC_ADDR":    fmt.Sprintf(":%d", grpcPort),
		"TOKENSERVICE_METRICS_ADDR": fmt.Sprintf(":%d", metricsPort),
		"TOKENSERVICE_DB_DRIVER":    "mysql",
		"TOKENSERVICE_LOG_FORMAT":   "json",
	} {
		if cfg[v] != want {
			t.Errorf("%s=%q, want %q", v, cfg[v], want)
		}
	}
	if iss := cfg["TOKENSERVICE_ISSUER"]; !strings.HasPrefix(iss, "https://") {
		t.Errorf("TOKENSERVICE_ISSUER=%q: want the public https base URL", iss)
	}

	for _, probe := range []struct {
		name string
		p    *corev1.Probe
		path string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if probe.p == nil || probe.p.HTTPGet == nil {
			t.Errorf("%s: not an HTTP GET", probe.name)
			continue
		}
		if probe.p.HTTPGet.Path != probe.path {
			t.Errorf("%s: path %q, want %q", probe.name, probe.p.HTTPGet.Path, probe.path)
		}
		if port := containerPort(t, c, probe.p.HTTPGet.Port); port != httpPort {
			t.Errorf("%s: port %d, want %d", probe.name, port, httpPort)
		}
		if s := probe.p.HTTPGet.Scheme; s != "" && s != corev1.URISchemeHTTP {
			t.Errorf("%s: scheme %s", probe.name, s)
		}
	}

	// The migration: an init container of the same image running db migrate,
	// on the same database.
	inits := d.Spec.Template.Spec.InitContainers
	if len(inits) != 1 {
		t.Fatalf("%d init containers, want 1 (migrate)", len(inits))
	}
	mig := inits[0]
	if !slices.Equal(mig.Args, []string{"db", "migrate"}) || len(mig.Command) != 0 {
		t.Errorf("init container %s runs %q %q, want db migrate", mig.Name, mig.Command, mig.Args)
	}
	if mig.Image != c.Image {
		t.Errorf("init container image %q, the server's %q", mig.Image, c.Image)
	}
	for _, ctr := range []corev1.Container{mig, *c} {
		if ref := secretEnv(ctr, "TOKENSERVICE_DB_DSN"); ref == nil || ref.Name != "tokenservice-db" || ref.Key != "dsn" {
			t.Errorf("container %s: TOKENSERVICE_DB_DSN %+v, want from Secret tokenservice-db key dsn", ctr.Name, ref)
		}
		if ctr.ImagePullPolicy == corev1.PullNever {
			t.Errorf("container %s: imagePullPolicy Never", ctr.Name)
		}
	}

	// The key-encryption key: the file the setting names is the key kek of
	// Secret tokenservice-kek, mounted read-only.
	kekFile := cfg["TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE"]
	found := false
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(kekFile, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if !ok {
			continue
		}
		found = true
		if !vm.ReadOnly {
			t.Errorf("volume %s is mounted writable", vm.Name)
		}
		var vol *corev1.Volume
		for i := range d.Spec.Template.Spec.Volumes {
			if d.Spec.Template.Spec.Volumes[i].Name == vm.Name {
				vol = &d.Spec.Template.Spec.Volumes[i]
			}
		}
		if vol == nil || vol.Secret == nil || vol.Secret.SecretName != "tokenservice-kek" {
			t.Fatalf("%s is on volume %s, want Secret tokenservice-kek", kekFile, vm.Name)
		}
		key := rel
		for _, it := range vol.Secret.Items {
			if it.Path == rel {
				key = it.Key
			}
		}
		if key != "kek" {
			t.Errorf("%s is key %q of tokenservice-kek, want kek", kekFile, key)
		}
		if mode := vol.Secret.DefaultMode; mode == nil || *mode&0o007 != 0 {
			t.Errorf("the kek volume's defaultMode %v lets every user read the key", mode)
		}
	}
	if !found {
		t.Errorf("TOKENSERVICE_KEY_ENCRYPTION_KEY_FILE=%q is on no volume of container %s", kekFile, c.Name)
	}
}

func secretEnv(c corev1.Container, name string) *corev1.SecretKeySelector {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	return nil
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func selects(t *testing.T, sel map[string]string, d *appsv1.Deployment) bool {
	t.Helper()
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels))
}

func labelSelects(t *testing.T, sel *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(set))
}

func checkServices(t *testing.T, m *manifests, d *appsv1.Deployment) {
	t.Helper()
	c := mainContainer(t, d)
	if len(m.services) != 2 {
		t.Fatalf("%d Services, want 2 (the API, the metrics)", len(m.services))
	}
	type port struct {
		port, target int32
		appProtocol  string
	}
	for name, want := range map[string]map[string]port{
		"tokenservice": {
			"http": {httpPort, httpPort, "http"},
			"grpc": {grpcPort, grpcPort, "kubernetes.io/h2c"},
		},
		"tokenservice-metrics": {
			"metrics": {metricsPort, metricsPort, "http"},
		},
	} {
		s := named(t, m.services, name)
		if !selects(t, s.Spec.Selector, d) {
			t.Errorf("Service %s: selector %v does not select the pods %v", name, s.Spec.Selector, d.Spec.Template.Labels)
		}
		got := map[string]port{}
		for _, p := range s.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				t.Errorf("Service %s port %s: protocol %s", name, p.Name, p.Protocol)
			}
			got[p.Name] = port{p.Port, containerPort(t, c, p.TargetPort), ptrValue(p.AppProtocol)}
		}
		if !mapsEqual(got, want) {
			t.Errorf("Service %s ports %+v, want %+v", name, got, want)
		}
	}
	if s := named(t, m.services, "tokenservice"); s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service tokenservice is %s: expose it through a gateway, which terminates TLS", s.Spec.Type)
	}
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func checkAvailability(t *testing.T, m *manifests, d *appsv1.Deployment) {
	t.Helper()
	if d.Spec.Replicas != nil {
		t.Errorf("the Deployment sets replicas %d: the HorizontalPodAutoscaler owns the count, and every apply would reset it", *d.Spec.Replicas)
	}
	if !labelSelects(t, d.Spec.Selector, d.Spec.Template.Labels) {
		t.Error("the Deployment's selector does not select its own pods")
	}

	pdb := one(t, "PodDisruptionBudgets", m.pdbs)
	if !labelSelects(t, pdb.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget %s does not select the Deployment's pods", pdb.Name)
	}
	if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
		t.Errorf("PodDisruptionBudget %s: want exactly one of minAvailable and maxUnavailable", pdb.Name)
	}

	hpa := one(t, "HorizontalPodAutoscalers", m.hpas)
	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HorizontalPodAutoscaler %s targets %s %s %s, want apps/v1 Deployment %s", hpa.Name, ref.APIVersion, ref.Kind, ref.Name, d.Name)
	}
	lo := ptrValue(hpa.Spec.MinReplicas)
	if lo < 2 {
		t.Errorf("HorizontalPodAutoscaler %s: minReplicas %d; with fewer than 2 the PodDisruptionBudget blocks every drain or allows an outage", hpa.Name, lo)
	}
	if hpa.Spec.MaxReplicas < lo {
		t.Errorf("HorizontalPodAutoscaler %s: maxReplicas %d < minReplicas %d", hpa.Name, hpa.Spec.MaxReplicas, lo)
	}
	if len(hpa.Spec.Metrics) == 0 {
		t.Errorf("HorizontalPodAutoscaler %s has no metrics", hpa.Name)
	}
	// A Resource metric's utilisation is of the requests: each container needs one.
	for _, c := range allContainers(d) {
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Errorf("container %s has no CPU request for the HorizontalPodAutoscaler to compare with", c.Name)
		}
	}
}

func checkNetworkPolicy(t *testing.T, m *manifests, d *appsv1.Deployment) {
	t.Helper()
	c := mainContainer(t, d)
	np := one(t, "NetworkPolicies", m.netpols)
	if !labelSelects(t, &np.Spec.PodSelector, d.Spec.Template.Labels) {
		t.Errorf("NetworkPolicy %s does not select the Deployment's pods", np.Name)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("NetworkPolicy %s: policyTypes %v, want Ingress and Egress", np.Name, np.Spec.PolicyTypes)
	}
	// Which ports each rule opens, and whether to everyone.
	open, restricted := map[int32]bool{}, map[int32]bool{}
	for _, r := range np.Spec.Ingress {
		if len(r.Ports) == 0 {
			t.Errorf("NetworkPolicy %s: an ingress rule opens every port", np.Name)
		}
		for _, p := range r.Ports {
			if p.Port == nil {
				t.Errorf("NetworkPolicy %s: an ingress rule opens every port", np.Name)
				continue
			}
			n := containerPort(t, c, *p.Port)
			if len(r.From) == 0 {
				open[n] = true
			} else {
				restricted[n] = true
			}
		}
	}
	if !open[httpPort] || !open[grpcPort] {
		t.Errorf("NetworkPolicy %s does not admit the API's clients to %d and %d", np.Name, httpPort, grpcPort)
	}
	if open[metricsPort] || !restricted[metricsPort] {
		t.Errorf("NetworkPolicy %s: metrics port %d open to all %v, or to nobody %v", np.Name, metricsPort, open[metricsPort], !restricted[metricsPort])
	}
	egress := map[int32]bool{}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port != nil {
				egress[p.Port.IntVal] = true
			}
		}
	}
	if !egress[3306] || !egress[53] {
		t.Errorf("NetworkPolicy %s: egress ports %v, want MySQL (3306) and DNS (53)", np.Name, egress)
	}
}

// checkNoSecretValues: Secrets are referenced, never rendered, and no
// setting in a ConfigMap is one.
func checkNoSecretValues(t *testing.T, m *manifests) {
	t.Helper()
	for _, o := range m.objects {
		if strings.HasPrefix(o, "v1/Secret/") {
			t.Errorf("%s: Secrets are created outside git", o)
		}
	}
	for _, cm := range m.configMaps {
		for k, v := range cm.Data {
			if k == "TOKENSERVICE_DB_DSN" || strings.Contains(v, "@tcp(") {
				t.Errorf("ConfigMap %s has a DSN (%s); it is a secret", cm.Name, k)
			}
		}
	}
}

func checkServiceMonitor(t *testing.T, m *manifests, d *appsv1.Deployment) {
	t.Helper()
	ann := d.Spec.Template.Annotations
	if len(m.serviceMonitors) == 0 {
		// Annotation-based discovery, on the metrics port.
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != fmt.Sprint(metricsPort) || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("pod annotations %v: want prometheus.io/scrape, port %d and path /metrics", ann, metricsPort)
		}
		return
	}
	sm := one(t, "ServiceMonitors", m.serviceMonitors)
	for k := range ann {
		if strings.HasPrefix(k, "prometheus.io/") {
			t.Errorf("with a ServiceMonitor the pods still carry %s: scraped twice, every sum doubled", k)
		}
	}
	if sm.Namespace != d.Namespace {
		t.Errorf("ServiceMonitor in namespace %q, the Service in %q: without a namespaceSelector it selects nothing", sm.Namespace, d.Namespace)
	}
	var matched []*corev1.Service
	for _, s := range m.services {
		if labelSelects(t, &sm.Spec.Selector, s.Labels) {
			matched = append(matched, s)
		}
	}
	if len(matched) != 1 || matched[0].Name != "tokenservice-metrics" {
		t.Fatalf("ServiceMonitor %s selects %d Services, want tokenservice-metrics alone", sm.Name, len(matched))
	}
	s := matched[0]
	if job := s.Labels[sm.Spec.JobLabel]; job != "tokenservice" {
		t.Errorf("ServiceMonitor %s: job %q (label %q of Service %s), the alerts and the dashboard select job=\"tokenservice\"", sm.Name, job, sm.Spec.JobLabel, s.Name)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor %s: %d endpoints, want 1", sm.Name, len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port && p.Port == metricsPort }) {
		t.Errorf("ServiceMonitor %s scrapes port %q, not Service %s's metrics port", sm.Name, ep.Port, s.Name)
	}
	if ep.Path != "" && ep.Path != "/metrics" {
		t.Errorf("ServiceMonitor %s scrapes %s", sm.Name, ep.Path)
	}
}

// TestBase: no Prometheus Operator assumed, and the image and settings are
// placeholders an overlay replaces.
func TestBase(t *testing.T) {
	m := render(t, base)
	if len(m.serviceMonitors) != 0 {
		t.Error("the base has a ServiceMonitor: it would not apply on a cluster without the Prometheus Operator")
	}
	d := one(t, "Deployments", m.deployments)
	if d.Namespace != "" {
		t.Errorf("the base sets namespace %q; overlays choose it", d.Namespace)
	}
	for _, c := range allContainers(d) {
		if c.Image != "tokenservice" {
			t.Errorf("container %s: image %q, want the placeholder tokenservice that overlays replace", c.Name, c.Image)
		}
	}
}

// TestProductionOverlay: the overlay changes what it says it changes.
func TestProductionOverlay(t *testing.T) {
	b, p := render(t, base), render(t, production)
	bd, pd := one(t, "Deployments", b.deployments), one(t, "Deployments", p.deployments)

	ns := one(t, "Namespaces", p.namespaces)
	if ns.Name != "tokenservice" || pd.Namespace != ns.Name {
		t.Errorf("namespace %q, Deployment in %q", ns.Name, pd.Namespace)
	}
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %s does not enforce the restricted Pod Security Standard", ns.Name)
	}

	for _, c := range allContainers(pd) {
		if c.Image != "registry.example.com/tokenservice:1.0.0" {
			t.Errorf("container %s: image %q, want the overlay's tag", c.Name, c.Image)
		}
	}

	if iss := configOf(t, p, pd)["TOKENSERVICE_ISSUER"]; iss != "https://tokens.prod.example.com" {
		t.Errorf("TOKENSERVICE_ISSUER=%q, want the overlay's", iss)
	}
	if bc, pc := configOf(t, b, bd), configOf(t, p, pd); len(bc) != len(pc) {
		t.Errorf("the overlay's ConfigMap has %d settings, the base's %d: merge, do not replace", len(pc), len(bc))
	}

	hpa := one(t, "HorizontalPodAutoscalers", p.hpas)
	if lo, hi := ptrValue(hpa.Spec.MinReplicas), hpa.Spec.MaxReplicas; lo != 3 || hi != 10 {
		t.Errorf("replicas %d to %d, want the overlay's 3 to 10", lo, hi)
	}

	want := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("192Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("384Mi")},
	}
	got := mainContainer(t, pd).Resources
	for _, rl := range []struct{ got, want corev1.ResourceList }{{got.Requests, want.Requests}, {got.Limits, want.Limits}} {
		for r, q := range rl.want {
			if g := rl.got[r]; g.Cmp(q) != 0 {
				t.Errorf("%s: %s, want the overlay's %s", r, g.String(), q.String())
			}
		}
	}

	if len(p.serviceMonitors) != 1 {
		t.Errorf("%d ServiceMonitors, want the component's", len(p.serviceMonitors))
	}
}

// TestRenderRejectsMistakes proves the strict decoding catches what it is
// there for: a misspelt field and an unknown kind, in copies of the base.
func TestRenderRejectsMistakes(t *testing.T) {
	for name, edit := range map[string]func(string) string{
		"misspelt field": func(s string) string {
			return strings.Replace(s, "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", 1)
		},
		"field of the wrong type": func(s string) string {
			return strings.Replace(s, "runAsNonRoot: true", `runAsNonRoot: "yes"`, 1)
		},
		"unknown kind": func(s string) string {
			return strings.Replace(s, "kind: Deployment", "kind: Deploymnet", 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, base, dir)
			path := filepath.Join(dir, "deployment.yaml")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			broken := edit(string(b))
			if broken == string(b) {
				t.Fatal("the edit changed nothing")
			}
			if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := build(dir); err == nil {
				t.Error("build accepted the broken manifest")
			} else {
				t.Log(strings.SplitN(err.Error(), "\n", 2)[0])
			}
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
