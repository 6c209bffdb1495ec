// Environment for the processes a test starts: a variable set for a scope, and an LD_PRELOAD
// shim (tests/integration/shim/) loaded into them.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace harness {

// Sets an environment variable for the processes started in its scope.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const std::string& value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        ::setenv(name, value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (old_) ::setenv(name_, old_->c_str(), 1);
        else ::unsetenv(name_);
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

// LD_PRELOAD of `shim` for the processes started in its scope. The shim is not instrumented;
// under ASan it cannot come after the runtime, so the link-order check is turned off.
class ScopedPreload {
public:
    explicit ScopedPreload(const char* shim) : preload_("LD_PRELOAD", shim), asan_("ASAN_OPTIONS", asan_options()) {}

private:
    static std::string asan_options() {
        const char* asan = std::getenv("ASAN_OPTIONS");
        std::string options = asan ? asan : "";
        options.append(":verify_asan_link_order=0");
        return options;
    }
    ScopedEnv preload_;
    ScopedEnv asan_;
};

}  // namespace harness
