#include "host/tls_identity.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <array>
#include <memory>

#include <fmt/format.h>

#include "base/error.h"

namespace vireo {
namespace {

template <auto free_function>
struct Deleter {
    template <typename T>
    void operator()(T* object) const {
        free_function(object);
    }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using Certificate = std::unique_ptr<X509, Deleter<X509_free>>;
using Extension = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using File = std::unique_ptr<FILE, Deleter<fclose>>;

[[noreturn]] void fail_openssl(std::string_view what) {
    fail("TLS: cannot {}: OpenSSL error {:#x}", what, ERR_get_error());
}

std::string host_name() {
    std::array<char, 256> name{};
    ::gethostname(name.data(), name.size() - 1);
    return name[0] ? name.data() : "localhost";
}

Certificate self_signed(EVP_PKEY* key) {
    Certificate certificate(X509_new());
    std::array<unsigned char, 16> serial;
    if (!certificate || RAND_bytes(serial.data(), serial.size()) != 1) {
        fail_openssl("make a certificate");
    }
    serial[0] &= 0x7f;  // a positive serial number
    std::unique_ptr<BIGNUM, Deleter<BN_free>> number(
        BN_bin2bn(serial.data(), serial.size(), nullptr));
    std::string name = host_name();
    X509_NAME* subject = X509_get_subject_name(certificate.get());
    constexpr long kTenYears = 10L * 365 * 24 * 3600;
    if (!number || X509_set_version(certificate.get(), 2) != 1 ||
        !BN_to_ASN1_INTEGER(number.get(), X509_get_serialNumber(certificate.get())) ||
        !X509_gmtime_adj(X509_getm_notBefore(certificate.get()), 0) ||
        !X509_gmtime_adj(X509_getm_notAfter(certificate.get()), kTenYears) ||
        X509_set_pubkey(certificate.get(), key) != 1 ||
        X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>("Vireo host"), -1, -1,
                                   0) != 1 ||
        X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(certificate.get(), subject) != 1) {
        fail_openssl("fill in the certificate");
    }
    std::string names = fmt::format("DNS:{},DNS:localhost,IP:127.0.0.1,IP:::1", name);
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, certificate.get(), certificate.get(), nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, names.c_str()},
                              std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                              std::pair{NID_key_usage, "critical,digitalSignature,keyCertSign"},
                              std::pair{NID_ext_key_usage, "serverAuth"}}) {
        Extension extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value));
        if (!extension || X509_add_ext(certificate.get(), extension.get(), -1) != 1) {
            fail_openssl(fmt::format("add the extension {}", value));
        }
    }
    if (X509_sign(certificate.get(), key, EVP_sha256()) == 0) {
        fail_openssl("sign the certificate");
    }
    return certificate;
}

// Writes a PEM file under a temporary name, syncs it and renames it into place.
template <typename Write>
void write_pem(const std::filesystem::path& path, mode_t mode, Write write) {
    std::filesystem::path temporary = path.string() + ".new";
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    File file(fd < 0 ? nullptr : ::fdopen(fd, "w"));
    if (!file) {
        fail_errno("{}: cannot write", temporary.string());
    }
    if (write(file.get()) != 1 || ::fflush(file.get()) != 0 || ::fsync(fd) != 0) {
        fail("{}: cannot write", temporary.string());
    }
    file.reset();
    std::filesystem::rename(temporary, path);
}

void make_identity(const std::filesystem::path& certificate_path,
                   const std::filesystem::path& key_path) {
    Key key(EVP_EC_gen("P-256"));
    if (!key) {
        fail_openssl("make a P-256 key");
    }
    Certificate certificate = self_signed(key.get());
    std::filesystem::create_directories(key_path.parent_path());
    write_pem(key_path, 0600, [&](FILE* file) {
        return PEM_write_PrivateKey(file, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    write_pem(certificate_path, 0644,
              [&](FILE* file) { return PEM_write_X509(file, certificate.get()); });
}

std::string fingerprint_of(const std::filesystem::path& path) {
    File file(::fopen(path.c_str(), "r"));
    Certificate certificate(file ? PEM_read_X509(file.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!certificate) {
        fail("{}: not a readable PEM certificate", path.string());
    }
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest;
    unsigned int length = 0;
    if (X509_digest(certificate.get(), EVP_sha256(), digest.data(), &length) != 1) {
        fail_openssl("hash the certificate");
    }
    std::string text;
    for (unsigned int i = 0; i < length; ++i) {
        text += fmt::format("{}{:02X}", i ? ":" : "", digest[i]);
    }
    return text;
}

}  // namespace

TlsIdentity tls_identity(const std::filesystem::path& state_dir,
                         const std::filesystem::path& certificate,
                         const std::filesystem::path& key) {
    if (certificate.empty() != key.empty()) {
        fail("--tls-cert and --tls-key go together: give both, or neither for the host's own");
    }
    TlsIdentity identity{certificate, key, ""};
    if (certificate.empty()) {
        identity.certificate = state_dir / "tls" / "host.crt";
        identity.key = state_dir / "tls" / "host.key";
        if (!std::filesystem::exists(identity.certificate) ||
            !std::filesystem::exists(identity.key)) {
            make_identity(identity.certificate, identity.key);
        }
    }
    identity.fingerprint = fingerprint_of(identity.certificate);
    return identity;
}

}  // namespace vireo
