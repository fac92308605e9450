package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"
)

const poolFile = "kubernetes/pool.yaml"

// poolObjects indexes pool.yaml's objects by kind and name.
func poolObjects(t *testing.T) map[string]*k8sObject {
	t.Helper()
	objs := map[string]*k8sObject{}
	for _, o := range parseK8sFile(t, poolFile) {
		k := o.Kind + "/" + o.Metadata.Name
		if objs[k] != nil {
			t.Fatalf("%s: two %s", poolFile, k)
		}
		objs[k] = o
	}
	return objs
}

func need(t *testing.T, objs map[string]*k8sObject, key string) *k8sObject {
	t.Helper()
	o := objs[key]
	if o == nil {
		t.Fatalf("%s: no %s", poolFile, key)
	}
	return o
}

// poolConfig is the pool ConfigMap's configuration, as far as the checks
// need it.
type poolConfig struct {
	Relays map[string]struct {
		Client struct{ URL string }
		Server struct {
			relayServer `yaml:",inline"`
			Backbone    struct {
				URLs          []string
				SubjectPrefix string `yaml:"subject_prefix"`
			}
		}
	}
	Continuum struct{ Relay []string }
}

// TestKubernetesPool checks the pool example: the StatefulSet's pods are
// the relays the configuration names (a pod starts as the relay of its
// name), each relay has a Service of its own selecting exactly its pod, a
// disruption budget keeps all but one up, every relay's backbone lists
// every NATS pod by the headless Service's stable names, NATS is the
// release the backbone tests run and reaches only relays, and the ops port
// stays inside the cluster.
func TestKubernetesPool(t *testing.T) {
	objs := poolObjects(t)
	sts := need(t, objs, "StatefulSet/cosnim-pool")
	var cfg poolConfig
	if err := yaml.Unmarshal([]byte(need(t, objs, "ConfigMap/cosnim-pool-config").Data["cosnim.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != len(cfg.Continuum.Relay) || len(cfg.Relays) != len(cfg.Continuum.Relay) {
		t.Fatalf("replicas %s, continuum.relay %q, %d relays: want one pod per relay of the pool", show(sts.Spec.Replicas), cfg.Continuum.Relay, len(cfg.Relays))
	}
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]
	checkImage(t, c.Image)
	podNameEnv := ""
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			podNameEnv = e.Name
		}
	}
	if len(c.Args) < 3 || c.Args[0] != "start" || c.Args[1] != "relay" || podNameEnv == "" || c.Args[2] != "$("+podNameEnv+")" {
		t.Fatalf("args %q, env %q: want start relay $(VAR) with VAR the pod's name", c.Args, podNameEnv)
	}
	labels := sts.Spec.Selector.MatchLabels
	natsSts := need(t, objs, "StatefulSet/nats")
	natsSvc := need(t, objs, "Service/"+natsSts.Spec.ServiceName)
	if natsSvc.Spec.ClusterIP != "None" {
		t.Errorf("Service %s clusterIP %q, want None (headless: stable pod names)", natsSvc.Metadata.Name, natsSvc.Spec.ClusterIP)
	}
	var natsURLs []string
	for i := range *natsSts.Spec.Replicas {
		natsURLs = append(natsURLs, fmt.Sprintf("nats://%s-%d.%s:4222", natsSts.Metadata.Name, i, natsSvc.Metadata.Name))
	}
	for i, name := range cfg.Continuum.Relay {
		if want := fmt.Sprintf("%s-%d", sts.Metadata.Name, i); name != want {
			t.Errorf("continuum.relay[%d] = %q, want the pod name %q", i, name, want)
		}
		r, ok := cfg.Relays[name]
		if !ok {
			t.Errorf("continuum.relay names %q, which relays does not define", name)
			continue
		}
		if !slices.Equal(r.Server.Backbone.URLs, natsURLs) || r.Server.Backbone.SubjectPrefix == "" {
			t.Errorf("relay %s backbone %q (prefix %q), want every NATS pod %q and a pool prefix", name, r.Server.Backbone.URLs, r.Server.Backbone.SubjectPrefix, natsURLs)
		}
		svc := need(t, objs, "Service/"+name)
		if !maps1(svc.Spec.ServiceSelector, "statefulset.kubernetes.io/pod-name", name) || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != "relay" {
			t.Errorf("Service %s selects %v on %+v, want only pod %s's relay port", name, svc.Spec.ServiceSelector, svc.Spec.Ports, name)
		}
	}
	for _, pdb := range []*k8sObject{need(t, objs, "PodDisruptionBudget/"+sts.Metadata.Name), need(t, objs, "PodDisruptionBudget/"+natsSts.Metadata.Name)} {
		if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != 1 || len(pdb.Spec.Selector.MatchLabels) == 0 {
			t.Errorf("PodDisruptionBudget %s: maxUnavailable %s selecting %v, want 1 and the pods' labels", pdb.Metadata.Name, show(pdb.Spec.MaxUnavailable), pdb.Spec.Selector.MatchLabels)
		}
	}
	if s := need(t, objs, "PodDisruptionBudget/"+sts.Metadata.Name).Spec.Selector.MatchLabels; !equalLabels(s, labels) {
		t.Errorf("relay PodDisruptionBudget selects %v, want %v", s, labels)
	}
	checkNetworkPolicy(t, need(t, objs, "NetworkPolicy/"+sts.Metadata.Name), labels)

	// NATS: the release go.mod pins for the backbone tests, a config the
	// server itself accepts with a route to every pod, clients only relays.
	nc := natsSts.Spec.Template.Spec.Containers[0]
	if want := "docker.io/library/nats:" + natsServerVersion(t) + "-alpine"; nc.Image != want {
		t.Errorf("NATS image %q, want %q (the nats-server go.mod pins)", nc.Image, want)
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	os.WriteFile(conf, []byte(need(t, objs, "ConfigMap/nats-config").Data["nats.conf"]), 0o644)
	t.Setenv("POD_NAME", natsSts.Metadata.Name+"-0")
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	if len(opts.Routes) != *natsSts.Spec.Replicas || opts.ServerName != natsSts.Metadata.Name+"-0" {
		t.Errorf("nats.conf: %d routes, server_name %q; want %d and the pod's name", len(opts.Routes), opts.ServerName, *natsSts.Spec.Replicas)
	}
	np := need(t, objs, "NetworkPolicy/"+natsSts.Metadata.Name)
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != "client" {
				continue
			}
			if len(rule.From) != 1 || rule.From[0].PodSelector == nil || !equalLabels(rule.From[0].PodSelector.MatchLabels, labels) || rule.From[0].NamespaceSelector != nil {
				t.Errorf("NATS client port open to %+v, want only the relay pods %v", rule.From, labels)
			}
		}
	}
}

// TestKubernetesPoolConfigChecks runs `cosnim config check` on the pool's
// configuration, its Secret mount replaced by test certificates.
func TestKubernetesPoolConfigChecks(t *testing.T) {
	data := need(t, poolObjects(t), "ConfigMap/cosnim-pool-config").Data["cosnim.yaml"]
	dir := t.TempDir()
	configCheck(t, strings.ReplaceAll(data, "/etc/cosnim/tls/", dir+"/tls/"), dir, dir+"/tls/tls.crt", dir+"/tls/tls.key")
}

// TestScrapeConfig checks deploy/prometheus/scrape.yml with promtool, that
// its job is the one the alert rules match, and that it finds pods through
// the examples' headless Services on the ops port.
func TestScrapeConfig(t *testing.T) {
	promtool := needPromtool(t)
	if out, err := exec.Command(promtool, "check", "config", "prometheus/scrape.yml").CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	var sc struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
			DNS     []struct {
				Names []string
				Port  int
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "prometheus/scrape.yml")), &sc); err != nil {
		t.Fatal(err)
	}
	jobs := map[string]bool{}
	for _, m := range regexp.MustCompile(`job="([^"]+)"`).FindAllStringSubmatch(readFile(t, rulesFile), -1) {
		jobs[m[1]] = true
	}
	if len(sc.ScrapeConfigs) != 1 || len(jobs) != 1 || !jobs[sc.ScrapeConfigs[0].JobName] {
		t.Fatalf("scrape jobs %+v, alert rules match jobs %v: want the one job the rules match", sc.ScrapeConfigs, jobs)
	}
	// Every headless Service of the examples, exposing the ops port.
	var want []string
	for _, file := range []string{k8sFile, poolFile} {
		for _, o := range parseK8sFile(t, file) {
			if o.Kind == "Service" && o.Spec.ClusterIP == "None" && strings.HasPrefix(o.Metadata.Labels["app.kubernetes.io/name"], "cosnim-") {
				if len(o.Spec.Ports) != 1 || o.Spec.Ports[0].TargetPort != "ops" {
					t.Errorf("%s: headless Service %s ports %+v, want the ops port", file, o.Metadata.Name, o.Spec.Ports)
				}
				want = append(want, o.Metadata.Name+".default.svc.cluster.local")
			}
		}
	}
	opsPort := 0
	for _, p := range parseK8s(t)["Deployment"].Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "ops" {
			opsPort = p.ContainerPort
		}
	}
	d := sc.ScrapeConfigs[0].DNS
	if len(d) != 1 || !slices.Equal(d[0].Names, want) || d[0].Port != opsPort {
		t.Errorf("dns_sd_configs %+v, want names %q on the ops port %d", d, want, opsPort)
	}
}

// TestExampleFilesAreTLSDocs checks that deploy/cosnim.yaml names the
// files docs/TLS.md's commands make.
func TestExampleFilesAreTLSDocs(t *testing.T) {
	made := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?:-out|>) (\S+)`).FindAllStringSubmatch(readFile(t, "../docs/TLS.md"), -1) {
		made[m[1]] = true
	}
	named := regexp.MustCompile(`(?m)^\s*\w+_file: (\S+)`).FindAllStringSubmatch(readFile(t, "cosnim.yaml"), -1)
	if len(named) == 0 {
		t.Fatal("deploy/cosnim.yaml names no file")
	}
	for _, m := range named {
		if !made[m[1]] {
			t.Errorf("deploy/cosnim.yaml names %s, which docs/TLS.md does not make (it makes %v)", m[1], made)
		}
	}
}

// natsServerVersion is the nats-server version go.mod requires.
func natsServerVersion(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*github.com/nats-io/nats-server/v2 v(\S+)`).FindStringSubmatch(readFile(t, "../go.mod"))
	if m == nil {
		t.Fatal("go.mod requires no nats-server")
	}
	return m[1]
}

func maps1(m map[string]string, k, v string) bool { return len(m) == 1 && m[k] == v }

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a { // sorted: comparison only
		if b[k] != v {
			return false
		}
	}
	return true
}
