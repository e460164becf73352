package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// imageFlags are the flags build and build-runner share: the base packages, the output directory
// and the image's name, tag, source, time stamp and platforms.
type imageFlags struct {
	basePath, debDir, out, imgName, version, source, epoch, platforms *string
}

func addImageFlags(fset *flag.FlagSet, defaultName string) imageFlags {
	return imageFlags{
		basePath:  fset.String("base", "", "base.json (pinned busybox packages)"),
		debDir:    fset.String("deb-dir", "", "directory holding the pinned .deb files"),
		out:       fset.String("out", "dist/images", "output directory"),
		imgName:   fset.String("name", defaultName, "image name without tag"),
		version:   fset.String("version", "", "image tag (the package version)"),
		source:    fset.String("source", "https://github.com/netconform/netconform", "org.opencontainers.image.source"),
		epoch:     fset.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "time stamp of every file and the config (seconds; default SOURCE_DATE_EPOCH or 0)"),
		platforms: fset.String("platforms", "linux/amd64,linux/arm64", "platforms of the index"),
	}
}

// image is what the shared flags say once checked: the index's platforms, the base packages and
// the image's metadata (without the Go version, which only the probe image records).
type image struct {
	platforms []Platform
	base      *BaseSpec
	meta      Meta
}

// resolve checks the shared flags after parsing (the command checks its required ones first).
func (f imageFlags) resolve() (image, error) {
	epoch := int64(0)
	if *f.epoch != "" {
		v, err := strconv.ParseInt(*f.epoch, 10, 64)
		if err != nil || v < 0 {
			return image{}, usageError{fmt.Sprintf("--epoch / SOURCE_DATE_EPOCH must be seconds since 1970, got %q", *f.epoch)}
		}
		epoch = v
	}
	if _, err := name.NewTag(*f.imgName+":"+*f.version, name.StrictValidation); err != nil {
		return image{}, usageError{fmt.Sprintf("%s:%s is not a valid image reference: %v", *f.imgName, *f.version, err)}
	}
	platforms, err := parsePlatforms(*f.platforms)
	if err != nil {
		return image{}, err
	}
	base, err := readBaseSpec(*f.basePath)
	if err != nil {
		return image{}, err
	}
	meta := Meta{Name: *f.imgName, Version: *f.version, Source: *f.source, Epoch: time.Unix(epoch, 0).UTC()}
	return image{platforms: platforms, base: base, meta: meta}, nil
}
