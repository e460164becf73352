package main

// The runner image: netconform itself (the suite, `netconform run`) for a Job inside the cluster. Built
// like the probe, without a daemon: per platform a busybox layer (the same pinned package: a shell, tar
// for `kubectl cp`, sleep), a Python layer unpacked from Debian bookworm packages pinned by sha256 in
// runner.json, and a layer holding the netconform wheel and its dependencies as `pip install --target`
// left them (prepared by ci/images; per architecture, the C-extension wheels are that architecture's
// manylinux ones). Every byte is a function of those inputs, the version and the epoch.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ulikunitz/xz"
)

// SitePackages is where the wheels go: on Debian's python3.11 sys.path without PYTHONPATH.
const SitePackages = "usr/lib/python3/dist-packages"

// RunnerUser runs the suite: nobody, as the probe (the image needs no privilege; the API does the work).
const RunnerUser = "65534:65534"

// runnerApplets: the probe's, plus what `kubectl cp` (tar) and the Job's wrapper script use.
var runnerApplets = []string{"[", "cp", "id", "mkdir", "rm", "tar", "test", "touch", "wc"}

// The console script pip would write, with the image's interpreter instead of the build machine's.
const entrypointScript = `#!/usr/bin/python3.11
import sys

from netconform.cli import main

sys.exit(main())
`

// DebPin is one pinned Debian package of runner.json.
type DebPin struct {
	Package string `json:"package"`
	Version string `json:"version"`
	Pool    string `json:"pool"`
	SHA256  string `json:"sha256"`
}

// RunnerSpec is ci/image-build/runner.json.
type RunnerSpec struct {
	Python  string              `json:"python"`  // the interpreter's Debian version, recorded as a label
	Exclude []string            `json:"exclude"` // path prefixes of the packages not copied (docs, man pages)
	Debs    map[string][]DebPin `json:"debs"`    // per architecture
}

func readRunnerSpec(path string) (*RunnerSpec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the runner's package pins: %w", err)
	}
	var spec RunnerSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", path, err)
	}
	return &spec, nil
}

// RunnerInputs are one platform's inputs.
type RunnerInputs struct {
	Platform Platform
	Busybox  []byte
	Python   []tarEntry // the unpacked Debian packages
	Site     []tarEntry // site-packages (already below SitePackages)
}

// DebsFor reads arch's pinned packages from debDir, checks every sha256 and unpacks them into one tree.
func (s *RunnerSpec) DebsFor(arch, debDir string) ([]tarEntry, error) {
	pins, ok := s.Debs[arch]
	if !ok || len(pins) == 0 {
		return nil, fmt.Errorf("runner.json pins no packages for %s", arch)
	}
	byName := map[string]tarEntry{}
	for _, pin := range pins {
		path := filepath.Join(debDir, filepath.Base(pin.Pool))
		deb, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("the pinned package %s for %s is missing (%s); `ci/images build runner` fetches it", pin.Package, arch, path)
		}
		sum := sha256.Sum256(deb)
		if got := hex.EncodeToString(sum[:]); got != pin.SHA256 {
			return nil, fmt.Errorf("%s has sha256 %s, but runner.json pins %s", path, got, pin.SHA256)
		}
		entries, err := debEntries(deb, s.Exclude)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		for _, e := range entries {
			if prev, seen := byName[e.name]; seen {
				if prev.typeflag == tar.TypeDir && e.typeflag == tar.TypeDir {
					continue
				}
				if prev.typeflag != e.typeflag || !bytes.Equal(prev.data, e.data) || prev.link != e.link {
					return nil, fmt.Errorf("%s is shipped twice with different content (%s)", e.name, pin.Package)
				}
				continue
			}
			byName[e.name] = e
		}
	}
	out := make([]tarEntry, 0, len(byName)+1)
	for _, e := range byName {
		out = append(out, e)
	}
	out = append(out, tarEntry{name: "usr/bin/python3", typeflag: tar.TypeSymlink, mode: 0o777, link: "python3.11"})
	return out, nil
}

// debEntries unpacks a .deb's data.tar.xz: directories, regular files, symlinks and hard links, with the
// package's modes, minus the excluded path prefixes.
func debEntries(deb []byte, exclude []string) ([]tarEntry, error) {
	if !bytes.HasPrefix(deb, []byte("!<arch>\n")) {
		return nil, fmt.Errorf("not a Debian package (no ar header)")
	}
	off := 8
	for off+60 <= len(deb) {
		hdr := deb[off : off+60]
		member := strings.TrimRight(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.Atoi(strings.TrimSpace(string(hdr[48:58])))
		if err != nil {
			return nil, fmt.Errorf("bad ar member size for %q", member)
		}
		start := off + 60
		if start+size > len(deb) {
			return nil, fmt.Errorf("truncated ar member %q", member)
		}
		if strings.HasPrefix(member, "data.tar") {
			if member != "data.tar.xz" {
				return nil, fmt.Errorf("unsupported package payload %s (want data.tar.xz)", member)
			}
			xr, err := xz.NewReader(bytes.NewReader(deb[start : start+size]))
			if err != nil {
				return nil, fmt.Errorf("data.tar.xz: %w", err)
			}
			return tarEntries(tar.NewReader(xr), exclude)
		}
		off = start + size + size%2
	}
	return nil, fmt.Errorf("the package has no data.tar member")
}

func excluded(name string, exclude []string) bool {
	for _, p := range exclude {
		if name == strings.TrimSuffix(p, "/") || strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func tarEntries(tr *tar.Reader, exclude []string) ([]tarEntry, error) {
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("data.tar.xz: %w", err)
		}
		n := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		if n == "" || n == "." {
			continue
		}
		key := strings.TrimSuffix(n, "/")
		if h.Typeflag == tar.TypeDir {
			key += "/"
		}
		if excluded(key, exclude) {
			continue
		}
		e := tarEntry{name: n, mode: h.Mode & 0o7777}
		switch h.Typeflag {
		case tar.TypeDir:
			e.typeflag = tar.TypeDir
			e.name = strings.TrimSuffix(n, "/") + "/"
		case tar.TypeReg:
			e.typeflag = tar.TypeReg
			if e.data, err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		case tar.TypeSymlink:
			e.typeflag, e.link = tar.TypeSymlink, h.Linkname
		case tar.TypeLink:
			e.typeflag, e.link = tar.TypeLink, strings.TrimPrefix(strings.TrimPrefix(h.Linkname, "./"), "/")
		default:
			return nil, fmt.Errorf("%s: unsupported tar entry type %q", n, h.Typeflag)
		}
		out = append(out, e)
	}
}

// SiteEntries walks a `pip install --target` directory into entries below SitePackages: modes 0644, or
// 0755 for directories and executables; pip's bin/ (scripts with the build machine's interpreter) and
// byte code are left out.
func SiteEntries(dir string) ([]tarEntry, error) {
	var out []tarEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if rel == "bin" || d.Name() == "__pycache__" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(rel, ".pyc") {
			return nil
		}
		name := SitePackages + "/" + rel
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case info.IsDir():
			out = append(out, tarEntry{name: name + "/", typeflag: tar.TypeDir, mode: 0o755})
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, tarEntry{name: name, typeflag: tar.TypeSymlink, mode: 0o777, link: link})
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			out = append(out, tarEntry{name: name, typeflag: tar.TypeReg, mode: mode, data: data})
		default:
			return fmt.Errorf("%s: not a file, directory or symlink", p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading site-packages %s: %w", dir, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("site-packages %s is empty", dir)
	}
	return out, nil
}

func runnerBaseEntries(busybox []byte) []tarEntry {
	entries := baseEntries(busybox)
	have := map[string]bool{}
	for _, e := range entries {
		have[e.name] = true
	}
	for _, a := range runnerApplets {
		if !have["bin/"+a] {
			entries = append(entries, tarEntry{name: "bin/" + a, typeflag: tar.TypeSymlink, mode: 0o777, link: "busybox"})
		}
	}
	return entries
}

// RunnerImage assembles one platform's runner image.
func RunnerImage(in RunnerInputs, meta Meta, python string) (v1.Image, error) {
	site := append([]tarEntry{
		{name: "usr/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "usr/lib/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "usr/lib/python3/", typeflag: tar.TypeDir, mode: 0o755},
		{name: SitePackages + "/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "usr/local/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "usr/local/bin/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "usr/local/bin/netconform", typeflag: tar.TypeReg, mode: 0o755, data: []byte(entrypointScript)},
	}, in.Site...)
	layers := []struct {
		entries []tarEntry
		by      string
	}{
		{runnerBaseEntries(in.Busybox), "busybox-static (Debian) as /bin/busybox, applets, /etc/passwd, /tmp"},
		{in.Python, "python3.11-minimal, libpython3.11-stdlib and their libraries (Debian bookworm, runner.json)"},
		{site, "netconform and its dependencies (pip install --target, no byte code) in /" + SitePackages + ", /usr/local/bin/netconform"},
	}
	created := v1.Time{Time: meta.Epoch}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		data, err := layerTar(append([]tarEntry(nil), l.entries...), meta.Epoch)
		if err != nil {
			return nil, err
		}
		layer, err := layerFrom(data)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
			History: v1.History{Created: created, CreatedBy: l.by, Comment: "netconform ci/images"}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = in.Platform.OS, in.Platform.Arch, in.Platform.Variant
	cf.Created = created
	cf.Author = "netconform"
	labels := ociLabels(meta)
	labels["org.opencontainers.image.title"] = "netconform runner"
	delete(labels, "io.netconform.go-version") // no Go in this image
	if python != "" {
		labels["io.netconform.python-version"] = python
	}
	cf.Config = v1.Config{
		Entrypoint: []string{"/usr/local/bin/netconform"},
		Cmd:        []string{"run"},
		User:       RunnerUser,
		WorkingDir: "/tmp",
		Env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8",
			"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1",
		},
		Labels: labels,
	}
	return mutate.ConfigFile(img, cf)
}

// RunnerIndex assembles the multi-platform index of the runner.
func RunnerIndex(inputs []RunnerInputs, meta Meta, python string) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, in := range inputs {
		img, err := RunnerImage(in, meta, python)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Platform, err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{
			MediaType: types.OCIManifestSchema1,
			Platform:  &v1.Platform{OS: in.Platform.OS, Architecture: in.Platform.Arch, Variant: in.Platform.Variant},
		}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	labels := ociLabels(meta)
	labels["org.opencontainers.image.title"] = "netconform runner"
	delete(labels, "io.netconform.go-version")
	out, ok := mutate.Annotations(idx, labels).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("annotating the index lost its type")
	}
	return out, nil
}

func cmdBuildRunner(args []string) error {
	fset := flag.NewFlagSet("build-runner", flag.ContinueOnError)
	lockPath := fset.String("lock", "", "runner.json (pinned Debian packages)")
	f := addImageFlags(fset, "ghcr.io/netconform/runner")
	siteDir := fset.String("site", "", "directory with one `pip install --target` tree per architecture (SITE/amd64, SITE/arm64)")
	if _, err := parse(fset, args, 0); err != nil {
		return err
	}
	if *lockPath == "" || *f.basePath == "" || *f.debDir == "" || *siteDir == "" || *f.version == "" {
		return usageError{"build-runner needs --lock, --base, --deb-dir, --site and --version"}
	}
	img, err := f.resolve()
	if err != nil {
		return err
	}
	spec, err := readRunnerSpec(*lockPath)
	if err != nil {
		return err
	}
	var inputs []RunnerInputs
	for _, p := range img.platforms {
		bb, err := img.base.BusyboxFor(p.Arch, *f.debDir)
		if err != nil {
			return err
		}
		py, err := spec.DebsFor(p.Arch, *f.debDir)
		if err != nil {
			return err
		}
		site, err := SiteEntries(filepath.Join(*siteDir, p.Arch))
		if err != nil {
			return err
		}
		inputs = append(inputs, RunnerInputs{Platform: p, Busybox: bb, Python: py, Site: site})
	}
	meta := img.meta
	idx, err := RunnerIndex(inputs, meta, spec.Python)
	if err != nil {
		return err
	}
	ref, err := WriteOutputs(idx, meta, *f.out)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ref)
	return nil
}
