package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SPDX returns an SPDX 2.3 JSON document for a Go binary: one package for the
// binary's main module and one per module it was linked with, as the Go
// toolchain recorded them (the same list as `go version -m`), each with its
// version, its go.sum hash and a purl. It names the binary by its SHA-256, so
// the document is the same for the same binary.
func SPDX(name string, bin []byte, info *buildinfo.BuildInfo, created time.Time) ([]byte, error) {
	sum := sha256.Sum256(bin)
	binSHA := hex.EncodeToString(sum[:])
	type checksum struct {
		Algorithm     string `json:"algorithm"`
		ChecksumValue string `json:"checksumValue"`
	}
	type extRef struct {
		Category string `json:"referenceCategory"`
		Type     string `json:"referenceType"`
		Locator  string `json:"referenceLocator"`
	}
	type pkg struct {
		SPDXID           string     `json:"SPDXID"`
		Name             string     `json:"name"`
		VersionInfo      string     `json:"versionInfo,omitempty"`
		DownloadLocation string     `json:"downloadLocation"`
		FilesAnalyzed    bool       `json:"filesAnalyzed"`
		Checksums        []checksum `json:"checksums,omitempty"`
		ExternalRefs     []extRef   `json:"externalRefs,omitempty"`
		Comment          string     `json:"comment,omitempty"`
	}
	type rel struct {
		Element string `json:"spdxElementId"`
		Type    string `json:"relationshipType"`
		Related string `json:"relatedSpdxElement"`
	}
	doc := struct {
		SPDXVersion       string `json:"spdxVersion"`
		DataLicense       string `json:"dataLicense"`
		SPDXID            string `json:"SPDXID"`
		Name              string `json:"name"`
		DocumentNamespace string `json:"documentNamespace"`
		CreationInfo      struct {
			Created  string   `json:"created"`
			Creators []string `json:"creators"`
		} `json:"creationInfo"`
		Packages      []pkg `json:"packages"`
		Relationships []rel `json:"relationships"`
	}{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              name,
		DocumentNamespace: "https://github.com/heraldlb/herald/spdx/" + name + "-" + binSHA,
	}
	doc.CreationInfo.Created = created.UTC().Format(time.RFC3339)
	doc.CreationInfo.Creators = []string{"Tool: herald-imagebuild", "Organization: Herald"}

	binID := "SPDXRef-Package-" + name
	doc.Packages = append(doc.Packages, pkg{
		SPDXID:           binID,
		Name:             name,
		VersionInfo:      info.Main.Version,
		DownloadLocation: "NOASSERTION",
		Checksums:        []checksum{{"SHA256", binSHA}},
		Comment:          fmt.Sprintf("built with %s from %s", info.GoVersion, info.Path),
	})
	doc.Relationships = append(doc.Relationships, rel{"SPDXRef-DOCUMENT", "DESCRIBES", binID})

	add := func(id, path, version, hash, comment string) {
		p := pkg{
			SPDXID:           id,
			Name:             path,
			VersionInfo:      version,
			DownloadLocation: "NOASSERTION",
			Comment:          comment,
		}
		if version != "" && version != "(devel)" {
			p.ExternalRefs = []extRef{{"PACKAGE-MANAGER", "purl", "pkg:golang/" + path + "@" + version}}
		}
		if hash != "" {
			p.Comment = strings.TrimSpace(p.Comment + " go.sum " + hash)
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, rel{binID, "CONTAINS", id})
	}
	add("SPDXRef-Module-main", info.Main.Path, info.Main.Version, info.Main.Sum, "main module")
	add("SPDXRef-Go-stdlib", "stdlib", strings.TrimPrefix(info.GoVersion, "go"), "", "Go standard library")
	for i, m := range info.Deps {
		path, version, hash, comment := m.Path, m.Version, m.Sum, ""
		if m.Replace != nil {
			comment = "replaced by " + m.Replace.Path + "@" + m.Replace.Version
			path, version, hash = m.Replace.Path, m.Replace.Version, m.Replace.Sum
		}
		add(fmt.Sprintf("SPDXRef-Module-%d", i), path, version, hash, comment)
	}
	return json.MarshalIndent(doc, "", "  ")
}
