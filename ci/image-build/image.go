package main

// The probe image, assembled without a daemon: one busybox base layer and one /probe layer per platform,
// every byte a function of the inputs (binaries, pinned busybox, version, epoch), so two builds of the
// same tree give the same index digest.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ulikunitz/xz"
)

// Applets linked to /bin/busybox: a shell for `kubectl exec` (the diagnosis runs `/bin/sh -c "/probe dial ..."`)
// and the few tools a person reaches for when debugging a pod's network.
var busyboxApplets = []string{
	"cat", "date", "echo", "env", "grep", "head", "hostname", "ls", "nc", "nslookup", "ping", "ps",
	"sh", "sleep", "tail", "timeout", "wget",
}

// Platform is one entry of the index.
type Platform struct {
	OS, Arch, Variant string
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// DefaultPlatforms are the platforms the release image carries.
var DefaultPlatforms = []Platform{{"linux", "amd64", ""}, {"linux", "arm64", "v8"}}

// Inputs of one platform's image.
type PlatformInputs struct {
	Platform Platform
	Probe    []byte // the static probe binary
	Busybox  []byte // a static busybox binary
}

// Meta is what every platform shares.
type Meta struct {
	Name    string // ghcr.io/netconform/probe
	Version string // 0.1.0
	Source  string // org.opencontainers.image.source
	Epoch   time.Time
	Go      string // the Go release that compiled the probe (the binary, so the digest, depends on it)
}

type tarEntry struct {
	name     string
	typeflag byte
	mode     int64
	data     []byte
	link     string
}

// layerTar writes entries sorted by name, owned by 0:0, every time stamp the epoch.
func layerTar(entries []tarEntry, epoch time.Time) ([]byte, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name: e.name, Typeflag: e.typeflag, Mode: e.mode, Linkname: e.link,
			ModTime: epoch, Uid: 0, Gid: 0, // no names, no atime/ctime: plain USTAR headers
		}
		if e.typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", e.name, err)
		}
		if e.typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func baseEntries(busybox []byte) []tarEntry {
	entries := []tarEntry{
		{name: "bin/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "bin/busybox", typeflag: tar.TypeReg, mode: 0o755, data: busybox},
		{name: "etc/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "etc/group", typeflag: tar.TypeReg, mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\n")},
		{name: "etc/passwd", typeflag: tar.TypeReg, mode: 0o644,
			data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{name: "tmp/", typeflag: tar.TypeDir, mode: 0o1777},
	}
	for _, a := range busyboxApplets {
		entries = append(entries, tarEntry{name: "bin/" + a, typeflag: tar.TypeSymlink, mode: 0o777, link: "busybox"})
	}
	return entries
}

func layerFrom(data []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// PlatformImage assembles one platform's image.
func PlatformImage(in PlatformInputs, meta Meta) (v1.Image, error) {
	baseTar, err := layerTar(baseEntries(in.Busybox), meta.Epoch)
	if err != nil {
		return nil, err
	}
	probeTar, err := layerTar([]tarEntry{{name: "probe", typeflag: tar.TypeReg, mode: 0o755, data: in.Probe}}, meta.Epoch)
	if err != nil {
		return nil, err
	}
	base, err := layerFrom(baseTar)
	if err != nil {
		return nil, err
	}
	probe, err := layerFrom(probeTar)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: meta.Epoch}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer,
			History: v1.History{Created: created, CreatedBy: "busybox-static (Debian) as /bin/busybox, applets, /etc/passwd, /tmp", Comment: "netconform ci/images"}},
		mutate.Addendum{Layer: probe, MediaType: types.OCILayer,
			History: v1.History{Created: created, CreatedBy: "probe (CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -buildid=') as /probe", Comment: "netconform ci/images"}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = in.Platform.OS, in.Platform.Arch, in.Platform.Variant
	cf.Created = created
	cf.Author = "netconform"
	cf.Config = v1.Config{
		Entrypoint: []string{"/probe"},
		Cmd:        []string{"serve"},
		User:       "65534:65534",
		WorkingDir: "/",
		Env:        []string{"PATH=/bin"},
		ExposedPorts: map[string]struct{}{
			"8080/tcp": {}, "8081/udp": {}, "8082/tcp": {},
		},
		Labels: ociLabels(meta),
	}
	return mutate.ConfigFile(img, cf)
}

func ociLabels(meta Meta) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":   "netconform probe",
		"org.opencontainers.image.version": meta.Version,
		"org.opencontainers.image.created": meta.Epoch.UTC().Format(time.RFC3339),
	}
	if meta.Source != "" {
		l["org.opencontainers.image.source"] = meta.Source
	}
	if meta.Go != "" {
		l["io.netconform.go-version"] = meta.Go
	}
	return l
}

// plainImage keeps go-containerregistry from writing the config media type as an `artifactType` into the
// index entry (meant for artifacts; image indexes from docker buildx or ko carry none).
type plainImage struct{ v1.Image }

func (plainImage) ArtifactType() (string, error) { return "", nil }

// Index assembles the multi-platform OCI image index.
func Index(inputs []PlatformInputs, meta Meta) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, in := range inputs {
		img, err := PlatformImage(in, meta)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Platform, err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{
			MediaType: types.OCIManifestSchema1,
			Platform:  &v1.Platform{OS: in.Platform.OS, Architecture: in.Platform.Arch, Variant: in.Platform.Variant},
		}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	out, ok := mutate.Annotations(idx, ociLabels(meta)).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("annotating the index lost its type")
	}
	return out, nil
}

// ---------------------------------------------------------------- busybox from a pinned Debian package

// BaseSpec is ci/image-build/base.json.
type BaseSpec struct {
	Busybox struct {
		Package string `json:"package"`
		Version string `json:"version"`
		Debs    map[string]struct {
			Pool   string `json:"pool"`
			SHA256 string `json:"sha256"`
		} `json:"debs"`
	} `json:"busybox"`
}

func readBaseSpec(path string) (*BaseSpec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the base image pins: %w", err)
	}
	var spec BaseSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", path, err)
	}
	return &spec, nil
}

// BusyboxFor reads the pinned .deb for arch from debDir, checks its sha256 and returns /bin/busybox from it.
func (s *BaseSpec) BusyboxFor(arch, debDir string) ([]byte, error) {
	pin, ok := s.Busybox.Debs[arch]
	if !ok {
		return nil, fmt.Errorf("base.json pins no busybox package for %s", arch)
	}
	path := filepath.Join(debDir, filepath.Base(pin.Pool))
	deb, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the pinned busybox package for %s is missing (%s); `ci/images build` fetches it", arch, path)
	}
	sum := sha256.Sum256(deb)
	if got := hex.EncodeToString(sum[:]); got != pin.SHA256 {
		return nil, fmt.Errorf("%s has sha256 %s, but base.json pins %s", path, got, pin.SHA256)
	}
	return fileFromDeb(deb, "./bin/busybox")
}

// fileFromDeb returns one regular file from a .deb's data.tar.xz (ar archive: debian-binary, control, data).
func fileFromDeb(deb []byte, want string) ([]byte, error) {
	if !bytes.HasPrefix(deb, []byte("!<arch>\n")) {
		return nil, fmt.Errorf("not a Debian package (no ar header)")
	}
	off := 8
	for off+60 <= len(deb) {
		hdr := deb[off : off+60]
		name := strings.TrimRight(strings.TrimSpace(string(hdr[0:16])), "/")
		var size int
		if _, err := fmt.Sscanf(strings.TrimSpace(string(hdr[48:58])), "%d", &size); err != nil {
			return nil, fmt.Errorf("bad ar member size for %q", name)
		}
		start := off + 60
		if start+size > len(deb) {
			return nil, fmt.Errorf("truncated ar member %q", name)
		}
		body := deb[start : start+size]
		if strings.HasPrefix(name, "data.tar") {
			if name != "data.tar.xz" {
				return nil, fmt.Errorf("unsupported package payload %s (want data.tar.xz)", name)
			}
			xr, err := xz.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, fmt.Errorf("data.tar.xz: %w", err)
			}
			tr := tar.NewReader(xr)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					return nil, fmt.Errorf("the package has no %s", want)
				}
				if err != nil {
					return nil, fmt.Errorf("data.tar.xz: %w", err)
				}
				if h.Name == want && h.Typeflag == tar.TypeReg {
					return io.ReadAll(tr)
				}
			}
		}
		off = start + size + size%2
	}
	return nil, fmt.Errorf("the package has no data.tar member")
}
