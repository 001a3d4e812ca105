#pragma once

#include <filesystem>
#include <string>

namespace vireo {

// The certificate and key vireod's TCP listener presents.
struct TlsIdentity {
    std::filesystem::path certificate;  // PEM
    std::filesystem::path key;          // PEM
    std::string fingerprint;            // SHA-256 of the certificate, "AB:CD:..."
};

// The operator's certificate and key when both are given; otherwise the
// host's own, made self-signed at the first start in `<state_dir>/tls/`
// (host.crt, host.key 0600) and kept, as ESXi and Proxmox do: a P-256 key, the
// host name, localhost, 127.0.0.1 and ::1 as its names, valid ten years.
// Clients trust it with `--ca-cert host.crt` (or pin its fingerprint). Throws
// vireo::Error naming the file that cannot be read or written.
TlsIdentity tls_identity(const std::filesystem::path& state_dir,
                         const std::filesystem::path& certificate,
                         const std::filesystem::path& key);

}  // namespace vireo
