package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulikunitz/xz"
)

// richDeb is a .deb whose data.tar.xz holds directories, files, a symlink and a hard link, as Debian's do.
func richDeb(t *testing.T, lib string) []byte {
	t.Helper()
	var tbuf bytes.Buffer
	tw := tar.NewWriter(&tbuf)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "./usr/lib/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "./usr/lib/" + lib, Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1000, ModTime: time.Now()}, "ELF "+lib)
	add(&tar.Header{Name: "./usr/lib/" + lib + ".link", Typeflag: tar.TypeSymlink, Linkname: lib}, "")
	add(&tar.Header{Name: "./usr/lib/" + lib + ".hard", Typeflag: tar.TypeLink, Linkname: "./usr/lib/" + lib}, "")
	add(&tar.Header{Name: "./usr/share/doc/" + lib + "/copyright", Typeflag: tar.TypeReg, Mode: 0o644}, "GPL")
	tw.Close()
	var xbuf bytes.Buffer
	xw, _ := xz.NewWriter(&xbuf)
	xw.Write(tbuf.Bytes())
	xw.Close()
	deb := []byte("!<arch>\n")
	deb = append(deb, arMember("debian-binary", []byte("2.0\n"))...)
	deb = append(deb, arMember("control.tar.xz", []byte("x"))...)
	return append(deb, arMember("data.tar.xz", xbuf.Bytes())...)
}

func pinned(t *testing.T, dir, name string, deb []byte) DebPin {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), deb, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(deb)
	return DebPin{Package: strings.Split(name, "_")[0], Version: "1", Pool: "pool/main/x/" + name, SHA256: hex.EncodeToString(sum[:])}
}

func TestDebsForUnpacksEveryPinnedPackage(t *testing.T) {
	dir := t.TempDir()
	spec := &RunnerSpec{Exclude: []string{"usr/share/doc/"}, Debs: map[string][]DebPin{"arm64": {
		pinned(t, dir, "liba_1_arm64.deb", richDeb(t, "liba.so")),
		pinned(t, dir, "libb_1_arm64.deb", richDeb(t, "libb.so")),
	}}}
	entries, err := spec.DebsFor("arm64", dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]tarEntry{}
	for _, e := range entries {
		got[e.name] = e
	}
	if e := got["usr/lib/liba.so"]; e.typeflag != tar.TypeReg || string(e.data) != "ELF liba.so" || e.mode != 0o644 {
		t.Fatalf("liba.so: %+v", e)
	}
	if e := got["usr/lib/libb.so.link"]; e.typeflag != tar.TypeSymlink || e.link != "libb.so" {
		t.Fatalf("symlink: %+v", e)
	}
	if e := got["usr/lib/liba.so.hard"]; e.typeflag != tar.TypeLink || e.link != "usr/lib/liba.so" {
		t.Fatalf("hard link: %+v", e)
	}
	if e := got["usr/bin/python3"]; e.typeflag != tar.TypeSymlink || e.link != "python3.11" {
		t.Fatalf("python3: %+v", e)
	}
	if _, ok := got["usr/lib/"]; !ok {
		t.Fatal("the shared directory is missing")
	}
	for n := range got {
		if strings.HasPrefix(n, "usr/share/doc") {
			t.Fatalf("excluded %s was unpacked", n)
		}
	}
	// tampered, missing, unpinned architecture, same path twice with other content
	os.WriteFile(filepath.Join(dir, "liba_1_arm64.deb"), append(richDeb(t, "liba.so"), 'x'), 0o644)
	if _, err := spec.DebsFor("arm64", dir); err == nil || !strings.Contains(err.Error(), "pins") {
		t.Fatalf("tampered package: %v", err)
	}
	os.Remove(filepath.Join(dir, "liba_1_arm64.deb"))
	if _, err := spec.DebsFor("arm64", dir); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing package: %v", err)
	}
	if _, err := spec.DebsFor("amd64", dir); err == nil {
		t.Fatal("an unpinned architecture was accepted")
	}
	twin := &RunnerSpec{Debs: map[string][]DebPin{"arm64": {
		pinned(t, dir, "libc_1_arm64.deb", richDeb(t, "libc.so")),
		pinned(t, dir, "libd_1_arm64.deb", fakeDeb(t, map[string]string{"./usr/lib/libc.so": "other"})),
	}}}
	if _, err := twin.DebsFor("arm64", dir); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("conflicting packages: %v", err)
	}
}

func siteDir(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"netconform/__init__.py":                          "VERSION = '" + version + "'\n",
		"netconform/__pycache__/__init__.cpython-311.pyc": "bytecode",
		"netconform-0.1.0.dist-info/entry_points.txt":     "[pytest11]\nnetconform = netconform.plugin\n",
		"bin/netconform":                                  "#!/build/machine/python\n",
		"yaml/_yaml.so":                                   "ELF",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		mode := os.FileMode(0o600)
		if strings.HasSuffix(name, ".so") {
			mode = 0o700
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runnerInputs(t *testing.T, version string) []RunnerInputs {
	py := []tarEntry{{name: "usr/bin/python3.11", typeflag: tar.TypeReg, mode: 0o755, data: []byte("python")}}
	var out []RunnerInputs
	for _, p := range DefaultPlatforms {
		site, err := SiteEntries(siteDir(t, version))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, RunnerInputs{Platform: p, Busybox: []byte("busybox-" + p.Arch), Python: py, Site: site})
	}
	return out
}

func TestRunnerIndexIsReproducibleNonRootWithNetconformAsEntrypoint(t *testing.T) {
	meta := Meta{Name: "ghcr.io/netconform/runner", Version: "1.2.3", Epoch: time.Unix(0, 0).UTC()}
	a, err := RunnerIndex(runnerInputs(t, "a"), meta, "3.11.2-6")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RunnerIndex(runnerInputs(t, "a"), meta, "3.11.2-6")
	if digestOf(t, a) != digestOf(t, b) {
		t.Fatal("same inputs (in other directories), different digests")
	}
	c, _ := RunnerIndex(runnerInputs(t, "b"), meta, "3.11.2-6")
	if digestOf(t, a) == digestOf(t, c) {
		t.Fatal("a different netconform gave the same digest")
	}
	ms := mustManifests(t, a)
	if len(ms) != 2 || ms[0].Platform.Architecture != "amd64" || ms[1].Platform.Variant != "v8" {
		t.Fatalf("platforms: %+v", ms)
	}
	img, err := a.Image(ms[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.User != "65534:65534" || cf.Config.Entrypoint[0] != "/usr/local/bin/netconform" || cf.Architecture != "arm64" {
		t.Fatalf("config: %+v", cf.Config)
	}
	if cf.Config.Labels["io.netconform.python-version"] != "3.11.2-6" || cf.Config.Labels["org.opencontainers.image.title"] != "netconform runner" {
		t.Fatalf("labels: %v", cf.Config.Labels)
	}
	layers, _ := img.Layers()
	if len(layers) != 3 {
		t.Fatalf("%d layers, want busybox, python, site-packages", len(layers))
	}
	rc, _ := layers[2].Uncompressed()
	tr := tar.NewReader(rc)
	seen := map[string]*tar.Header{}
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name], names = h, append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Fatalf("%s: owner %d:%d, mtime %s", h.Name, h.Uid, h.Gid, h.ModTime)
		}
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("entries not sorted: %s before %s", names[i-1], names[i])
		}
	}
	if h := seen[SitePackages+"/netconform/__init__.py"]; h == nil || h.Mode != 0o644 {
		t.Fatalf("netconform/__init__.py: %+v (names %v)", h, names)
	}
	if h := seen[SitePackages+"/yaml/_yaml.so"]; h == nil || h.Mode != 0o755 {
		t.Fatalf("_yaml.so: %+v", h)
	}
	if h := seen["usr/local/bin/netconform"]; h == nil || h.Mode != 0o755 {
		t.Fatal("no /usr/local/bin/netconform")
	}
	for _, n := range names {
		if strings.Contains(n, "__pycache__") || strings.HasPrefix(n, SitePackages+"/bin") {
			t.Fatalf("%s should have been left out", n)
		}
	}
	// busybox layer: tar for kubectl cp, sleep for the keep period
	rc0, _ := layers[0].Uncompressed()
	tr0 := tar.NewReader(rc0)
	applets := map[string]bool{}
	for {
		h, err := tr0.Next()
		if err != nil {
			break
		}
		applets[h.Name] = true
	}
	for _, a := range []string{"bin/tar", "bin/sh", "bin/sleep", "bin/test", "bin/date"} {
		if !applets[a] {
			t.Fatalf("%s missing from the busybox layer", a)
		}
	}
}

// The pins in runner.json name real packages when they are in the cache (ci/images build fetches them).
func TestRunnerPinsInCache(t *testing.T) {
	dir := os.Getenv("NETCONFORM_DEB_DIR")
	if dir == "" {
		t.Skip("NETCONFORM_DEB_DIR not set (ci/images build fills ~/.cache/netconform-images/debs)")
	}
	spec, err := readRunnerSpec("runner.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		entries, err := spec.DebsFor(arch, dir)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range entries {
			found = found || (e.name == "usr/bin/python3.11" && bytes.HasPrefix(e.data, []byte("\x7fELF")))
		}
		if !found {
			t.Fatalf("%s: no /usr/bin/python3.11 in the pinned packages", arch)
		}
	}
}
