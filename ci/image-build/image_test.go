package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ulikunitz/xz"
)

func testInputs(probe string) []PlatformInputs {
	return []PlatformInputs{
		{Platform: Platform{"linux", "amd64", ""}, Probe: []byte(probe + "-amd64"), Busybox: []byte("busybox-amd64")},
		{Platform: Platform{"linux", "arm64", "v8"}, Probe: []byte(probe + "-arm64"), Busybox: []byte("busybox-arm64")},
	}
}

var testMeta = Meta{Name: "ghcr.io/netconform/probe", Version: "1.2.3", Epoch: time.Unix(0, 0).UTC()}

func digestOf(t *testing.T, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestIndexIsReproducibleAndFollowsItsInputs(t *testing.T) {
	a, err := Index(testInputs("probe"), testMeta)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Index(testInputs("probe"), testMeta)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, a) != digestOf(t, b) {
		t.Fatalf("same inputs, different digests: %s %s", digestOf(t, a), digestOf(t, b))
	}
	c, _ := Index(testInputs("probe2"), testMeta)
	if digestOf(t, a) == digestOf(t, c) {
		t.Fatal("a different probe binary gave the same digest")
	}
	later := testMeta
	later.Epoch = time.Unix(1700000000, 0).UTC()
	d, _ := Index(testInputs("probe"), later)
	if digestOf(t, a) == digestOf(t, d) {
		t.Fatal("a different epoch gave the same digest")
	}
}

func TestIndexPlatformsConfigAndLayers(t *testing.T) {
	idx, err := Index(testInputs("probe"), testMeta)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != "application/vnd.oci.image.index.v1+json" || len(im.Manifests) != 2 {
		t.Fatalf("want an OCI index of 2 manifests, got %s with %d", im.MediaType, len(im.Manifests))
	}
	want := []string{"linux/amd64", "linux/arm64/v8"}
	for i, desc := range im.Manifests {
		if got := desc.Platform.String(); got != want[i] {
			t.Errorf("manifest %d platform %s, want %s", i, got, want[i])
		}
		if desc.ArtifactType != "" {
			t.Errorf("manifest %d carries artifactType %q", i, desc.ArtifactType)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if strings.Join(c.Entrypoint, " ") != "/probe" || strings.Join(c.Cmd, " ") != "serve" || c.User != "65534:65534" {
			t.Errorf("config entrypoint %v cmd %v user %q", c.Entrypoint, c.Cmd, c.User)
		}
		for _, port := range []string{"8080/tcp", "8081/udp", "8082/tcp"} {
			if _, ok := c.ExposedPorts[port]; !ok {
				t.Errorf("port %s not exposed", port)
			}
		}
		if !cf.Created.Time.Equal(testMeta.Epoch) || cf.Architecture != desc.Platform.Architecture {
			t.Errorf("created %v arch %s", cf.Created.Time, cf.Architecture)
		}
		if c.Labels["org.opencontainers.image.version"] != "1.2.3" {
			t.Errorf("version label %q", c.Labels["org.opencontainers.image.version"])
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("want 2 layers, got %d (%v)", len(layers), err)
		}
		files := map[string]*tar.Header{}
		contents := map[string]string{}
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(rc)
			prev := ""
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if h.Name < prev {
					t.Errorf("layer entries not sorted: %s after %s", h.Name, prev)
				}
				prev = h.Name
				if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(testMeta.Epoch) || h.Uname != "" {
					t.Errorf("%s: uid %d gid %d uname %q mtime %v", h.Name, h.Uid, h.Gid, h.Uname, h.ModTime)
				}
				files[h.Name] = h
				b, _ := io.ReadAll(tr)
				contents[h.Name] = string(b)
			}
			rc.Close()
		}
		arch := desc.Platform.Architecture
		if contents["probe"] != "probe-"+arch || files["probe"].Mode != 0o755 {
			t.Errorf("/probe is %q mode %o", contents["probe"], files["probe"].Mode)
		}
		if contents["bin/busybox"] != "busybox-"+arch {
			t.Errorf("/bin/busybox is %q", contents["bin/busybox"])
		}
		if h := files["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("/bin/sh is not a symlink to busybox: %+v", h)
		}
		if !strings.Contains(contents["etc/passwd"], ":65534:65534:") {
			t.Errorf("/etc/passwd has no uid 65534: %q", contents["etc/passwd"])
		}
	}
}

func TestWriteOutputsIsByteForByteReproducible(t *testing.T) {
	var refs []string
	var tars [][]byte
	for i := 0; i < 2; i++ {
		idx, err := Index(testInputs("probe"), testMeta)
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		ref, err := WriteOutputs(idx, testMeta, out)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
		b, err := os.ReadFile(filepath.Join(out, "probe.oci.tar"))
		if err != nil {
			t.Fatal(err)
		}
		tars = append(tars, b)
		saved, _ := os.ReadFile(filepath.Join(out, "probe.ref"))
		if strings.TrimSpace(string(saved)) != ref {
			t.Errorf("probe.ref %q, printed %q", saved, ref)
		}
		back, tag, err := ReadLayout(filepath.Join(out, "probe-oci"))
		if err != nil {
			t.Fatal(err)
		}
		if tag != "ghcr.io/netconform/probe:1.2.3" || !strings.HasSuffix(ref, "@"+digestOf(t, back).String()) {
			t.Errorf("layout says %s %s, build printed %s", tag, digestOf(t, back), ref)
		}
	}
	if refs[0] != refs[1] || !bytes.Equal(tars[0], tars[1]) {
		t.Fatalf("two writes differ: %s %s (archives equal: %v)", refs[0], refs[1], bytes.Equal(tars[0], tars[1]))
	}
	if !strings.HasPrefix(refs[0], "ghcr.io/netconform/probe:1.2.3@sha256:") {
		t.Fatalf("ref %s", refs[0])
	}
}

// A registry on 127.0.0.1 (go-containerregistry's own, in memory): push, pull back, mirror to another one.
func TestPushPullAndMirrorRoundTripTheDigest(t *testing.T) {
	reg1 := httptest.NewServer(registry.New(registry.Logger(nilLogger())))
	defer reg1.Close()
	reg2 := httptest.NewServer(registry.New(registry.Logger(nilLogger())))
	defer reg2.Close()
	host1 := strings.TrimPrefix(reg1.URL, "http://")
	host2 := strings.TrimPrefix(reg2.URL, "http://")

	idx, err := Index(testInputs("probe"), testMeta)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := WriteOutputs(idx, testMeta, out); err != nil {
		t.Fatal(err)
	}
	fromDisk, tag, err := ReadLayout(filepath.Join(out, "probe-oci"))
	if err != nil {
		t.Fatal(err)
	}
	target := PushTarget(host1+"/mirror/netconform/", tag)
	if target != host1+"/mirror/netconform/probe:1.2.3" {
		t.Fatalf("push target %s", target)
	}
	ref, err := name.ParseReference(target)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, fromDisk, remote.WithContext(context.Background())); err != nil {
		t.Fatal(err)
	}
	want := digestOf(t, idx)
	pulled, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, pulled); got != want {
		t.Fatalf("pulled %s, built %s", got, want)
	}
	checkEveryPlatform(t, pulled)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dst := host2 + "/private/probe:1.2.3"
	got, err := Mirror(ctx, target, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got != want.String() {
		t.Fatalf("mirror reported %s, want %s", got, want)
	}
	mirrored, err := remote.Index(mustRef(t, dst))
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, mirrored) != want {
		t.Fatalf("mirrored index %s, want %s", digestOf(t, mirrored), want)
	}
	checkEveryPlatform(t, mirrored)

	// A single-platform image mirrors too (the node agent image is one).
	img, _ := idx.Image(mustManifests(t, idx)[0].Digest)
	single := host1 + "/agent:v1"
	if err := remote.Write(mustRef(t, single), img); err != nil {
		t.Fatal(err)
	}
	wantImg, _ := img.Digest()
	if got, err := Mirror(ctx, single, host2+"/private/agent:v1"); err != nil || got != wantImg.String() {
		t.Fatalf("single image mirror: %s %v, want %s", got, err, wantImg)
	}
	if _, err := Mirror(ctx, host1+"/nothing:here", host2+"/x:y"); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Fatalf("mirroring a missing image: %v", err)
	}
}

func mustManifests(t *testing.T, idx v1.ImageIndex) []v1.Descriptor {
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return im.Manifests
}

// Every manifest, config and layer of every platform can be read back (the registry has the blobs).
func checkEveryPlatform(t *testing.T, idx v1.ImageIndex) {
	t.Helper()
	for _, desc := range mustManifests(t, idx) {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("%s: %v", desc.Platform, err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatalf("%s: %v", desc.Platform, err)
			}
			rc.Close()
		}
	}
}

// ---------------------------------------------------------------- .deb extraction

func arMember(name string, body []byte) []byte {
	hdr := fmt.Sprintf("%-16s%-12s%-6s%-6s%-8s%-10d`\n", name, "0", "0", "0", "100644", len(body))
	out := append([]byte(hdr), body...)
	if len(body)%2 == 1 {
		out = append(out, '\n')
	}
	return out
}

func fakeDeb(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var tbuf bytes.Buffer
	tw := tar.NewWriter(&tbuf)
	for n, c := range files {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(c)), Typeflag: tar.TypeReg})
		tw.Write([]byte(c))
	}
	tw.Close()
	var xbuf bytes.Buffer
	xw, err := xz.NewWriter(&xbuf)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(tbuf.Bytes())
	xw.Close()
	deb := []byte("!<arch>\n")
	deb = append(deb, arMember("debian-binary", []byte("2.0\n"))...)
	deb = append(deb, arMember("control.tar.xz", []byte("x"))...)
	deb = append(deb, arMember("data.tar.xz", xbuf.Bytes())...)
	return deb
}

func TestBusyboxFromPinnedDeb(t *testing.T) {
	deb := fakeDeb(t, map[string]string{"./bin/busybox": "BUSYBOX", "./usr/share/doc/x": "doc"})
	dir := t.TempDir()
	sum := sha256.Sum256(deb)
	spec := &BaseSpec{}
	spec.Busybox.Debs = map[string]struct {
		Pool   string `json:"pool"`
		SHA256 string `json:"sha256"`
	}{"arm64": {Pool: "pool/main/b/busybox/bb_arm64.deb", SHA256: hex.EncodeToString(sum[:])}}
	if _, err := spec.BusyboxFor("arm64", dir); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing package: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bb_arm64.deb"), deb, 0o644)
	got, err := spec.BusyboxFor("arm64", dir)
	if err != nil || string(got) != "BUSYBOX" {
		t.Fatalf("got %q %v", got, err)
	}
	os.WriteFile(filepath.Join(dir, "bb_arm64.deb"), append(deb, 'x'), 0o644)
	if _, err := spec.BusyboxFor("arm64", dir); err == nil || !strings.Contains(err.Error(), "pins") {
		t.Fatalf("tampered package: %v", err)
	}
	if _, err := spec.BusyboxFor("riscv64", dir); err == nil {
		t.Fatal("an unpinned architecture was accepted")
	}
	if _, err := fileFromDeb(fakeDeb(t, map[string]string{"./bin/true": "x"}), "./bin/busybox"); err == nil {
		t.Fatal("a package without busybox was accepted")
	}
	if _, err := fileFromDeb([]byte("not a deb"), "./bin/busybox"); err == nil {
		t.Fatal("garbage was accepted as a package")
	}
}

// The pins in base.json name real packages when they are in the cache (ci/images build fetches them).
func TestPinnedDebsInCache(t *testing.T) {
	dir := os.Getenv("NETCONFORM_DEB_DIR")
	if dir == "" {
		t.Skip("NETCONFORM_DEB_DIR not set (ci/images build fills ~/.cache/netconform-images/debs)")
	}
	spec, err := readBaseSpec("base.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		bb, err := spec.BusyboxFor(arch, dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(bb) < 500_000 || !bytes.HasPrefix(bb, []byte("\x7fELF")) {
			t.Fatalf("%s busybox: %d bytes, not an ELF binary", arch, len(bb))
		}
	}
}

func TestParsePlatforms(t *testing.T) {
	ps, err := parsePlatforms("linux/amd64,linux/arm64")
	if err != nil || len(ps) != 2 || ps[1].String() != "linux/arm64/v8" {
		t.Fatalf("%v %v", ps, err)
	}
	if _, err := parsePlatforms("windows/amd64"); err == nil {
		t.Fatal("windows accepted")
	}
}

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The commands as ci/images runs them: build output -> `push REPO` -> `mirror SRC DST`, each printing NAME@DIGEST.
func TestPushAndMirrorCommands(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(nilLogger())))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	idx, err := Index(testInputs("probe"), testMeta)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	built, err := WriteOutputs(idx, testMeta, out)
	if err != nil {
		t.Fatal(err)
	}
	digest := built[strings.Index(built, "@")+1:]
	var buf bytes.Buffer
	stdout = &buf
	defer func() { stdout = os.Stdout }()
	if err := cmdPush([]string{"--layout", filepath.Join(out, "probe-oci"), "--timeout", "30s", host + "/ops"}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(buf.String()), host+"/ops/probe:1.2.3@"+digest; got != want {
		t.Fatalf("push printed %q, want %q", got, want)
	}
	buf.Reset()
	if err := cmdMirror([]string{host + "/ops/probe:1.2.3", host + "/mirror/probe:1.2.3"}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(buf.String()), host+"/mirror/probe:1.2.3@"+digest; got != want {
		t.Fatalf("mirror printed %q, want %q", got, want)
	}
	var u usageError
	if err := cmdPush([]string{"--layout", filepath.Join(out, "probe-oci")}); !errors.As(err, &u) {
		t.Fatalf("push without REPO: %v", err)
	}
	if err := cmdPush([]string{"--layout", t.TempDir(), host}); err == nil || !strings.Contains(err.Error(), "not an OCI layout") {
		t.Fatalf("push of an empty directory: %v", err)
	}
	// Nothing listens on port 1 of loopback: one sentence, bounded.
	if err := cmdPush([]string{"--layout", filepath.Join(out, "probe-oci"), "--timeout", "10s", "127.0.0.1:1/x"}); err == nil ||
		!strings.Contains(err.Error(), "pushing to 127.0.0.1:1/x/probe:1.2.3") {
		t.Fatalf("push to a closed port: %v", err)
	}
}
