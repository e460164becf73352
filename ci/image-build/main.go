// image-build builds the netconform probe image as a reproducible multi-platform OCI index and pushes or
// mirrors images with go-containerregistry: no container daemon, no registry needed to build.
//
//	image-build build  --probe-src DIR --base base.json --deb-dir DIR --out DIR --name REF --version V
//	image-build build-runner --lock runner.json --base base.json --deb-dir DIR --site DIR --out DIR --name REF --version V
//	                                                         (the runner image: runner.go)
//	image-build push   [--layout DIR] [--insecure] REPO      (pushes REPO/<image>:<version>)
//	image-build mirror [--insecure] SRC DST                  (copies every platform, digest unchanged)
//
// The last line on stdout is always NAME:TAG@sha256:DIGEST. Errors are one sentence on stderr, exit 1;
// usage errors exit 2.
package main

import (
	"archive/tar"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const (
	annContainerdName = "io.containerd.image.name"
	annRefName        = "org.opencontainers.image.ref.name"
)

// stdout receives the result lines (tests read them).
var stdout io.Writer = os.Stdout

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func main() {
	if len(os.Args) < 2 {
		fail(usageError{"usage: image-build build|build-runner|push|mirror ... (see ci/images --help)"})
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = cmdBuild(os.Args[2:])
	case "build-runner":
		err = cmdBuildRunner(os.Args[2:])
	case "push":
		err = cmdPush(os.Args[2:])
	case "mirror":
		err = cmdMirror(os.Args[2:])
	default:
		err = usageError{fmt.Sprintf("unknown command %q: want build, build-runner, push or mirror", os.Args[1])}
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintln(os.Stderr, "image-build: "+msg)
	var u usageError
	if errors.As(err, &u) {
		os.Exit(2)
	}
	os.Exit(1)
}

func parse(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return nil, usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	if fs.NArg() != positional {
		return nil, usageError{fmt.Sprintf("%s takes %d argument(s), got %d", fs.Name(), positional, fs.NArg())}
	}
	return fs.Args(), nil
}

// ---------------------------------------------------------------- build

func cmdBuild(args []string) error {
	fset := flag.NewFlagSet("build", flag.ContinueOnError)
	probeSrc := fset.String("probe-src", "", "the probe's Go module directory")
	f := addImageFlags(fset, "ghcr.io/netconform/probe")
	goBin := fset.String("go", "go", "the go command")
	timeout := fset.Duration("timeout", 10*time.Minute, "bound on each go build")
	if _, err := parse(fset, args, 0); err != nil {
		return err
	}
	if *probeSrc == "" || *f.basePath == "" || *f.debDir == "" || *f.version == "" {
		return usageError{"build needs --probe-src, --base, --deb-dir and --version"}
	}
	img, err := f.resolve()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "image-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var inputs []PlatformInputs
	for _, p := range img.platforms {
		bb, err := img.base.BusyboxFor(p.Arch, *f.debDir)
		if err != nil {
			return err
		}
		bin, err := goBuild(*goBin, *probeSrc, p, filepath.Join(tmp, "probe-"+p.Arch), *timeout)
		if err != nil {
			return err
		}
		inputs = append(inputs, PlatformInputs{Platform: p, Probe: bin, Busybox: bb})
	}
	goVersion, err := exec.Command(*goBin, "env", "GOVERSION").Output()
	if err != nil {
		return fmt.Errorf("cannot ask %s for its version: %v", *goBin, err)
	}
	meta := img.meta
	meta.Go = strings.TrimSpace(string(goVersion))
	idx, err := Index(inputs, meta)
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

func parsePlatforms(s string) ([]Platform, error) {
	var out []Platform
	for _, f := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(f), "/")
		if len(parts) < 2 || parts[0] != "linux" {
			return nil, usageError{fmt.Sprintf("platform %q: want linux/ARCH", f)}
		}
		p := Platform{OS: "linux", Arch: parts[1]}
		if len(parts) == 3 {
			p.Variant = parts[2]
		} else if p.Arch == "arm64" {
			p.Variant = "v8" // how registries and containerd's platform matcher normalise arm64
		}
		out = append(out, p)
	}
	return out, nil
}

func goBuild(goBin, src string, p Platform, dest string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", dest, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if p.Arch == "arm64" {
		cmd.Env = append(cmd.Env, "GOARM64=v8.0")
	}
	if p.Arch == "amd64" {
		cmd.Env = append(cmd.Env, "GOAMD64=v1")
	}
	outb, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("building the probe for %s did not finish within %s", p, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("building the probe for %s failed: %s", p, lastLines(string(outb), 3))
	}
	return os.ReadFile(dest)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// WriteOutputs writes OUT/probe-oci (an OCI layout), OUT/probe.oci.tar (the same layout as one archive,
// what `ctr images import` and `kind load image-archive` take) and OUT/probe.ref; it returns NAME:TAG@DIGEST.
func WriteOutputs(idx v1.ImageIndex, meta Meta, out string) (string, error) {
	digest, err := idx.Digest()
	if err != nil {
		return "", err
	}
	base := path.Base(meta.Name)
	tag := meta.Name + ":" + meta.Version
	ref := tag + "@" + digest.String()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", fmt.Errorf("cannot create %s: %w", out, err)
	}
	layoutDir := filepath.Join(out, base+"-oci")
	// Unique scratch names: two builds into the same directory (the lab and a person) do not collide.
	partial, err := os.MkdirTemp(out, "."+base+"-oci-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(partial)
	if err := os.Chmod(partial, 0o755); err != nil {
		return "", err
	}
	lp, err := layout.Write(partial, empty.Index)
	if err != nil {
		return "", fmt.Errorf("cannot write the OCI layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annContainerdName: tag,
		annRefName:        meta.Version,
	})); err != nil {
		return "", fmt.Errorf("cannot write the OCI layout: %w", err)
	}
	os.RemoveAll(layoutDir)
	if err := os.Rename(partial, layoutDir); err != nil {
		return "", err
	}
	archive := filepath.Join(out, base+".oci.tar")
	tmpTar := fmt.Sprintf("%s.%d.partial", archive, os.Getpid())
	defer os.Remove(tmpTar)
	if err := tarDir(layoutDir, tmpTar, meta.Epoch); err != nil {
		return "", fmt.Errorf("cannot write %s: %w", archive, err)
	}
	if err := os.Rename(tmpTar, archive); err != nil {
		return "", err
	}
	refFile := filepath.Join(out, base+".ref")
	if err := os.WriteFile(refFile+".partial", []byte(ref+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(refFile+".partial", refFile); err != nil {
		return "", err
	}
	return ref, nil
}

// tarDir archives dir with sorted entries, 0:0 ownership, fixed modes and the epoch as every mtime.
func tarDir(dir, dest string, epoch time.Time) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	f, err := os.Create(dest)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch, Mode: 0o644, Typeflag: tar.TypeReg}
		if st.IsDir() {
			hdr.Name += "/"
			hdr.Mode, hdr.Typeflag = 0o755, tar.TypeDir
		} else {
			hdr.Size = st.Size()
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !st.IsDir() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// ReadLayout returns the image index a build wrote and its NAME:TAG.
func ReadLayout(dir string) (v1.ImageIndex, string, error) {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, "", fmt.Errorf("%s is not an OCI layout (run `ci/images build` first): %w", dir, err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		return nil, "", err
	}
	im, err := top.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	if len(im.Manifests) != 1 {
		return nil, "", fmt.Errorf("%s holds %d entries, want exactly one image index", dir, len(im.Manifests))
	}
	desc := im.Manifests[0]
	tag := desc.Annotations[annContainerdName]
	if tag == "" {
		return nil, "", fmt.Errorf("%s names no image (annotation %s)", dir, annContainerdName)
	}
	idx, err := top.ImageIndex(desc.Digest)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", dir, err)
	}
	return idx, tag, nil
}

// ---------------------------------------------------------------- push and mirror

func remoteOpts(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
}

func nameOpts(insecure bool) []name.Option {
	if insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// PushTarget is where `push REPO` puts NAME:TAG: REPO/<last path element of NAME>:TAG.
func PushTarget(repo, tag string) string {
	i := strings.LastIndex(tag, "/")
	return strings.TrimRight(repo, "/") + "/" + tag[i+1:]
}

func cmdPush(args []string) error {
	fset := flag.NewFlagSet("push", flag.ContinueOnError)
	dir := fset.String("layout", "dist/images/probe-oci", "the OCI layout `build` wrote")
	insecure := fset.Bool("insecure", false, "plain HTTP to the registry")
	timeout := fset.Duration("timeout", 10*time.Minute, "bound on the whole push")
	pos, err := parse(fset, args, 1)
	if err != nil {
		return err
	}
	idx, tag, err := ReadLayout(*dir)
	if err != nil {
		return err
	}
	target := PushTarget(pos[0], tag)
	ref, err := name.ParseReference(target, nameOpts(*insecure)...)
	if err != nil {
		return usageError{fmt.Sprintf("%s is not a valid image reference: %v", target, err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := remote.WriteIndex(ref, idx, remoteOpts(ctx)...); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pushing to %s did not finish within %s", ref, *timeout)
		}
		return fmt.Errorf("pushing to %s failed: %v", ref, err)
	}
	d, _ := idx.Digest()
	fmt.Fprintln(stdout, ref.String()+"@"+d.String())
	return nil
}

func cmdMirror(args []string) error {
	fset := flag.NewFlagSet("mirror", flag.ContinueOnError)
	insecure := fset.Bool("insecure", false, "plain HTTP to both registries")
	timeout := fset.Duration("timeout", 10*time.Minute, "bound on the whole copy")
	pos, err := parse(fset, args, 2)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	d, err := Mirror(ctx, pos[0], pos[1], nameOpts(*insecure)...)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("copying %s to %s did not finish within %s", pos[0], pos[1], *timeout)
		}
		return err
	}
	fmt.Fprintln(stdout, pos[1]+"@"+d)
	return nil
}

// Mirror copies src (an index with every platform, or a single image) to dst unchanged; it returns the digest.
func Mirror(ctx context.Context, src, dst string, opts ...name.Option) (string, error) {
	sref, err := name.ParseReference(src, opts...)
	if err != nil {
		return "", usageError{fmt.Sprintf("%s is not a valid image reference: %v", src, err)}
	}
	dref, err := name.ParseReference(dst, opts...)
	if err != nil {
		return "", usageError{fmt.Sprintf("%s is not a valid image reference: %v", dst, err)}
	}
	desc, err := remote.Get(sref, remoteOpts(ctx)...)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %v", src, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return "", err
		}
		err = remote.WriteIndex(dref, idx, remoteOpts(ctx)...)
		if err != nil {
			return "", fmt.Errorf("cannot write %s: %v", dst, err)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return "", err
		}
		if err := remote.Write(dref, img, remoteOpts(ctx)...); err != nil {
			return "", fmt.Errorf("cannot write %s: %v", dst, err)
		}
	}
	return desc.Digest.String(), nil
}
