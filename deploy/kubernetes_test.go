package deploy_test

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cosnim/relays/relay/relayserver"
)

const k8sFile = "kubernetes/relay.yaml"

// The parts of the Kubernetes objects the test checks.
type (
	k8sObject struct {
		Kind     string
		Metadata struct {
			Name   string
			Labels map[string]string
		}
		Data map[string]string // ConfigMap
		Spec k8sSpec
	}
	k8sSpec struct {
		Replicas *int
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		Template struct {
			Metadata struct{ Labels map[string]string }
			Spec     podSpec
		}
		ServiceName         string `yaml:"serviceName"`
		PodManagementPolicy string `yaml:"podManagementPolicy"`
		// Service
		ServiceSelector map[string]string `yaml:"-"`
		Type            string
		ClusterIP       string `yaml:"clusterIP"`
		// PodDisruptionBudget
		MaxUnavailable *int `yaml:"maxUnavailable"`
		// NetworkPolicy
		PodSelector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"podSelector"`
		PolicyTypes []string `yaml:"policyTypes"`
		Ingress     []struct {
			From  []k8sPeer
			Ports []struct{ Port string }
		}
		Ports []struct {
			Name       string
			Port       int
			TargetPort string `yaml:"targetPort"`
		}
	}
	podSpec struct {
		TerminationGracePeriodSeconds *int  `yaml:"terminationGracePeriodSeconds"`
		AutomountServiceAccountToken  *bool `yaml:"automountServiceAccountToken"`
		SecurityContext               struct {
			RunAsNonRoot *bool `yaml:"runAsNonRoot"`
			RunAsUser    *int  `yaml:"runAsUser"`
			RunAsGroup   *int  `yaml:"runAsGroup"`
			FSGroup      *int  `yaml:"fsGroup"`
		} `yaml:"securityContext"`
		Containers []container
		Volumes    []struct {
			Name      string
			ConfigMap *struct{ Name string } `yaml:"configMap"`
			Secret    *struct {
				SecretName  string `yaml:"secretName"`
				DefaultMode *int   `yaml:"defaultMode"`
			}
		}
	}
	k8sPeer struct {
		NamespaceSelector *struct{} `yaml:"namespaceSelector"`
		PodSelector       *struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"podSelector"`
		IPBlock *struct{ CIDR string } `yaml:"ipBlock"`
	}
	container struct {
		Name  string
		Image string
		Args  []string
		Ports []struct {
			Name          string
			ContainerPort int `yaml:"containerPort"`
		}
		Env []struct {
			Name, Value string
			ValueFrom   *struct {
				FieldRef *struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
			} `yaml:"valueFrom"`
		}
		// Resources holds requests and limits by resource name.
		Resources      map[string]map[string]string
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		Lifecycle      struct {
			PreStop *struct {
				Sleep *struct{ Seconds int }
			} `yaml:"preStop"`
		}
		SecurityContext struct {
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			Capabilities             struct{ Drop []string }
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	probe struct {
		HTTPGet *struct {
			Path string
			Port string
		} `yaml:"httpGet"`
	}
)

// relayServer is the server section of a relay configuration, as far as
// the checks need it.
type relayServer struct {
	URL            string
	SSLCertFile    string `yaml:"ssl_cert_file"`
	PrivateKeyFile string `yaml:"private_key_file"`
	MetricsURL     string `yaml:"metrics_url"`
	DrainGrace     string `yaml:"drain_grace"`
	Limits         struct {
		MemoryBudget string `yaml:"memory_budget"`
	}
}

// parseK8sFile decodes every document of a manifest under deploy/.
func parseK8sFile(t *testing.T, file string) []*k8sObject {
	t.Helper()
	var objs []*k8sObject
	dec := yaml.NewDecoder(strings.NewReader(readFile(t, file)))
	for {
		o := new(k8sObject)
		var raw struct {
			Spec struct{ Selector map[string]any }
		}
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := node.Decode(o); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if o.Kind == "Service" {
			node.Decode(&raw)
			o.Spec.ServiceSelector = map[string]string{}
			for k, v := range raw.Spec.Selector { // sorted: copy only
				o.Spec.ServiceSelector[k], _ = v.(string)
			}
		}
		objs = append(objs, o)
	}
	return objs
}

// parseK8s decodes the one-relay example, one object of each kind; the
// headless Service that Prometheus finds pods through is "Service/headless".
func parseK8s(t *testing.T) map[string]*k8sObject {
	t.Helper()
	objs := make(map[string]*k8sObject)
	for _, o := range parseK8sFile(t, k8sFile) {
		if o.Kind == "Service" && o.Spec.ClusterIP == "None" {
			o.Kind += "/headless"
		}
		if objs[o.Kind] != nil {
			t.Fatalf("%s: two %s objects", k8sFile, o.Kind)
		}
		objs[o.Kind] = o
	}
	return objs
}

// TestKubernetesManifest parses every document of the example and checks
// that the pod is probed on /readyz and /healthz at the port the
// ConfigMap's configuration serves them on, drains within its grace
// period, runs non-root on a read-only root filesystem with nothing
// writable mounted, has memory above its budget, and that the Service
// reaches the relay port and not the unauthenticated operations port.
func TestKubernetesManifest(t *testing.T) {
	objs := parseK8s(t)
	cm, dep, svc, np := objs["ConfigMap"], objs["Deployment"], objs["Service"], objs["NetworkPolicy"]
	if cm == nil || dep == nil || svc == nil || np == nil || objs["Service/headless"] == nil || len(objs) != 5 {
		t.Fatalf("%s: kinds %v, want ConfigMap, Deployment, Service, a headless Service and NetworkPolicy", k8sFile, slices.Sorted(func(yield func(string) bool) {
			for k := range objs { // sorted: by slices.Sorted
				if !yield(k) {
					return
				}
			}
		}))
	}
	var cfg struct {
		Relays map[string]struct{ Server relayServer }
	}
	if err := yaml.Unmarshal([]byte(cm.Data["cosnim.yaml"]), &cfg); err != nil {
		t.Fatalf("ConfigMap cosnim.yaml: %v", err)
	}
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Args) < 3 || c.Args[0] != "start" || c.Args[1] != "relay" {
		t.Fatalf("container args %q, want start relay NAME ...", c.Args)
	}
	server := cfg.Relays[c.Args[2]].Server
	if server.URL == "" {
		t.Fatalf("the ConfigMap has no relay %q", c.Args[2])
	}

	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1 (no backbone: every client of a hub needs the same relay)", dep.Spec.Replicas)
	}
	for k, v := range dep.Spec.Selector.MatchLabels { // sorted: independent checks
		if dep.Spec.Template.Metadata.Labels[k] != v || svc.Spec.ServiceSelector[k] != v {
			t.Errorf("label %s=%s: not on the pod template and the Service selector", k, v)
		}
	}

	// Probes on the operations port.
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	mu, err := url.Parse(server.MetricsURL)
	if err != nil || mu.Hostname() != "0.0.0.0" {
		t.Fatalf("metrics_url %q: want http://0.0.0.0:PORT, so the kubelet can probe it (%v)", server.MetricsURL, err)
	}
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil || pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s: want httpGet %s", pr.name, pr.path)
			continue
		}
		if got := ports[pr.p.HTTPGet.Port]; got == 0 || mu.Port() != itoa(got) {
			t.Errorf("%s port %q = %d, want the metrics_url port %s", pr.name, pr.p.HTTPGet.Port, got, mu.Port())
		}
	}

	// Shutdown: preStop, then SIGTERM and the drain, inside the grace period.
	grace := defaultDrainGrace(t)
	if server.DrainGrace != "" {
		if grace, err = time.ParseDuration(server.DrainGrace); err != nil {
			t.Fatal(err)
		}
	}
	if c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
		t.Fatal("no preStop sleep: the pod would get SIGTERM while endpoints still send it connections")
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= preStop+grace {
		t.Errorf("terminationGracePeriodSeconds %s, want above preStop %v + drain_grace %v", show(pod.TerminationGracePeriodSeconds), preStop, grace)
	}

	// Security.
	sc := c.SecurityContext
	if !isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		!slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container securityContext: readOnlyRootFilesystem %s, allowPrivilegeEscalation %s, drop %q; want true, false, [ALL]",
			show(sc.ReadOnlyRootFilesystem), show(sc.AllowPrivilegeEscalation), sc.Capabilities.Drop)
	}
	if !isTrue(pod.SecurityContext.RunAsNonRoot) || pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("pod securityContext: runAsNonRoot %s, runAsUser %s; want true and non-zero",
			show(pod.SecurityContext.RunAsNonRoot), show(pod.SecurityContext.RunAsUser))
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken not false: the relay needs no API access")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("volume %s mounted writable; a relay writes nothing", m.Name)
		}
		mounts[m.Name] = m.MountPath
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil && v.Secret == nil {
			t.Errorf("volume %s is neither a ConfigMap nor a Secret", v.Name)
		}
		if v.ConfigMap != nil && v.ConfigMap.Name != cm.Metadata.Name {
			t.Errorf("volume %s names ConfigMap %q, want %q", v.Name, v.ConfigMap.Name, cm.Metadata.Name)
		}
		if v.ConfigMap != nil && !slices.Contains(c.Args, filepath.Join(mounts[v.Name], "cosnim.yaml")) {
			t.Errorf("args %q do not read --config from the ConfigMap mount %s", c.Args, mounts[v.Name])
		}
		if v.Secret != nil && (filepath.Dir(server.SSLCertFile) != mounts[v.Name] || filepath.Dir(server.PrivateKeyFile) != mounts[v.Name]) {
			t.Errorf("certificate %s and key %s are not in the Secret mount %s", server.SSLCertFile, server.PrivateKeyFile, mounts[v.Name])
		}
	}

	// Resources: memory above the relay's budget and the Go runtime's limit.
	limit, request := c.Resources["limits"]["memory"], c.Resources["requests"]["memory"]
	if limit == "" || request == "" || c.Resources["requests"]["cpu"] == "" {
		t.Fatalf("resources %v, want memory requests and limits and a CPU request", c.Resources)
	}
	budget := parseBytes(t, server.Limits.MemoryBudget)
	if parseBytes(t, request) <= budget || parseBytes(t, limit) <= budget {
		t.Errorf("memory request %s and limit %s, want both above memory_budget %s", request, limit, server.Limits.MemoryBudget)
	}
	// The relay's resident set stays within RSSFactor × budget when the Go
	// runtime's limit is the one it derives from the budget; a GOMEMLIMIT
	// above that lets garbage take the resident set past it.
	if rss := int64(relayserver.RSSFactor * float64(budget)); parseBytes(t, limit) < rss {
		t.Errorf("memory limit %s, want at least %d (%.1f × memory_budget)", limit, rss, relayserver.RSSFactor)
	}
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" && (parseBytes(t, e.Value) <= budget || parseBytes(t, e.Value) > relayserver.MemoryLimit(budget)) {
			t.Errorf("GOMEMLIMIT %s, want between memory_budget and %d (what the relay derives from it)", e.Value, relayserver.MemoryLimit(budget))
		}
	}

	// Service: the relay port, never the operations port.
	ru, err := url.Parse(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.Ports) != 1 || itoa(ports[svc.Spec.Ports[0].TargetPort]) != ru.Port() {
		t.Errorf("Service ports %+v, want one, targeting the relay's port %s", svc.Spec.Ports, ru.Port())
	}
	checkNetworkPolicy(t, np, dep.Spec.Selector.MatchLabels)
	checkImage(t, c.Image)
}

// checkNetworkPolicy checks that np selects the relay pods (labels), lets
// anyone reach the relay port and only selected pods the ops port.
func checkNetworkPolicy(t *testing.T, np *k8sObject, labels map[string]string) {
	t.Helper()
	if !maps.Equal(np.Spec.PodSelector.MatchLabels, labels) || !slices.Equal(np.Spec.PolicyTypes, []string{"Ingress"}) {
		t.Errorf("NetworkPolicy %s selects %v for %v, want the relay pods %v for [Ingress]",
			np.Metadata.Name, np.Spec.PodSelector.MatchLabels, np.Spec.PolicyTypes, labels)
	}
	from := map[string][]k8sPeer{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if _, dup := from[p.Port]; dup {
				t.Errorf("NetworkPolicy %s: port %s in two rules", np.Metadata.Name, p.Port)
			}
			from[p.Port] = rule.From
		}
	}
	if f, ok := from["relay"]; !ok || len(f) != 0 {
		t.Errorf("NetworkPolicy %s: relay port sources %+v (present %v), want every source", np.Metadata.Name, f, ok)
	}
	ops, ok := from["ops"]
	if !ok || len(ops) == 0 {
		t.Fatalf("NetworkPolicy %s: the ops port is open to every source (or closed to Prometheus); want selected pods only", np.Metadata.Name)
	}
	for _, p := range ops {
		if p.IPBlock != nil || p.PodSelector == nil || len(p.PodSelector.MatchLabels) == 0 {
			t.Errorf("NetworkPolicy %s: ops port source %+v, want pods selected by label, no address block", np.Metadata.Name, p)
		}
	}
}

// pinnedImage is an image reference with a version tag or a digest.
var pinnedImage = regexp.MustCompile(`^[^:@]+(:v?\d+\.\d+\.\d+[-\w.]*|@sha256:[0-9a-f]{64})$`)

func checkImage(t *testing.T, image string) {
	t.Helper()
	if !pinnedImage.MatchString(image) {
		t.Errorf("image %q, want a version tag or a digest (a rollout must not follow :latest)", image)
	}
}

// TestKubernetesConfigChecks runs `cosnim config check` on the ConfigMap's
// configuration, its Secret mount replaced by a directory holding test
// certificates.
func TestKubernetesConfigChecks(t *testing.T) {
	cm := parseK8s(t)["ConfigMap"]
	dir := t.TempDir()
	data := strings.ReplaceAll(cm.Data["cosnim.yaml"], "/etc/cosnim/tls/", dir+"/tls/")
	if data == cm.Data["cosnim.yaml"] {
		t.Fatal("the ConfigMap's configuration names no file under /etc/cosnim/tls/")
	}
	configCheck(t, data, dir, dir+"/tls/tls.crt", dir+"/tls/tls.key")
}

func isTrue(b *bool) bool { return b != nil && *b }

// show prints an optional field's value, or "unset".
func show[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func itoa(n int) string { return strconv.Itoa(n) }
