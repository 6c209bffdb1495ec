// Test certificates made at test time by tests/tls/make_certs.sh (no private key is committed):
// the first call runs the script into a fresh temp dir, once per test binary, and the dir is
// removed when the binary exits. See the script for the files it makes.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <unistd.h>

namespace tls_certs {

class Dir {
public:
    Dir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "mdagg-certs-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
        path_ = pattern;
        const std::string command = std::string("bash '") + MDAGG_MAKE_CERTS_SH + "' '" +
                                    path_.string() + "' >'" + path_.string() + "/make.log' 2>&1";
        if (std::system(command.c_str()) != 0)
            throw std::runtime_error("tests/tls/make_certs.sh failed; see " + path_.string() +
                                     "/make.log");
    }
    ~Dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

inline const std::filesystem::path& dir() {
    static const Dir certs;  // thread-safe, once per binary
    return certs.path();
}

// tls_certs::file("server.pem"), tls_certs::file("ca.pem"), ...
inline std::string file(const std::string& name) { return (dir() / name).string(); }

}  // namespace tls_certs
